"""The compiled form of one IR listener: host lookup, 404/421, route dispatch, metrics and the access log.

This is the :class:`~nantian.proxy.exchange.ExchangeHandler` the front ends call.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from nantian.proxy.access_log import AccessLogFile
from nantian.proxy.bodies import BytesBody, StreamBody
from nantian.proxy.exchange import EmptyBody, Exchange
from nantian.proxy.metrics import ProxyMetrics, RequestStats
from nantian.proxy.route_plan import Outcome, RoutePlan, answer
from nantian.proxy.router import HostMap, RouteTable, host_of, split_target

__all__ = ["CompiledListener", "Section"]

access_log = logging.getLogger("nantian.access")

_ACCESS_LINE: Final = (
    "access listener=%s route=%s backend=%s method=%s authority=%s path=%s status=%d duration_ms=%.3f upstream_ms=%s "
    "bytes_in=%s bytes_out=%d client=%s protocol=HTTP/%s"
)
"""One request's access log line (``%`` formatting runs in C, faster than an f-string with format specs here)."""

HOST_CACHE_SIZE: Final = 1024
"""Authorities whose host lookup a compiled listener remembers (cleared when full)."""
HOST_CACHE_KEY_LIMIT: Final = 255


class Section:
    """One Gateway listener (``namespace/gateway/listener``) of an IR listener: its virtual hosts."""

    __slots__ = ("hostname", "name", "vhosts")

    def __init__(self, name: str, hostname: str | None, vhosts: HostMap[RouteTable[RoutePlan]]) -> None:
        self.name = name
        self.hostname = hostname
        self.vhosts = vhosts


class CompiledListener:
    """Routes requests of one IR listener. ``handle`` is called by the front ends for every request."""

    def __init__(
        self,
        name: str,
        sections: HostMap[Section],
        *,
        metrics: ProxyMetrics,
        detect_misdirected: bool = True,
        access_log_enabled: bool = True,
        access_log_file: AccessLogFile | None = None,
    ) -> None:
        self.name = name
        self.sections = sections
        self.metrics = metrics
        self.detect_misdirected = detect_misdirected
        self.access_log = access_log_enabled
        self.access_log_file = access_log_file
        """Where access log lines go when set (batched writes); else the ``nantian.access`` logger."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._hosts: dict[str, tuple[str, Section | None, RouteTable[RoutePlan] | None]] = {}
        """Authority (``Host``) -> (host, section, virtual host): the host lookups of recent authorities."""

    def _host(self, authority: str) -> tuple[str, Section | None, RouteTable[RoutePlan] | None]:
        found = self._hosts.get(authority)
        if found is None:
            host = host_of(authority)
            section = self.sections.lookup(host)
            found = (host, section, section.vhosts.lookup(host) if section is not None else None)
            if len(authority) <= HOST_CACHE_KEY_LIMIT:
                if len(self._hosts) >= HOST_CACHE_SIZE:
                    self._hosts.clear()
                self._hosts[authority] = found
        return found

    def lookup(self, exchange: Exchange) -> tuple[RoutePlan | None, int, str, str, str]:
        """Route ``exchange``: (plan, status if no plan (404, 421), path, query, host)."""
        head = exchange.head
        host, section, table = self._host(head.authority)
        path, query = split_target(head.target)
        if section is None:
            return None, 404, path, query, host
        if self.detect_misdirected and head.sni_section is not None and head.sni_section != section.name:
            return None, 421, path, query, host
        plan = table.match(head.method, path, query, head.headers) if table is not None else None
        return plan, 404, path, query, host

    async def handle(self, exchange: Exchange) -> None:
        plan, status, path, query, host = self.lookup(exchange)
        if plan is None:
            outcome = await answer(exchange, status, body=b"misdirected request" if status == 421 else b"no route")
            self.record(exchange, "-", outcome)
        else:
            outcome = await plan.serve(exchange, path, query, host)
            self.record(exchange, plan.name, outcome, self.stats_of(plan))

    def stats_of(self, plan: RoutePlan) -> RequestStats:
        """``plan``'s request statistics on this listener (looked up once, then kept by the plan)."""
        stats = plan.stats
        if stats is None:
            stats = plan.stats = self.metrics.stats_for(self.name, plan.name)
        return stats

    def record(self, exchange: Exchange, route: str, outcome: Outcome, stats: RequestStats | None = None) -> None:
        """Metrics and the access log line for one answered request (``stats``: the route's, if the caller has
        them)."""
        self.record_values(
            exchange,
            stats if stats is not None else self.metrics.stats_for(self.name, route),
            route,
            outcome.status,
            outcome.backend,
            outcome.bytes_out,
            outcome.upstream_seconds,
        )

    def record_values(
        self,
        exchange: Exchange,
        stats: RequestStats,
        route: str,
        status: int,
        backend: str,
        bytes_out: int,
        upstream: float | None,
        now: float = -1.0,
    ) -> None:
        """:meth:`record` from the values of an outcome, into ``stats`` (the fast path's way: no
        :class:`Outcome`, no lookup by name). ``now``: the loop time if the caller has it."""
        if now < 0.0:
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()  # cached: each call costs a getpid() system call
            now = loop.time()
        elapsed = now - exchange.received_at
        stats.observe(backend, status, elapsed)
        if not self.access_log:
            return
        out = self.access_log_file
        if out is None and not access_log.isEnabledFor(logging.INFO):
            return
        head = exchange.head
        body = exchange.body
        if isinstance(body, (EmptyBody, BytesBody)):  # complete bodies (getattr with a default would raise inside)
            received: int | None = body.content_length or 0
        elif isinstance(body, StreamBody):
            received = body.received
        else:
            received = getattr(body, "received", None)
        line = _ACCESS_LINE % (
            self.name,
            route,
            backend,
            head.method,
            head.authority,
            head.target,
            status,
            elapsed * 1000.0,
            "-" if upstream is None else "%.3f" % (upstream * 1000.0),
            received if received is not None else (body.content_length or 0),
            bytes_out,
            head.client[0] if head.client is not None else "-",
            head.http_version,
        )
        if out is not None:
            out.write(line)
        else:
            access_log.info("%s", line)
