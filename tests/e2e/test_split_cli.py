"""``nantian controller`` and ``nantian proxy`` as real processes, the config stream over mTLS.

The proxy gets its configuration, serves traffic, shows up in the controller's /api/v1/nodes; when the
controller is killed the proxy keeps serving; SIGTERM stops the proxy cleanly.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import manifests
import processes
import pytest
from pki import write_pki
from processes import Process, free_port

pytestmark = pytest.mark.e2e

WAIT = 20.0
GATEWAY_PORT = 8080


def _manifests(echo_port: int) -> str:
    return manifests.documents(
        manifests.GATEWAY_CLASS,
        manifests.gateway(f"{{name: http, port: {GATEWAY_PORT}, protocol: HTTP}}"),
        manifests.http_route("web", manifests.backend_rule("echo")),
        manifests.backend("echo", echo_port),
    )


def _app(*args: str) -> Process:
    """A nantian command in a child process, its output collected line by line."""
    return Process(processes.nantian(*args, log_level="info", module="nantian.cli"), capture=True)


def _until_ok(url: str, check: object = None) -> httpx.Response:
    deadline = time.monotonic() + WAIT
    last: object = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=2.0, trust_env=False)
            if response.status_code == 200 and (check is None or check(response)):  # type: ignore[operator]
                return response
            last = response
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready: {last!r}")


@pytest.fixture
def echo() -> Iterator[int]:
    with processes.echo("--port", "0") as server:
        yield server.port()


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, str]:
    return {name: str(path) for name, path in write_pki(tmp_path, "proxy-1", "127.0.0.1", "localhost").items()}


def test_controller_and_proxy_processes_over_mtls(tmp_path: Path, echo: int, pki: dict[str, str]) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "app.yaml").write_text(_manifests(echo))
    controller = _app(
        "controller",
        "--config-dir",
        str(config),
        "--xds-address",
        "127.0.0.1:0",
        "--admin-address",
        "127.0.0.1:0",
        "--xds-tls-cert",
        pki["cert"],
        "--xds-tls-key",
        pki["key"],
        "--xds-tls-ca",
        pki["ca"],
    )
    proxy: Process | None = None
    try:
        xds_port = int(controller.wait_for_line(r"xds\.listening .* port=(\d+) tls=True")[1])
        c_admin = int(controller.wait_for_line(r"admin\.listening address=127\.0\.0\.1:(\d+)")[1])
        offset = free_port() - GATEWAY_PORT
        proxy = _app(
            "proxy",
            "--xds",
            f"127.0.0.1:{xds_port}",
            "--node-id",
            "proxy-1",
            "--port-offset",
            str(offset),
            "--admin-address",
            "127.0.0.1:0",
            "--xds-tls-ca",
            pki["ca"],
            "--xds-tls-cert",
            pki["client_cert"],
            "--xds-tls-key",
            pki["client_key"],
        )
        p_admin = int(proxy.wait_for_line(r"admin\.listening address=127\.0\.0\.1:(\d+)")[1])
        _until_ok(f"http://127.0.0.1:{p_admin}/readyz")
        nodes = _until_ok(
            f"http://127.0.0.1:{c_admin}/api/v1/nodes",
            lambda r: any(n["versionAcked"] for n in r.json()["nodes"]),
        ).json()["nodes"]
        (node,) = nodes
        assert node["nodeId"] == "proxy-1" and node["connected"] and node["transport"] == "grpc"
        snapshot = httpx.get(f"http://127.0.0.1:{c_admin}/api/v1/snapshot", trust_env=False).json()
        address = snapshot["snapshot"]["listeners"][0]["address"]
        gateway = f"http://{address}:{GATEWAY_PORT + offset}/hello"
        assert _until_ok(gateway).json()["path"] == "/hello"
        _until_ok(f"http://127.0.0.1:{c_admin}/api/v1/nodes", lambda r: r.json()["nodes"][0]["lastStatus"])

        assert controller.stop(signal.SIGKILL) != 0
        proxy.wait_for_line(r"xds\.reconnecting")
        assert httpx.get(gateway, timeout=5.0, trust_env=False).status_code == 200
        assert proxy.stop() == 0
        proxy.wait_for_line(r"proxy\.stopped")
    finally:
        if proxy is not None:
            proxy.stop(signal.SIGKILL)
        controller.stop(signal.SIGKILL)
