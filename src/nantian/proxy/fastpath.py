"""The callback fast path: a request without a body, on a route without asynchronous filters, forwarded on an idle
keep-alive upstream connection with no task and no coroutine.

The HTTP/1.1 front end offers every such request to :func:`try_fast` before starting a task. Routing, header
modifiers and rewrites run synchronously; the request is written upstream at once; the upstream parser's callbacks
(:class:`FastForward` is the connection's response consumer) write the response downstream as it arrives. Flow
control: when the client's write buffer fills, the upstream connection stops reading until it drains. Timeouts are
one timer handle. Anything the fast path does not cover (bodies, retries, mirrors, CORS, plugin filters, redirects,
no idle connection) goes the general way, :meth:`CompiledListener.handle`, with identical results.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from nantian.proxy._http1 import decode_fields, end_to_end
from nantian.proxy.bodies import BytesBody
from nantian.proxy.deadlines import Deadlines, Expirable
from nantian.proxy.exchange import Exchange, Headers, UpstreamError, UpstreamRequest
from nantian.proxy.handler import CompiledListener
from nantian.proxy.header_edits import apply_header_modifier
from nantian.proxy.http1_response import Http1Response
from nantian.proxy.route_plan import BackendPlan, RoutePlan
from nantian.proxy.upstream_http1 import Http1Connection, Http1Pool, ResponseConsumer

__all__ = ["FastForward", "try_fast"]

log = logging.getLogger(__name__)


def try_fast(
    handler: object,
    ex: Exchange,
    sink: Http1Response,
    fallback: Callable[[], None],
    loop: asyncio.AbstractEventLoop,
    deadlines: Deadlines,
    now: float,
) -> FastForward | None:
    """Start serving ``ex`` on the fast path and return its state, or ``None`` when it does not qualify.

    ``now``: the loop time (the front end read it for this request or the chunk it came in)."""
    if type(handler) is not CompiledListener:
        return None
    plan, _, path, query, _ = handler.lookup(ex)
    if plan is None or not plan.fast:
        return None
    backend = plan.backends.pick()
    if backend is None or backend.cluster is None:
        return None
    pool = backend.cluster.pick()
    if type(pool) is not Http1Pool:
        return None
    conn = pool.take_idle(ex.received_at)
    if conn is None:
        return None
    body = ex.body
    data = body.data if isinstance(body, BytesBody) else b""
    req = plan.fast_request(ex, path, query, backend)
    fast = FastForward(handler, plan, backend, ex, sink, pool, conn, fallback, loop, deadlines)
    fast.start(req, data, now)
    return fast


class FastForward(ResponseConsumer):
    """One request on the fast path; the upstream connection's response consumer."""

    __slots__ = (
        "_deadlines",
        "_done",
        "_timer",
        "_waiting_head",
        "backend",
        "conn",
        "ex",
        "fallback",
        "listener",
        "loop",
        "plan",
        "pool",
        "sent",
        "sink",
        "started_at",
        "status",
        "upstream_seconds",
    )

    def __init__(
        self,
        listener: CompiledListener,
        plan: RoutePlan,
        backend: BackendPlan,
        ex: Exchange,
        sink: Http1Response,
        pool: Http1Pool,
        conn: Http1Connection,
        fallback: Callable[[], None],
        loop: asyncio.AbstractEventLoop,
        deadlines: Deadlines,
    ) -> None:
        self.listener = listener
        self.plan = plan
        self.backend = backend
        self.ex = ex
        self.sink = sink
        self.pool = pool
        self.conn = conn
        self.fallback = fallback
        self.loop = loop  # asyncio.get_running_loop() costs a getpid() system call
        self.sent = 0
        self.status = 0
        self.upstream_seconds: float | None = None
        self._deadlines = deadlines
        self._timer: set[Expirable] | None = None
        """The deadline bucket this request is in (``discard`` cancels)."""
        self._waiting_head = True
        self._done = False
        self.started_at = 0.0

    def start(self, req: UpstreamRequest, body: bytes, now: float) -> None:
        # now, not received_at: a pipelined request may have waited for its turn
        self.started_at = now
        plan = self.plan
        deadline: float | None = None
        if plan.request_timeout is not None:
            deadline = self.ex.received_at + plan.request_timeout
        if plan.try_timeout is not None:
            try_deadline = now + plan.try_timeout
            deadline = try_deadline if deadline is None else min(deadline, try_deadline)
        if deadline is not None:
            self._timer = self._deadlines.add(deadline, self)
        self.pool._active += 1
        self.listener.metrics.fast_path += 1
        self.conn.start(req, self, body=body, raw=plan.raw_response_ok and self.backend.response_headers is None)

    # -- the upstream response -----------------------------------------------------------------------------------
    def on_head(self, status: int, headers: Headers, content_length: int | None) -> None:
        try:
            self._head_arrived()
            plan = self.plan
            out = end_to_end(headers)
            backend = self.backend
            route = plan.route
            if backend.response_headers is not None or route.response_headers is not None:
                out = list(out)
                if backend.response_headers is not None:
                    apply_header_modifier(out, backend.response_headers)
                if route.response_headers is not None:
                    apply_header_modifier(out, route.response_headers)
            self.status = status
            self.sink.start_now(status, out)
        except Exception:
            self._crash()

    def on_raw_head(self, status: int, fields: bytes, content_length: int | None) -> None:
        """The response head as encoded end-to-end lines (routes that change no response header, or only append)."""
        try:
            edit = self.plan.response_edit
            if edit is not None:
                if not edit.applies_to_block(fields):
                    self.on_head(status, decode_fields(fields), content_length)
                    return
                fields += edit.lines
            self._head_arrived()
            self.status = status
            self.sink.start_raw(status, fields, content_length is not None)
        except Exception:
            self._crash()

    def _head_arrived(self) -> None:
        # the backend-request deadline stays armed: when it passes, expire() re-arms for the request deadline (one
        # deadline entry per request instead of two; most responses end long before either)
        self._waiting_head = False
        self.upstream_seconds = self.conn.now - self.started_at

    def on_body(self, data: bytes) -> None:
        if self._done:
            return
        self.sent += len(data)
        try:
            writable = self.sink.send_now(data)
        except (OSError, RuntimeError):
            self._give_up()
            return
        if not writable:
            self.conn.pause_reading()
            self.sink.on_drained(self._resume)

    def _resume(self) -> None:
        if not self._done:
            self.conn.resume_reading()

    def on_end(self, trailers: Headers | None) -> None:
        if self._done:
            return
        try:
            now = self.conn.now
            self._finish(now=now)
            self.sink.end_now(trailers, now)
        except Exception:
            self._crash()

    def on_error(self, error: UpstreamError) -> None:
        if self._done:
            return
        if self._waiting_head and error.kind == "reset" and self.conn.maybe_stale:
            # a keep-alive connection the upstream had closed: retry the general way on a fresh connection
            self._finish(record=False)
            self.fallback()
            return
        if self._waiting_head and not self.sink.started:
            self._local(502 if error.kind == "protocol" else 503, str(error))
        else:
            self._finish()
            self.sink.abort()

    # -- local decisions -----------------------------------------------------------------------------------------
    def expire(self) -> None:
        """The request or backend-request deadline passed."""
        self._timer = None
        if self._done:
            return
        if not self._waiting_head:
            # the backend-request deadline of a response whose head arrived in time: only the request deadline is left
            request_timeout = self.plan.request_timeout
            if request_timeout is None:
                return
            deadline = self.ex.received_at + request_timeout
            if self.loop.time() < deadline:
                self._timer = self._deadlines.add(deadline, self)
                return
        self.conn.abort_response()
        if not self.sink.started:
            self._local(504, "upstream request timeout")
        else:
            self._finish()
            self.sink.abort()

    def _local(self, status: int, message: str) -> None:
        self.status = status
        body = message.encode()
        self._finish()
        sink = self.sink
        sink.start_now(status, [("content-type", "text/plain; charset=utf-8"), ("content-length", str(len(body)))])
        sink.send_now(body)
        sink.end_now()

    def downstream_lost(self) -> None:
        """The client went away: stop the upstream exchange."""
        if not self._done:
            self._finish(record=False)
            self.conn.abort_response()

    def _give_up(self) -> None:
        self._finish(record=False)
        self.conn.abort_response()
        self.sink.abort()

    def _crash(self) -> None:
        log.error("proxy.fast_path_failed route=%s", self.plan.name, exc_info=True)
        self._give_up()

    def _finish(self, record: bool = True, now: float = -1.0) -> None:
        """Done: stop the deadline, count and log the request (``now``: the loop time if the caller has it)."""
        self._done = True
        self.pool._active -= 1
        if self._timer is not None:
            self._timer.discard(self)
            self._timer = None
        if record:
            listener = self.listener
            plan = self.plan
            listener.record_values(
                self.ex,
                listener.stats_of(plan),
                plan.name,
                self.status,
                self.backend.name,
                self.sent,
                self.upstream_seconds,
                now,
            )
