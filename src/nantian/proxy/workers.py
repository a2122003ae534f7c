"""``--workers N``: several data-plane processes of one deployment serving the same listener ports.

The parent process runs a :class:`WorkerSupervisor` (starts N worker commands, restarts one that dies with a bounded
backoff, stops them all with SIGTERM) and a :class:`WorkerChannelServer`, a Unix socket every worker keeps open
(:class:`WorkerChannel` on the worker's side). Over it a worker

- claims a port before it binds it with ``SO_REUSEPORT`` (:class:`~nantian.proxy.runtime.PortGuard`): the parent
  grants a port only when it already holds it for the deployment, or when it is free (a plain bind succeeds), and
  then keeps a bound, non-listening *anchor* socket with ``SO_REUSEPORT`` on it while any worker holds it, so a
  port another process holds (with or without ``SO_REUSEPORT``) is never shared, and a worker restart does not
  open the port to others;
- tells which ports it holds after every change (anchors nobody holds are closed, the port is free again);
- reports its status (node id, pid, admin port, applied version) for the parent's admin API;
- sees the parent go away (EOF) and drains, so no worker outlives its supervisor.

The parent's ``/metrics`` (:attr:`WorkerChannelServer.metrics_registry`) holds every live worker's metric families
summed (:mod:`nantian.proxy.worker_metrics`: each worker's own ``/metrics`` is scraped at collect time), next to
the supervisor's own ``nantian_workers*`` families.

Messages are JSON lines: ``{"op": "claim", "address", "port"}`` (answered ``{"ok": true}`` or
``{"ok": false, "error"}``), ``{"op": "hold", "ports": [[address, port], ...]}`` and ``{"op": "status", ...}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from nantian.proxy.worker_metrics import WorkerMetricsCollector

__all__ = ["WorkerChannel", "WorkerChannelServer", "WorkerSupervisor", "nantian_command", "worker_status"]

log = logging.getLogger(__name__)

Port = tuple[str, int]


def nantian_command(*args: str) -> list[str]:
    """``python -m nantian --log-level LEVEL ARGS``: this interpreter, this process's log level."""
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
    return [sys.executable, "-m", "nantian", "--log-level", level, *args]


# --- the parent's end of the channel ---------------------------------------------------------------------------
@attrs.define(eq=False)
class _Worker:
    """One connected worker, as the channel server sees it."""

    writer: asyncio.StreamWriter
    held: set[Port] = attrs.field(factory=set)
    status: dict[str, Any] | None = None


def _anchor(address: str, port: int) -> socket.socket:
    """Claim ``address:port`` for the deployment, or raise ``OSError`` when anyone else holds it."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # A plain bind (as a single-process proxy does) fails on any listening socket, SO_REUSEPORT or not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((address, port))
    anchor = socket.socket(family, socket.SOCK_STREAM)
    try:
        anchor.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        anchor.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        anchor.bind((address, port))  # never listens: it takes no connections, it only keeps the port ours
    except OSError:
        anchor.close()
        raise
    return anchor


class WorkerChannelServer:
    """The parent's end: grants ports to workers, keeps their anchors, collects their status reports.

    :param admin_host: The host the workers' admin servers bind (their ``--admin-address``); the parent scrapes
        their ``/metrics`` there (a wildcard on loopback). ``None``: loopback.
    :param scrape_timeout: The deadline of one scrape of all workers, in seconds (they are scraped in parallel).
    """

    def __init__(self, *, admin_host: str | None = None, scrape_timeout: float = 1.0) -> None:
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._server: asyncio.AbstractServer | None = None
        self._workers: set[_Worker] = set()
        self._anchors: dict[Port, socket.socket] = {}
        self.metrics_registry = CollectorRegistry(auto_describe=True)
        """The workers' metric families summed over live workers, scrape errors, and their reported counters
        labelled by node id (all read at scrape time)."""
        self.metrics_registry.register(_ReportCollector(self))
        self.metrics_registry.register(WorkerMetricsCollector(self.reports, admin_host, scrape_timeout))

    @property
    def path(self) -> str:
        """The Unix socket workers connect to (``--worker-channel``)."""
        if self._dir is None:
            raise RuntimeError("the worker channel is not started")
        return str(Path(self._dir.name) / "channel.sock")

    async def start(self) -> None:
        """Listen on a Unix socket in a new private (0700) temporary directory."""
        self._dir = tempfile.TemporaryDirectory(prefix="nantian-workers-")
        self._server = await asyncio.start_unix_server(self._serve, path=self.path)

    async def close(self) -> None:
        """Stop listening, close the workers' connections (they drain) and the anchors, remove the socket."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for worker in list(self._workers):
            worker.writer.close()
        for sock in self._anchors.values():
            sock.close()
        self._anchors.clear()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def reports(self) -> list[Mapping[str, Any]]:
        """The last status report of every connected worker, by node id."""
        out = [w.status for w in self._workers if w.status is not None]
        return sorted(out, key=lambda s: str(s.get("nodeId", "")))

    def anchored(self) -> set[Port]:
        """The ports the deployment holds now."""
        return set(self._anchors)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        worker = _Worker(writer)
        self._workers.add(worker)
        try:
            while line := await reader.readline():
                try:
                    message = json.loads(line)
                    op = message["op"]
                    if op == "claim":
                        address, port = str(message["address"]), int(message["port"])
                        writer.write(self._claim(worker, address, port) + b"\n")
                    elif op == "hold":
                        worker.held = {(str(a), int(p)) for a, p in message["ports"]}
                        self._release_unheld()
                    elif op == "status":
                        worker.status = dict(message["status"])
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("workers.bad_message error=%s", exc)
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._workers.discard(worker)
            self._release_unheld()
            writer.close()

    def _claim(self, worker: _Worker, address: str, port: int) -> bytes:
        key = (address, port)
        if key not in self._anchors:
            try:
                self._anchors[key] = _anchor(address, port)
            except OSError as exc:
                log.warning("workers.port_refused address=%s port=%s error=%s", address, port, exc)
                return json.dumps({"ok": False, "errno": exc.errno, "error": exc.strerror or str(exc)}).encode()
            log.info("workers.port_claimed address=%s port=%s", address, port)
        worker.held.add(key)
        return b'{"ok": true}'

    def _release_unheld(self) -> None:
        held = set().union(*(w.held for w in self._workers))
        for key in set(self._anchors) - held:
            self._anchors.pop(key).close()
            log.info("workers.port_released address=%s port=%s", *key)


