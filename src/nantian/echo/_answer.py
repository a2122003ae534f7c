"""What the echo server answers to one HTTP request, decided without I/O.

:meth:`Echo.answer` turns an :class:`EchoRequest` into a :class:`Reply` (status, headers, body, and how
long to wait before sending it) or a :class:`Reset` (drop the connection abruptly). The protocol adapters
in ``_http1.py`` and ``_http2.py`` do the waiting and the writing. The behaviour follows the upstream
echo-basic server (see ``tests/data/gateway-api/CASES.md``, "Echo backends in detail").
"""

from __future__ import annotations

import collections
import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs

from nantian.echo._context import PodContext

__all__ = ["Echo", "EchoRequest", "Reply", "Reset", "TlsInfo", "canonical_header_name", "parse_go_duration"]

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_STATUS_PATH = re.compile(r"^/status/(\d\d\d)$")
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_MAX_DELAY = 300.0
_RETRY_MEMORY = 10_000


def canonical_header_name(name: str) -> str:
    """Go's ``textproto.CanonicalMIMEHeaderKey``: ``x-echo-set-header`` -> ``X-Echo-Set-Header``.

    Names holding a character that is not valid in a header token are returned unchanged, as Go does.
    """
    if not _TOKEN.match(name):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string (``300ms``, ``1.5s``, ``1m30s``, ``0``).

    :raises ValueError: when ``text`` is not a Go duration.
    """
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if match is None:
            raise ValueError(f'time: invalid duration "{text}"')
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not body:
        raise ValueError(f'time: invalid duration "{text}"')
    return -total if text.startswith("-") else total


@attrs.frozen(kw_only=True)
class TlsInfo:
    """The TLS session a request arrived on, as echoed under ``tls``."""

    version: str
    server_name: str = ""
    negotiated_protocol: str = ""
    cipher_suite: str = ""
    peer_certificates: tuple[str, ...] = ()
    """PEM of each certificate the client presented (the leaf only: Python exposes no chain)."""

    def as_json(self) -> dict[str, Any]:
        """The upstream ``TLSAssertions`` JSON object."""
        out: dict[str, Any] = {"version": self.version}
        if self.peer_certificates:
            out["peerCertificates"] = list(self.peer_certificates)
        out["serverName"] = self.server_name
        if self.negotiated_protocol:
            out["negotiatedProtocol"] = self.negotiated_protocol
        out["cipherSuite"] = self.cipher_suite
        return out


@attrs.frozen(kw_only=True)
class EchoRequest:
    """One HTTP request as the echo server saw it, independent of the HTTP version."""

    method: str
    target: str
    """The raw request URI (``:path`` in HTTP/2): path and query as sent."""
    host: str
    headers: tuple[tuple[str, str], ...] = ()
    """Every header but ``Host`` and pseudo-headers, names as received, in order."""
    proto: str = "HTTP/1.1"
    tls: TlsInfo | None = None
    remote: str = ""

    def header_values(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), in order."""
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]


@attrs.frozen(kw_only=True)
class Reply:
    """Send this response after waiting ``delay`` seconds."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    delay: float = 0.0
    echoed: bool = False
    """True when the body is the echo of the request (it goes to the request log)."""


@attrs.frozen(kw_only=True)
class Reset:
    """Reset the connection (TCP RST) after waiting ``delay`` seconds."""

    delay: float = 0.0


_JSON_HEADERS = (("Content-Type", "application/json"), ("X-Content-Type-Options", "nosniff"))


def _json_error(status: int, message: str) -> Reply:
    return Reply(status=status, headers=_JSON_HEADERS, body=json.dumps({"message": message}).encode())


class Echo:
    """The request handler of one identity: echo, ``/health``, ``/status/NNN``, ``/retry/``, ``?delay=``.

    It remembers, per ``uuid``, how many ``/retry/`` requests it failed (bounded memory).
    """

    def __init__(self, context: PodContext, http_port: str = "") -> None:
        self.context = context
        self.http_port = http_port
        self._retry_counts: collections.OrderedDict[str, int] = collections.OrderedDict()

    def answer(self, request: EchoRequest) -> Reply | Reset:
        """Decide the answer to ``request``."""
        split = urlsplit(request.target)
        path = split.path.replace("//", "/")
        query = parse_qs(split.query, keep_blank_values=True)
        if path == "/health":
            return Reply(status=200, body=b"OK")
        if path.startswith("/status/"):
            match = _STATUS_PATH.match(request.target)
            code = int(match.group(1)) if match else 400
            return Reply(status=code if code >= 100 else 400)
        if path.startswith("/retry/"):
            failure = self._retry_failure(query)
            if failure is not None:
                return failure
        delay = 0.0
        if query.get("delay", [""])[0]:
            try:
                delay = min(max(parse_go_duration(query["delay"][0]), 0.0), _MAX_DELAY)
            except ValueError as exc:
                return _json_error(500, str(exc))
        return Reply(
            status=200,
            headers=(*_JSON_HEADERS, *self._echo_set_headers(request)),
            body=self.body(request),
            delay=delay,
            echoed=True,
        )

    def body(self, request: EchoRequest) -> bytes:
        """The JSON echo of ``request`` (upstream ``RequestAssertions``, indented like Go's MarshalIndent)."""
        headers: dict[str, list[str]] = {}
        for name, value in request.headers:
            headers.setdefault(canonical_header_name(name), []).append(value)
        document: dict[str, Any] = {
            "path": request.target,
            "host": request.host,
            "method": request.method,
            "proto": request.proto,
            "headers": dict(sorted(headers.items())),
            "namespace": self.context.namespace,
            "ingress": self.context.ingress,
            "service": self.context.service,
            "pod": self.context.pod,
            "httpPort": self.http_port,
        }
        if request.tls is not None:
            document["tls"] = request.tls.as_json()
        document["sni"] = request.tls.server_name if request.tls is not None else ""
        return json.dumps(document, indent=1, ensure_ascii=False).encode()

    @staticmethod
    def _echo_set_headers(request: EchoRequest) -> list[tuple[str, str]]:
        collected: dict[str, str] = {}
        for header_list in request.header_values("X-Echo-Set-Header"):
            for item in header_list.split(","):
                name, _, value = item.strip().partition(":")
                if not name or not _TOKEN.match(name):
                    continue
                collected[name] = f"{collected[name]},{value.strip()}" if name in collected else value
        return list(collected.items())

    def _retry_failure(self, query: dict[str, list[str]]) -> Reply | Reset | None:
        uuid = query.get("uuid", [""])[0]
        succeed_after_text = query.get("succeedAfter", [""])[0]
        if not uuid or not succeed_after_text.isdigit():
            return _json_error(400, "retry needs uuid and an integer succeedAfter")
        code_text = query.get("responseCode", [""])[0]
        if code_text and not (code_text.isdigit() and 100 <= int(code_text) <= 599):
            return _json_error(400, f"responseCode {code_text!r} is not an HTTP status")
        delay = 0.0
        if query.get("delayRetry", [""])[0]:
            try:
                delay = min(max(parse_go_duration(query["delayRetry"][0]), 0.0), _MAX_DELAY)
            except ValueError as exc:
                return _json_error(400, str(exc))
        seen = self._retry_counts.pop(uuid, 0) + 1
        self._retry_counts[uuid] = seen
        while len(self._retry_counts) > _RETRY_MEMORY:
            self._retry_counts.popitem(last=False)
        if seen > int(succeed_after_text):
            return None
        if code_text:
            return Reply(status=int(code_text), headers=_JSON_HEADERS, body=b'{"message":"retry"}', delay=delay)
        return Reset(delay=delay)
