"""The proxy runtime: binds the listeners of applied snapshots and swaps compiled configs in atomically.

::

    rt = ProxyRuntime(RuntimeOptions(port_offset=0, bind_failure="report"))
    result = await rt.apply(snapshot)        # ConfigRejected: nothing changed
    ...
    await rt.drain(10.0)

In-flight requests finish on the config they started with (front ends read :attr:`ListenerRef.current` once per
request); unchanged listeners keep their sockets and connections; new ones bind, removed ones close.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import typing
from collections.abc import Callable, Collection, Mapping
from typing import Literal

import attrs
import pluggy
from prometheus_client import CollectorRegistry

from nantian.errors import ConfigRejected
from nantian.ir import Listener, Protocol, Snapshot
from nantian.proxy.access_log import AccessLogFile
from nantian.proxy.asyncio_h2 import H2Options, negotiating_factory
from nantian.proxy.asyncio_http1 import Http1Options, Http1Server
from nantian.proxy.clusters import PoolRegistry
from nantian.proxy.config import HTTP_PROTOCOLS, CompiledConfig, compile_snapshot
from nantian.proxy.exchange import ListenerRef
from nantian.proxy.handler import CompiledListener
from nantian.proxy.metrics import ProxyMetrics
from nantian.proxy.stream_config import STREAM_PROTOCOLS
from nantian.proxy.stream_listeners import StreamFrontEnd
from nantian.proxy.stream_options import StreamOptions
from nantian.proxy.tls import ServerTls, TlsSession

__all__ = [
    "ApplyResult",
    "ListenerBinding",
    "ListenerFrontEnd",
    "ListenerState",
    "PortGuard",
    "ProxyRuntime",
    "RuntimeOptions",
    "register_listener_frontend",
]

log = logging.getLogger(__name__)

BindFailure = Literal["report", "reject"]


class PortGuard(typing.Protocol):
    """Who may share a port through ``SO_REUSEPORT``: the processes of one deployment, and nobody else.

    With :attr:`RuntimeOptions.reuse_port` the runtime asks :meth:`claim` before it binds a new HTTP listening
    socket, and tells :meth:`hold` which ports it holds after every change (and ``()`` when it closes).
    :class:`nantian.proxy.workers.PortGuardClient` asks the supervising parent process.
    """

    async def claim(self, address: str, port: int) -> None:
        """Allow binding ``address:port`` with ``SO_REUSEPORT``. :raises OSError: it belongs to someone else."""
        ...

    def hold(self, ports: Collection[tuple[str, int]]) -> None:
        """The TCP ports this runtime holds now (claims for others may be released)."""
        ...


@attrs.frozen(kw_only=True)
class RuntimeOptions:
    """How a :class:`ProxyRuntime` binds and serves.

    :param port_offset: Added to every IR listener port when binding (run unprivileged, or several data planes).
    :param node_id: This data plane's name (for status reports and logs).
    :param bind_failure: ``"report"``: apply the rest and report listeners that cannot bind; ``"reject"``: refuse
        the whole snapshot.
    :param access_log: One ``nantian.access`` INFO line per request (stream listeners: per connection or UDP session).
    :param drain_timeout: Default seconds :meth:`ProxyRuntime.drain` waits for in-flight requests.
    :param max_connections: Open downstream connections over all listeners; more are closed on accept.
    """

    port_offset: int = 0
    node_id: str = "nantian"
    bind_failure: BindFailure = "report"
    access_log: bool = True
    access_log_path: str | None = None
    """HTTP access lines go to this file (``-``: standard output), written in batches (:mod:`nantian.proxy.access_log`)
    instead of through the ``nantian.access`` logger: a request then costs about half the CPU. Lines may wait up to a
    second in memory. Stream listeners' lines (TCP/TLS connections, UDP sessions) go there too."""
    drain_timeout: float = 10.0
    max_connections: int = 10000
    http1: Http1Options = attrs.field(factory=Http1Options)
    h2: H2Options = attrs.field(factory=H2Options)
    sweep_interval: float = 1.0
    """Seconds between checks of the header-read and idle timeouts."""
    backlog: int = 1024
    http2_cleartext: bool = True
    """Plain-HTTP listeners also accept HTTP/2 with prior knowledge (h2c, gRPC without TLS). ``False``: HTTP/1.1
    only, like Envoy's ``codec_type: HTTP1``."""
    reuse_port: bool = False
    """Bind HTTP listeners with ``SO_REUSEPORT``: several worker processes of one deployment serve the same port
    and the kernel spreads connections over them. Off (the default), a port another process holds fails to bind."""
    port_guard: PortGuard | None = attrs.field(default=None, eq=False)
    """With ``reuse_port``: asked before every new bind (see :class:`PortGuard`); ``None`` trusts the caller."""
    stream: StreamOptions = attrs.field(factory=StreamOptions)
    """TCP, UDP and TLS listeners (the built-in stream front end): idle and ClientHello timeouts, UDP sessions."""


