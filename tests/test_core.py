"""The Rust <-> Python round trip through ``lendgate._core``."""

import tomllib
from pathlib import Path

import pytest

import lendgate
from lendgate import InvalidArgumentError, normalize_key


def test_core_version_is_the_crate_version() -> None:
    cargo = Path(__file__).resolve().parent.parent / "core_rs" / "Cargo.toml"
    workspace = tomllib.loads(cargo.read_text())["workspace"]["package"]
    assert lendgate.core_version == workspace["version"]


def test_phone_spellings_normalise_to_one_key() -> None:
    assert normalize_key("phone", "+7 (912) 345-67-89") == "79123456789"
    assert normalize_key("phone", "8 912 345 67 89") == "79123456789"


def test_text_keys_fold_case_and_whitespace_across_unicode() -> None:
    assert normalize_key("text", "  ИВАН   Petrov ") == "иван petrov"


def test_core_errors_become_domain_errors_with_the_field() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        normalize_key("phone", "no digits here")
    assert [v.field for v in caught.value.violations] == ["phone"]
    assert "5 to 15 digits" in caught.value.message


def test_unknown_kind_is_rejected_not_panicking() -> None:
    with pytest.raises(InvalidArgumentError, match="unknown key kind"):
        normalize_key("fax", "123")  # type: ignore[arg-type]
