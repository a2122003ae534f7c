"""Real processes for the e2e tests: free ports, bounded waits, ``nantian`` commands started, made ready and stopped.

A plain module the test files import (``import processes``), like tests/unit/proxy/http1_harness.py: no fixtures
here, the test files keep theirs and call these helpers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Self

import httpx

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart"
QUICKSTART_ADDRESS = "127.0.0.10"
"""The address examples/quickstart/gateway.yaml pins its Gateway to."""
QUICKSTART_PORT = 8080
"""The port of the quickstart Gateway's listener."""

WAIT = 20.0
"""Default limit, in seconds, of every wait in this module."""


def free_port(host: str = "127.0.0.1", kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A port the kernel just handed out on ``host`` (free now; nothing holds it for the caller)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def bindable(host: str, port: int, kinds: Sequence[socket.SocketKind] = (socket.SOCK_STREAM,)) -> bool:
    """Whether ``host:port`` can be bound now with every socket kind of ``kinds``."""
    if not 0 < port < 65536:
        return False
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def port_offset(
    host: str,
    anchor: int,
    ports: Sequence[int],
    kinds: Sequence[socket.SocketKind] = (socket.SOCK_STREAM,),
    attempts: int = 50,
) -> int:
    """A ``--port-offset`` that moves ``anchor`` onto a free port of ``host`` and leaves every one of ``ports``,
    moved by it, bindable there with ``kinds``."""
    for _ in range(attempts):
        offset = free_port(host) - anchor
        if all(bindable(host, port + offset, kinds) for port in ports):
            return offset
    raise AssertionError(f"no port offset on {host} frees {list(ports)} after {attempts} attempts")


def wait_for(check: Callable[[], object], what: str, timeout: float = WAIT, interval: float = 0.1) -> None:
    """Call ``check`` until it returns something true; an ``httpx.HTTPError`` it raises counts as not yet.

    Raises AssertionError naming ``what`` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def eventually(condition: Callable[[], bool], what: str, within: float = WAIT, interval: float = 0.05) -> None:
    """Poll ``condition`` (state of in-process apps or of another process) from a coroutine until it holds.

    Raises AssertionError naming ``what`` after ``within`` seconds.
    """
    try:
        async with asyncio.timeout(within):
            while not condition():  # noqa: ASYNC110 - state of several apps or processes; no single event to wait on
                await asyncio.sleep(interval)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for: {what}") from None


async def stop_async(process: asyncio.subprocess.Process, within: float = WAIT) -> int:
    """Terminate a child started with asyncio, wait up to ``within`` seconds, then kill it and wait again; the exit
    code."""
    if process.returncode is None:
        process.terminate()
    try:
        async with asyncio.timeout(within):
            return await process.wait()
    except TimeoutError:
        process.kill()
        async with asyncio.timeout(within):
            return await process.wait()


def nantian(*args: str, log_level: str | None = "warning", module: str = "nantian") -> list[str]:
    """The argv of ``python -m MODULE [--log-level LEVEL] ARGS`` with this interpreter."""
    level = ["--log-level", log_level] if log_level is not None else []
    return [sys.executable, "-m", module, *level, *args]


class Process:
    """A child process. With ``capture``, its stdout and stderr (merged, unbuffered) are kept line by line in
    ``lines`` by a reader thread; otherwise both go to /dev/null."""

    def __init__(self, argv: Sequence[str], *, capture: bool = False) -> None:
        self.argv = list(argv)
        self.lines: list[str] = []
        self._reader: threading.Thread | None = None
        if capture:
            self.popen = subprocess.Popen(
                self.argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()
        else:
            self.popen = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line)

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.popen.pid

    def alive(self) -> bool:
        """Whether the child has not exited yet."""
        return self.popen.poll() is None

    def output(self) -> str:
        """What the child wrote so far (empty without ``capture``)."""
        return "".join(self.lines)

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the child."""
        self.popen.send_signal(sig)

    def wait(self, timeout: float = WAIT) -> int:
        """The child's exit code, once it exits within ``timeout`` seconds (else ``subprocess.TimeoutExpired``)."""
        return self.popen.wait(timeout)

    def wait_for_line(self, pattern: str, timeout: float = WAIT) -> re.Match[str]:
        """The first match of ``pattern`` in a line of output (needs ``capture``); AssertionError with the output
        if none comes within ``timeout`` seconds or the child exits without one."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if m := regex.search(line):
                    return m
            if not self.alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} from {self.argv[2:]}; output:\n{self.output()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = WAIT) -> int:
        """Send ``sig`` if the child still runs, wait up to ``timeout`` seconds, then kill it and wait again;
        the exit code."""
        if self.alive():
            self.popen.send_signal(sig)
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            code = self.popen.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout)
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        return code


def wait_ready(admin: str, process: Process, timeout: float = WAIT) -> None:
    """Poll ``http://ADMIN/readyz`` until it answers 200; fails at once (with the output, if captured) when
    ``process`` exits, and after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise AssertionError(f"{process.argv[2:]} exited with {process.popen.returncode}:\n{process.output()}")
        try:
            if httpx.get(f"http://{admin}/readyz", timeout=2.0, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{process.argv[2:]} not ready at {admin} after {timeout}s:\n{process.output()[-2000:]}")


def start_ready(argv: Sequence[str], admin: str, *, capture: bool = False, timeout: float = WAIT) -> Process:
    """Start ``argv`` and wait for its admin API at ``admin`` to be ready; the process is killed if it is not."""
    process = Process(argv, capture=capture)
    try:
        wait_ready(admin, process, timeout)
    except BaseException:
        process.stop(signal.SIGKILL)
        raise
    return process


class Standalone:
    """``nantian standalone`` on ``config_dir`` with its admin API on a free port of 127.0.0.1, ready once built.

    ``offset`` is its ``--port-offset``; by default one that moves the quickstart listener (8080) onto a free port.
    ``flags`` follow the standard ones (``--config-dir``, ``--admin-address``, ``--port-offset``).
    """

    def __init__(
        self,
        config_dir: Path,
        *flags: str,
        offset: int | None = None,
        log_level: str | None = "warning",
        capture: bool = False,
        timeout: float = WAIT,
    ) -> None:
        self.config_dir = config_dir
        self.admin_port = free_port()
        self.offset = free_port() - QUICKSTART_PORT if offset is None else offset
        self.listener_port = QUICKSTART_PORT + self.offset
        """Where the quickstart listener (8080) is served."""
        self.admin_address = f"127.0.0.1:{self.admin_port}"
        argv = nantian(
            "standalone",
            "--config-dir",
            str(config_dir),
            "--admin-address",
            self.admin_address,
            "--port-offset",
            str(self.offset),
            *flags,
            log_level=log_level,
        )
        self.process = start_ready(argv, self.admin_address, capture=capture, timeout=timeout)
        self.admin = httpx.Client(base_url=f"http://{self.admin_address}", timeout=5)

    def resource(self, kind: str, namespace: str, name: str) -> Any:
        """One object of the admin API's resource view, with its status."""
        return self.admin.get(f"/api/v1/resources/{kind}/{namespace}/{name}").json()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stop the process (see :meth:`Process.stop`) and close the admin client; the exit code. Leaving a
        ``with`` block calls it."""
        try:
            return self.process.stop(sig)
        finally:
            self.admin.close()


class Echo:
    """``nantian echo`` in a child process (see :func:`echo`): the listeners it announced."""

    def __init__(self, process: Process, listening: list[dict[str, str]]) -> None:
        self.process = process
        self.listening = listening
        """The ``{"event": "listening", "kind": ..., "address": ...}`` lines, in order."""

    def port(self, kind: str = "http") -> int:
        """The port of the first announced listener of ``kind``."""
        address = next(e["address"] for e in self.listening if e["kind"] == kind)
        return int(address.rsplit(":", 1)[1])


@contextlib.contextmanager
def echo(*args: str, timeout: float = WAIT) -> Iterator[Echo]:
    """``nantian echo ARGS``, once it announced all its listeners (its ``ready`` line); stopped on exit."""
    process = Process(nantian("echo", *args, log_level=None), capture=True)
    try:
        process.wait_for_line(r'^\{"event": "ready"', timeout)
        events = [json.loads(line) for line in list(process.lines) if line.startswith('{"event": "listening"')]
        yield Echo(process, events)
    finally:
        process.stop()


def quickstart_echo(pod: str) -> contextlib.AbstractContextManager[Echo]:
    """``nantian echo`` as the quickstart's backend (``default/echo``) on a free port, answering as ``pod``."""
    return echo("--port", "0", "--namespace", "default", "--service", "echo", "--pod", pod)


def copy_quickstart(dest: Path, echo_port: int, *, address: str | None = None) -> Path:
    """examples/quickstart's manifests copied into ``dest`` (made if missing), the backend moved to ``echo_port``.

    ``nantian echo`` is expected on 3000 there; every ``port: 3000`` (the Service's targetPort and the
    EndpointSlice's port) becomes ``echo_port``. With ``address`` the Gateway is pinned to it instead of
    127.0.0.10. Returns ``dest``.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for source in QUICKSTART.glob("*.yaml"):
        text = source.read_text().replace("port: 3000", f"port: {echo_port}")
        if address is not None:
            text = text.replace(f"value: {QUICKSTART_ADDRESS}", f"value: {address}")
        (dest / source.name).write_text(text)
    return dest
