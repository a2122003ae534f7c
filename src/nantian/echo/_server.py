"""Start and stop the listeners of many echo identities in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any, cast

import attrs
import grpc.aio

from nantian.echo._answer import Echo
from nantian.echo._context import ServeSpec
from nantian.echo._grpc import start_grpc_server
from nantian.echo._http1 import Http1Connection
from nantian.echo._http2 import Http2Connection
from nantian.echo._requestlog import RequestLog
from nantian.echo._site import Site
from nantian.echo._stream import UdpEcho, serve_tcp_connection
from nantian.echo._tls import server_context

__all__ = ["BoundListener", "EchoServer", "serve_echo"]

log = logging.getLogger(__name__)

_H2_PREFACE_START = b"PRI "


@attrs.frozen(kw_only=True)
class BoundListener:
    """A listener that is up: its kind, the address it bound (port 0 resolved) and whose it is."""

    kind: str
    host: str
    port: int
    namespace: str
    service: str
    pod: str

    @property
    def address(self) -> str:
        """``HOST:PORT``, with IPv6 hosts in brackets."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class _Dispatch(asyncio.Protocol):
    """Picks the HTTP version of a connection: ALPN on TLS, the client preface on h2c, HTTP/1.1 otherwise."""

    def __init__(self, site: Site, live: set[asyncio.WriteTransport]) -> None:
        self._site = site
        self._live = live
        self._transport: asyncio.Transport | None = None
        self._inner: asyncio.Protocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop transports do not subclass asyncio's
        self._live.add(self._transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            h2 = ssl_object.selected_alpn_protocol() == "h2"
            self._switch(Http2Connection(self._site) if h2 else Http1Connection(self._site))
        elif self._site.kind == "http":
            self._switch(Http1Connection(self._site))

    def _switch(self, inner: asyncio.Protocol) -> None:
        assert self._transport is not None
        self._inner = inner
        self._transport.set_protocol(inner)
        inner.connection_made(self._transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is None:  # h2c port: prior knowledge, or an HTTP/1.1 request to refuse
            h2 = data.startswith(_H2_PREFACE_START)
            self._switch(Http2Connection(self._site) if h2 else Http1Connection(self._site, require_h2c=True))
        assert self._inner is not None
        self._inner.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._live.discard(self._transport)
        if self._inner is not None:
            self._inner.connection_lost(exc)


class EchoServer:
    """Serves every :class:`ServeSpec` given; use ``async with`` or :meth:`start` / :meth:`aclose`.

    :param specs: the identities to serve.
    :param request_log: where echoed requests are recorded (default: in memory only).
    """

    def __init__(self, specs: Sequence[ServeSpec], *, request_log: RequestLog | None = None) -> None:
        self.specs = tuple(specs)
        self.request_log = request_log if request_log is not None else RequestLog()
        self.bound: list[BoundListener] = []
        self._servers: list[asyncio.Server] = []
        self._grpc: list[grpc.aio.Server] = []
        self._udp: list[asyncio.DatagramTransport] = []
        self._live: set[asyncio.WriteTransport] = set()

    async def __aenter__(self) -> EchoServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def start(self) -> list[BoundListener]:
        """Bind every listener; on any failure the ones already bound are closed again.

        :raises OSError: when an address cannot be bound.
        """
        try:
            for spec in self.specs:
                await self._start_spec(spec)
        except BaseException:
            await self.aclose()
            raise
        return list(self.bound)

    async def _start_spec(self, spec: ServeSpec) -> None:
        loop = asyncio.get_running_loop()
        http_port = str(spec.http[1]) if spec.http else ""
        echo = Echo(spec.context, http_port=http_port)
        ports = {kind: str(address[1]) for kind, address in spec.listeners()}  # port 0 is replaced once bound
        for kind, (host, port) in spec.listeners():
            bound_port = port
            if kind in ("http", "h2c", "https"):
                context = None
                if kind == "https":
                    assert spec.cert and spec.key
                    context = server_context(
                        spec.cert,
                        spec.key,
                        alpn=("h2", "http/1.1"),
                        client_ca=spec.client_ca,
                        require_client_cert=spec.require_client_cert,
                    )
                site = Site(echo=echo, kind=kind, log=self.request_log)
                server = await loop.create_server(
                    lambda site=site: _Dispatch(site, self._live), host, port, ssl=context
                )  # type: ignore[misc]
                bound_port = self._track(server)
                if kind == "http" and port == 0:
                    echo.http_port = str(bound_port)
            elif kind in ("grpc", "grpcs"):
                cert, key = (spec.cert, spec.key) if kind == "grpcs" else (None, None)
                grpc_server, bound_port = await start_grpc_server(
                    spec.context, (host, port), cert=cert, key=key, log_to=self.request_log
                )
                self._grpc.append(grpc_server)
            elif kind in ("tcp", "tcps"):
                tls: ssl.SSLContext | None = None
                if kind == "tcps":
                    assert spec.cert and spec.key
                    tls = server_context(spec.cert, spec.key)
                handler = _tcp_handler(spec, ports, self._live)
                bound_port = self._track(await asyncio.start_server(handler, host, port, ssl=tls))
            else:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda spec=spec: UdpEcho(spec.context),  # type: ignore[misc]
                    local_addr=(host, port),
                )
                self._udp.append(transport)
                bound_port = transport.get_extra_info("sockname")[1]
            ports[kind] = str(bound_port)
            context_ = spec.context
            self.bound.append(
                BoundListener(
                    kind=kind,
                    host=host,
                    port=bound_port,
                    namespace=context_.namespace,
                    service=context_.service,
                    pod=context_.pod,
                )
            )
            log.info("echo.listening kind=%s address=%s pod=%s", kind, self.bound[-1].address, context_.pod)

    def _track(self, server: asyncio.Server) -> int:
        self._servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    async def aclose(self) -> None:
        """Close every listener (open connections are closed too)."""
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
        live, self._live = list(self._live), set()
        for connection in live:
            connection.abort()
        for server in servers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        grpc_servers, self._grpc = self._grpc, []
        for grpc_server in grpc_servers:
            await grpc_server.stop(grace=None)
        udp, self._udp = self._udp, []
        for endpoint in udp:
            endpoint.close()


def _tcp_handler(
    spec: ServeSpec, ports: dict[str, str], live: set[asyncio.WriteTransport]
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Coroutine[Any, Any, None]]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        live.add(writer.transport)
        tcp_port, tls_port = ports.get("tcp", ""), ports.get("tcps", "")
        try:
            await serve_tcp_connection(reader, writer, spec.context, tcp_port=tcp_port, tls_port=tls_port)
        finally:
            live.discard(writer.transport)

    return handle


async def serve_echo(
    specs: Sequence[ServeSpec],
    *,
    request_log: RequestLog | None = None,
    on_ready: Callable[[list[BoundListener]], None] | None = None,
) -> None:
    """Serve ``specs`` until cancelled; ``on_ready`` is called once with every bound listener.

    :raises OSError: when an address cannot be bound.
    """
    async with EchoServer(specs, request_log=request_log) as server:
        if on_ready is not None:
            on_ready(list(server.bound))
        await asyncio.Event().wait()
