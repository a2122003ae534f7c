"""Metrics and the access log of the stream proxy (TCP, TLS, UDP).

The stream front end is registered once per process (:func:`nantian.proxy.runtime.register_listener_frontend`), so
its metrics are one :class:`~prometheus_client.registry.Collector` that every runtime adds to its own registry.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["StreamMetrics", "access_log"]

access_log = logging.getLogger("nantian.access")


class StreamMetrics(Collector):
    """Stream connection, byte and UDP datagram counters; register it in a registry to export them.

    :attr:`counts` holds plain totals (``stream_connections``, ``stream_errors``, ``connections_refused``,
    ``udp_sessions``, ``udp_dropped``) for status reports.
    """

    def __init__(self) -> None:
        r = None  # collected through this object, so that several registries can export the same counters
        self.counts: dict[str, int] = dict.fromkeys(
            ("stream_connections", "stream_errors", "connections_refused", "udp_sessions", "udp_dropped"), 0
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

    def udp_session(self, listener: str, route: str, *, datagrams_in: int, datagrams_out: int) -> None:
        """Count one ended UDP session."""
        self.udp_sessions.labels(listener, route).inc()
        if datagrams_in:
            self.udp_datagrams.labels(listener, "downstream").inc(datagrams_in)
        if datagrams_out:
            self.udp_datagrams.labels(listener, "upstream").inc(datagrams_out)
        self.counts["udp_sessions"] += 1

    def udp_drop(self, listener: str, reason: str) -> None:
        """Count one dropped datagram."""
        self.udp_dropped.labels(listener, reason).inc()
        self.counts["udp_dropped"] += 1
