"""WebSocket over HTTP/2 (RFC 8441 extended CONNECT) through the real proxy to an HTTP/1.1 WebSocket backend."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
from processes import free_port
from snapshots import http_listener, local_cluster, prefix_route

from nantian import ir
from nantian.echo import EchoServer, PodContext, ServeSpec
from nantian.proxy import ProxyRuntime, RuntimeOptions

pytestmark = pytest.mark.e2e

TIMEOUT = 10.0


@asynccontextmanager
async def proxy_with_websocket_backend() -> AsyncIterator[int]:
    async with AsyncExitStack() as stack:
        echo = EchoServer([ServeSpec(context=PodContext(pod="ws"), http=("127.0.0.1", 0))])
        await stack.enter_async_context(echo)
        port = free_port()
        route = prefix_route("ws", "/ws", "ns/ws:3000")
        cluster = local_cluster("ns/ws:3000", echo.bound[0].port, ir.AppProtocol.WEBSOCKET, connect_timeout=5.0)
        runtime = ProxyRuntime(RuntimeOptions(access_log=False, drain_timeout=1.0))
        stack.push_async_callback(runtime.close)
        await runtime.apply(ir.Snapshot.build([http_listener(port, [route])], [cluster]))
        yield port


def _masked_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    mask = os.urandom(4)
    assert len(payload) < 126
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _unmasked(frame: bytes) -> tuple[int, bytes]:
    n = frame[1] & 0x7F
    assert n < 126 and not frame[1] & 0x80
    return frame[0] & 0x0F, frame[2 : 2 + n]


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="latin-1"))
        self.conn.initiate_connection()
        self.pending: list[h2.events.Event] = []

    async def send(self) -> None:
        self.writer.write(self.conn.data_to_send())
        await self.writer.drain()

    async def next(self, kind: type[h2.events.Event]) -> h2.events.Event:
        async with asyncio.timeout(TIMEOUT):
            while True:
                for ev in self.pending:
                    if isinstance(ev, kind):
                        self.pending.remove(ev)
                        return ev
                data = await self.reader.read(65536)
                assert data, "connection closed"
                for ev in self.conn.receive_data(data):
                    if isinstance(ev, h2.events.DataReceived) and ev.stream_id:
                        self.conn.acknowledge_received_data(ev.flow_controlled_length or 0, ev.stream_id)
                    self.pending.append(ev)
                await self.send()


async def test_websocket_over_h2_extended_connect() -> None:
    async with proxy_with_websocket_backend() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = Client(reader, writer)
        try:
            await client.send()
            settings = await client.next(h2.events.RemoteSettingsChanged)
            assert isinstance(settings, h2.events.RemoteSettingsChanged)
            assert settings.changed_settings[h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL].new_value == 1
            client.conn.send_headers(
                1,
                [
                    (":method", "CONNECT"),
                    (":protocol", "websocket"),
                    (":scheme", "http"),
                    (":path", "/ws"),
                    (":authority", "app.example"),
                    ("sec-websocket-version", "13"),
                ],
            )
            await client.send()
            resp = await client.next(h2.events.ResponseReceived)
            assert isinstance(resp, h2.events.ResponseReceived) and resp.headers is not None
            fields = {str(k): str(v) for k, v in resp.headers}
            assert fields[":status"] == "200"
            assert "sec-websocket-accept" not in fields and "upgrade" not in fields
            for message in (b"over h2", b"twice"):
                client.conn.send_data(1, _masked_frame(message))
                await client.send()
                data = await client.next(h2.events.DataReceived)
                assert isinstance(data, h2.events.DataReceived) and data.data is not None
                assert _unmasked(data.data) == (0x1, message)
            client.conn.send_data(1, _masked_frame(b"\x03\xe8", opcode=0x8), end_stream=True)
            await client.send()
            data = await client.next(h2.events.DataReceived)
            assert isinstance(data, h2.events.DataReceived) and data.data is not None
            assert _unmasked(data.data)[0] == 0x8
            await client.next(h2.events.StreamEnded)
        finally:
            writer.close()


async def test_plain_connect_is_refused_with_501() -> None:
    async with proxy_with_websocket_backend() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = Client(reader, writer)
        try:
            client.conn.send_headers(1, [(":method", "CONNECT"), (":authority", "elsewhere.example:443")])
            await client.send()
            resp = await client.next(h2.events.ResponseReceived)
            assert isinstance(resp, h2.events.ResponseReceived) and resp.headers is not None
            assert (":status", "501") in [(str(k), str(v)) for k, v in resp.headers]
        finally:
            writer.close()
