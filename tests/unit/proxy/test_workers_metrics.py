"""Merging the workers' metrics (text in, families out) and scraping them (real HTTP on loopback)."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from nantian.proxy.metrics import ProxyMetrics
from nantian.proxy.worker_metrics import (
    ScrapeTarget,
    WorkerMetricsCollector,
    merge_families,
    scrape_targets,
    targets_of,
)
from nantian.proxy.workers import WorkerChannelServer


class _Families:
    """A collector yielding fixed families (to render merged families the way the parent does)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def _render(families: list[Metric]) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry).decode()


def _by_name(families: list[Metric]) -> dict[str, Metric]:
    return {f.name: f for f in families}


def _value(family: Metric, sample: str, **labels: str) -> float:
    return next(s.value for s in family.samples if s.name == sample and s.labels == labels)


def _worker_text(*requests: tuple[str, int, float]) -> str:
    metrics = ProxyMetrics()
    for route, status, seconds in requests:
        metrics.stats_for("gw/80/HTTP", route).observe("ns/svc:80", status, seconds)
    metrics.connect_error("ns/svc:80")
    metrics.active_connections.labels("gw/80/HTTP").inc()
    return generate_latest(metrics.registry).decode()


def test_one_worker_renders_exactly_as_the_worker_itself() -> None:
    text = _worker_text(("r1", 200, 0.003), ("r1", 503, 0.2), ("r2", 200, 0.0001))
    assert _render(merge_families([text])) == text


def test_two_workers_sum_counters_histograms_and_gauges_keeping_types() -> None:
    one = _worker_text(("r1", 200, 0.003), ("r1", 503, 0.2))
    two = _worker_text(("r1", 200, 0.004), ("r2", 404, 3.0))
    merged = merge_families([one, two])
    families = _by_name(merged)

    requests = families["nantian_proxy_requests"]
    assert requests.type == "counter"
    labels = {"listener": "gw/80/HTTP", "backend": "ns/svc:80"}
    assert _value(requests, "nantian_proxy_requests_total", **labels, route="r1", code="200") == 2
    assert _value(requests, "nantian_proxy_requests_total", **labels, route="r1", code="503") == 1
    assert _value(requests, "nantian_proxy_requests_total", **labels, route="r2", code="404") == 1  # only in two

    duration = families["nantian_proxy_request_duration_seconds"]
    assert duration.type == "histogram"
    r1 = {"listener": "gw/80/HTTP", "route": "r1"}
    assert _value(duration, "nantian_proxy_request_duration_seconds_count", **r1) == 3
    assert _value(duration, "nantian_proxy_request_duration_seconds_sum", **r1) == pytest.approx(0.207)
    assert _value(duration, "nantian_proxy_request_duration_seconds_bucket", **r1, le="0.0025") == 0
    assert _value(duration, "nantian_proxy_request_duration_seconds_bucket", **r1, le="0.005") == 2
    assert _value(duration, "nantian_proxy_request_duration_seconds_bucket", **r1, le="+Inf") == 3
    buckets = [s.labels["le"] for s in duration.samples if s.name.endswith("_bucket") and s.labels["route"] == "r1"]
    assert buckets[:3] == ["0.0005", "0.001", "0.0025"] and buckets[-1] == "+Inf"  # the workers' order

    assert families["nantian_proxy_upstream_connect_errors"].type == "counter"
    assert _value(families["nantian_proxy_upstream_connect_errors"], "nantian_proxy_upstream_connect_errors_total",
                  cluster="ns/svc:80") == 2  # fmt: skip
    gauge = families["nantian_proxy_active_connections"]
    assert gauge.type == "gauge" and _value(gauge, "nantian_proxy_active_connections", listener="gw/80/HTTP") == 2
    # The parent renders them as a single process would: same TYPE lines, counters with _total.
    rendered = _render(merged)
    assert "# TYPE nantian_proxy_requests_total counter" in rendered
    assert "# TYPE nantian_proxy_request_duration_seconds histogram" in rendered
    assert [f.name for f in text_string_to_metric_families(rendered)] == [f.name for f in merged]


def test_created_keeps_the_oldest_time_0_1_gauges_count_workers_and_summary_quantiles_are_dropped() -> None:
    one = """# TYPE c_total counter
c_total 1.0
# TYPE c_created gauge
c_created 200.0
# TYPE build_info gauge
build_info{version="1"} 1.0
# TYPE lat summary
lat{quantile="0.5"} 0.1
lat_count 4.0
lat_sum 0.4
"""
    two = one.replace("c_created 200.0", "c_created 100.0").replace("lat_count 4.0", "lat_count 6.0")
    families = _by_name(merge_families([one, two]))
    assert _value(families["c"], "c_total") == 2
    assert _value(families["c_created"], "c_created") == 100
    assert _value(families["build_info"], "build_info", version="1") == 2
    assert [(s.name, s.value) for s in families["lat"].samples] == [("lat_count", 10.0), ("lat_sum", 0.8)]


