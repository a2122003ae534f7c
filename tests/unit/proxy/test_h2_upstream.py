"""The h2c upstream pool against real HTTP/2 servers: a grpc.aio server and nantian's own HTTP/2 front end."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import grpc.aio
import pytest

from nantian import ir
from nantian._proto.gateway_api_conformance import grpcecho_pb2, grpcecho_pb2_grpc
from nantian.errors import RemoteProtocolError
from nantian.proxy.asyncio_h2 import H2ServerProtocol
from nantian.proxy.exchange import (
    EmptyBody,
    Exchange,
    Headers,
    ListenerRef,
    UpstreamError,
    UpstreamRequest,
    pool_factory,
)
from nantian.proxy.upstream_h2 import H2cPool, make_pool

TIMEOUT = 5.0
SERVICE = "/gateway_api_conformance.echo_basic.grpcecho.GrpcEcho"


class Echo(grpcecho_pb2_grpc.GrpcEchoServicer):  # type: ignore[misc]
    async def Echo(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        metadata = [(str(k), str(v)) for k, v in context.invocation_metadata() or ()]
        context.set_trailing_metadata((("x-served-by", "echo"),))
        return grpcecho_pb2.EchoResponse(
            assertions=grpcecho_pb2.Assertions(
                fully_qualified_method=f"{SERVICE}/Echo",
                headers=[grpcecho_pb2.Header(key=k, value=v) for k, v in metadata],
            )
        )

    async def EchoTwo(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(grpc.StatusCode.NOT_FOUND, "no such echo")


@asynccontextmanager
async def grpc_server() -> AsyncIterator[int]:
    server = grpc.aio.server()
    grpcecho_pb2_grpc.add_GrpcEchoServicer_to_server(Echo(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield port
    finally:
        await server.stop(None)


class _Body:
    """A request body from memory, with optional trailers."""

    def __init__(self, data: bytes, trailers: Headers | None = None, chunk: int = 16384) -> None:
        self._chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)]
        self.content_length: int | None = len(data)
        self._trailers = trailers

    async def read(self) -> bytes:
        return self._chunks.pop(0) if self._chunks else b""

    @property
    def trailers(self) -> Headers | None:
        return self._trailers if not self._chunks else None


def _grpc_frame(message: bytes) -> bytes:
    return struct.pack(">?I", False, len(message)) + message


def _grpc_request(method: str, authority: str) -> UpstreamRequest:
    return UpstreamRequest(
        method="POST",
        target=f"{SERVICE}/{method}",
        authority=authority,
        scheme="http",
        headers=[
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("connection", "keep-alive"),  # connection-specific: must not reach an HTTP/2 upstream
            ("x-request-id", "r-1"),
        ],
    )


async def _read_all(body: Any) -> bytes:
    out = b""
    async with asyncio.timeout(TIMEOUT):
        while chunk := await body.read():
            out += chunk
    return bytes(out)


def test_importing_registers_the_pool_for_h2c() -> None:
    assert pool_factory(ir.AppProtocol.H2C) is make_pool


async def test_grpc_unary_call_with_trailers() -> None:
    async with grpc_server() as port:
        pool = H2cPool("127.0.0.1", port)
        try:
            body = _Body(_grpc_frame(grpcecho_pb2.EchoRequest().SerializeToString()))
            async with asyncio.timeout(TIMEOUT):
                resp = await pool.request(_grpc_request("Echo", f"grpc.example.com:{port}"), body)
            assert resp.status == 200
            assert ("content-type", "application/grpc") in resp.headers
            data = await _read_all(resp.body)
            compressed, length = struct.unpack(">?I", data[:5])
            assert not compressed and length == len(data) - 5
            answer = grpcecho_pb2.EchoResponse.FromString(data[5:])
            assert answer.assertions.fully_qualified_method == f"{SERVICE}/Echo"
            seen = {h.key: h.value for h in answer.assertions.headers}
            assert seen["x-request-id"] == "r-1"
            trailers = dict(resp.body.trailers or [])
            assert trailers["grpc-status"] == "0"
            assert trailers["x-served-by"] == "echo"
        finally:
            pool.close()


async def test_grpc_error_status_and_multiplexing() -> None:
    async with grpc_server() as port:
        pool = H2cPool("127.0.0.1", port)
        try:
            payload = _grpc_frame(b"")

            async def call(method: str) -> tuple[int, dict[str, str]]:
                resp = await pool.request(_grpc_request(method, "grpc.example.com"), _Body(payload))
                await _read_all(resp.body)
                # A trailers-only answer carries grpc-status in the head; otherwise it is in the trailers.
                return resp.status, dict(resp.headers) | dict(resp.body.trailers or [])

            async with asyncio.timeout(TIMEOUT):
                results = await asyncio.gather(*(call("EchoTwo" if i % 2 else "Echo") for i in range(20)))
            for i, (status, fields) in enumerate(results):
                assert status == 200
                if i % 2:
                    assert fields["grpc-status"] == str(grpc.StatusCode.NOT_FOUND.value[0])
                    assert fields["grpc-message"] == "no such echo"
                else:
                    assert fields["grpc-status"] == "0"
            assert pool.connections == 1
            assert pool.active_requests == 0
        finally:
            pool.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_refused_connection_is_a_connect_error() -> None:
    pool = H2cPool("127.0.0.1", _free_port(), connect_timeout=2.0)
    with pytest.raises(UpstreamError) as info:
        async with asyncio.timeout(TIMEOUT):
            await pool.request(_grpc_request("Echo", "x"), EmptyBody())
    assert info.value.kind == "connect"


class _EchoHandler:
    async def handle(self, exchange: Exchange) -> None:
        sink = exchange.response
        if exchange.head.target == "/reset":
            sink.abort()
            return
        if exchange.head.target == "/bad-head":  # a content-length that is not a number: a malformed response
            await sink.start(200, [("content-length", "abc")])
            await sink.end()
            return
        if exchange.head.target == "/long-body":  # more DATA than the content-length says
            await sink.start(200, [("content-length", "2")])
            await sink.send(b"more than two")
            await sink.end()
            return
        await sink.start(200, [("x-method", exchange.head.method), ("x-authority", exchange.head.authority)])
        while chunk := await exchange.body.read():
            await sink.send(chunk)
        await sink.end([("x-request-trailer", dict(exchange.body.trailers or []).get("x-sum", "none"))])


@asynccontextmanager
async def h2_server() -> AsyncIterator[int]:
    ref = ListenerRef(name="upstream", current=_EchoHandler())
    server = await asyncio.get_running_loop().create_server(lambda: H2ServerProtocol(ref), "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def test_large_streamed_body_and_trailers_both_ways() -> None:
    payload = bytes(range(256)) * 10_000  # ~2.5 MiB: several windows
    async with h2_server() as port:
        pool = H2cPool("127.0.0.1", port)
        try:
            req = UpstreamRequest(method="PUT", target="/echo", authority="up.example", scheme="http", headers=[])
            async with asyncio.timeout(TIMEOUT):
                resp = await pool.request(req, _Body(payload, trailers=[("x-sum", "42")]))
            assert resp.status == 200
            assert ("x-authority", "up.example") in resp.headers
            assert await _read_all(resp.body) == payload
            assert resp.body.trailers == [("x-request-trailer", "42")]
        finally:
            pool.close()


async def test_upstream_reset_before_the_head_is_an_upstream_error() -> None:
    async with h2_server() as port:
        pool = H2cPool("127.0.0.1", port)
        try:
            req = UpstreamRequest(method="GET", target="/reset", authority="up.example", scheme="http", headers=[])
            with pytest.raises(UpstreamError) as info:
                async with asyncio.timeout(TIMEOUT):
                    await pool.request(req, EmptyBody())
            assert info.value.kind == "reset"
            # The connection survives a stream reset.
            ok = UpstreamRequest(method="GET", target="/ok", authority="up.example", scheme="http", headers=[])
            async with asyncio.timeout(TIMEOUT):
                resp = await pool.request(ok, EmptyBody())
                assert resp.status == 200
                assert await _read_all(resp.body) == b""
            assert pool.connections == 1
        finally:
            pool.close()


async def test_idle_connections_are_closed_and_replaced() -> None:
    async with h2_server() as port:
        pool = H2cPool("127.0.0.1", port, idle_timeout=0.1)
        try:
            ok = UpstreamRequest(method="GET", target="/ok", authority="up.example", scheme="http", headers=[])
            async with asyncio.timeout(TIMEOUT):
                resp = await pool.request(ok, EmptyBody())
                await _read_all(resp.body)
                assert pool.connections == 1
                await asyncio.sleep(0.3)  # three idle timeouts: the connection is gone
                assert pool.connections == 0
                resp = await pool.request(ok, EmptyBody())
                assert resp.status == 200
                await _read_all(resp.body)
            assert pool.connections == 1
        finally:
            pool.close()


async def test_a_malformed_response_fails_only_its_own_request() -> None:
    async with h2_server() as port:
        pool = H2cPool("127.0.0.1", port)
        try:

            async def call(target: str) -> tuple[int, bytes] | str:
                req = UpstreamRequest(method="GET", target=target, authority="up.example", scheme="http", headers=[])
                try:
                    resp = await pool.request(req, EmptyBody())
                except UpstreamError as exc:
                    return exc.kind
                return resp.status, await _read_all(resp.body)

            async with asyncio.timeout(TIMEOUT):
                results = await asyncio.gather(*(call("/bad-head" if i % 2 else f"/ok{i}") for i in range(10)))
            assert results == [(200, b"") if i % 2 == 0 else "protocol" for i in range(10)]
            assert pool.connections == 1  # the bad streams did not take the connection down
        finally:
            pool.close()


async def test_a_response_body_longer_than_its_content_length_is_cut_and_the_connection_lives() -> None:
    async with h2_server() as port:
        pool = H2cPool("127.0.0.1", port)
        try:
            req = UpstreamRequest(method="GET", target="/long-body", authority="up.example", scheme="http", headers=[])
            async with asyncio.timeout(TIMEOUT):
                resp = await pool.request(req, EmptyBody())
                assert resp.status == 200
                with pytest.raises(RemoteProtocolError):
                    await _read_all(resp.body)
                ok = UpstreamRequest(method="GET", target="/ok", authority="up.example", scheme="http", headers=[])
                again = await pool.request(ok, EmptyBody())
                assert again.status == 200 and await _read_all(again.body) == b""
            assert pool.connections == 1
        finally:
            pool.close()
