"""`nantian standalone --workers 2`: two proxy processes share the listener port; config changes reach both;
SIGTERM drains them and the parent exits 0."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart"
GATEWAY_ADDRESS = "127.0.0.10"
WORKERS = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(check: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Gateway:
    def __init__(self, config_dir: Path) -> None:
        self.config_dir = config_dir
        self.worker_pids: list[int] = []
        self.admin_port = _free_port()
        self.offset = _free_port() - 8080  # the quickstart listener (8080) binds a free port
        self.listener_port = 8080 + self.offset
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "nantian", "--log-level", "warning", "standalone",
                "--config-dir", str(config_dir),
                "--admin-address", f"127.0.0.1:{self.admin_port}",
                "--port-offset", str(self.offset),
                "--drain-timeout", "5",
                "--workers", str(WORKERS),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.admin = httpx.Client(base_url=f"http://127.0.0.1:{self.admin_port}", timeout=5)
        self.url = f"http://{GATEWAY_ADDRESS}:{self.listener_port}"
        _wait_for(lambda: self.admin.get("/readyz").status_code == 200, what="/readyz")

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

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for pid in self.worker_pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.admin.close()


@pytest.fixture
def echo_port() -> Iterator[int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "nantian", "echo", "--port", "0", "--namespace", "default", "--service", "echo",
         "--pod", "echo-test"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    port = None
    for _ in range(10):
        event = json.loads(proc.stdout.readline())
        if event.get("event") == "listening":
            port = int(event["address"].rsplit(":", 1)[1])
            break
    assert port
    yield port
    proc.terminate()
    proc.wait(timeout=10)
    proc.stdout.close()


@pytest.fixture
def gateway(tmp_path: Path, echo_port: int) -> Iterator[Gateway]:
    for p in QUICKSTART.glob("*.yaml"):
        text = p.read_text().replace("port: 3000", f"port: {echo_port}").replace("targetPort: 3000", "targetPort: http")
        (tmp_path / p.name).write_text(text)
    gw = Gateway(tmp_path)
    try:
        yield gw
    finally:
        gw.stop()


def test_two_workers_share_the_port_follow_changes_and_drain(gateway: Gateway) -> None:
    # Both workers acked the current version over the local gRPC config stream.
    version = gateway.version()
    nodes = gateway.nodes()
    assert sorted(n["nodeId"] for n in nodes) == [f"standalone-worker-{i}" for i in range(WORKERS)]
    assert all(n["transport"] == "grpc" and n["versionAcked"] == version for n in nodes)
    pids = {n["worker"]["pid"] for n in nodes}
    assert len(pids) == WORKERS and gateway.proc.pid not in pids
    gateway.worker_pids = sorted(pids)

    # Many connections: all succeed, and the kernel spreads them over both workers.
    replies = [gateway.get("/hello") for _ in range(40)]
    assert [r.status_code for r in replies] == [200] * 40
    assert all(r.json()["headers"]["X-Route"] == ["default"] for r in replies)

    def both_served() -> bool:
        counts = [(n["worker"] or {}).get("counters", {}).get("requests", 0) for n in gateway.nodes()]
        return len(counts) == WORKERS and all(c > 0 for c in counts) and sum(counts) >= 40

    _wait_for(both_served, timeout=5, what="requests counted by both workers")

    # A config change reaches both workers.
    route = gateway.config_dir / "httproute.yaml"
    route.write_text(route.read_text().replace("value: default", "value: changed"))
    _wait_for(lambda: gateway.version() != version, what="a new snapshot")
    new_version = gateway.version()
    _wait_for(
        lambda: all(n["versionAcked"] == new_version for n in gateway.nodes()), what="both workers acking the change"
    )
    replies = [gateway.get("/hello") for _ in range(20)]
    assert all(r.json()["headers"]["X-Route"] == ["changed"] for r in replies)

    # SIGTERM: the in-flight request finishes, workers exit, the parent exits 0 and the port is free again.
    results: list[int] = []
    slow = threading.Thread(target=lambda: results.append(gateway.get("/slow?delay=1s").status_code))
    slow.start()
    time.sleep(0.3)
    gateway.proc.send_signal(signal.SIGTERM)
    slow.join(timeout=15)
    assert results == [200]
    assert gateway.proc.wait(timeout=15) == 0
    assert not any(_alive(pid) for pid in pids)
    with socket.socket() as s:
        # SO_REUSEADDR: connections the workers closed may sit in TIME_WAIT; a listener still there would fail this
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((GATEWAY_ADDRESS, gateway.listener_port))
        s.listen()


def test_proxy_workers_stream_from_a_controller(tmp_path: Path, echo_port: int) -> None:
    for p in QUICKSTART.glob("*.yaml"):
        text = p.read_text().replace("port: 3000", f"port: {echo_port}").replace("targetPort: 3000", "targetPort: http")
        (tmp_path / p.name).write_text(text)
    xds_port, c_admin, p_admin = _free_port(), _free_port(), _free_port()
    offset = _free_port() - 8080
    nantian = [sys.executable, "-m", "nantian", "--log-level", "warning"]
    controller = subprocess.Popen(
        [*nantian, "controller", "--config-dir", str(tmp_path), "--xds-address", f"127.0.0.1:{xds_port}",
         "--admin-address", f"127.0.0.1:{c_admin}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    proxy = subprocess.Popen(
        [*nantian, "proxy", "--workers", str(WORKERS), "--xds", f"127.0.0.1:{xds_port}", "--node-id", "edge",
         "--port-offset", str(offset), "--admin-address", f"127.0.0.1:{p_admin}", "--drain-timeout", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    pids: list[int] = []
    try:
        with httpx.Client(timeout=5) as http:
            _wait_for(lambda: http.get(f"http://127.0.0.1:{p_admin}/readyz").status_code == 200, what="/readyz")
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
        proxy.send_signal(signal.SIGTERM)
        assert proxy.wait(timeout=15) == 0
        assert not any(_alive(pid) for pid in pids)
    finally:
        for proc in (proxy, controller):
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
