"""TCP, TLS and UDP listeners of the proxy runtime: compile, bind, per-connection routing.

:class:`StreamFrontEnd` serves the IR listeners with protocol TCP, UDP and TLS for
:class:`~nantian.proxy.ProxyRuntime` (the runtime's listener front-end interface): the runtime calls
:meth:`StreamFrontEnd.compile` for every such listener of a snapshot before changing anything (a TLS listener that
cannot terminate raises :class:`~nantian.errors.ConfigRejected`), :meth:`StreamFrontEnd.bind` for new or changed
ones, and :meth:`StreamBinding.swap` for unchanged ones: they keep their sockets and open connections, and *new*
connections (UDP: new sessions) are routed with the new config.

Per connection (TCP and TLS): TCP goes to the listener's route at once. TLS waits for the ClientHello
(:func:`~nantian.proxy.clienthello.peek_client_hello`) and picks the route by its SNI; then a passthrough route gets
every byte, the ClientHello included, and a terminating route (its Gateway listener has certificates) gets the plaintext
after a handshake run over the bytes already read (:mod:`nantian.proxy.stream_tls`). No route, no usable backend, a
failed handshake or upstream connect closes the connection. One ``nantian.access`` line per connection (UDP: per
session), with a one-word ``result`` (:mod:`nantian.proxy.stream_metrics`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket

from nantian.errors import ConfigRejected, RemoteProtocolError
from nantian.ir import Listener, Protocol, Snapshot
from nantian.proxy._relay import Side
from nantian.proxy.access_log import AccessLogFile
from nantian.proxy.asyncio_relay import RelayConnection
from nantian.proxy.clienthello import peek_client_hello
from nantian.proxy.stream_config import (
    STREAM_PROTOCOLS,
    CompiledStreamListener,
    StreamListenerRef,
    StreamTarget,
    compile_stream_listener,
)
from nantian.proxy.stream_metrics import StreamAccessLog, StreamMetrics, connection_result
from nantian.proxy.stream_options import StreamOptions
from nantian.proxy.udp_proxy import UdpProxy

__all__ = ["STREAM_PROTOCOLS", "StreamBinding", "StreamFrontEnd", "StreamOptions"]

log = logging.getLogger(__name__)


class _Refused(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.abort()  # type: ignore[attr-defined]


def _listen_socket(
    address: str, port: int, kind: socket.SocketKind, backlog: int, *, reuse_port: bool = False
) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port and hasattr(socket, "SO_REUSEPORT"):
            # only for worker processes of one deployment; otherwise a taken port must fail to bind
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((address, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _route(config: CompiledStreamListener, conn: RelayConnection) -> None:
    """Decide where ``conn`` goes (called on accept and on every downstream chunk until decided)."""
    server_name: str | None = None
    if config.by_sni:
        try:
            hello = peek_client_hello(conn.relay.pending)
        except RemoteProtocolError as exc:
            conn.info["result"] = "bad_client_hello"
            conn.stop(str(exc))
            return
        if hello is None:
            return  # the ClientHello is not complete yet
        server_name = hello.server_name
    if server_name is not None:
        conn.info["sni"] = server_name
    backends = config.select(server_name)
    if backends is None:
        conn.stop("no route")
        return
    conn.info["route"] = backends.route.name
    target = backends.pick()
    if isinstance(target, str):
        conn.stop(target)
        return
    conn.info["backend"] = target.cluster
    if config.server_tls is not None and config.terminates(backends.route):
        conn.terminate(config.server_tls.context, on_handshake=functools.partial(_handshake_done, config, target))
        return
    conn.connect(target.address, target.port, timeout=target.connect_timeout)


def _handshake_done(config: CompiledStreamListener, target: StreamTarget, conn: RelayConnection) -> None:
    """After a terminating handshake: refuse a missing required client certificate, else connect the upstream."""
    assert config.server_tls is not None and conn.tls is not None
    session = config.server_tls.inspect(conn.tls.ssl_object)
    if session.refused is not None:
        conn.info["result"] = "client_cert_refused"
        conn.stop(session.refused)
        return
    conn.connect(target.address, target.port, timeout=target.connect_timeout)


class StreamBinding:
    """A bound stream listener: its socket, and the config new connections read."""

    def __init__(self, ref: StreamListenerRef, port: int, *, server: asyncio.Server | None, udp: UdpProxy | None):
        self.ref = ref
        self._port = port
        self.server = server
        self.udp = udp

    @property
    def port(self) -> int | None:
        """The bound port."""
        return self._port

    @property
    def sessions(self) -> int:
        """Live UDP sessions (0 for TCP/TLS)."""
        return len(self.udp) if self.udp is not None else 0

    def swap(self, compiled: object) -> None:
        """Route new connections (UDP: new sessions) with ``compiled`` from now on."""
        if not isinstance(compiled, CompiledStreamListener):
            raise TypeError(f"expected a CompiledStreamListener, got {type(compiled).__name__}")
        self.ref.current = compiled

    def close(self) -> None:
        """Stop accepting. Open TCP/TLS connections carry on (the runtime ends them); UDP sessions end now."""
        if self.server is not None:
            self.server.close()
        if self.udp is not None:
            self.udp.close()


class StreamFrontEnd:
    """Serves TCP, UDP and TLS IR listeners (see the module docstring).

    :param metrics: Where to count connections, bytes and datagrams (a runtime registers it in its registry).
    :param access_file: Write access lines (when ``options.access_log``) to this file instead of the
        ``nantian.access`` logger.
    """

    def __init__(
        self,
        options: StreamOptions | None = None,
        metrics: StreamMetrics | None = None,
        *,
        access_file: AccessLogFile | None = None,
    ) -> None:
        self.options = options or StreamOptions()
        self.metrics = metrics if metrics is not None else StreamMetrics()
        self.access = StreamAccessLog(self.options.access_log, access_file)
        self._open: set[RelayConnection] = set()

    def connection_count(self) -> int:
        """Open TCP/TLS connections over every listener of this front end."""
        return len(self._open)

    def compile(self, listener: Listener, snapshot: Snapshot) -> CompiledStreamListener:
        """Compile ``listener``'s routes (and, TLS terminate, its certificates).

        :raises ConfigRejected: the listener cannot be served (TLS termination without usable certificates).
        """
        if listener.protocol not in STREAM_PROTOCOLS:
            raise ConfigRejected(f"listener {listener.name}: protocol {listener.protocol.value} is not a stream")
        clusters = {c.name: c for c in snapshot.clusters}
        secrets = {s.name: s for s in snapshot.secrets}
        try:
            return compile_stream_listener(listener, clusters, secrets)
        except ConfigRejected:
            raise
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigRejected(f"listener {listener.name}: cannot compile: {exc!r}") from exc

    async def bind(
        self, listener: Listener, port: int, compiled: object, connections: set[object], *, reuse_port: bool = False
    ) -> StreamBinding:
        """Bind ``listener.address``:``port`` and serve ``compiled``; open connections join ``connections``.

        :raises OSError: the address cannot be bound.
        """
        if not isinstance(compiled, CompiledStreamListener):
            raise TypeError(f"expected a CompiledStreamListener, got {type(compiled).__name__}")
        ref = StreamListenerRef(name=listener.name, current=compiled)
        loop = asyncio.get_running_loop()
        if listener.protocol is Protocol.UDP:
            sock = _listen_socket(
                listener.address, port, socket.SOCK_DGRAM, self.options.backlog, reuse_port=reuse_port
            )
            bound_port = int(sock.getsockname()[1])
            proxy = UdpProxy(ref, metrics=self.metrics, options=self.options.udp, access=self.access)
            try:
                await loop.create_datagram_endpoint(lambda: proxy, sock=sock)
            except OSError:
                sock.close()
                raise
            return StreamBinding(ref, bound_port, server=None, udp=proxy)
        sock = _listen_socket(listener.address, port, socket.SOCK_STREAM, self.options.backlog, reuse_port=reuse_port)
        bound_port = int(sock.getsockname()[1])
        try:
            server = await loop.create_server(
                functools.partial(self._accept, ref, connections), sock=sock, backlog=self.options.backlog
            )
        except OSError:
            sock.close()
            raise
        return StreamBinding(ref, bound_port, server=server, udp=None)

    # -- connections ---------------------------------------------------------------------------------------------
    def _accept(self, ref: StreamListenerRef, connections: set[object]) -> asyncio.BaseProtocol:
        if len(self._open) >= self.options.max_connections:
            self.metrics.refused()
            return _Refused()
        config = ref.current
        conn = RelayConnection(
            on_ready=functools.partial(_route, config),
            on_done=functools.partial(self._done, connections, config),
            idle_timeout=self.options.idle_timeout,
            decide_timeout=self.options.hello_timeout,
        )
        connections.add(conn)
        self._open.add(conn)
        return conn

    def _done(self, connections: set[object], config: CompiledStreamListener, conn: RelayConnection) -> None:
        connections.discard(conn)
        self._open.discard(conn)
        relay = conn.relay
        bytes_in, bytes_out = relay.received[Side.DOWNSTREAM], relay.received[Side.UPSTREAM]
        route = conn.info.get("route", "-")
        backend = conn.info.get("backend", "-")
        self.metrics.connection(
            config.name, route, backend, served=relay.connected, bytes_in=bytes_in, bytes_out=bytes_out
        )
        if self.access.active:
            self.access.connection(
                listener=config.name,
                route=route,
                backend=backend,
                protocol=config.protocol.value,
                client=conn.client[0] if conn.client else "-",
                duration=conn.ended_at - conn.started_at,
                bytes_in=bytes_in,
                bytes_out=bytes_out,
                result=conn.info.get("result") or connection_result(relay.close_reason),
                upstream=conn.upstream or "-",
                sni=conn.info.get("sni", "-"),
            )