# --- the worker's end ------------------------------------------------------------------------------------------
class WorkerChannel:
    """The worker's end of the channel; a :class:`~nantian.proxy.runtime.PortGuard` for its runtime."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._writer: asyncio.StreamWriter | None = None
        self._replies: list[asyncio.Future[Mapping[str, Any]]] = []
        self._reader_task: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()
        """Set when the parent is gone (or :meth:`close` was called)."""

    async def connect(self) -> None:
        """Connect to the parent. :raises OSError: it is not there."""
        reader, self._writer = await asyncio.open_unix_connection(self.path)
        self._reader_task = asyncio.create_task(self._read(reader), name="worker-channel")

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                if self._replies:
                    future = self._replies.pop(0)
                    if not future.done():
                        future.set_result(json.loads(line))
        except (ConnectionError, ValueError):
            pass
        finally:
            self.closed.set()
            for future in self._replies:
                if not future.done():
                    future.set_exception(OSError(errno.ECONNRESET, "the worker supervisor is gone"))
            self._replies.clear()

    def _send(self, message: Mapping[str, Any]) -> None:
        if self._writer is None or self.closed.is_set():
            raise OSError(errno.ENOTCONN, "the worker channel is not connected")
        self._writer.write(json.dumps(message).encode() + b"\n")

    async def claim(self, address: str, port: int) -> None:
        """Ask the parent for ``address:port``. :raises OSError: another process holds it, or no parent."""
        future: asyncio.Future[Mapping[str, Any]] = asyncio.get_running_loop().create_future()
        self._send({"op": "claim", "address": address, "port": port})
        self._replies.append(future)
        reply = await asyncio.wait_for(future, 10.0)
        if not reply.get("ok"):
            raise OSError(int(reply.get("errno") or errno.EADDRINUSE), str(reply.get("error", "refused")))

    def hold(self, ports: Collection[Port]) -> None:
        """Tell the parent which ports this worker holds now."""
        with contextlib.suppress(OSError):
            self._send({"op": "hold", "ports": sorted(ports)})

    def report(self, status: Mapping[str, Any]) -> None:
        """Send this worker's status (shown by the parent's admin API)."""
        with contextlib.suppress(OSError):
            self._send({"op": "status", "status": dict(status)})

    async def close(self) -> None:
        """Close the connection (the parent releases what this worker held)."""
        self.closed.set()
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task


# --- the supervisor --------------------------------------------------------------------------------------------
class WorkerSupervisor:
    """Runs ``count`` worker processes, restarts one that exits (bounded exponential backoff), stops them all.

    :param command: The argv of worker ``index`` (0-based).
    :param backoff: First and longest wait before a restart (seconds); the wait doubles per quick exit.
    :param stable_after: A worker that ran this long restarts after the first wait again.
    """

    def __init__(
        self,
        count: int,
        command: Callable[[int], Sequence[str]],
        *,
        backoff: tuple[float, float] = (0.5, 10.0),
        stable_after: float = 30.0,
    ) -> None:
        if count < 1:
            raise ValueError("a supervisor needs at least one worker")
        self.count = count
        self._command = command
        self._backoff = backoff
        self._stable_after = stable_after
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self.restarts = 0
        """Workers restarted after an unexpected exit."""
        self.metrics_registry = CollectorRegistry(auto_describe=True)
        self.metrics_registry.register(_SupervisorCollector(self))

    def pids(self) -> dict[int, int]:
        """The pid of each running worker, by index."""
        return {i: p.pid for i, p in self._procs.items() if p.returncode is None}

    async def start(self) -> None:
        """Start every worker (returns at once; they keep running until :meth:`stop`)."""
        self._tasks = [asyncio.create_task(self._keep(i), name=f"worker-{i}") for i in range(self.count)]
        await asyncio.sleep(0)

    async def _keep(self, index: int) -> None:
        wait = self._backoff[0]
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                proc = await asyncio.create_subprocess_exec(*self._command(index), stdin=asyncio.subprocess.DEVNULL)
            except OSError as exc:
                log.error("workers.spawn_failed index=%s error=%s", index, exc)
            else:
                self._procs[index] = proc
                log.info("workers.started index=%s pid=%s", index, proc.pid)
                if self._stopping.is_set():
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(signal.SIGTERM)
                code = await proc.wait()
                if self._stopping.is_set():
                    log.info("workers.stopped index=%s pid=%s code=%s", index, proc.pid, code)
                    return
                log.warning("workers.exited index=%s pid=%s code=%s restart_in=%.1f", index, proc.pid, code, wait)
            if time.monotonic() - started >= self._stable_after:
                wait = self._backoff[0]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), wait)
            if self._stopping.is_set():
                return
            self.restarts += 1
            wait = min(wait * 2, self._backoff[1])

    async def stop(self, timeout: float) -> None:  # noqa: ASYNC109 (a drain deadline, passed on to the workers)
        """SIGTERM every worker (they drain), wait up to ``timeout`` seconds, then SIGKILL what is left."""
        self._stopping.set()
        for proc in self._procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=timeout)
        if pending:
            for index, proc in self._procs.items():
                if proc.returncode is None:
                    log.warning("workers.killed index=%s pid=%s", index, proc.pid)
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
            await asyncio.wait(pending, timeout=5.0)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def exit_codes(self) -> dict[int, int | None]:
        """The exit code of each worker's last process (``None``: still running)."""
        return {i: p.returncode for i, p in self._procs.items()}


