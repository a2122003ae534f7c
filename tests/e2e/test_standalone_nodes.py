"""`nantian standalone` (one process): /api/v1/nodes shows the in-process data plane's counters live.

The in-process transport reports the runtime's status periodically (as a gRPC data plane does), so requests show
in the node's ``lastStatus.counters`` without any configuration change.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import processes
import pytest
from processes import QUICKSTART_ADDRESS as GATEWAY_ADDRESS
from processes import wait_for

pytestmark = pytest.mark.e2e

REQUESTS = 25


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[processes.Standalone]:
    with (
        processes.quickstart_echo("echo-nodes") as echo,
        processes.Standalone(processes.copy_quickstart(tmp_path, echo.port())) as gw,
    ):
        yield gw


def _node(gateway: processes.Standalone) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = gateway.admin.get("/api/v1/nodes").json()["nodes"]
    assert [n["nodeId"] for n in nodes] == ["standalone"]
    return nodes[0]


def test_request_counters_refresh_without_a_config_change(gateway: processes.Standalone) -> None:
    wait_for(lambda: _node(gateway)["lastStatus"], what="the in-process node's first status report")
    before = _node(gateway)
    assert before["transport"] == "inprocess" and before["versionAcked"] is not None
    assert before["lastStatus"]["counters"]["requests"] == 0
    with httpx.Client(
        base_url=f"http://{GATEWAY_ADDRESS}:{gateway.listener_port}", headers={"Host": "example.com"}, timeout=10
    ) as client:
        for _ in range(REQUESTS):
            assert client.get("/hello").status_code == 200

    wait_for(
        lambda: _node(gateway)["lastStatus"]["counters"]["requests"] == REQUESTS,
        timeout=10,
        what=f"lastStatus.counters.requests == {REQUESTS}",
    )
    after = _node(gateway)
    assert after["versionAcked"] == before["versionAcked"], "no configuration change was needed"
    assert after["messagesSent"] == before["messagesSent"]
    status = after["lastStatus"]
    assert status["at"] > before["lastStatus"]["at"]
    assert status["version"] == before["versionAcked"] and status["health"] == "Serving"
    # the same keys a gRPC data plane reports (ProxyRuntime.counters())
    assert {"requests", "errors", "active_connections", "connections_total", "listeners_bound"} <= set(
        status["counters"]
    )
    assert status["counters"]["errors"] == 0 and status["counters"]["connections_total"] >= 1
