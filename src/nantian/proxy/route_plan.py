"""Serving one matched route: filters, backend choice, forwarding with retries and timeouts, mirrors.

Filter order (the IR's): CORS, request header modifier, plugin filters, redirect (answers), rewrite, mirrors, the
weighted backend with its own header modifiers, then the response header modifiers, plugin ``on_response`` and
CORS response headers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Sequence
from typing import Final

from nantian.errors import RemoteProtocolError
from nantian.ir import AppProtocol, HeaderModifier, HttpRoute, PathMatchType
from nantian.proxy._http1 import end_to_end
from nantian.proxy.balancer import WeightedChoice
from nantian.proxy.bodies import BytesBody, RecordingBody
from nantian.proxy.clusters import ClusterPlan
from nantian.proxy.deadlines import Deadline, Deadlines, for_loop
from nantian.proxy.exchange import (
    BodySource,
    EmptyBody,
    Exchange,
    Headers,
    UpstreamError,
    UpstreamRequest,
    UpstreamResponse,
)
from nantian.proxy.filters import (
    FilterRequest,
    FilterResponse,
    HttpFilter,
    LocalResponse,
    cors_preflight,
    cors_response_headers,
    redirect_location,
)
from nantian.proxy.header_edits import apply_header_modifier, raw_header_edit, replace_path
from nantian.proxy.metrics import ProxyMetrics, RequestStats
from nantian.proxy.router import split_target
from nantian.proxy.tunnel import relay

__all__ = ["BackendPlan", "Outcome", "RoutePlan", "answer"]

log = logging.getLogger(__name__)

REPLAY_LIMIT = 64 * 1024
"""Request bodies up to this size are kept for retries."""
MIRROR_LIMIT = 1024 * 1024
"""Request bodies up to this size are copied to mirrors; larger ones are not mirrored."""
MIRROR_TIMEOUT = 30.0
DEFAULT_BACKOFF = 0.025

_background: set[asyncio.Task[None]] = set()
_RAW_PROTOCOLS = frozenset({AppProtocol.HTTP1, AppProtocol.WEBSOCKET})


@dataclasses.dataclass(slots=True, init=False)
class Outcome:
    """What happened to one request, for metrics and the access log."""

    status: int
    backend: str
    bytes_out: int
    upstream_seconds: float | None

    def __init__(
        self, status: int, backend: str = "-", bytes_out: int = 0, upstream_seconds: float | None = None
    ) -> None:
        # written out: mypyc compiles an explicit __init__, while the one dataclasses generates runs interpreted
        self.status = status
        self.backend = backend
        self.bytes_out = bytes_out
        self.upstream_seconds = upstream_seconds


@dataclasses.dataclass(slots=True, frozen=True)
class BackendPlan:
    """One weighted backend of a route. ``cluster`` ``None``: an invalid backendRef (answers 500)."""

    cluster: ClusterPlan | None
    name: str
    request_headers: HeaderModifier | None = None
    response_headers: HeaderModifier | None = None


_FORWARDED: Final[dict[str, dict[str | None, bytes]]] = {"http": {}, "https": {}}
"""Scheme -> client address -> its encoded ``x-forwarded-for``/``x-forwarded-proto`` lines (clients repeat)."""
FORWARDED_CACHE_SIZE: Final = 4096


def _forwarded_lines(client_ip: str | None, scheme: str) -> bytes:
    """The ``x-forwarded-for`` (if the client is known) and ``x-forwarded-proto`` lines a forwarded request gets."""
    cache = _FORWARDED.get(scheme)
    if cache is not None:
        found = cache.get(client_ip)
        if found is not None:
            return found
    lines = (
        f"x-forwarded-for: {client_ip}\r\nx-forwarded-proto: {scheme}\r\n"
        if client_ip
        else f"x-forwarded-proto: {scheme}\r\n"
    ).encode("latin-1")
    if cache is not None:
        if len(cache) >= FORWARDED_CACHE_SIZE:
            cache.clear()
        cache[client_ip] = lines
    return lines


async def answer(exchange: Exchange, status: int, headers: Headers | None = None, body: bytes = b"") -> Outcome:
    """Answer locally (abort if the response already started)."""
    sink = exchange.response
    if sink.started:
        sink.abort()
        return Outcome(status)
    out: Headers = list(headers) if headers else []
    if body and not any(k == "content-type" for k, _ in out):
        out.append(("content-type", "text/plain; charset=utf-8"))
    out.append(("content-length", str(len(body))))
    await sink.start(status, out)
    if body and exchange.head.method != "HEAD":
        await sink.send(body)
    await sink.end()
    return Outcome(status, bytes_out=len(body))


class RoutePlan:
    """An IR :class:`~nantian.ir.HttpRoute` compiled for serving."""

    def __init__(
        self,
        route: HttpRoute,
        *,
        backends: Sequence[BackendPlan],
        mirrors: Sequence[tuple[ClusterPlan, float]],
        filters: Sequence[HttpFilter],
        metrics: ProxyMetrics,
        listener_port: int,
        filter_error: str | None = None,
    ) -> None:
        self.route = route
        self.name = route.name
        self.metrics = metrics
        self.listener_port = listener_port
        self.backends: WeightedChoice[BackendPlan] = WeightedChoice(
            [(b, w.weight) for b, w in zip(backends, route.backends, strict=True)]
        )
        self.has_backends = bool(backends)
        self.mirrors = list(mirrors)
        self.filters = list(filters)
        self.filter_error = filter_error
        self.matched_prefix = route.match.path.value if route.match.path.type is PathMatchType.PREFIX else None
        t = route.timeouts
        self.request_timeout = t.request if t is not None else None
        self.try_timeout = t.backend_request if t is not None else None
        self.retry = route.retry if route.retry is not None and route.retry.attempts > 0 else None
        self.fast = (
            route.cors is None
            and not self.filters
            and filter_error is None
            and route.redirect is None
            and route.direct_status is None
            and not self.mirrors
            and self.retry is None
            and self.has_backends
        )
        """Served by the callback fast path when the request has no body and an idle connection is ready."""
        self.raw_request_ok = not self.filters and (route.rewrite is None or route.rewrite.hostname is None)
        """The fast path may forward the received header bytes, with :attr:`request_edit`'s lines appended."""
        self.keeps_headers = (
            self.raw_request_ok and route.request_headers is None and all(b.request_headers is None for b in backends)
        )
        """No filter of this route touches request headers: every request may forward its header bytes as received."""
        self.request_edit = raw_header_edit(route.request_headers)
        self.response_edit = raw_header_edit(route.response_headers)
        self._deadlines: Deadlines | None = None
        """The event loop's deadline buckets (the request and backend timeouts of the general path)."""
        self.stats: RequestStats | None = None
        """This route's request statistics (set by the listener on the first request it records)."""
        self.raw_response_ok = route.response_headers is None or self.response_edit is not None
        """The route's response header edits (if any) can be made on the received header bytes (see ``on_raw_head``
        of the fast path); a backend's own response modifier still needs the decoded head."""

    # -- request side ------------------------------------------------------------------------------------------
    async def serve(self, ex: Exchange, path: str, query: str, host: str) -> Outcome:
        """Serve ``ex``, which matched this route. Never raises for peer behaviour."""
        route = self.route
        head = ex.head
        cors_out: Headers = []
        if route.cors is not None:
            pre = cors_preflight(route.cors, head.method, head.headers)
            if pre is not None:
                return await answer(ex, pre.status, pre.headers, pre.body)
            origin = head.header("origin")
            cors_out = cors_response_headers(route.cors, origin)
        if self.filter_error is not None:
            return await answer(ex, 500, body=self.filter_error.encode())
        headers = head.headers if self.keeps_headers else list(head.headers)
        if route.request_headers is not None:
            apply_header_modifier(headers, route.request_headers)
        target = head.target
        authority = head.authority
        freq: FilterRequest | None = None
        if self.filters:
            freq = FilterRequest(
                method=head.method,
                target=target,
                authority=authority,
                scheme=head.scheme,
                headers=headers,
                client=head.client,
                route=self.name,
            )
            for f in self.filters:
                try:
                    local = await f.on_request(freq)
                except Exception:
                    log.error("proxy.filter_failed route=%s filter=%r", self.name, f, exc_info=True)
                    self.metrics.filter_error(self.name)
                    return await answer(ex, 500, body=b"filter failed")
                if local is not None:
                    return await self._answer_local(ex, local)
            target, authority, headers = freq.target, freq.authority, freq.headers
            if target != head.target:
                path, query = split_target(target)
        if route.redirect is not None:
            location = redirect_location(
                route.redirect,
                scheme=head.scheme,
                host=host,
                listener_port=self.listener_port,
                path=path,
                query=query,
                matched_prefix=self.matched_prefix,
            )
            return await answer(ex, route.redirect.status_code, [("location", location)])
        if route.direct_status is not None:
            return await answer(ex, route.direct_status)
        if route.rewrite is not None:
            if route.rewrite.hostname is not None:
                authority = route.rewrite.hostname
            if route.rewrite.path is not None:
                new_path = replace_path(path, route.rewrite.path, self.matched_prefix)
                target = f"{new_path}?{query}" if query else new_path
        if not self.has_backends:
            return await answer(ex, 500, body=b"no backend")
        backend = self.backends.pick()
        if backend is None or backend.cluster is None:
            return await answer(ex, 500, body=b"invalid backend")
        body: BodySource = ex.body
        recording: RecordingBody | None = None
        has_body = not isinstance(body, EmptyBody)
        mirrors = [m for m, pct in self.mirrors if pct >= 100.0 or random.random() * 100.0 < pct]
        if has_body and (self.retry is not None or mirrors):
            recording = RecordingBody(body, MIRROR_LIMIT if mirrors else REPLAY_LIMIT)
            body = recording
        if backend.request_headers is not None:
            apply_header_modifier(headers, backend.request_headers)
        raw_ok = backend.cluster.protocol in _RAW_PROTOCOLS
        req = self._upstream_request(ex, target, authority, headers, b"" if raw_ok and self.keeps_headers else None)
        for mirror in mirrors:
            mreq = req
            if req.raw_headers is not None and mirror.protocol not in _RAW_PROTOCOLS:
                mreq = self._upstream_request(ex, target, authority, headers, None)
            self._mirror(mirror, mreq, recording)
        if self.request_timeout is not None:
            try:
                async with Deadline(self._deadline_buckets(), self.request_timeout):
                    return await self._forward(ex, backend, req, body, recording, freq, cors_out)
            except TimeoutError:
                return await answer(ex, 504, body=b"request timeout")
        return await self._forward(ex, backend, req, body, recording, freq, cors_out)

    def _deadline_buckets(self) -> Deadlines:
        deadlines = self._deadlines
        if deadlines is None:
            deadlines = self._deadlines = for_loop(asyncio.get_running_loop())
        return deadlines

    def fast_request(self, ex: Exchange, path: str, query: str, backend: BackendPlan) -> UpstreamRequest:
        """The upstream request for the fast path (only for routes with :attr:`fast`): header modifiers, rewrite."""
        route = self.route
        head = ex.head
        target = head.target
        authority = head.authority
        rewrite = route.rewrite
        if rewrite is not None:
            if rewrite.hostname is not None:
                authority = rewrite.hostname
            if rewrite.path is not None:
                new_path = replace_path(path, rewrite.path, self.matched_prefix)
                target = f"{new_path}?{query}" if query else new_path
        if self.raw_request_ok and backend.request_headers is None and head.raw_headers is not None:
            if route.request_headers is None:
                return self._upstream_request(ex, target, authority, head.headers, b"")
            edit = self.request_edit
            if edit is not None and edit.applies_to(head.headers):
                return self._upstream_request(ex, target, authority, head.headers, edit.lines)
        headers = head.headers if self.keeps_headers else list(head.headers)
        if route.request_headers is not None:
            apply_header_modifier(headers, route.request_headers)
        if backend.request_headers is not None:
            apply_header_modifier(headers, backend.request_headers)
        return self._upstream_request(ex, target, authority, headers, None)

    async def _answer_local(self, ex: Exchange, local: LocalResponse) -> Outcome:
        return await answer(ex, local.status, local.headers, local.body)

    def _upstream_request(
        self, ex: Exchange, target: str, authority: str, headers: Headers, raw_lines: bytes | None
    ) -> UpstreamRequest:
        """``raw_lines`` not ``None``: ``headers`` are the request's own, and the received header bytes may be
        forwarded with these lines appended (the caller checked that this is exact)."""
        head = ex.head
        client_ip = head.client[0] if head.client is not None else None
        raw = head.raw_headers if raw_lines is not None and authority == head.authority and authority else None
        if raw is not None:
            for k, _ in headers:
                if k == "x-forwarded-proto":
                    raw = None
                    break
        if raw is not None:
            extra = _forwarded_lines(client_ip, head.scheme)
            return UpstreamRequest(
                method=head.method,
                target=target,
                authority=authority,
                scheme=head.scheme,
                headers=[],
                raw_headers=raw,
                extra_headers=raw_lines + extra if raw_lines else extra,
            )
        upgrade = head.header("upgrade") if ex.upgrade is not None else None
        out: Headers = []
        xff: str | None = None
        for k, v in end_to_end(headers):
            if k == "host" or k == "content-length" or k == "expect" or k == "x-forwarded-proto":
                continue
            if k == "x-forwarded-for":
                xff = v if xff is None else f"{xff}, {v}"
                continue
            out.append((k, v))
        if client_ip:
            xff = f"{xff}, {client_ip}" if xff else client_ip
        if xff:
            out.append(("x-forwarded-for", xff))
        out.append(("x-forwarded-proto", head.scheme))
        return UpstreamRequest(
            method=head.method, target=target, authority=authority, scheme=head.scheme, headers=out, upgrade=upgrade
        )

    # -- upstream ----------------------------------------------------------------------------------------------
    async def _attempt(self, backend: ClusterPlan, req: UpstreamRequest, body: BodySource) -> UpstreamResponse:
        pool = backend.pick()
        if pool is None:
            raise UpstreamError("connect", f"cluster {backend.name} has no endpoints")
        if self.try_timeout is not None:
            async with Deadline(self._deadline_buckets(), self.try_timeout):
                return await pool.request(req, body)
        return await pool.request(req, body)

    async def _forward(
        self,
        ex: Exchange,
        backend: BackendPlan,
        req: UpstreamRequest,
        body: BodySource,
        recording: RecordingBody | None,
        freq: FilterRequest | None,
        cors_out: Headers,
    ) -> Outcome:
        cluster = backend.cluster
        assert cluster is not None
        retry = self.retry
        attempts = 1 + (retry.attempts if retry is not None else 0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        resp: UpstreamResponse | None = None
        status = 503
        message = "no healthy upstream"
        for attempt in range(attempts):
            source: BodySource = body
            if attempt > 0 and recording is not None:
                source = recording.replay()
            retryable = False
            try:
                resp = await self._attempt(cluster, req, source)
            except UpstreamError as exc:
                # like Envoy: no connection, or a reset before the response head, is 503; garbage is 502
                status = 502 if exc.kind == "protocol" else 503
                message = "upstream connect error" if exc.kind == "connect" else str(exc)
                if exc.kind != "connect":
                    self.metrics.upstream_errors.labels(cluster.name, exc.kind).inc()
                retryable = retry is not None and retry.connection_errors
            except TimeoutError:  # this try's backend_request timeout: retried like a connection error
                status, message = 504, "upstream request timeout"
                retryable = retry is not None
            except RemoteProtocolError as broken:  # the client's request body broke
                return await answer(ex, broken.status_hint, body=b"bad request body")
            else:
                if retry is not None and resp.status in retry.codes and attempt + 1 < attempts:
                    resp.abort()
                    status, message = resp.status, "retried"
                    resp = None
                    retryable = True
                else:
                    break
            can_replay = (recording is None and isinstance(body, EmptyBody)) or (
                recording is not None and recording.replayable
            )
            if not retryable or attempt + 1 >= attempts or not can_replay:
                return await answer(ex, status, body=message.encode())
            self.metrics.retries.labels(self.name).inc()
            backoff = retry.backoff if retry is not None and retry.backoff is not None else DEFAULT_BACKOFF
            await asyncio.sleep(backoff * (0.5 + random.random()))
        assert resp is not None
        upstream_seconds = loop.time() - started
        try:
            return await self._respond(ex, backend, resp, freq, cors_out, upstream_seconds)
        except BaseException:
            resp.abort()
            raise

    async def _respond(
        self,
        ex: Exchange,
        backend: BackendPlan,
        resp: UpstreamResponse,
        freq: FilterRequest | None,
        cors_out: Headers,
        upstream_seconds: float,
    ) -> Outcome:
        route = self.route
        status = resp.status
        headers = end_to_end(resp.headers)
        if backend.response_headers is not None or route.response_headers is not None or cors_out or self.filters:
            headers = list(headers)
            if backend.response_headers is not None:
                apply_header_modifier(headers, backend.response_headers)
            if route.response_headers is not None:
                apply_header_modifier(headers, route.response_headers)
            if freq is not None:
                fresp = FilterResponse(status=status, headers=headers)
                for f in self.filters:
                    try:
                        await f.on_response(freq, fresp)
                    except Exception:
                        log.error("proxy.filter_failed route=%s filter=%r", self.name, f, exc_info=True)
                        self.metrics.filter_error(self.name)
                        resp.abort()
                        return await answer(ex, 500, body=b"filter failed")
                status, headers = fresp.status, fresp.headers
            headers.extend(cors_out)
        if status == 101:
            return await self._upgrade(ex, backend, resp, headers)
        sink = ex.response
        await sink.start(status, headers)
        sent = 0
        rbody = resp.body
        try:
            while True:
                chunk = await rbody.read()
                if not chunk:
                    break
                sent += len(chunk)
                await sink.send(chunk)
        except RemoteProtocolError:
            log.debug("proxy.upstream_body_broken route=%s", self.name)
            sink.abort()
            return Outcome(status, backend.name, sent, upstream_seconds)
        except (OSError, RuntimeError):
            resp.abort()
            sink.abort()
            return Outcome(status, backend.name, sent, upstream_seconds)
        await sink.end(rbody.trailers)
        return Outcome(status, backend.name, sent, upstream_seconds)

    async def _upgrade(self, ex: Exchange, backend: BackendPlan, resp: UpstreamResponse, headers: Headers) -> Outcome:
        token = next((v for k, v in resp.headers if k == "upgrade"), None)
        if ex.upgrade is None or token is None:
            resp.abort()
            return await answer(ex, 502, body=b"unexpected upgrade")
        up = resp.detach()
        down = ex.upgrade(101, [*headers, ("connection", "upgrade"), ("upgrade", token)])
        _, sent_down = await relay(down, up)
        return Outcome(101, backend.name, sent_down)

    # -- mirrors -----------------------------------------------------------------------------------------------
    def _mirror(self, cluster: ClusterPlan, req: UpstreamRequest, recording: RecordingBody | None) -> None:
        task = asyncio.get_running_loop().create_task(self._run_mirror(cluster, req, recording))
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def _run_mirror(self, cluster: ClusterPlan, req: UpstreamRequest, recording: RecordingBody | None) -> None:
        try:
            async with asyncio.timeout(MIRROR_TIMEOUT):
                body: BodySource = EmptyBody()
                if recording is not None:
                    await recording.finished.wait()
                    if recording.overflowed:
                        raise ValueError("request body too large to mirror")
                    body = BytesBody(recording.recorded())
                pool = cluster.pick()
                if pool is None:
                    raise UpstreamError("connect", f"mirror cluster {cluster.name} has no endpoints")
                copy = dataclasses.replace(req, upgrade=None)
                resp = await pool.request(copy, body)
                while await resp.body.read():
                    pass
        except Exception as exc:
            log.debug("proxy.mirror_failed cluster=%s error=%r", cluster.name, exc)
            self.metrics.mirror_failures.labels(cluster.name).inc()
