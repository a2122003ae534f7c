"""The proxy's Prometheus metrics and plain counters, one set per runtime (its own registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ProxyMetrics"]

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ProxyMetrics:
    """Request, latency, upstream and connection metrics in ``registry``, plus :attr:`counts` for status reports.

    Labelled children are cached per label tuple so the hot path does one dict lookup per metric.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "nantian_proxy_requests",
            "HTTP requests answered, by listener, route, backend cluster and status code.",
            ["listener", "route", "backend", "code"],
            registry=r,
        )
        self.duration = Histogram(
            "nantian_proxy_request_duration_seconds",
            "Time from a complete request head to the end of the response.",
            ["listener", "route"],
            buckets=_BUCKETS,
            registry=r,
        )
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
            "requests": 0,
            "errors": 0,
            "upstream_connect_errors": 0,
            "filter_errors": 0,
            "bad_requests": 0,
            "connections_total": 0,
            "connections_refused": 0,
            "fast_path": 0,
        }
        self._request_children: dict[tuple[str, str, str, int], Counter] = {}
        self._duration_children: dict[tuple[str, str], Histogram] = {}

    def observe_request(self, listener: str, route: str, backend: str, status: int, seconds: float) -> None:
        """Count one answered request and its duration."""
        key = (listener, route, backend, status)
        child = self._request_children.get(key)
        if child is None:
            child = self.requests.labels(listener, route, backend, str(status))
            self._request_children[key] = child
        child.inc()
        dkey = (listener, route)
        hist = self._duration_children.get(dkey)
        if hist is None:
            hist = self.duration.labels(listener, route)
            self._duration_children[dkey] = hist
        hist.observe(seconds)
        counts = self.counts
        counts["requests"] += 1
        if status >= 500:
            counts["errors"] += 1

    def connect_error(self, cluster: str) -> None:
        self.upstream_connect_errors.labels(cluster).inc()
        self.counts["upstream_connect_errors"] += 1

    def filter_error(self, route: str) -> None:
        self.filter_errors.labels(route).inc()
        self.counts["filter_errors"] += 1

    def bad_request(self, listener: str, status: int) -> None:
        self.bad_requests.labels(listener, str(status)).inc()
        self.counts["bad_requests"] += 1
