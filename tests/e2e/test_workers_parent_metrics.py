"""The ``--workers`` parent's /metrics: every worker's families summed, with their types (a counter stays a counter,
the latency histogram keeps its buckets), and a worker that does not answer is left out within the deadline."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import processes
import pytest
from processes import QUICKSTART_ADDRESS, wait_for
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

WORKERS = 2
REQUESTS = 30


class Gateway(processes.Standalone):
    """The quickstart behind ``nantian standalone --workers 2``."""

    def __init__(self, config_dir: Path) -> None:
        super().__init__(config_dir, "--drain-timeout", "2", "--workers", str(WORKERS))

    def workers(self, key: str) -> dict[str, int]:
        """``pid`` or ``adminPort`` of each worker, by node id, as the worker reported it."""
        nodes = self.admin.get("/api/v1/nodes").json()["nodes"]
        return {n["nodeId"]: n["worker"][key] for n in nodes if n.get("worker")}

    def metrics(self) -> tuple[str, dict[str, Metric]]:
        text = self.admin.get("/metrics").text
        return text, {f.name: f for f in text_string_to_metric_families(text)}


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    with (
        processes.quickstart_echo("echo-metrics") as echo,
        Gateway(processes.copy_quickstart(tmp_path, echo.port())) as gw,
    ):
        pids = list(gw.workers("pid").values())
        try:
            yield gw
        finally:
            for pid in pids:  # a worker left stopped by a failed test must not outlive it
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)


def _total(family: Metric, sample: str) -> float:
    return sum(s.value for s in family.samples if s.name == sample)


def test_parent_metrics_sum_every_workers_requests_and_latency(gateway: Gateway) -> None:
    url = f"http://{QUICKSTART_ADDRESS}:{gateway.listener_port}/hello"
    for _ in range(REQUESTS):  # a new connection each: the kernel spreads them over the workers
        with httpx.Client(headers={"Host": "example.com"}, timeout=10, trust_env=False) as client:
            assert client.get(url).status_code == 200

    def counted() -> bool:
        families = gateway.metrics()[1]
        return (
            "nantian_proxy_requests" in families
            and _total(families["nantian_proxy_requests"], "nantian_proxy_requests_total") >= REQUESTS
        )

    wait_for(counted, timeout=10, what="the parent's request counter to reach the requests sent")
    text, families = gateway.metrics()

    requests = families["nantian_proxy_requests"]
    assert requests.type == "counter"
    assert _total(requests, "nantian_proxy_requests_total") == REQUESTS
    assert {s.labels["code"] for s in requests.samples} == {"200"}
    duration = families["nantian_proxy_request_duration_seconds"]
    assert duration.type == "histogram"
    assert _total(duration, "nantian_proxy_request_duration_seconds_count") == REQUESTS
    inf = [s for s in duration.samples if s.name.endswith("_bucket") and s.labels["le"] == "+Inf"]
    assert sum(s.value for s in inf) == REQUESTS
    assert 0 < _total(duration, "nantian_proxy_request_duration_seconds_sum") < REQUESTS * 10
    assert "# TYPE nantian_proxy_requests_total counter" in text
    assert "# TYPE nantian_proxy_request_duration_seconds histogram" in text

    # Both workers served some of them (each one's own /metrics): the sum is over processes, not one worker's view.
    own = []
    for port in gateway.workers("adminPort").values():
        worker = {f.name: f for f in text_string_to_metric_families(httpx.get(f"http://127.0.0.1:{port}/metrics").text)}
        own.append(_total(worker["nantian_proxy_requests"], "nantian_proxy_requests_total"))
    assert len(own) == WORKERS and all(n > 0 for n in own) and sum(own) == REQUESTS
    # The parent's own families are still there, and every family is declared once (a valid exposition).
    assert families["nantian_workers_running"].samples[0].value == WORKERS
    assert families["nantian_workers_scraped"].samples[0].value == WORKERS
    types = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len(set(types))


def test_a_worker_that_does_not_answer_is_left_out_and_counted(gateway: Gateway) -> None:
    pids = gateway.workers("pid")
    assert len(pids) == WORKERS
    node, pid = sorted(pids.items())[0]
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        _, families = gateway.metrics()
        assert time.monotonic() - started < 3.0  # the scrape deadline is 1 s, whatever the stopped worker does
    finally:
        os.kill(pid, signal.SIGCONT)
    assert families["nantian_workers_scraped"].samples[0].value == WORKERS - 1
    errors = {s.labels["node"]: s.value for s in families["nantian_workers_scrape_errors"].samples}
    assert errors == {node: 1.0}

    def both_back() -> bool:
        return gateway.metrics()[1]["nantian_workers_scraped"].samples[0].value == WORKERS

    wait_for(both_back, timeout=10, what="the resumed worker back in the sums")
