"""`make run`: an echo backend plus `nantian standalone` on examples/quickstart, with the curl that reaches it.

Runs both as child processes of this one, prints where the gateway listens once it is ready, and stops both
(the gateway drains) on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ADMIN = "127.0.0.1:19000"
ECHO_PORT = 3000


def _get(path: str) -> Any:
    with urllib.request.urlopen(f"http://{ADMIN}{path}", timeout=2) as resp:
        return json.loads(resp.read())


def _wait_ready(deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{ADMIN}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def _print_curls() -> None:
    for obj in _get("/api/v1/resources")["items"]:
        if obj.get("kind") != "Gateway":
            continue
        addresses = [a["value"] for a in (obj.get("status") or {}).get("addresses", [])]
        for listener in obj["spec"]["listeners"]:
            if listener["protocol"] == "HTTP" and addresses:
                host = listener.get("hostname") or "example.com"
                print(f"  curl -H 'Host: {host}' http://{addresses[0]}:{listener['port']}/")
    print(f"  dashboard: http://{ADMIN}/    admin API: http://{ADMIN}/api/v1/resources")


def main() -> int:
    nantian = [sys.executable, "-m", "nantian"]
    echo = subprocess.Popen(
        [
            *nantian,
            "echo",
            "--port",
            str(ECHO_PORT),
            "--namespace",
            "default",
            "--service",
            "echo",
            "--pod",
            "echo-quickstart",
        ]
    )
    gateway = subprocess.Popen(
        [*nantian, "standalone", "--config-dir", str(HERE / "quickstart"), "--admin-address", ADMIN]
    )
    signal.signal(signal.SIGTERM, lambda *_: gateway.send_signal(signal.SIGINT))
    try:
        if _wait_ready(time.monotonic() + 30):
            print("\nnantian is serving the quickstart. Try:")
            _print_curls()
            print("Ctrl-C stops it.\n", flush=True)
        return gateway.wait()
    except KeyboardInterrupt:
        gateway.send_signal(signal.SIGINT)
        return gateway.wait(timeout=15)
    finally:
        echo.terminate()
        echo.wait(timeout=5)


if __name__ == "__main__":
    sys.exit(main())
