"""The platform process over real gRPC: health, reflection, errors, lifecycle."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from lendgate.config import Config
from lendgate.errors import InvalidArgumentError, NotFoundError
from servers.app import PLATFORM_SERVICES, create_server, service_descriptor
from tests.conftest import ServerProcess, clean_env, start_server, stop_server


def rich_status(err: grpc.RpcError) -> status_pb2.Status:
    """The google.rpc.Status a server sent in the trailers of a failed call."""
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            return status_pb2.Status.FromString(value)
    raise AssertionError("no rich status in the trailers")


def error_reason(err: grpc.RpcError) -> str:
    for detail in rich_status(err).details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    raise AssertionError("no ErrorInfo in the status")


def call_raw(channel: grpc.Channel, method: str, payload: bytes) -> bytes:
    stub = channel.unary_unary(method)
    return stub(payload, timeout=10)  # type: ignore[no-any-return]


def test_health_reports_serving_overall_and_per_service(channel: grpc.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", *PLATFORM_SERVICES):
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, service


def test_health_of_an_unknown_service_is_not_found(channel: grpc.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.Check(health_pb2.HealthCheckRequest(service="lendgate.v1.Nope"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_the_four_platform_services(channel: grpc.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    (reply,) = list(stub.ServerReflectionInfo(iter([request]), timeout=5))
    names = {s.name for s in reply.list_services_response.service}
    assert set(PLATFORM_SERVICES) <= names
    assert "grpc.health.v1.Health" in names
    assert "lendgate.v1.ParticipantNodeService" not in names


def test_reflection_serves_the_contract_for_grpcurl(channel: grpc.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(file_containing_symbol=PLATFORM_SERVICES[0])
    (reply,) = list(stub.ServerReflectionInfo(iter([request]), timeout=5))
    assert reply.file_descriptor_response.file_descriptor_proto


def test_unbuilt_method_answers_unimplemented_saying_so() -> None:
    async def call() -> grpc.aio.AioRpcError:
        # No servicers: the method is unbuilt whatever the wiring serves by now.
        async with serve_in_process({}) as chan:
            method = chan.unary_unary("/lendgate.v1.StrategyService/ExportStrategyGraph")
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await method(b"", timeout=10)
            return caught.value

    err = asyncio.run(call())
    assert err.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "StrategyService/ExportStrategyGraph is not built yet" in (err.details() or "")
    assert error_reason(err) == "NOT_BUILT_YET"


def test_unknown_method_answers_unimplemented(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        call_raw(channel, "/lendgate.v1.ScoringService/NoSuchMethod", b"")
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_malformed_message_answers_invalid_argument(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        # A field header promising 100 bytes of a length-delimited field, then nothing.
        call_raw(channel, "/lendgate.v1.ScoringService/CheckApplication", b"\x0a\x64\x01")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid lendgate.v1." in (caught.value.details() or "")
    assert error_reason(caught.value) == "MALFORMED_MESSAGE"


@asynccontextmanager
async def serve_in_process(
    servicers: dict[str, object], config: Config | None = None
) -> AsyncIterator[grpc.aio.Channel]:
    running = await create_server(config or Config(listen="127.0.0.1:0"), servicers)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as chan:
            yield chan
    finally:
        await running.stop(0)


def test_every_method_nobody_implements_is_unimplemented() -> None:
    async def scenario() -> list[str]:
        failures = []
        async with serve_in_process({}) as chan:
            for service_name in PLATFORM_SERVICES:
                for method in service_descriptor(service_name).methods:
                    path = f"/{service_name}/{method.name}"
                    try:
                        if method.client_streaming:
                            call = chan.stream_stream(path)(iter([b""]), timeout=5)
                            async for _ in call:
                                pass
                        elif method.server_streaming:
                            async for _ in chan.unary_stream(path)(b"", timeout=5):
                                pass
                        else:
                            await chan.unary_unary(path)(b"", timeout=5)
                        failures.append(f"{path}: answered OK")
                    except grpc.aio.AioRpcError as err:
                        if err.code() != grpc.StatusCode.UNIMPLEMENTED:
                            failures.append(f"{path}: {err.code()}")
        return failures

    assert asyncio.run(scenario()) == []


def test_domain_errors_map_to_status_with_field_details() -> None:
    class Strategy:
        async def Evaluate(self, request: object, context: object) -> None:  # noqa: N802
            raise InvalidArgumentError("must not be empty", field="strategy_id")

        async def GetStrategy(self, request: object, context: object) -> None:  # noqa: N802
            raise NotFoundError("strategy 'x' not found")

    async def scenario() -> tuple[grpc.aio.AioRpcError, grpc.aio.AioRpcError]:
        errors = []
        async with serve_in_process({"lendgate.v1.StrategyService": Strategy()}) as chan:
            for method in ("Evaluate", "GetStrategy"):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await chan.unary_unary(f"/lendgate.v1.StrategyService/{method}")(b"", timeout=5)
                errors.append(caught.value)
        return errors[0], errors[1]

    invalid, missing = asyncio.run(scenario())
    assert invalid.code() == grpc.StatusCode.INVALID_ARGUMENT
    bad = error_details_pb2.BadRequest()
    assert any(d.Unpack(bad) for d in rich_status(invalid).details if d.Is(bad.DESCRIPTOR))
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("strategy_id", "must not be empty")
    ]
    assert missing.code() == grpc.StatusCode.NOT_FOUND


def test_calls_past_the_concurrency_limit_are_refused_at_once() -> None:
    release = asyncio.Event()
    both_inside = asyncio.Event()
    running: list[int] = []

    class Strategy:
        async def Evaluate(self, request: object, context: object) -> bytes:  # noqa: N802
            running.append(1)
            if len(running) == 2:
                both_inside.set()
            await release.wait()
            return b""

    async def scenario() -> tuple[grpc.aio.AioRpcError, bytes]:
        config = Config(listen="127.0.0.1:0", max_concurrent_rpcs=2)
        async with serve_in_process({"lendgate.v1.StrategyService": Strategy()}, config) as chan:
            call = chan.unary_unary("/lendgate.v1.StrategyService/Evaluate")
            held = [asyncio.ensure_future(call(b"", timeout=30)) for _ in range(2)]
            await asyncio.wait_for(both_inside.wait(), timeout=10)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(b"", timeout=5)
            release.set()
            await asyncio.gather(*held)
            return caught.value, await call(b"", timeout=5)

    refused, after = asyncio.run(scenario())
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert after == b""  # once the load is gone, calls are served again


def _calls_while_the_loop_is_blocked(
    max_pending_calls: int, calls: int, block_s: float = 1.0
) -> list[str]:
    """A server whose first call blocks its event loop for ``block_s`` (so it accepts
    nothing), and ``calls`` more calls sent meanwhile from another thread: the status of
    each."""
    inside = threading.Event()

    class Strategy:
        async def Evaluate(self, request: object, context: object) -> bytes:  # noqa: N802
            if not inside.is_set():
                inside.set()
                time.sleep(block_s)  # noqa: ASYNC251 - blocks the loop on purpose: no accepts
            return b""

    def client(port: int) -> list[str]:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as chan:
            call = chan.unary_unary("/lendgate.v1.StrategyService/Evaluate")
            first = call.future(b"", timeout=30)
            assert inside.wait(timeout=10)
            futures = [call.future(b"", timeout=30) for _ in range(calls)]
            codes = []
            for f in futures:
                try:
                    f.result()
                    codes.append("OK")
                except grpc.RpcError as exc:
                    codes.append(exc.code().name)
            first.result()
            return codes

    async def scenario() -> list[str]:
        config = Config(listen="127.0.0.1:0", max_pending_calls=max_pending_calls)
        running = await create_server(config, {"lendgate.v1.StrategyService": Strategy()})
        try:
            return await asyncio.to_thread(client, running.port)
        finally:
            await running.stop(0)

    return asyncio.run(scenario())


def test_calls_past_the_pending_limit_are_refused_while_the_server_cannot_take_them() -> None:
    """Calls grpc holds for a server that is not accepting (here: its loop blocked) are
    bounded by ``max_pending_calls``: the excess is refused at once by grpc's core (as
    CANCELLED), the rest served once the server catches up. With grpc's defaults every
    call waits instead."""
    bounded = _calls_while_the_loop_is_blocked(max_pending_calls=4, calls=40)
    assert bounded.count("OK") <= 10, bounded
    assert set(bounded) == {"OK", "CANCELLED"}, bounded
    assert _calls_while_the_loop_is_blocked(max_pending_calls=0, calls=40) == ["OK"] * 40


def test_a_pause_with_few_calls_waiting_refuses_none_of_them() -> None:
    """A server that pauses for two seconds (a snapshot on a loaded machine) with only a
    few calls waiting serves them all once it resumes: the pending limit bounds how many
    calls wait, not how long (grpc's core would cancel every call older than its age
    limit, however short the queue, and that limit was one second once)."""
    assert (
        _calls_while_the_loop_is_blocked(max_pending_calls=512, calls=3, block_s=2.0) == ["OK"] * 3
    )


def test_unexpected_exception_is_internal_without_leaking() -> None:
    class Strategy:
        async def Evaluate(self, request: object, context: object) -> None:  # noqa: N802
            raise RuntimeError("secret connection string")

    async def scenario() -> grpc.aio.AioRpcError:
        async with serve_in_process({"lendgate.v1.StrategyService": Strategy()}) as chan:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await chan.unary_unary("/lendgate.v1.StrategyService/Evaluate")(b"", timeout=5)
            return caught.value

    err = asyncio.run(scenario())
    assert err.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in (err.details() or "")
    assert "incident" in (err.details() or "")


def test_sigterm_drains_and_exits_cleanly(tmp_path: Path) -> None:
    running = start_server(tmp_path)
    with grpc.insecure_channel(running.address) as chan:
        stub = health_pb2_grpc.HealthStub(chan)
        assert stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status == 1
    assert stop_server(running) == 0


def _one_line_error(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "lendgate.cli", "serve", "--data-dir", str(tmp_path), *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=30, env=clean_env(), check=False
    )


def test_port_in_use_is_one_line_and_nonzero(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _one_line_error(["--listen", f"127.0.0.1:{port}"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_config_file_is_one_line_and_nonzero(tmp_path: Path) -> None:
    config = tmp_path / "lendgate.toml"
    config.write_text("listen = [")
    result = _one_line_error(["--config", str(config)], tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"lendgate: config file {config}: not valid TOML")
    assert result.stderr.count("\n") == 1


def test_second_server_on_the_same_port_refuses(server: ServerProcess, tmp_path: Path) -> None:
    result = _one_line_error(["--listen", server.address], tmp_path)
    assert result.returncode == 2
    assert "cannot listen on" in result.stderr
    assert server.process.poll() is None


def test_serve_prepares_the_embedded_store_under_the_data_dir(server: ServerProcess) -> None:
    with sqlite3.connect(server.data_dir / "lendgate.db") as db:
        versions = [row[0] for row in db.execute("SELECT version FROM schema_migrations")]
    assert versions, "migrations were not applied at start"


def test_corrupt_database_file_is_one_line_and_nonzero(tmp_path: Path) -> None:
    (tmp_path / "lendgate.db").write_bytes(b"this is not a database" * 100)
    result = _one_line_error([], tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("lendgate: ")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
