"""The admin HTTP API and dashboard, served from any app's :class:`~nantian.admin.state.AdminState`.

Routes (ARCHITECTURE.md, "Admin API"): ``/readyz``, ``/api/v1/resources[/{kind}/{namespace}/{name}]``,
``/api/v1/snapshot``, ``/api/v1/nodes``, ``/metrics``, ``/`` (dashboard). Read-only; one request per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from importlib import resources as importlib_resources
from urllib.parse import unquote, urlsplit

from nantian.admin.render import find_resource, json_bytes, snapshot_document
from nantian.admin.state import AdminState

__all__ = ["AdminServer", "Response", "handle_request"]

log = logging.getLogger(__name__)

_MAX_HEAD = 16 * 1024
_JSON = "application/json"
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}

Response = tuple[int, str, bytes]


def _error(status: int, message: str) -> Response:
    return status, _JSON, json_bytes({"error": message})


def handle_request(state: AdminState, method: str, target: str) -> Response:
    """Answer one admin request: (status, content type, body). Pure apart from reading ``state``."""
    if method not in ("GET", "HEAD"):
        return _error(405, f"{method} not allowed: the admin API is read-only")
    path = urlsplit(target).path.rstrip("/") or "/"
    parts = [unquote(p) for p in path.strip("/").split("/")] if path != "/" else []
    if path == "/":
        return 200, "text/html; charset=utf-8", _dashboard()
    if path in ("/readyz", "/healthz"):
        ready = path == "/healthz" or state.ready()
        return (200 if ready else 503), "text/plain", b"ok\n" if ready else b"not ready\n"
    if path == "/metrics":
        return 200, "text/plain; version=0.0.4; charset=utf-8", state.metrics_text()
    if path == "/api/v1/snapshot":
        snap = state.snapshot()
        if snap is None:
            return _error(503, "no snapshot yet")
        return 200, _JSON, json_bytes(snapshot_document(snap))
    if path == "/api/v1/nodes":
        return 200, _JSON, json_bytes({"nodes": list(state.nodes())})
    if parts[:3] == ["api", "v1", "resources"]:
        objects = state.resources()
        if objects is None:
            return _error(404, "this app holds no resources (it is a data plane)")
        rest = parts[3:]
        if not rest:
            return 200, _JSON, json_bytes({"items": list(objects)})
        if len(rest) == 2:
            rest = [rest[0], "", rest[1]]
        if len(rest) != 3:
            return _error(404, "use /api/v1/resources/{kind}/{namespace}/{name}")
        found = find_resource(objects, *rest)
        if found is None:
            return _error(404, f"{rest[0]} {rest[1]}/{rest[2]} not found")
        return 200, _JSON, json_bytes(found)
    return _error(404, f"no such admin endpoint: {path}")


def _dashboard() -> bytes:
    return importlib_resources.files("nantian.admin").joinpath("dashboard.html").read_bytes()


class AdminServer:
    """Serves :func:`handle_request` on ``host:port`` (port 0 picks one; read :attr:`port` after :meth:`start`)."""

    def __init__(self, state: AdminState, host: str = "127.0.0.1", port: int = 19000) -> None:
        self._state = state
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self._port, reuse_address=True)
        log.info("admin.listening address=%s:%s", self._host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10.0)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                return
            if len(head) > _MAX_HEAD:
                response: Response = _error(400, "request head too large")
                method = "GET"
            else:
                line = head.split(b"\r\n", 1)[0].decode("latin-1")
                fields = line.split(" ")
                if len(fields) != 3 or not fields[2].startswith("HTTP/1."):
                    response, method = _error(400, "malformed request line"), "GET"
                else:
                    method, target = fields[0], fields[1]
                    try:
                        response = handle_request(self._state, method, target)
                    except Exception:  # a bug in an app's state: answer 500, keep serving
                        log.exception("admin.failed target=%s", target)
                        response = 500, _JSON, json_bytes({"error": "internal error"})
            status, ctype, body = response
            reason = _REASONS.get(status, "Internal Server Error")
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Cache-Control: no-store\r\nConnection: close\r\n\r\n".encode()
            )
            if method != "HEAD":
                writer.write(body)
            await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()