def test_a_type_conflict_keeps_the_first_and_parent_families_are_never_taken() -> None:
    one = "# TYPE x_total counter\nx_total 3.0\n# TYPE nantian_workers_running gauge\nnantian_workers_running 9.0\n"
    two = "# TYPE x gauge\nx 5.0\n"
    families = _by_name(merge_families([one, two]))
    assert families["x"].type == "counter" and _value(families["x"], "x_total") == 3
    assert "nantian_workers_running" not in families


@pytest.mark.parametrize("bad", ["garbage here", 'x{a="1" 2', "# TYPE x counter\nx_total abc"])
def test_a_malformed_exposition_is_refused_whole(bad: str) -> None:
    with pytest.raises(ValueError):
        merge_families([_worker_text(("r", 200, 0.1)), bad])


def test_targets_of_reports_reach_wildcards_on_loopback_and_skip_reports_without_a_port() -> None:
    reports: list[dict[str, object]] = [
        {"nodeId": "a-0", "adminPort": 4000},
        {"nodeId": "a-1", "adminPort": None},
        {"nodeId": "a-2", "adminPort": True},
        {"nodeId": "a-3", "adminPort": 70000},
        {"nodeId": "a-4"},
    ]
    assert targets_of(reports, None) == [ScrapeTarget("a-0", "127.0.0.1", 4000)]
    assert targets_of(reports, "0.0.0.0") == [ScrapeTarget("a-0", "127.0.0.1", 4000)]
    assert targets_of(reports, "[::]") == [ScrapeTarget("a-0", "::1", 4000)]
    assert targets_of(reports, "10.1.2.3") == [ScrapeTarget("a-0", "10.1.2.3", 4000)]


# --- scraping real HTTP servers on loopback --------------------------------------------------------------------
class _MetricsServer:
    """``/metrics`` answering ``body`` on a free loopback port, in a thread."""

    def __init__(self, body: str) -> None:
        encoded = body.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Length", str(len(encoded)))
                self.end_headers()
                self.wfile.write(encoded)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})

    def __enter__(self) -> _MetricsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


def _refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_scrape_targets_in_parallel_within_the_deadline(silent_port: int) -> None:
    with _MetricsServer(_worker_text(("r", 200, 0.1))) as server:
        good = ScrapeTarget("w-0", "127.0.0.1", server.port)
        silent = ScrapeTarget("w-1", "127.0.0.1", silent_port)
        silent_too = ScrapeTarget("w-2", "127.0.0.1", silent_port)
        refused = ScrapeTarget("w-3", "127.0.0.1", _refused_port())
        started = time.monotonic()
        texts, errors = scrape_targets([good, silent, silent_too, refused], timeout=0.5)
        elapsed = time.monotonic() - started
    assert elapsed < 1.5  # two silent workers cost one deadline, not two
    assert list(texts) == [good] and "nantian_proxy_requests_total" in texts[good]
    assert set(errors) == {silent, silent_too, refused}
    assert "Refused" in errors[refused]


def test_collector_sums_the_workers_and_counts_the_ones_left_out(silent_port: int) -> None:
    one, two = _worker_text(("r", 200, 0.1)), _worker_text(("r", 200, 0.2), ("r", 200, 0.3))
    with _MetricsServer(one) as a, _MetricsServer(two) as b, _MetricsServer("not metrics at all") as bad:
        reports = [
            {"nodeId": "w-0", "adminPort": a.port},
            {"nodeId": "w-1", "adminPort": b.port},
            {"nodeId": "w-2", "adminPort": bad.port},
            {"nodeId": "w-3", "adminPort": silent_port},
        ]
        registry = CollectorRegistry(auto_describe=False)
        registry.register(WorkerMetricsCollector(lambda: reports, timeout=0.3))
        families = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
        again = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    assert _value(families["nantian_workers_scraped"], "nantian_workers_scraped") == 2
    labels = {"listener": "gw/80/HTTP", "route": "r", "backend": "ns/svc:80", "code": "200"}
    assert _value(families["nantian_proxy_requests"], "nantian_proxy_requests_total", **labels) == 3
    count = "nantian_proxy_request_duration_seconds_count"
    assert _value(families["nantian_proxy_request_duration_seconds"], count, listener="gw/80/HTTP", route="r") == 3
    errors = again["nantian_workers_scrape_errors"]
    assert errors.type == "counter"
    assert {s.labels["node"]: s.value for s in errors.samples if s.name.endswith("_total")} == {"w-2": 2, "w-3": 2}


def test_the_channel_server_exports_the_workers_sum_next_to_their_reports() -> None:
    text = generate_latest(WorkerChannelServer().metrics_registry).decode()
    assert "nantian_workers_scraped 0.0" in text
    assert "# TYPE nantian_workers_scrape_errors_total counter" in text
