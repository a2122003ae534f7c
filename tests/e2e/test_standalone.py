"""`nantian standalone` as a process: admin contract, live config changes, bad files, SIGTERM drain."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import processes
import pytest
from processes import QUICKSTART_ADDRESS as GATEWAY_ADDRESS
from processes import wait_for


class Gateway(processes.Standalone):
    """The quickstart behind ``nantian standalone``, with an access log file and a client of its listener."""

    def __init__(self, config_dir: Path) -> None:
        self.access_log = config_dir.parent / f"{config_dir.name}-access.log"
        super().__init__(config_dir, "--drain-timeout", "5", "--access-log", str(self.access_log))
        self.client = httpx.Client(
            base_url=f"http://{GATEWAY_ADDRESS}:{self.listener_port}", headers={"Host": "example.com"}, timeout=10
        )

    def stop(self, sig: int = signal.SIGKILL) -> int:
        self.client.close()
        return super().stop(sig)


@pytest.fixture
def echo_port() -> Iterator[int]:
    with processes.quickstart_echo("echo-test") as echo:
        yield echo.port()


@pytest.fixture
def gateway(tmp_path: Path, echo_port: int) -> Iterator[Gateway]:
    with Gateway(processes.copy_quickstart(tmp_path, echo_port)) as gw:
        yield gw


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
    wait_for(
        lambda: "path=/hello status=200" in gateway.access_log.read_text(),
        timeout=10,
        what="the access log line",
    )
    line = next(x for x in gateway.access_log.read_text().splitlines() if "path=/hello" in x)
    assert "route=HTTPRoute/default/" in line and "authority=example.com" in line and "client=127.0.0.1" in line


def test_file_changes_apply_without_restart_and_bad_files_are_reported(gateway: Gateway) -> None:
    route = gateway.config_dir / "httproute.yaml"
    route.write_text(route.read_text().replace("value: default", "value: changed"))
    wait_for(lambda: gateway.client.get("/hello").json()["headers"].get("X-Route") == ["changed"], what="the new route")
    broken = "kind: HTTPRoute\napiVersion: gateway.networking.k8s.io/v1\nmetadata: {name: broken, namespace: default}\n"
    (gateway.config_dir / "broken.yaml").write_text(broken + "spec: [1, 2\n")

    def reported() -> bool:
        items = gateway.admin.get("/api/v1/resources").json()["items"]
        return any("broken.yaml" in str(o.get("status", {}).get("nantianError", "")) for o in items)

    wait_for(reported, what="the parse error in the admin API")
    assert gateway.client.get("/hello").status_code == 200, "the other files keep working"


def test_sigterm_drains_in_flight_requests(gateway: Gateway) -> None:
    results: list[int] = []

    def slow_request() -> None:
        results.append(gateway.client.get("/slow?delay=1s").status_code)

    worker = threading.Thread(target=slow_request)
    worker.start()
    time.sleep(0.3)
    gateway.process.send_signal(signal.SIGTERM)
    worker.join(timeout=15)
    assert results == [200]
    assert gateway.process.wait(timeout=15) == 0
