"""A record of the requests an echo server answered, so mirror tests can ask "who saw this path?"."""

from __future__ import annotations

import collections
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import attrs

from nantian.echo._context import PodContext

__all__ = ["RequestLog", "RequestRecord", "read_request_log"]


@attrs.frozen(kw_only=True)
class RequestRecord:
    """One request an identity echoed (upstream logs "Echoing back request made to <path> to client")."""

    time: float
    namespace: str
    service: str
    pod: str
    method: str
    path: str
    host: str
    protocol: str
    """``http``, ``h2c``, ``https``, ``grpc`` or ``grpcs``: the listener kind that served it."""

    def as_json(self) -> dict[str, Any]:
        """The record as a JSON object (one line of the log file)."""
        return attrs.asdict(self)


class RequestLog:
    """Keeps the last ``capacity`` records in memory and, when ``path`` is given, appends JSON lines there."""

    def __init__(self, path: str | Path | None = None, *, capacity: int = 10_000) -> None:
        self._records: collections.deque[RequestRecord] = collections.deque(maxlen=capacity)
        self._file: IO[str] | None = None
        if path is not None:
            self._file = Path(path).open("a", encoding="utf-8")  # noqa: SIM115 (open for the log's lifetime)

    def add(self, context: PodContext, *, method: str, path: str, host: str, protocol: str) -> RequestRecord:
        """Record one echoed request and return the record."""
        record = RequestRecord(
            time=time.time(),
            namespace=context.namespace,
            service=context.service,
            pod=context.pod,
            method=method,
            path=path,
            host=host,
            protocol=protocol,
        )
        self._records.append(record)
        if self._file is not None:
            self._file.write(json.dumps(record.as_json()) + "\n")
            self._file.flush()
        return record

    def records(self) -> list[RequestRecord]:
        """The records held in memory, oldest first."""
        return list(self._records)

    def close(self) -> None:
        """Close the log file, if any."""
        if self._file is not None:
            self._file.close()
            self._file = None


def read_request_log(path: str | Path) -> Iterator[RequestRecord]:
    """Read back the records a :class:`RequestLog` wrote to ``path``; a torn last line is skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return
    for line in text.splitlines():
        try:
            yield RequestRecord(**json.loads(line))
        except (ValueError, TypeError):
            continue
