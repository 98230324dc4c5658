"""Partner identity: every call is authenticated, and domain code sees the caller."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import grpc
import pytest

from lendgate.auth import DevAuthenticator, TokenAuthenticator, current_partner
from lendgate.config import Config, ConfigError
from lendgate.errors import NotFoundError, UnauthenticatedError
from servers.app import create_server

METHOD = "/lendgate.v1.StrategyService/GetStrategy"


class EchoPartner:
    """Reports the partner it was called for through a NOT_FOUND message."""

    async def GetStrategy(self, request: object, context: object) -> None:  # noqa: N802
        raise NotFoundError(f"caller={current_partner().partner_id}")


def tokens_file(tmp_path: Path, **tokens: str) -> Path:
    path = tmp_path / "tokens"
    lines = [
        f"{partner} {hashlib.sha256(token.encode()).hexdigest()}"
        for partner, token in tokens.items()
    ]
    path.write_text("# partner sha256(token)\n" + "\n".join(lines) + "\n")
    return path


def call(config: Config, metadata: tuple[tuple[str, str], ...]) -> grpc.aio.AioRpcError:
    async def scenario() -> grpc.aio.AioRpcError:
        running = await create_server(config, {"lendgate.v1.StrategyService": EchoPartner()})
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as chan:
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await chan.unary_unary(METHOD)(b"", metadata=metadata, timeout=5)
                return caught.value
        finally:
            await running.stop(0)

    return asyncio.run(scenario())


def test_token_mode_passes_the_partner_of_the_token(tmp_path: Path) -> None:
    config = Config(
        listen="127.0.0.1:0",
        auth_mode="token",
        auth_tokens_file=str(tokens_file(tmp_path, bank_a="s3cret-a", bank_b="s3cret-b")),
    )
    err = call(config, (("authorization", "Bearer s3cret-b"),))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert err.details() == "caller=bank_b"


@pytest.mark.parametrize(
    "metadata",
    [(), (("authorization", "Bearer wrong"),), (("x-lendgate-partner", "bank_a"),)],
)
def test_token_mode_refuses_calls_without_a_valid_token(
    tmp_path: Path, metadata: tuple[tuple[str, str], ...]
) -> None:
    config = Config(
        listen="127.0.0.1:0",
        auth_mode="token",
        auth_tokens_file=str(tokens_file(tmp_path, bank_a="s3cret-a")),
    )
    assert call(config, metadata).code() == grpc.StatusCode.UNAUTHENTICATED


def test_dev_mode_takes_the_partner_header_or_dev() -> None:
    config = Config(listen="127.0.0.1:0")
    assert call(config, (("x-lendgate-partner", "bank_a"),)).details() == "caller=bank_a"
    assert call(config, ()).details() == "caller=dev"


def test_dev_mode_rejects_malformed_partner_ids() -> None:
    with pytest.raises(UnauthenticatedError):
        DevAuthenticator().authenticate([("x-lendgate-partner", "Bank A; DROP")])


def test_bad_tokens_files_are_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_text("bank_a not-a-digest\n")
    with pytest.raises(ConfigError, match=r"bad:1: expected PARTNER SHA256HEX"):
        TokenAuthenticator.from_file(bad)
    with pytest.raises(ConfigError, match=r"(?i)no such file"):
        TokenAuthenticator.from_file(tmp_path / "missing")


def test_outside_a_call_there_is_no_partner() -> None:
    with pytest.raises(UnauthenticatedError):
        current_partner()