@attrs.frozen(kw_only=True)
class ListenerState:
    """A listener of the last applied snapshot: where it binds and whether that worked."""

    name: str
    address: str
    port: int
    """The bound port (IR port plus the offset)."""
    protocol: str
    bound: bool
    error: str | None = None


@attrs.frozen(kw_only=True)
class ApplyResult:
    """What :meth:`ProxyRuntime.apply` did. ``failed`` maps listener names to why they are not served."""

    version: str
    bound: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    closed: tuple[str, ...] = ()
    failed: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


class _Refused(asyncio.Protocol):
    """Closes a connection over the connection limit."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.abort()  # type: ignore[attr-defined]


@attrs.define(eq=False)
class _Bound:
    ir: Listener
    bind_key: tuple[str, int, Protocol]
    tls_key: str
    connections: set[object]
    close: Callable[[], None]
    """Stop accepting (connections are shut down or aborted through ``connections``)."""
    swap: Callable[[object], None]
    """Serve this compiled listener config from now on."""
    port: Callable[[], int | None]
    ref: ListenerRef | None = None
    sock: socket.socket | None = None
    """HTTP listeners: the listening socket (a replacement binding takes over a duplicate of it)."""


class ListenerBinding(typing.Protocol):
    """A bound listener of a :class:`ListenerFrontEnd`."""

    @property
    def port(self) -> int | None:
        """The bound port."""
        ...

    def swap(self, compiled: object) -> None:
        """Serve ``compiled`` (from :meth:`ListenerFrontEnd.compile`) for new connections from now on."""
        ...

    def close(self) -> None:
        """Stop accepting. Open connections are left to the runtime (through the ``connections`` set)."""
        ...


class ListenerFrontEnd(typing.Protocol):
    """Serves IR listeners of a protocol the runtime does not serve itself (TCP, UDP, TLS: the stream proxy).

    Register one per protocol with :func:`register_listener_frontend`. For every applied snapshot the runtime calls
    :meth:`compile` for each such listener before changing anything (``ConfigRejected`` refuses the snapshot);
    then an unchanged listener (same address, port, protocol and TLS material) keeps its binding and gets
    :meth:`ListenerBinding.swap`, and others are bound with :meth:`bind` (``OSError``: a bind failure, handled per
    ``bind_failure``). ``connections`` is the set open connections add themselves to (and remove themselves from
    when closed): the runtime counts them, calls ``shutdown()`` on drain and ``abort()`` (or ``close()``) on close.
    """

    def compile(self, listener: Listener, snapshot: Snapshot) -> object:
        """Compile ``listener`` (routes, TLS) for serving. :raises ConfigRejected: it cannot be served."""
        ...

    async def bind(
        self, listener: Listener, port: int, compiled: object, connections: set[object], *, reuse_port: bool = False
    ) -> ListenerBinding:
        """Bind ``listener.address``:``port`` and serve ``compiled``. :raises OSError: it cannot bind.

        ``reuse_port``: bind with ``SO_REUSEPORT`` (worker processes of one deployment share the port; the runtime
        has already claimed it from its port guard). Without it a port taken by anyone else must fail to bind.
        """
        ...


_FRONTENDS: dict[Protocol, ListenerFrontEnd] = {}


def register_listener_frontend(protocol: Protocol, frontend: ListenerFrontEnd | None) -> ListenerFrontEnd | None:
    """Serve IR listeners of ``protocol`` (``TCP``, ``UDP``, ``TLS``) with ``frontend`` in snapshots applied from now
    on (``None``: stop serving them). Returns the front end registered before. HTTP and HTTPS are served by the
    runtime itself."""
    if protocol in HTTP_PROTOCOLS:
        raise ValueError(f"{protocol.value} listeners are served by the runtime itself")
    previous = _FRONTENDS.pop(protocol, None)
    if frontend is not None:
        _FRONTENDS[protocol] = frontend
    return previous


_STREAMS = StreamFrontEnd()
"""The built-in stream proxy (:mod:`nantian.proxy.stream_listeners`): TCP, UDP and TLS listeners. While it is the
registered front end, each runtime serves those listeners with a :class:`StreamFrontEnd` of its own, made from
:attr:`RuntimeOptions.stream` and :attr:`RuntimeOptions.access_log`, whose counts go into its :meth:`counters`."""
for _protocol in sorted(STREAM_PROTOCOLS, key=lambda p: p.value):
    register_listener_frontend(_protocol, _STREAMS)


def _tls_key(lst: Listener, snapshot: Snapshot) -> str:
    if not lst.certificates:
        return ""
    names = {c.secret for c in lst.certificates}
    for cert in lst.certificates:
        if cert.client_validation is not None:
            names.update(cert.client_validation.ca_secrets)
    secrets = [s for s in snapshot.secrets if s.name in names]
    return repr((lst.certificates, secrets))


class ProxyRuntime:
    """The data plane: apply snapshots, serve them, report listener states, counters and metrics."""

    def __init__(
        self, options: RuntimeOptions | None = None, plugin_manager: pluggy.PluginManager | None = None
    ) -> None:
        self.options = options or RuntimeOptions()
        self._pm = plugin_manager
        self.metrics = ProxyMetrics()
        self._pools = PoolRegistry(self.metrics)
        self._access_file = (
            AccessLogFile(self.options.access_log_path)
            if self.options.access_log and self.options.access_log_path is not None
            else None
        )
        stream = self.options.stream
        self._streams = StreamFrontEnd(
            attrs.evolve(stream, access_log=stream.access_log and self.options.access_log),
            access_file=self._access_file,
        )
        self.metrics.registry.register(self._streams.metrics)
        self._bound: dict[str, _Bound] = {}
        self._states: dict[str, ListenerState] = {}
        self._config: CompiledConfig | None = None
        self._lock = asyncio.Lock()
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False

    def _plugin_manager(self) -> pluggy.PluginManager | None:
        """The plugin manager, made on first need (only routes with plugin filters need one)."""
        if self._pm is None:
            from nantian.plugins.manager import get_plugin_manager

            try:
                self._pm = get_plugin_manager()
            except Exception:
                log.error("proxy.plugins_unavailable", exc_info=True)
                return None
        return self._pm

    # -- read side ---------------------------------------------------------------------------------------------
    @property
    def version(self) -> str | None:
        """Version of the last applied snapshot."""
        return self._config.version if self._config is not None else None

    @property
    def snapshot(self) -> Snapshot | None:
        """The last applied snapshot."""
        return self._config.snapshot if self._config is not None else None

    @property
    def metrics_registry(self) -> CollectorRegistry:
        """The :class:`prometheus_client.CollectorRegistry` holding this runtime's metrics."""
        return self.metrics.registry

    def listener_states(self) -> Mapping[str, ListenerState]:
        """Every listener of the last applied snapshot, by IR name."""
        return dict(self._states)

    def counters(self) -> Mapping[str, int]:
        """Totals for status reports: requests, errors (5xx), active connections, ...; stream listeners'
        ``stream_connections``, ``stream_errors``, ``udp_sessions``, ... (see
        :class:`~nantian.proxy.stream_metrics.StreamMetrics`) and ``udp_sessions_active``."""
        out = self.metrics.counters()
        out.update(self._streams.metrics.counts)
        out["udp_sessions_active"] = self._streams.metrics.live_sessions()
        out["active_connections"] = self._connection_count()
        out["listeners_bound"] = len(self._bound)
        return out

    def _frontend(self, protocol: Protocol) -> ListenerFrontEnd | None:
        """The front end serving listeners of ``protocol`` (this runtime's own for the built-in stream proxy)."""
        frontend = _FRONTENDS.get(protocol)
        return self._streams if frontend is _STREAMS else frontend

    def bound_port(self, name: str) -> int | None:
        """The port listener ``name`` is bound to, if it is."""
        b = self._bound.get(name)
        return b.port() if b is not None else None

    def _connection_count(self) -> int:
        return sum(len(b.connections) for b in self._bound.values())

    # -- apply -------------------------------------------------------------------------------------------------
    async def apply(self, snapshot: Snapshot) -> ApplyResult:
        """Compile ``snapshot`` and swap it in atomically.

        :raises ConfigRejected: the snapshot does not compile, or (``bind_failure="reject"``) a listener cannot
            bind. Nothing changes then.
        """
        async with self._lock:
            if self._closed:
                raise ConfigRejected("the proxy runtime is closed")
            compiled = compile_snapshot(
                snapshot,
                self._pools,
                metrics=self.metrics,
                plugin_manager=self._plugin_manager,
                access_log=self.options.access_log,
                access_log_file=self._access_file,
            )
            streams: dict[str, object] = {}
            for lst in snapshot.listeners:
                frontend = self._frontend(lst.protocol)
                if lst.protocol not in HTTP_PROTOCOLS and frontend is not None:
                    streams[lst.name] = frontend.compile(lst, snapshot)
            offset = self.options.port_offset
            failed: dict[str, str] = {}
            bind_errors: dict[str, str] = {}
            new: dict[str, _Bound] = {}
            kept: list[str] = []
            states: dict[str, ListenerState] = {}
            for lst in snapshot.listeners:
                port = lst.port + offset
                state = functools.partial(
                    ListenerState, name=lst.name, address=lst.address, port=port, protocol=lst.protocol.value
                )
                frontend = self._frontend(lst.protocol)
                if lst.protocol not in HTTP_PROTOCOLS and frontend is None:
                    failed[lst.name] = f"protocol {lst.protocol.value} is not served by this proxy"
                    states[lst.name] = state(bound=False, error=failed[lst.name])
                    continue
                key = (lst.address, port, lst.protocol)
                tls_key = _tls_key(lst, snapshot)
                old = self._bound.get(lst.name)
                # Stream front ends compile their TLS contexts into the swapped config, so only HTTP listeners re-bind
                # (taking over the old socket) when their certificates change.
                if old is not None and old.bind_key == key and (old.tls_key == tls_key or frontend is not None):
                    kept.append(lst.name)
                    states[lst.name] = state(bound=True)
                    continue
                connections = old.connections if old is not None else set()
                try:
                    if frontend is None:
                        bound = await self._bind_http(lst, port, compiled, old, connections)
                    else:
                        if self.options.reuse_port and self.options.port_guard is not None:
                            await self.options.port_guard.claim(lst.address, port)
                        binding = await frontend.bind(
                            lst, port, streams[lst.name], connections, reuse_port=self.options.reuse_port
                        )
                        bound = _Bound(
                            ir=lst,
                            bind_key=key,
                            tls_key="",
                            connections=connections,
                            close=binding.close,
                            swap=binding.swap,
                            port=lambda b=binding: b.port,  # type: ignore[misc]
                        )
                except OSError as exc:
                    bind_errors[lst.name] = failed[lst.name] = (
                        f"cannot bind {lst.address}:{port}: {exc.strerror or exc}"
                    )
                    states[lst.name] = state(bound=False, error=failed[lst.name])
                    log.warning(
                        "proxy.bind_failed listener=%s address=%s port=%s error=%s", lst.name, lst.address, port, exc
                    )
                    continue
                bound.bind_key = key
                bound.tls_key = tls_key
                new[lst.name] = bound
                states[lst.name] = state(bound=True)
            if bind_errors and self.options.bind_failure == "reject":
                for b in new.values():
                    b.close()
                self._report_ports()
                raise ConfigRejected(
                    "listeners cannot bind: " + "; ".join(f"{n}: {e}" for n, e in sorted(bind_errors.items()))
                )
            # -- the swap: nothing below can fail --
            configs: dict[str, object] = {**compiled.listeners, **streams}
            closed: list[str] = []
            for name, b in list(self._bound.items()):
                if name in kept:
                    b.ir = next(lst for lst in snapshot.listeners if lst.name == name)
                    b.swap(configs[name])
                    continue
                replaced = new.get(name)
                b.close()
                if replaced is None:
                    closed.append(name)
                    for conn in list(b.connections):
                        _shutdown(conn)
                    with contextlib.suppress(KeyError):
                        self.metrics.active_connections.remove(name)
                del self._bound[name]
            for name, b in new.items():
                b.swap(configs[name])
                self._bound[name] = b
                conns = b.connections
                self.metrics.active_connections.labels(name).set_function(lambda c=conns: len(c))  # type: ignore[misc]
            self._pools.retain(compiled.pool_keys)
            self._config = compiled
            self._states = states
            self._ensure_sweeper()
            self._report_ports()
            log.info(
                "proxy.applied version=%s bound=%d kept=%d closed=%d failed=%d",
                snapshot.version,
                len(new),
                len(kept),
                len(closed),
                len(failed),
            )
            return ApplyResult(
                version=snapshot.version,
                bound=tuple(sorted(new)),
                kept=tuple(sorted(kept)),
                closed=tuple(sorted(closed)),
                failed=failed,
            )

    async def _bind_http(
        self, lst: Listener, port: int, compiled: CompiledConfig, old: _Bound | None, connections: set[object]
    ) -> _Bound:
        ref = old.ref if old is not None else None
        if ref is None:
            ref = ListenerRef(name=lst.name, current=compiled.listeners[lst.name])
        sock = self._socket_of(lst.address, port)
        if sock is None:
            reuse_port = self.options.reuse_port
            if reuse_port and self.options.port_guard is not None:
                await self.options.port_guard.claim(lst.address, port)
            sock = _listening_socket(lst.address, port, self.options.backlog, reuse_port=reuse_port)
        try:
            server = await self._serve(sock, ref, connections, compiled.server_tls.get(lst.name))
        except BaseException:
            sock.close()
            raise

        def swap(config: object, ref: ListenerRef = ref) -> None:
            assert isinstance(config, CompiledListener)
            ref.current = config

        def bound_port() -> int | None:
            sockets = server.sockets
            return int(sockets[0].getsockname()[1]) if sockets else None

        return _Bound(
            ir=lst,
            bind_key=(lst.address, port, lst.protocol),
            tls_key="",
            connections=connections,
            close=server.close,
            swap=swap,
            port=bound_port,
            ref=ref,
            sock=sock,
        )

    def _socket_of(self, address: str, port: int) -> socket.socket | None:
        """A duplicate of the listening socket an HTTP listener of the current config has on ``address:port``.

        A listener re-bound for new certificates (or renamed, or switched between HTTP and HTTPS) takes over the
        socket it replaces: no moment without a listening socket, and no ``SO_REUSEPORT`` for it (which would let
        two processes share a port silently instead of failing to bind; only :attr:`RuntimeOptions.reuse_port`
        workers share one, through their :class:`PortGuard`).
        """
        for b in self._bound.values():
            if b.sock is not None and b.bind_key[0] == address and b.bind_key[1] == port:
                dup = b.sock.dup()
                dup.setblocking(False)
                return dup
        return None

    async def _serve(
        self,
        sock: socket.socket,
        ref: ListenerRef,
        connections: set[object],
        server_tls: ServerTls | None,
    ) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        return await loop.create_server(
            self._protocol_factory(ref, connections, server_tls),
            sock=sock,
            ssl=server_tls.context if server_tls is not None else None,
            backlog=self.options.backlog,
        )

    def _protocol_factory(
        self, ref: ListenerRef, connections: set[object], server_tls: ServerTls | None
    ) -> Callable[[], asyncio.BaseProtocol]:
        options = self.options
        counts = self.metrics.counts
        on_error = functools.partial(self.metrics.bad_request, ref.name)
        scheme = "https" if server_tls is not None else "http"

        def http1(session: TlsSession | None) -> asyncio.Protocol:
            return Http1Server(
                ref,
                options=options.http1,
                scheme=scheme,
                sni_section=session.section if session is not None else None,
                sni=session.server_name if session is not None else None,
                connections=connections,
                on_error=on_error,
            )

        negotiating: Callable[[], asyncio.BaseProtocol]
        if server_tls is None and not options.http2_cleartext:
            negotiating = functools.partial(http1, None)
        else:
            negotiating = negotiating_factory(
                http1, ref, server_tls=server_tls, options=options.h2, connections=connections, on_error=on_error
            )

        def factory() -> asyncio.BaseProtocol:
            if self._connection_count() >= options.max_connections:
                counts["connections_refused"] += 1
                return _Refused()
            counts["connections_total"] += 1
            return negotiating()

        return factory

    # -- timeouts ----------------------------------------------------------------------------------------------
    def _ensure_sweeper(self) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.options.sweep_interval)
            now = loop.time()
            for b in list(self._bound.values()):
                for conn in list(b.connections):
                    check = getattr(conn, "check_timeouts", None)
                    if check is not None:
                        try:
                            check(now)
                        except Exception:
                            log.error("proxy.sweep_failed listener=%s", b.ir.name, exc_info=True)

    # -- shutdown ----------------------------------------------------------------------------------------------
    async def drain(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 (the documented API)
        """Stop accepting, let in-flight requests finish within ``timeout`` seconds, then close everything."""
        wait = self.options.drain_timeout if timeout is None else timeout
        async with self._lock:
            self._closed = True
            for b in self._bound.values():
                b.close()
                for conn in list(b.connections):
                    _shutdown(conn)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait
            while self._connection_count() and loop.time() < deadline:  # noqa: ASYNC110 (connections close on their own)
                await asyncio.sleep(0.02)
            remaining = self._connection_count()
            if remaining:
                log.info("proxy.drain_timeout connections=%d", remaining)
            self._close_now()
        await asyncio.sleep(0)

    async def close(self) -> None:
        """Close listeners, connections and pools now."""
        async with self._lock:
            self._closed = True
            self._close_now()
        await asyncio.sleep(0)

    def _close_now(self) -> None:
        for b in self._bound.values():
            b.close()
            for conn in list(b.connections):
                abort = getattr(conn, "abort", None) or getattr(conn, "close", None)
                if abort is not None:
                    abort()
            b.connections.clear()
        self._bound.clear()
        self._states = {n: attrs.evolve(s, bound=False, error="closed") for n, s in self._states.items()}
        self._pools.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        self._report_ports()
        if self._access_file is not None:
            self._access_file.close()

    def _report_ports(self) -> None:
        guard = self.options.port_guard
        if guard is None or not self.options.reuse_port:
            return
        try:
            guard.hold({(b.bind_key[0], b.bind_key[1]) for b in self._bound.values() if b.sock is not None})
        except Exception:
            log.error("proxy.port_guard_failed", exc_info=True)


def _listening_socket(address: str, port: int, backlog: int, *, reuse_port: bool = False) -> socket.socket:
    """A bound, listening, non-blocking TCP socket (``reuse_port``: with ``SO_REUSEPORT``).

    :raises OSError: the address is in use or not local.
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((address, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _shutdown(conn: object) -> None:
    shutdown = getattr(conn, "shutdown", None)
    if shutdown is not None:
        shutdown()
