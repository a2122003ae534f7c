"""`nantian standalone --workers 2`: two proxy processes share the listener port; config changes reach both;
SIGTERM drains them and the parent exits 0."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import processes
import pytest
from processes import QUICKSTART_ADDRESS as GATEWAY_ADDRESS
from processes import free_port, nantian, wait_for
from prometheus_client.parser import text_string_to_metric_families

WORKERS = 2


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _kill_workers(pids: list[int]) -> None:
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


class Gateway(processes.Standalone):
    """The quickstart behind ``nantian standalone --workers 2``."""

    def __init__(self, config_dir: Path) -> None:
        self.worker_pids: list[int] = []
        super().__init__(config_dir, "--drain-timeout", "5", "--workers", str(WORKERS))
        self.url = f"http://{GATEWAY_ADDRESS}:{self.listener_port}"

    def nodes(self) -> list[dict[str, Any]]:
        nodes: list[dict[str, Any]] = self.admin.get("/api/v1/nodes").json()["nodes"]
        return nodes

    def version(self) -> str:
        version: str = self.admin.get("/api/v1/snapshot").json()["version"]
        return version

    def get(self, path: str) -> httpx.Response:
        """One request on a new connection (a new source port: the kernel picks a worker for it)."""
        with httpx.Client(base_url=self.url, headers={"Host": "example.com"}, timeout=10) as client:
            return client.get(path)

    def stop(self, sig: int = signal.SIGKILL) -> int:
        try:
            return super().stop(sig)
        finally:
            _kill_workers(self.worker_pids)


@pytest.fixture
def echo_port() -> Iterator[int]:
    with processes.quickstart_echo("echo-test") as echo:
        yield echo.port()


@pytest.fixture
def gateway(tmp_path: Path, echo_port: int) -> Iterator[Gateway]:
    with Gateway(processes.copy_quickstart(tmp_path, echo_port)) as gw:
        yield gw


def test_two_workers_share_the_port_follow_changes_and_drain(gateway: Gateway) -> None:
    # Both workers acked the current version over the local gRPC config stream.
    version = gateway.version()
    nodes = gateway.nodes()
    assert sorted(n["nodeId"] for n in nodes) == [f"standalone-worker-{i}" for i in range(WORKERS)]
    assert all(n["transport"] == "grpc" and n["versionAcked"] == version for n in nodes)
    pids = {n["worker"]["pid"] for n in nodes}
    assert len(pids) == WORKERS and gateway.process.pid not in pids
    gateway.worker_pids = sorted(pids)

    # Many connections: all succeed, and the kernel spreads them over both workers.
    replies = [gateway.get("/hello") for _ in range(40)]
    assert [r.status_code for r in replies] == [200] * 40
    assert all(r.json()["headers"]["X-Route"] == ["default"] for r in replies)

    def both_served() -> bool:
        counts = [(n["worker"] or {}).get("counters", {}).get("requests", 0) for n in gateway.nodes()]
        return len(counts) == WORKERS and all(c > 0 for c in counts) and sum(counts) >= 40

    wait_for(both_served, timeout=5, what="requests counted by both workers")

    # A config change reaches both workers.
    route = gateway.config_dir / "httproute.yaml"
    route.write_text(route.read_text().replace("value: default", "value: changed"))
    wait_for(lambda: gateway.version() != version, what="a new snapshot")
    new_version = gateway.version()
    wait_for(
        lambda: all(n["versionAcked"] == new_version for n in gateway.nodes()), what="both workers acking the change"
    )
    replies = [gateway.get("/hello") for _ in range(20)]
    assert all(r.json()["headers"]["X-Route"] == ["changed"] for r in replies)

    # SIGTERM: the in-flight request finishes, workers exit, the parent exits 0 and the port is free again.
    results: list[int] = []
    slow = threading.Thread(target=lambda: results.append(gateway.get("/slow?delay=1s").status_code))
    slow.start()
    time.sleep(0.3)
    gateway.process.send_signal(signal.SIGTERM)
    slow.join(timeout=15)
    assert results == [200]
    assert gateway.process.wait(timeout=15) == 0
    assert not any(_alive(pid) for pid in pids)
    with socket.socket() as s:
        # SO_REUSEADDR: connections the workers closed may sit in TIME_WAIT; a listener still there would fail this
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((GATEWAY_ADDRESS, gateway.listener_port))
        s.listen()


def test_proxy_workers_stream_from_a_controller(tmp_path: Path, echo_port: int) -> None:
    processes.copy_quickstart(tmp_path, echo_port)
    xds_port, c_admin, p_admin = free_port(), free_port(), free_port()
    offset = free_port() - 8080
    controller = processes.Process(
        nantian("controller", "--config-dir", str(tmp_path), "--xds-address", f"127.0.0.1:{xds_port}",
                "--admin-address", f"127.0.0.1:{c_admin}")
    )  # fmt: skip
    pids: list[int] = []
    proxy: processes.Process | None = None
    try:
        proxy = processes.start_ready(
            nantian("proxy", "--workers", str(WORKERS), "--xds", f"127.0.0.1:{xds_port}", "--node-id", "edge",
                    "--port-offset", str(offset), "--admin-address", f"127.0.0.1:{p_admin}", "--drain-timeout", "2"),
            f"127.0.0.1:{p_admin}",
        )  # fmt: skip
        with httpx.Client(timeout=5) as http:
            reports = http.get(f"http://127.0.0.1:{p_admin}/api/v1/nodes").json()["nodes"]
            assert [r["nodeId"] for r in reports] == [f"edge-{i}" for i in range(WORKERS)]
            pids = [r["pid"] for r in reports]
            version = http.get(f"http://127.0.0.1:{c_admin}/api/v1/snapshot").json()["version"]
            assert all(r["versionApplied"] == version for r in reports)
            nodes = http.get(f"http://127.0.0.1:{c_admin}/api/v1/nodes").json()["nodes"]
            assert sorted((n["nodeId"], n["versionAcked"]) for n in nodes) == [
                (f"edge-{i}", version) for i in range(WORKERS)
            ]
            url = f"http://{GATEWAY_ADDRESS}:{8080 + offset}/hello"
            for _ in range(20):
                with httpx.Client(headers={"Host": "example.com"}, timeout=10) as client:
                    assert client.get(url).status_code == 200
            assert "nantian_workers_running 2.0" in http.get(f"http://127.0.0.1:{p_admin}/metrics").text

            def requests_counted() -> bool:  # the parent's /metrics sums the workers' own request counters
                text = http.get(f"http://127.0.0.1:{p_admin}/metrics").text
                families = {f.name: f for f in text_string_to_metric_families(text)}
                family = families.get("nantian_proxy_requests")
                return family is not None and family.type == "counter" and sum(s.value for s in family.samples) == 20

            wait_for(requests_counted, timeout=5, what="the parent's nantian_proxy_requests_total at 20")
        proxy.send_signal(signal.SIGTERM)
        assert proxy.wait(timeout=15) == 0
        assert not any(_alive(pid) for pid in pids)
    finally:
        for process in (proxy, controller):
            if process is not None:
                process.stop(signal.SIGKILL)
        _kill_workers(pids)
