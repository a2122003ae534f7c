"""Metrics, counters and the access log of the stream proxy (TCP, TLS, UDP).

Each :class:`~nantian.proxy.ProxyRuntime` has its own stream front end, whose :class:`StreamMetrics` is a
:class:`~prometheus_client.registry.Collector` the runtime adds to its registry; :attr:`StreamMetrics.counts` are
merged into :meth:`~nantian.proxy.ProxyRuntime.counters` (status reports, the admin API).

Access log: one ``nantian.access`` INFO line per finished TCP/TLS connection and per ended UDP session, in the
HTTP lines' ``key=value`` form::

    access listener=ns/gw/9000/TCP route=TCPRoute/ns/r@ns/gw/tcp backend=c protocol=TCP client=127.0.0.1
    duration_ms=12.345 bytes_in=11 bytes_out=18 result=closed upstream=127.0.0.1:3000 sni=-

``result`` is one word: for TCP/TLS see :func:`connection_result`; a UDP session ends with ``idle_timeout``,
``listener_closed`` or ``upstream_error`` (its upstream socket could not open). UDP lines add ``datagrams_in`` and
``datagrams_out``. Connections refused over the connection limit and datagrams dropped without a session get no
line: they are counted (``stream_connections_refused``, ``udp_dropped``). With
:attr:`RuntimeOptions.access_log_path <nantian.proxy.RuntimeOptions.access_log_path>` the lines go to that file with
the HTTP ones (:class:`StreamAccessLog`).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from nantian.proxy.access_log import AccessLogFile

__all__ = [
    "StreamAccessLog",
    "StreamMetrics",
    "access_log",
    "connection_result",
]

access_log = logging.getLogger("nantian.access")

# Close reasons of the relay core (nantian.proxy._relay), the asyncio adapter (nantian.proxy.asyncio_relay) and the
# router (nantian.proxy.stream_listeners), by prefix, and the result word the access log shows for them.
_RESULTS: tuple[tuple[str, str], ...] = (
    ("done", "closed"),
    ("downstream closed before", "client_closed_early"),
    ("downstream closed", "closed"),
    ("upstream closed", "closed"),
    ("idle timeout", "idle_timeout"),
    ("connect failed: TimeoutError", "upstream_timeout"),
    ("connect failed", "upstream_refused"),
    ("no route", "no_route"),
    ("no backend", "no_backend"),
    ("invalid backend", "invalid_backend"),
    ("no endpoints", "no_endpoints"),
    ("no upstream chosen within", "hello_timeout"),
    ("TLS handshake failed", "tls_error"),
    ("TLS error", "tls_error"),
    ("TLS:", "bad_client_hello"),
    ("shut down", "shutdown"),
    ("closed by the proxy", "aborted"),
    ("routing failed", "internal_error"),
    ("upstream ", "upstream_reset"),
    ("downstream ", "client_reset"),
)


def connection_result(reason: str | None) -> str:
    """The one-word ``result`` of a TCP/TLS connection closed for ``reason`` (``error`` when not known).

    ``closed`` (both sides ended), ``idle_timeout``, ``shutdown`` (drain or a removed listener), ``aborted`` (the
    runtime closed), ``client_reset``, ``upstream_reset``; never reached an upstream: ``no_route``, ``no_backend``,
    ``invalid_backend``, ``no_endpoints``, ``upstream_refused``, ``upstream_timeout``, ``hello_timeout``,
    ``bad_client_hello``, ``tls_error``, ``client_closed_early``, ``internal_error``. The router sets
    ``client_cert_refused`` itself.
    """
    if reason is None:
        return "closed"
    for prefix, result in _RESULTS:
        if reason.startswith(prefix):
            return result
    return "error"


class StreamMetrics(Collector):
    """Stream connection, byte and UDP datagram counters; register it in a registry to export them.

    :attr:`counts` holds plain totals for status reports: ``stream_connections`` (closed TCP/TLS connections),
    ``stream_errors`` (of those, the ones that never reached an upstream: no route or endpoint, refused or timed-out
    connect, failed TLS handshake or ClientHello), ``stream_connections_refused`` (closed on accept over the
    connection limit, not in ``stream_connections``), ``udp_sessions`` (ended UDP sessions), ``udp_errors`` (of
    those, the ones whose upstream socket failed) and ``udp_dropped`` (datagrams dropped: no route, too many
    sessions, backlog).
    """

    def __init__(self) -> None:
        r = None  # collected through this object, so that several registries can export the same counters
        self.counts: dict[str, int] = dict.fromkeys(
            (
                "stream_connections",
                "stream_errors",
                "stream_connections_refused",
                "udp_sessions",
                "udp_errors",
                "udp_dropped",
            ),
            0,
        )
        self.connections = Counter(
            "nantian_proxy_stream_connections",
            "Closed TCP/TLS connections, by listener, route, backend cluster and result (served, refused).",
            ["listener", "route", "backend", "result"],
            registry=r,
        )
        self.bytes = Counter(
            "nantian_proxy_stream_bytes",
            "Bytes relayed by the stream proxy, by listener and direction (received from downstream or upstream).",
            ["listener", "direction"],
            registry=r,
        )
        self.udp_sessions = Counter(
            "nantian_proxy_udp_sessions",
            "Ended UDP sessions, by listener and route.",
            ["listener", "route"],
            registry=r,
        )
        self.udp_datagrams = Counter(
            "nantian_proxy_udp_datagrams",
            "UDP datagrams relayed, by listener and direction (received from downstream or upstream).",
            ["listener", "direction"],
            registry=r,
        )
        self.udp_dropped = Counter(
            "nantian_proxy_udp_dropped",
            "UDP datagrams dropped, by listener and reason (no_route, sessions_full, backlog).",
            ["listener", "reason"],
            registry=r,
        )

        self._live_sessions: dict[int, tuple[str, Callable[[], int]]] = {}
        self._ids = itertools.count()

    def track_sessions(self, listener: str, count: Callable[[], int]) -> Callable[[], None]:
        """Export ``count()`` as live UDP sessions of ``listener`` until the returned function is called."""
        key = next(self._ids)
        self._live_sessions[key] = (listener, count)

        def untrack() -> None:
            self._live_sessions.pop(key, None)

        return untrack

    def live_sessions(self) -> int:
        """Live UDP sessions over every tracked listener."""
        return sum(count() for _, count in list(self._live_sessions.values()))

    def collect(self) -> Iterator[Metric]:
        for counter in (self.connections, self.bytes, self.udp_sessions, self.udp_datagrams, self.udp_dropped):
            yield from counter.collect()
        live = GaugeMetricFamily(
            "nantian_proxy_udp_active_sessions", "Live UDP sessions, by listener.", labels=["listener"]
        )
        totals: dict[str, int] = {}
        for listener, count in list(self._live_sessions.values()):
            totals[listener] = totals.get(listener, 0) + count()
        for listener, n in sorted(totals.items()):
            live.add_metric([listener], n)
        yield live

    def connection(
        self, listener: str, route: str, backend: str, *, served: bool, bytes_in: int, bytes_out: int
    ) -> None:
        """Count one closed TCP/TLS connection."""
        self.connections.labels(listener, route, backend, "served" if served else "refused").inc()
        if bytes_in:
            self.bytes.labels(listener, "downstream").inc(bytes_in)
        if bytes_out:
            self.bytes.labels(listener, "upstream").inc(bytes_out)
        self.counts["stream_connections"] += 1
        if not served:
            self.counts["stream_errors"] += 1

    def refused(self) -> None:
        """Count one connection closed on accept because the connection limit is reached."""
        self.counts["stream_connections_refused"] += 1

    def udp_session(
        self, listener: str, route: str, *, datagrams_in: int, datagrams_out: int, failed: bool = False
    ) -> None:
        """Count one ended UDP session (``failed``: its upstream socket failed)."""
        self.udp_sessions.labels(listener, route).inc()
        if failed:
            self.counts["udp_errors"] += 1
        if datagrams_in:
            self.udp_datagrams.labels(listener, "downstream").inc(datagrams_in)
        if datagrams_out:
            self.udp_datagrams.labels(listener, "upstream").inc(datagrams_out)
        self.counts["udp_sessions"] += 1

    def udp_drop(self, listener: str, reason: str) -> None:
        """Count one dropped datagram."""
        self.udp_dropped.labels(listener, reason).inc()
        self.counts["udp_dropped"] += 1


class StreamAccessLog:
    """Where the stream proxy's access lines go: the ``nantian.access`` logger, or ``file`` (the runtime's
    :class:`~nantian.proxy.access_log.AccessLogFile` when :attr:`RuntimeOptions.access_log_path
    <nantian.proxy.RuntimeOptions.access_log_path>` is set), like the HTTP lines.

    :param enabled: ``False``: write nothing.
    """

    def __init__(self, enabled: bool = True, file: AccessLogFile | None = None) -> None:
        self.enabled = enabled
        self.file = file

    @property
    def active(self) -> bool:
        """Whether a line would be written now (checked before building one)."""
        if not self.enabled:
            return False
        if self.file is not None:
            return not self.file.closed
        return access_log.isEnabledFor(logging.INFO)

    def _write(self, template: str, *args: object) -> None:
        if self.file is not None:
            self.file.write(template % args)
        else:
            access_log.info(template, *args)

    def connection(
        self,
        *,
        listener: str,
        route: str,
        backend: str,
        protocol: str,
        client: str,
        duration: float,
        bytes_in: int,
        bytes_out: int,
        result: str,
        upstream: str,
        sni: str,
    ) -> None:
        """The line of one finished TCP/TLS connection (``duration`` in seconds)."""
        self._write(
            "access listener=%s route=%s backend=%s protocol=%s client=%s duration_ms=%.3f bytes_in=%d bytes_out=%d "
            "result=%s upstream=%s sni=%s",
            listener,
            route,
            backend,
            protocol,
            client,
            duration * 1000.0,
            bytes_in,
            bytes_out,
            result,
            upstream,
            sni,
        )

    def udp_session(
        self,
        *,
        listener: str,
        route: str,
        backend: str,
        client: str,
        duration: float,
        bytes_in: int,
        bytes_out: int,
        result: str,
        upstream: str,
        datagrams_in: int,
        datagrams_out: int,
    ) -> None:
        """The line of one ended UDP session (``duration`` in seconds)."""
        self._write(
            "access listener=%s route=%s backend=%s protocol=UDP client=%s duration_ms=%.3f bytes_in=%d bytes_out=%d "
            "result=%s upstream=%s datagrams_in=%d datagrams_out=%d",
            listener,
            route,
            backend,
            client,
            duration * 1000.0,
            bytes_in,
            bytes_out,
            result,
            upstream,
            datagrams_in,
            datagrams_out,
        )
