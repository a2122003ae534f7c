"""The access log as a buffered file: one line per request, written in batches.

Going through :mod:`logging` costs a request about as much CPU as proxying it (a ``LogRecord``, a formatter, a
handler lock and a write per line). :class:`AccessLogFile` keeps the lines in memory and writes them with one system
call when ``buffer_bytes`` have gathered or ``flush_interval`` seconds after the first unwritten line (Envoy flushes
its access logs the same way), and at :meth:`close`. A crash loses at most that much of the log, never a request.

Lines are ``<UTC time with milliseconds> <message>``, the message being what the ``nantian.access`` logger gets
otherwise (``access listener=... route=... status=...``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time

__all__ = ["AccessLogFile", "access_log_argument"]

log = logging.getLogger(__name__)


def access_log_argument(value: str) -> str:
    """An ``--access-log`` value: ``-`` or a file that can be opened for appending (created if missing)."""
    if value == "-":
        return value
    try:
        os.close(os.open(value, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot write the access log {value!r}: {exc.strerror}") from exc
    return value


class AccessLogFile:
    """Append lines to ``path`` (``-``: standard output) in batches.

    :param flush_interval: The longest a line waits in memory (seconds), when the event loop runs.
    :param buffer_bytes: Write as soon as this much has gathered.
    """

    def __init__(self, path: str, *, flush_interval: float = 1.0, buffer_bytes: int = 65536) -> None:
        self.path = path
        self.flush_interval = flush_interval
        self.buffer_bytes = buffer_bytes
        self._fd = 1 if path == "-" else os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lines: list[str] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._second = -1
        self._stamp = ""
        self._ms = -1
        self._prefix = ""
        """The time prefix of the current millisecond (many lines share it under load)."""
        self._failed = False
        self.closed = False

    def write(self, message: str) -> None:
        """Log ``message`` (one line, no newline) with the current time."""
        if self.closed:
            return
        ms = int(time.time() * 1000)
        if ms != self._ms:
            self._ms = ms
            second = ms // 1000
            if second != self._second:
                self._second = second
                self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._prefix = f"{self._stamp}.{ms % 1000:03d}Z "
        line = self._prefix + message + "\n"
        self._lines.append(line)
        self._size += len(line)
        if self._size >= self.buffer_bytes:
            self.flush()
        elif self._timer is None:
            self._arm()

    def _arm(self) -> None:
        loop = self._loop
        if loop is None:
            try:
                loop = self._loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (a test, a script): write at once
                self.flush()
                return
        self._timer = loop.call_later(self.flush_interval, self.flush)

    def flush(self) -> None:
        """Write every gathered line now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._lines:
            return
        data = "".join(self._lines).encode("utf-8", "replace")
        self._lines.clear()
        self._size = 0
        try:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            self._failed = False
        except OSError as exc:
            if not self._failed:  # one error line per failing streak, not one per batch
                log.error("access_log.write_failed path=%s error=%s", self.path, exc)
            self._failed = True

    def close(self) -> None:
        """Flush and close the file (standard output stays open)."""
        if self.closed:
            return
        self.flush()
        self.closed = True
        if self._fd != 1:
            os.close(self._fd)
