"""Test helpers for the proxy: a small real HTTP/1.1 upstream, raw-socket clients, snapshot builders."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import attrs
import httptools

from nantian import ir
from nantian.proxy import ProxyRuntime, RuntimeOptions

GATEWAY = "ns/gw"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@attrs.define
class Seen:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    port: int


Handler = Callable[[Seen], Awaitable[tuple[int, list[tuple[str, str]], bytes | list[bytes]] | None]]


class _UpstreamProtocol(asyncio.Protocol):
    def __init__(self, server: Upstream) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.queue: asyncio.Queue[Seen | None] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.connections += 1
        self.task = asyncio.get_running_loop().create_task(self.run())
        self.server.tasks.add(self.task)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.queue.put_nowait(None)

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.body = b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode().lower(), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        seen = Seen(self.parser.get_method().decode(), self.url.decode(), self.headers, self.body, self.server.port)
        self.server.seen.append(seen)
        self.server.arrival.set()
        self.queue.put_nowait(seen)

    async def run(self) -> None:
        while True:
            seen = await self.queue.get()
            if seen is None or self.transport is None or self.transport.is_closing():
                return
            result = await self.server.respond(seen)
            if result is None:
                self.transport.close()
                return
            status, headers, body = result
            head = f"HTTP/1.1 {status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
            if isinstance(body, list):
                self.transport.write((head + "transfer-encoding: chunked\r\n\r\n").encode())
                for part in body:
                    self.transport.write(b"%x\r\n%s\r\n" % (len(part), part))
                    await asyncio.sleep(0.01)
                self.transport.write(b"0\r\n\r\n")
            else:
                self.transport.write((head + f"content-length: {len(body)}\r\n\r\n").encode() + body)


class Upstream:
    """A real HTTP/1.1 server on 127.0.0.1 that records what it got.

    Path segments (anywhere): ``status/N`` answers N; ``delay/S`` waits S seconds; ``chunks/N`` sends N chunks;
    ``close`` closes without answering; anything else echoes the request as JSON. ``handler`` may override (return
    ``None`` to pass, status 0 to close without answering).
    """

    def __init__(self, handler: Handler | None = None, name: str = "up") -> None:
        self.handler = handler
        self.name = name
        self.seen: list[Seen] = []
        self.connections = 0
        self.port = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.arrival = asyncio.Event()

    async def wait_for(self, count: int) -> None:
        """Until at least ``count`` requests arrived (callers bound it with a timeout)."""
        while len(self.seen) < count:
            self.arrival.clear()
            await self.arrival.wait()

    async def respond(self, seen: Seen) -> tuple[int, list[tuple[str, str]], bytes | list[bytes]] | None:
        if self.handler is not None:
            custom = await self.handler(seen)
            if custom is not None:
                return None if custom[0] == 0 else custom  # status 0: close without answering
        parts = seen.target.split("?")[0].strip("/").split("/")

        def arg(word: str) -> str | None:
            return parts[parts.index(word) + 1] if word in parts[:-1] else None

        if (code := arg("status")) is not None:
            return int(code), [("x-upstream", self.name)], b""
        if (delay := arg("delay")) is not None:
            await asyncio.sleep(float(delay))
        if (count := arg("chunks")) is not None:
            return 200, [("x-upstream", self.name)], [b"chunk%d;" % i for i in range(int(count))]
        if "close" in parts:
            return None
        doc = {
            "method": seen.method,
            "target": seen.target,
            "headers": seen.headers,
            "body": seen.body.decode("latin-1"),
            "upstream": self.name,
        }
        return 200, [("content-type", "application/json"), ("x-upstream", self.name)], json.dumps(doc).encode()

    async def __aenter__(self) -> Upstream:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _UpstreamProtocol(self), "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for t in list(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def cluster(name: str, *ports: int, **kw: object) -> ir.Cluster:
    return ir.Cluster(name=name, endpoints=tuple(ir.Endpoint(address="127.0.0.1", port=p) for p in ports), **kw)  # type: ignore[arg-type]


def route(name: str, *backends: str | ir.WeightedCluster, **kw: object) -> ir.HttpRoute:
    bs = tuple(b if isinstance(b, ir.WeightedCluster) else ir.WeightedCluster(cluster=b) for b in backends)
    return ir.HttpRoute(name=name, route=f"HTTPRoute/ns/{name}", backends=bs, **kw)  # type: ignore[arg-type]


def listener(
    port: int,
    routes: Sequence[ir.HttpRoute],
    *,
    hostname: str = "*",
    name: str | None = None,
    address: str = "127.0.0.1",
) -> ir.Listener:
    vh = ir.VirtualHost(section=f"{GATEWAY}/http", section_hostname=None, hostname=hostname, routes=tuple(routes))
    return ir.Listener(
        name=name or f"{GATEWAY}/{port}/HTTP",
        gateway=GATEWAY,
        address=address,
        port=port,
        protocol=ir.Protocol.HTTP,
        virtual_hosts=(vh,),
    )


def snapshot(listeners: Sequence[ir.Listener], clusters: Sequence[ir.Cluster]) -> ir.Snapshot:
    return ir.Snapshot.build(listeners, clusters)


@contextlib.asynccontextmanager
async def running(snap: ir.Snapshot, **options: object) -> AsyncIterator[ProxyRuntime]:
    opts = {"access_log": False, **options}
    rt = ProxyRuntime(RuntimeOptions(**opts))  # type: ignore[arg-type]
    try:
        await rt.apply(snap)
        yield rt
    finally:
        await rt.close()


async def raw_exchange(port: int, data: bytes, *, wait: float = 5.0, half_close: bool = False) -> bytes:
    """Send ``data`` on a new connection and read until the proxy closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        if half_close:
            writer.write_eof()
        out = b""
        async with asyncio.timeout(wait):
            while chunk := await reader.read(65536):
                out += chunk
        return out
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])
