"""examples/quickstart works: `nantian echo` behind `nantian standalone`, reached through both route rules."""

from __future__ import annotations

import json
import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

pytestmark = pytest.mark.e2e

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"
OFFSET = 20000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
    if process.stdout is not None:
        process.stdout.close()


@pytest.fixture
def quickstart(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The quickstart manifests served by real processes; the echo port and the Gateway address are moved so
    that the test never collides with a running `make run`."""
    config = tmp_path / "quickstart"
    shutil.copytree(QUICKSTART, config)
    echo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nantian.echo",
            "--port",
            "0",
            "--namespace",
            "default",
            "--service",
            "echo",
            "--pod",
            "echo-qs",
        ],
        stdout=subprocess.PIPE,
    )
    processes = [echo]
    try:
        assert echo.stdout is not None
        listening = json.loads(echo.stdout.readline())
        echo_port = int(listening["address"].rsplit(":", 1)[1])
        address = f"127.0.{random.randrange(20, 250)}.{random.randrange(2, 250)}"
        backend = list(yaml.safe_load_all((config / "backend.yaml").read_text()))
        backend[1]["ports"][0]["port"] = echo_port
        (config / "backend.yaml").write_text(yaml.safe_dump_all(backend))
        gateway = yaml.safe_load((config / "gateway.yaml").read_text())
        gateway["spec"]["addresses"][0]["value"] = address
        (config / "gateway.yaml").write_text(yaml.safe_dump(gateway))
        admin = f"127.0.0.1:{_free_port()}"
        argv = [sys.executable, "-m", "nantian", "standalone", "--config-dir", str(config), "--admin-address", admin]
        stderr_path = tmp_path / "standalone.err"
        with stderr_path.open("wb") as stderr_file:
            standalone = subprocess.Popen([*argv, "--port-offset", str(OFFSET)], stderr=stderr_file)
        processes.append(standalone)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://{admin}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if standalone.poll() is not None or time.monotonic() > deadline:
                stderr = stderr_path.read_text(errors="replace")
                pytest.fail(f"nantian standalone not ready: {stderr[-2000:]}")
            time.sleep(0.1)
        yield f"http://{address}:{8080 + OFFSET}", standalone
    finally:
        for process in reversed(processes):
            _stop(process)


def _get(url: str, headers: dict[str, str], deadline: float) -> httpx.Response:
    while True:
        try:
            response = httpx.get(url, headers=headers, timeout=5)
            if response.status_code != 404 or time.monotonic() > deadline:
                return response
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def test_quickstart_routes_both_rules(quickstart: tuple[str, subprocess.Popen[bytes]]) -> None:
    base, _ = quickstart
    deadline = time.monotonic() + 15
    default = _get(f"{base}/hello", {"Host": "example.com"}, deadline)
    assert default.status_code == 200
    body = default.json()
    assert (body["path"], body["host"], body["pod"]) == ("/hello", "example.com", "echo-qs")
    assert body["headers"]["X-Route"] == ["default"]
    assert "x-served-by" not in default.headers
    api = _get(f"{base}/api/things", {"Host": "example.com", "X-Version": "v2"}, deadline)
    assert api.status_code == 200
    assert api.json()["headers"]["X-Route"] == ["api-v2"]
    assert api.headers["x-served-by"] == "nantian"
    without_header = _get(f"{base}/api/things", {"Host": "example.com"}, deadline)
    assert without_header.json()["headers"]["X-Route"] == ["default"]
    assert httpx.get(f"{base}/", headers={"Host": "other.example"}, timeout=5).status_code == 404