class _SupervisorCollector:
    def __init__(self, supervisor: WorkerSupervisor) -> None:
        self._s = supervisor

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("nantian_workers", "Worker processes configured", value=float(self._s.count))
        yield GaugeMetricFamily("nantian_workers_running", "Worker processes running", value=len(self._s.pids()))
        yield CounterMetricFamily(
            "nantian_workers_restarts", "Workers restarted after an unexpected exit", value=self._s.restarts
        )


class _ReportCollector:
    """Each connected worker's last reported counters as ``nantian_worker_<counter>{node="..."}``."""

    def __init__(self, server: WorkerChannelServer) -> None:
        self._server = server

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        families: dict[str, GaugeMetricFamily] = {}
        for report in self._server.reports():
            counters = report.get("counters")
            if not isinstance(counters, Mapping):
                continue
            for name, value in sorted(counters.items()):
                if not isinstance(value, int | float) or not str(name).isidentifier():
                    continue
                family = families.get(name)
                if family is None:
                    family = families[name] = GaugeMetricFamily(
                        f"nantian_worker_{name}", f"{name} as last reported by each worker process", labels=["node"]
                    )
                family.add_metric([str(report.get("nodeId", ""))], float(value))
        yield from families.values()


def worker_status(node_id: str, admin_port: int | None, version: str | None, **extra: Any) -> dict[str, Any]:
    """The status document a worker reports (the parent shows it as-is in ``/api/v1/nodes``)."""
    return {"nodeId": node_id, "pid": os.getpid(), "adminPort": admin_port, "versionApplied": version, **extra}
