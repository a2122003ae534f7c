"""``nantian controller`` and ``nantian proxy`` as real processes, the config stream over mTLS.

The proxy gets its configuration, serves traffic, shows up in the controller's /api/v1/nodes; when the
controller is killed the proxy keeps serving; SIGTERM stops the proxy cleanly.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

pytestmark = pytest.mark.e2e

WAIT = 20.0
GATEWAY_PORT = 8080

MANIFESTS = """
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: nantian}}
spec: {{controllerName: nantian.io/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  gatewayClassName: nantian
  listeners: [{{name: http, port: {port}, protocol: HTTP}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: web, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
  rules: [{{backendRefs: [{{name: echo, port: 80}}]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: echo, namespace: default}}
spec: {{ports: [{{port: 80, targetPort: {echo_port}}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: echo-1, namespace: default, labels: {{kubernetes.io/service-name: echo}}}}
addressType: IPv4
endpoints: [{{addresses: [127.0.0.1]}}]
ports: [{{port: {echo_port}}}]
"""


class App:
    """A nantian subcommand in a child process, its stderr collected line by line."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nantian.cli", "--log-level", "info", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, pattern: str) -> re.Match[str]:
        deadline = time.monotonic() + WAIT
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if m := regex.search(line):
                    return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r}; output:\n{''.join(self.lines)}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(WAIT)
        self._reader.join(WAIT)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    app = App("echo", "--port", "0")
    try:
        match = app.wait_for(r'"address": "127\.0\.0\.1:(\d+)"')
        yield int(match[1])
    finally:
        app.stop()


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, str]:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("proxy-1")
    files = {
        "ca": ca.cert_pem,
        "cert": server.cert_chain_pems[0],
        "key": server.private_key_pem,
        "client_cert": client.cert_chain_pems[0],
        "client_key": client.private_key_pem,
    }
    out = {}
    for name, blob in files.items():
        path = tmp_path / f"{name}.pem"
        blob.write_to_path(str(path))
        out[name] = str(path)
    return out


def test_controller_and_proxy_processes_over_mtls(tmp_path: Path, echo: int, pki: dict[str, str]) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "app.yaml").write_text(MANIFESTS.format(port=GATEWAY_PORT, echo_port=echo))
    controller = App(
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
    proxy: App | None = None
    try:
        xds_port = int(controller.wait_for(r"xds\.listening .* port=(\d+) tls=True")[1])
        c_admin = int(controller.wait_for(r"admin\.listening address=127\.0\.0\.1:(\d+)")[1])
        offset = _free_port() - GATEWAY_PORT
        proxy = App(
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
        p_admin = int(proxy.wait_for(r"admin\.listening address=127\.0\.0\.1:(\d+)")[1])
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
        proxy.wait_for(r"xds\.reconnecting")
        assert httpx.get(gateway, timeout=5.0, trust_env=False).status_code == 200
        assert proxy.stop() == 0
        proxy.wait_for(r"proxy\.stopped")
    finally:
        if proxy is not None:
            proxy.stop(signal.SIGKILL)
        controller.stop(signal.SIGKILL)
