"""Configuration precedence and the errors of a bad configuration."""

from pathlib import Path

import pytest

from lendgate.config import ConfigError, load_config


def test_defaults_serve_on_loopback_with_embedded_sqlite() -> None:
    config = load_config(env={})
    assert config.listen == "127.0.0.1:50051"
    assert config.effective_database_url == "sqlite:///var/lendgate.db"


def test_flags_beat_environment_which_beats_the_file(tmp_path: Path) -> None:
    path = tmp_path / "lendgate.toml"
    path.write_text('listen = "127.0.0.1:6000"\nlog_level = "DEBUG"\ngrace_period_s = 1\n')
    env = {"LENDGATE_LISTEN": "127.0.0.1:7000", "LENDGATE_CONFIG": str(path)}
    assert load_config(env=env).listen == "127.0.0.1:7000"
    assert load_config(env=env).log_level == "DEBUG"
    assert load_config(env=env).grace_period_s == 1.0
    assert load_config(env=env, overrides={"listen": "127.0.0.1:8000"}).listen == "127.0.0.1:8000"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("listen = ", "not valid TOML"),
        ("colour = 'blue'", "unknown key 'colour'"),
        ("listen = 'nowhere'", "expected HOST:PORT"),
        ("grace_period_s = 'soon'", "expected float"),
        ("database_url = 'mysql://x'", "database_url"),
        ("max_pending_calls = 1", "max_pending_calls"),
        ("max_pending_calls = -5", "max_pending_calls"),
    ],
)
def test_bad_files_name_the_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_config(path, env={})


def test_missing_file_is_reported() -> None:
    with pytest.raises(ConfigError, match=r"config file /nonexistent\.toml"):
        load_config("/nonexistent.toml", env={})


def test_rule_admins_default_to_everyone_only_in_dev_mode() -> None:
    assert load_config(env={}).rule_admin_partners is None
    token = load_config(env={"LENDGATE_AUTH_MODE": "token"})
    assert token.rule_admin_partners == frozenset()
    listed = load_config(env={"LENDGATE_RULE_ADMINS": "bureau, ops"})
    assert listed.rule_admin_partners == frozenset({"bureau", "ops"})
