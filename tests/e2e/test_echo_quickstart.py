"""examples/quickstart works: `nantian echo` behind `nantian standalone`, reached through both route rules."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import processes
import pytest

pytestmark = pytest.mark.e2e

OFFSET = 20000


@pytest.fixture
def quickstart(tmp_path: Path) -> Iterator[tuple[str, processes.Process]]:
    """The quickstart manifests served by real processes; the echo port and the Gateway address are moved so
    that the test never collides with a running `make run`."""
    address = f"127.0.{random.randrange(20, 250)}.{random.randrange(2, 250)}"
    with processes.quickstart_echo("echo-qs") as echo:
        config = processes.copy_quickstart(tmp_path / "quickstart", echo.port(), address=address)
        with processes.Standalone(config, offset=OFFSET, log_level=None, capture=True, timeout=30) as standalone:
            yield f"http://{address}:{8080 + OFFSET}", standalone.process


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


def test_quickstart_routes_both_rules(quickstart: tuple[str, processes.Process]) -> None:
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
