"""`nantian standalone` as a process: admin contract, live config changes, bad files, SIGTERM drain."""

from __future__ import annotations

import json
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(check: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Gateway:
    def __init__(self, config_dir: Path, echo_port: int) -> None:
        self.config_dir = config_dir
        self.admin_port = _free_port()
        self.offset = _free_port() - 8080  # the quickstart listener (8080) binds a free port
        self.listener_port = 8080 + self.offset
        self.access_log = config_dir.parent / f"{config_dir.name}-access.log"
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "nantian", "--log-level", "warning", "standalone",
                "--config-dir", str(config_dir),
                "--admin-address", f"127.0.0.1:{self.admin_port}",
                "--port-offset", str(self.offset),
                "--drain-timeout", "5",
                "--access-log", str(self.access_log),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.admin = httpx.Client(base_url=f"http://127.0.0.1:{self.admin_port}", timeout=5)
        self.client = httpx.Client(
            base_url=f"http://{GATEWAY_ADDRESS}:{self.listener_port}", headers={"Host": "example.com"}, timeout=10
        )
        _wait_for(lambda: self.admin.get("/readyz").status_code == 200, what="/readyz")

    def resource(self, kind: str, namespace: str, name: str) -> Any:
        return self.admin.get(f"/api/v1/resources/{kind}/{namespace}/{name}").json()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self.admin.close()
        self.client.close()


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
    gw = Gateway(tmp_path, echo_port)
    try:
        yield gw
    finally:
        gw.stop()


def test_admin_contract_and_traffic(gateway: Gateway) -> None:
    reply = gateway.client.get("/hello")
    assert reply.status_code == 200
    assert reply.json()["headers"]["X-Route"] == ["default"]
    assert reply.json()["pod"] == "echo-test"
    status = gateway.resource("Gateway", "default", "quickstart")["status"]
    assert status["addresses"] == [{"type": "IPAddress", "value": GATEWAY_ADDRESS}]
    assert all("lastTransitionTime" in c for c in status["conditions"])
    snapshot = gateway.admin.get("/api/v1/snapshot").json()
    assert snapshot["snapshot"]["listeners"][0]["port"] == 8080
    metrics = gateway.admin.get("/metrics").text
    assert "nantian_reconciles_total" in metrics
    node = gateway.admin.get("/api/v1/nodes").json()["nodes"][0]
    assert node["versionAcked"] == snapshot["version"] and node["transport"] == "inprocess"
    assert gateway.admin.get("/api/v1/resources/HTTPRoute/default/missing").status_code == 404
    # --access-log: the request's line reaches the file within the flush interval (1 s)
    _wait_for(
        lambda: "path=/hello status=200" in gateway.access_log.read_text(),
        timeout=10,
        what="the access log line",
    )
    line = next(x for x in gateway.access_log.read_text().splitlines() if "path=/hello" in x)
    assert "route=HTTPRoute/default/" in line and "authority=example.com" in line and "client=127.0.0.1" in line


def test_file_changes_apply_without_restart_and_bad_files_are_reported(gateway: Gateway) -> None:
    route = gateway.config_dir / "httproute.yaml"
    route.write_text(route.read_text().replace("value: default", "value: changed"))
    _wait_for(
        lambda: gateway.client.get("/hello").json()["headers"].get("X-Route") == ["changed"], what="the new route"
    )
    broken = "kind: HTTPRoute\napiVersion: gateway.networking.k8s.io/v1\nmetadata: {name: broken, namespace: default}\n"
    (gateway.config_dir / "broken.yaml").write_text(broken + "spec: [1, 2\n")

    def reported() -> bool:
        items = gateway.admin.get("/api/v1/resources").json()["items"]
        return any("broken.yaml" in str(o.get("status", {}).get("nantianError", "")) for o in items)

    _wait_for(reported, what="the parse error in the admin API")
    assert gateway.client.get("/hello").status_code == 200, "the other files keep working"


def test_sigterm_drains_in_flight_requests(gateway: Gateway) -> None:
    results: list[int] = []

    def slow_request() -> None:
        results.append(gateway.client.get("/slow?delay=1s").status_code)

    worker = threading.Thread(target=slow_request)
    worker.start()
    time.sleep(0.3)
    gateway.proc.send_signal(signal.SIGTERM)
    worker.join(timeout=15)
    assert results == [200]
    assert gateway.proc.wait(timeout=15) == 0
