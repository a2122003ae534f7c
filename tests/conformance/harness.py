"""The processes under test (``nantian standalone``, or ``nantian controller`` + ``nantian proxy``), the echo
process, the config directory they watch and the admin API they answer on."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import httpx
import yaml

from .backends import Document, Key, PodPlan, doc_key

CONTROLLER_NAME = "nantian.io/gateway-controller"
GATEWAY_CLASS = "nantian"
PORT_OFFSET = 20000


class HarnessError(RuntimeError):
    """A process under test did not start or did not answer in time."""


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Process:
    """A subprocess whose output goes to a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, argv: Sequence[str], log_dir: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.stdout_path = log_dir / f"{name}.out"
        self.stderr_path = log_dir / f"{name}.err"
        self._files: list[IO[bytes]] = []
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out, err = self.stdout_path.open("wb"), self.stderr_path.open("wb")
        self._files = [out, err]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.popen = subprocess.Popen(self.argv, stdout=out, stderr=err, env=env)

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        """The last lines of stderr (for failure messages)."""
        try:
            text = self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout)
        for f in self._files:
            f.close()
        return self.popen.returncode


class EchoProcess:
    """One ``nantian echo`` process serving every planned pod; echoed requests go to ``request_log``."""

    def __init__(self, pods: Sequence[PodPlan], work_dir: Path) -> None:
        self.request_log = work_dir / "echo-requests.jsonl"
        argv = [sys.executable, "-m", "nantian.echo", "--request-log", str(self.request_log)]
        for pod in pods:
            for argument in pod.serve_arguments():
                argv += ["--serve", argument]
        self.process = Process("echo", argv, work_dir)

    def start(self, timeout: float = 30.0) -> None:
        self.process.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.process.alive():
                raise HarnessError(f"echo exited: {self.process.tail()}")
            with contextlib.suppress(OSError):
                for line in self.process.stdout_path.read_text().splitlines():
                    if json.loads(line).get("event") == "ready":
                        return
            time.sleep(0.05)
        raise HarnessError(f"echo not ready after {timeout} s: {self.process.tail()}")

    def stop(self) -> None:
        self.process.stop()


class Admin:
    """A client of one admin API."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.client = httpx.Client(base_url=base_url, timeout=5.0)

    def ready(self) -> bool:
        try:
            return self.client.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    def objects(self) -> dict[Key, dict[str, Any]]:
        """Every object the source holds, with status, by ``(kind, namespace, name)``."""
        items = self.client.get("/api/v1/resources").raise_for_status().json().get("items") or []
        return {doc_key(item): item for item in items if isinstance(item, dict)}

    def close(self) -> None:
        self.client.close()


class Gateway:
    """The nantian processes under test, in ``standalone`` or ``split`` mode, watching ``config_dir``."""

    def __init__(self, mode: str, work_dir: Path, *, address_pool: str) -> None:
        self.mode = mode
        self.config_dir = work_dir / "config"
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self._staging = work_dir / "staging"
        self._staging.mkdir(exist_ok=True)
        admin_port = free_port()
        common = ["--config-dir", str(self.config_dir), "--controller-name", CONTROLLER_NAME]
        common += ["--address-pool", address_pool]
        nantian = [sys.executable, "-m", "nantian"]
        self.processes: list[Process] = []
        self.readiness: list[Admin] = []
        if mode == "standalone":
            argv = [*nantian, "standalone", *common, "--admin-address", f"127.0.0.1:{admin_port}"]
            argv += ["--port-offset", str(PORT_OFFSET)]
            self.processes.append(Process("standalone", argv, work_dir))
            self.admin = Admin(f"http://127.0.0.1:{admin_port}")
            self.readiness.append(self.admin)
        else:
            xds_port, proxy_admin_port = free_port(), free_port()
            controller = [*nantian, "controller", *common, "--admin-address", f"127.0.0.1:{admin_port}"]
            controller += ["--xds-address", f"127.0.0.1:{xds_port}"]
            proxy = [*nantian, "proxy", "--xds", f"127.0.0.1:{xds_port}", "--node-id", "conformance"]
            proxy += ["--port-offset", str(PORT_OFFSET), "--admin-address", f"127.0.0.1:{proxy_admin_port}"]
            self.processes += [Process("controller", controller, work_dir), Process("proxy", proxy, work_dir)]
            self.admin = Admin(f"http://127.0.0.1:{admin_port}")
            self.readiness += [self.admin, Admin(f"http://127.0.0.1:{proxy_admin_port}")]
        self._written: list[Document] = []

    def start(self, documents: Sequence[Document], timeout: float = 60.0) -> None:
        """Write ``documents`` and start the processes; returns once every admin API says ready."""
        self.write(documents)
        for process in self.processes:
            process.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process in self.processes:
                if not process.alive():
                    raise HarnessError(
                        f"{process.name} exited ({process.popen and process.popen.returncode}): {process.tail()}"
                    )
            if all(admin.ready() for admin in self.readiness):
                return
            time.sleep(0.1)
        raise HarnessError(f"not ready after {timeout} s: " + " | ".join(p.tail(10) for p in self.processes))

    def log_tail(self, lines: int = 15) -> str:
        """The last stderr lines of every process under test (for failure messages)."""
        return "\n".join(f"--- {p.name} stderr (last {lines} lines)\n{p.tail(lines)}" for p in self.processes)

    def check_alive(self) -> None:
        for process in self.processes:
            if not process.alive():
                raise HarnessError(f"{process.name} exited: {process.tail()}")

    def write(self, documents: Sequence[Document]) -> None:
        """Replace the config directory's content with ``documents`` (one file, atomically)."""
        staged = self._staging / "resources.yaml"
        staged.write_text(yaml.safe_dump_all([dict(d) for d in documents], sort_keys=False))
        os.replace(staged, self.config_dir / "resources.yaml")
        self._written = list(documents)

    def wait_synced(self, timeout: float) -> dict[Key, dict[str, Any]]:
        """Poll the admin API until it holds exactly the written documents; returns the objects.

        :raises HarnessError: on timeout, naming what differs.
        """
        deadline = time.monotonic() + timeout
        problem = "no answer"
        while True:
            try:
                objects = self.admin.objects()
                problem = _sync_problem(self._written, objects)
                if not problem:
                    return objects
            except httpx.HTTPError as exc:
                problem = f"admin API: {exc}"
            if time.monotonic() > deadline:
                self.check_alive()
                raise HarnessError(f"config not picked up within {timeout} s: {problem}")
            time.sleep(0.1)

    def stop(self) -> None:
        for admin in self.readiness:
            admin.close()
        for process in reversed(self.processes):
            process.stop()


def _comparable(doc: Mapping[str, Any]) -> Any:
    out = {k: v for k, v in doc.items() if k != "status"}
    if doc.get("kind") == "Secret":
        out = {k: v for k, v in out.items() if k not in ("data", "stringData")}
    return json.loads(json.dumps(out, sort_keys=True, default=str))


def _sync_problem(written: Sequence[Document], objects: Mapping[Key, Mapping[str, Any]]) -> str:
    expected = {doc_key(d): d for d in written}
    missing = sorted(set(expected) - set(objects))
    stale = sorted(set(objects) - set(expected))
    if missing or stale:
        return f"missing {missing[:5]} stale {stale[:5]}"
    for key, doc in expected.items():
        if _comparable(doc) != _comparable(objects[key]):
            return f"{key} differs from the file"
    return ""
