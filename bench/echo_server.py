"""The transport floor: a grpc.aio server whose one method does nothing.

``python -m bench.echo_server [--listen 127.0.0.1:0] [--delay-ms D] [--code NAME]``
serves ``/bench.Echo/Echo`` on raw bytes (no protobuf decoding): it answers the request
bytes unchanged, after ``--delay-ms`` and with status ``--code`` when given. It logs
one JSON line ``{"msg": "serving", "address": ...}`` on stderr, like ``lendgate serve``,
and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

import grpc

METHOD = "/bench.Echo/Echo"


async def serve(listen: str, delay_ms: float, code: grpc.StatusCode) -> None:
    """Serve the echo method until SIGTERM or SIGINT."""

    async def echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        if code is not grpc.StatusCode.OK:
            await context.abort(code, "as asked by --code")
        return request

    handler = grpc.unary_unary_rpc_method_handler(echo)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("bench.Echo", {"Echo": handler}),)
    )
    port = server.add_insecure_port(listen)
    await server.start()
    host = listen.rpartition(":")[0]
    print(json.dumps({"msg": "serving", "address": f"{host}:{port}"}), file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1)


def main() -> None:
    """Parse the flags and serve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--code", default="OK", choices=[c.name for c in grpc.StatusCode])
    args = parser.parse_args()
    asyncio.run(serve(args.listen, args.delay_ms, grpc.StatusCode[args.code]))


if __name__ == "__main__":
    main()
