"""HTTP/2, gRPC and WebSocket through the real proxy runtime, to real backends, on loopback.

The proxy (``ProxyRuntime``) serves a snapshot built here; behind it run nantian's echo server (HTTP/1.1 with
WebSocket echo on ``/ws``, h2c) and a grpc.aio server with the conformance GrpcEcho service.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import struct
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import attrs
import grpc
import grpc.aio
import httpx
import pytest
from processes import free_port
from snapshots import http_listener, local_cluster, prefix_route

from nantian import ir
from nantian._proto.gateway_api_conformance import grpcecho_pb2, grpcecho_pb2_grpc
from nantian.echo import EchoServer, PodContext, ServeSpec
from nantian.proxy import ProxyRuntime, RuntimeOptions

pytestmark = pytest.mark.e2e

TIMEOUT = 10.0
SERVICE = "gateway_api_conformance.echo_basic.grpcecho.GrpcEcho"


class FailingEcho(grpcecho_pb2_grpc.GrpcEchoServicer):  # type: ignore[misc]
    """Echo answers with the request metadata and a trailer; EchoTwo fails with NOT_FOUND."""

    async def Echo(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        context.set_trailing_metadata((("x-trailer", "from-backend"),))
        return grpcecho_pb2.EchoResponse(
            assertions=grpcecho_pb2.Assertions(
                fully_qualified_method=f"/{SERVICE}/Echo",
                headers=[grpcecho_pb2.Header(key=str(k), value=str(v)) for k, v in context.invocation_metadata() or ()],
            )
        )

    async def EchoTwo(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(grpc.StatusCode.NOT_FOUND, "echo two is gone")


@attrs.define
class Env:
    port: int
    runtime: ProxyRuntime


@asynccontextmanager
async def proxy_env() -> AsyncIterator[Env]:
    async with AsyncExitStack() as stack:
        echo = EchoServer([ServeSpec(context=PodContext(pod="echo-1"), http=("127.0.0.1", 0), h2c=("127.0.0.1", 0))])
        await stack.enter_async_context(echo)
        ports = {b.kind: b.port for b in echo.bound}
        grpc_server = grpc.aio.server()
        grpcecho_pb2_grpc.add_GrpcEchoServicer_to_server(FailingEcho(), grpc_server)
        grpc_port = grpc_server.add_insecure_port("127.0.0.1:0")
        await grpc_server.start()
        stack.push_async_callback(grpc_server.stop, None)

        port = free_port()
        routes = (
            prefix_route("grpc", f"/{SERVICE}/", "ns/grpc:9000", grpc=True),
            prefix_route("dead", "/dead.Service/", "ns/dead:9000", grpc=True),
            prefix_route("ws", "/ws", "ns/echo-ws:3000"),
            prefix_route("h2c", "/h2c", "ns/echo-h2c:3001"),
            prefix_route("h1", "/h1", "ns/echo:3000"),
        )
        clusters = [
            local_cluster("ns/grpc:9000", grpc_port, ir.AppProtocol.H2C),
            local_cluster("ns/dead:9000", free_port(), ir.AppProtocol.H2C),
            local_cluster("ns/echo-ws:3000", ports["http"], ir.AppProtocol.WEBSOCKET),
            local_cluster("ns/echo-h2c:3001", ports["h2c"], ir.AppProtocol.H2C),
            local_cluster("ns/echo:3000", ports["http"], ir.AppProtocol.HTTP1),
        ]
        runtime = ProxyRuntime(RuntimeOptions(access_log=False, drain_timeout=1.0))
        stack.push_async_callback(runtime.close)
        result = await runtime.apply(ir.Snapshot.build([http_listener(port, routes)], clusters))
        assert not result.failed, result.failed
        yield Env(port=port, runtime=runtime)


async def test_h2_prior_knowledge_to_http1_and_h2c_backends() -> None:
    async with proxy_env() as env, httpx.AsyncClient(http1=False, http2=True, timeout=TIMEOUT) as client:
        r1 = await client.get(f"http://127.0.0.1:{env.port}/h1/a?b=c", headers={"host": "app.example"})
        r2 = await client.get(f"http://127.0.0.1:{env.port}/h2c/x", headers={"host": "app.example"})
    assert r1.http_version == "HTTP/2" and r1.status_code == 200
    echoed = r1.json()
    assert echoed["path"] == "/h1/a?b=c"
    assert echoed["host"] == "app.example"
    assert echoed["proto"] == "HTTP/1.1"
    assert r2.status_code == 200
    assert r2.json()["proto"] == "HTTP/2.0"
    assert r2.json()["host"] == "app.example"


async def test_h2_request_body_reaches_an_http1_backend() -> None:
    payload = os.urandom(300_000)
    async with proxy_env() as env, httpx.AsyncClient(http1=False, http2=True, timeout=TIMEOUT) as client:
        r = await client.post(f"http://127.0.0.1:{env.port}/h1/upload", content=payload)
    assert r.status_code == 200
    assert r.json()["method"] == "POST"
    headers = {k.lower(): v for k, v in r.json()["headers"].items()}
    assert headers["content-length"] == [str(len(payload))]


async def test_grpc_unary_call_through_the_proxy() -> None:
    async with proxy_env() as env, grpc.aio.insecure_channel(f"127.0.0.1:{env.port}") as channel:
        stub = grpcecho_pb2_grpc.GrpcEchoStub(channel)
        call = stub.Echo(grpcecho_pb2.EchoRequest(), metadata=(("x-request-id", "abc"),), timeout=TIMEOUT)
        answer = await call
        trailing = dict(await call.trailing_metadata() or ())
        assert await call.code() == grpc.StatusCode.OK
    assert answer.assertions.fully_qualified_method == f"/{SERVICE}/Echo"
    seen = {h.key: h.value for h in answer.assertions.headers}
    assert seen["x-request-id"] == "abc"
    assert trailing["x-trailer"] == "from-backend"


async def test_grpc_error_status_from_the_backend_passes_through() -> None:
    async with proxy_env() as env, grpc.aio.insecure_channel(f"127.0.0.1:{env.port}") as channel:
        stub = grpcecho_pb2_grpc.GrpcEchoStub(channel)
        call = stub.EchoTwo(grpcecho_pb2.EchoRequest(), timeout=TIMEOUT)
        try:
            await call
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.NOT_FOUND
            assert exc.details() == "echo two is gone"
        else:
            raise AssertionError("EchoTwo should fail")


async def _grpc_code(port: int, method: str) -> grpc.StatusCode:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(method, request_serializer=bytes, response_deserializer=bytes)(b"", timeout=TIMEOUT)
        try:
            await call
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK


async def test_grpc_local_answers_carry_grpc_status() -> None:
    async with proxy_env() as env:
        # The backend port is closed: the proxy answers 503, which a gRPC client must see as UNAVAILABLE.
        assert await _grpc_code(env.port, "/dead.Service/Call") == grpc.StatusCode.UNAVAILABLE
        # No route: 404 becomes UNIMPLEMENTED.
        assert await _grpc_code(env.port, "/nowhere.Service/Call") == grpc.StatusCode.UNIMPLEMENTED


# --- WebSocket ------------------------------------------------------------------------------------------------


def _ws_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    n = len(payload)
    length = struct.pack(">B", 0x80 | n) if n < 126 else struct.pack(">BH", 0x80 | 126, n)
    return bytes([0x80 | opcode]) + length + mask + masked


async def _ws_read(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first, second = await reader.readexactly(2)
    n = second & 0x7F
    if n == 126:
        (n,) = struct.unpack(">H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack(">Q", await reader.readexactly(8))
    return first & 0x0F, await reader.readexactly(n)


async def test_websocket_echo_through_the_proxy() -> None:
    key = base64.b64encode(os.urandom(16)).decode()
    async with proxy_env() as env:
        async with asyncio.timeout(TIMEOUT):
            reader, writer = await asyncio.open_connection("127.0.0.1", env.port)
            try:
                writer.write(
                    (
                        "GET /ws HTTP/1.1\r\nHost: app.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                    ).encode()
                )
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
                assert head.startswith("http/1.1 101")
                accept = base64.b64encode(
                    hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
                ).decode()
                assert f"sec-websocket-accept: {accept.lower()}" in head
                for message in (b"hello", b"x" * 1000):
                    writer.write(_ws_frame(message))
                    await writer.drain()
                    opcode, data = await _ws_read(reader)
                    assert (opcode, data) == (0x1, message)
                writer.write(_ws_frame(b"\x03\xe8", opcode=0x8))  # close, 1000
                opcode, _ = await _ws_read(reader)
                assert opcode == 0x8
            finally:
                writer.close()


async def test_drain_sends_goaway_to_h2_clients() -> None:
    async with proxy_env() as env, httpx.AsyncClient(http1=False, http2=True, timeout=TIMEOUT) as client:
        r = await client.get(f"http://127.0.0.1:{env.port}/h1/before")
        assert r.status_code == 200
        assert env.runtime.counters()["active_connections"] == 1
        await env.runtime.drain(2.0)
        assert env.runtime.counters()["active_connections"] == 0
    assert json.loads(r.content)["path"] == "/h1/before"


async def test_a_bodiless_h2_request_reaches_http1_without_framing_headers() -> None:
    async with proxy_env() as env, httpx.AsyncClient(http1=False, http2=True, timeout=TIMEOUT) as client:
        r = await client.get(f"http://127.0.0.1:{env.port}/h1/get")
    headers = {k.lower() for k in r.json()["headers"]}
    assert "transfer-encoding" not in headers
    assert "content-length" not in headers
