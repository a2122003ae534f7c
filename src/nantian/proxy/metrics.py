"""The proxy's Prometheus metrics and plain counters, one set per runtime (its own registry)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["ProxyMetrics", "RequestStats"]

_BUCKETS: Final[list[float]] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0
]  # fmt: skip
"""Upper bounds of the request duration histogram's buckets (seconds). A list: compiled code reads a tuple of
floats as a C struct and boxes all of it again to pass it anywhere."""


class RequestStats:
    """Per (listener, route) request counts by (backend, code) and a duration histogram, in plain Python values.

    A compiled route holds its own (:meth:`ProxyMetrics.stats_for`), so counting a request looks nothing up by
    name."""

    __slots__ = ("_last", "_last_backend", "_last_status", "_metrics", "buckets", "cells", "total")

    def __init__(self, metrics: ProxyMetrics) -> None:
        self._metrics = metrics
        self.cells: dict[tuple[str, int], list[int]] = {}
        """(backend, status code) -> a one-item list holding the count (the last one used is kept at hand)."""
        self.buckets = [0] * (len(_BUCKETS) + 1)
        """Requests by duration bucket (the last one: above every bound); their sum is the request count."""
        self.total = 0.0
        self._last_backend = ""
        self._last_status = 0
        self._last: list[int] = [0]

    @property
    def codes(self) -> dict[tuple[str, int], int]:
        """Requests by (backend, status code)."""
        return {key: cell[0] for key, cell in list(self.cells.items())}

    def observe(self, backend: str, status: int, seconds: float) -> None:
        """Count one answered request and its duration."""
        if status == self._last_status and backend == self._last_backend:
            self._last[0] += 1
        else:
            key = (backend, status)
            cell = self.cells.get(key)
            if cell is None:
                cell = self.cells[key] = [0]
            cell[0] += 1
            self._last = cell
            self._last_backend = backend
            self._last_status = status
        i = 0
        for bound in _BUCKETS:  # bisect_left: the first bucket whose bound is >= seconds
            if seconds <= bound:
                break
            i += 1
        self.buckets[i] += 1
        self.total += seconds
        metrics = self._metrics
        metrics.requests += 1
        if status >= 500:
            metrics.errors += 1


class _RequestCollector(Collector):
    """Renders the hot-path statistics as ``nantian_proxy_requests_total`` and the duration histogram at scrape."""

    def __init__(self, stats: dict[tuple[str, str], RequestStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "nantian_proxy_requests",
            "HTTP requests answered, by listener, route, backend cluster and status code.",
            labels=["listener", "route", "backend", "code"],
        )
        duration = HistogramMetricFamily(
            "nantian_proxy_request_duration_seconds",
            "Time from a complete request head to the end of the response.",
            labels=["listener", "route"],
        )
        for (listener, route), st in list(self._stats.items()):
            for (backend, code), n in st.codes.items():
                requests.add_metric([listener, route, backend, str(code)], n)
            cumulative = list(itertools.accumulate(st.buckets))
            bounds = [*(str(b) for b in _BUCKETS), "+Inf"]
            duration.add_metric([listener, route], list(zip(bounds, cumulative, strict=True)), st.total)
        yield requests
        yield duration


class ProxyMetrics:
    """Request, latency, upstream and connection metrics in ``registry``, plus :meth:`counters` for status reports.

    Request counts and durations are kept in plain dicts on the hot path (no locks: the proxy is one event loop)
    and rendered by a custom collector when the registry is scraped.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._stats: dict[tuple[str, str], RequestStats] = {}
        r.register(_RequestCollector(self._stats))
        self.upstream_connect_errors = Counter(
            "nantian_proxy_upstream_connect_errors",
            "Failed upstream connection attempts, by cluster.",
            ["cluster"],
            registry=r,
        )
        self.upstream_errors = Counter(
            "nantian_proxy_upstream_errors",
            "Upstream attempts that failed before a response head (reset, protocol), by cluster.",
            ["cluster", "kind"],
            registry=r,
        )
        self.retries = Counter("nantian_proxy_retries", "Upstream retries, by route.", ["route"], registry=r)
        self.filter_errors = Counter(
            "nantian_proxy_filter_errors", "Plugin filter failures (answered 500), by route.", ["route"], registry=r
        )
        self.mirror_failures = Counter(
            "nantian_proxy_mirror_failures",
            "Mirror copies that failed or were dropped, by cluster.",
            ["cluster"],
            registry=r,
        )
        self.bad_requests = Counter(
            "nantian_proxy_bad_requests",
            "Malformed requests answered by the front end.",
            ["listener", "code"],
            registry=r,
        )
        self.active_connections = Gauge(
            "nantian_proxy_active_connections", "Open downstream connections, by listener.", ["listener"], registry=r
        )
        self.counts: dict[str, int] = {
            "upstream_connect_errors": 0,
            "filter_errors": 0,
            "bad_requests": 0,
            "connections_total": 0,
            "connections_refused": 0,
        }
        """Counters of rarer events, by name (see :meth:`counters` for all of them)."""
        # the per-request counters are attributes (a compiled attribute increment, not a dict update)
        self.requests = 0
        self.errors = 0
        self.fast_path = 0

    def counters(self) -> dict[str, int]:
        """Every plain counter by name: ``requests``, ``errors`` (5xx), ``fast_path`` and :attr:`counts`."""
        return {"requests": self.requests, "errors": self.errors, "fast_path": self.fast_path, **self.counts}

    def stats_for(self, listener: str, route: str) -> RequestStats:
        """The statistics of ``route`` on ``listener`` (made on first use)."""
        key = (listener, route)
        st = self._stats.get(key)
        if st is None:
            st = self._stats[key] = RequestStats(self)
        return st

    def connect_error(self, cluster: str) -> None:
        self.upstream_connect_errors.labels(cluster).inc()
        self.counts["upstream_connect_errors"] += 1

    def filter_error(self, route: str) -> None:
        self.filter_errors.labels(route).inc()
        self.counts["filter_errors"] += 1

    def bad_request(self, listener: str, status: int) -> None:
        self.bad_requests.labels(listener, str(status)).inc()
        self.counts["bad_requests"] += 1
