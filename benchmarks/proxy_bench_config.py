"""Serve a generated Gateway-API-like route table with the nantian proxy, for benchmarks/proxy.sh.

Reads ``BACKEND_HOST``, ``BACKEND_PORT`` and ``PROXY_PORT`` from the environment (set by the bench kit) and serves
HTTP/1.1 on ``127.0.0.1:$PROXY_PORT`` under uvloop until killed.

The table has a few hundred routes over several virtual hosts: exact paths, path prefixes and header-matched
routes, in Gateway API precedence order. The measured route (``/``, what wrk requests) is last in its virtual host,
after routes with header matches the request does not satisfy, and has a header match itself (``host`` regex).
``--variant full`` gives it request and response header modifiers and request/backend timeouts;
``--variant passthrough`` keeps the timeouts but changes no header, so the proxy's fast path forwards the
received header bytes unchanged; ``--variant local`` answers the measured route itself (200, no backend: what
benchmarks/proxy_workers.py uses to show ``--workers`` scaling with no backend on the cores). All variants keep the
metrics; ``full`` also writes the access log (one line per
request, batched, to a temporary file removed at exit; ``--access-log PATH`` keeps it), ``passthrough`` does not.

``--workers N`` (N > 1) serves the same snapshot from N worker processes sharing the port with ``SO_REUSEPORT``,
supervised by this process as ``nantian standalone/proxy --workers`` do (:mod:`nantian.proxy.workers`); run the
kit with ``--no-pin`` then.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import tempfile
from typing import Any

from nantian import ir
from nantian.proxy import ProxyRuntime, RuntimeOptions
from nantian.proxy.workers import WorkerChannel, WorkerChannelServer, WorkerSupervisor

GATEWAY = "bench/gateway"
SECTION = f"{GATEWAY}/http"


def _measured_route(variant: str) -> ir.HttpRoute:
    full = variant == "full"
    local = variant == "local"
    return ir.HttpRoute(
        name="HTTPRoute/bench/measured/0/0",
        route="HTTPRoute/bench/measured",
        match=ir.HttpMatch(
            path=ir.PathMatch(type=ir.PathMatchType.PREFIX, value="/"),
            headers=(ir.HeaderMatch(name="host", value=r"127\.0\.0\.1(:[0-9]+)?", type=ir.StringMatchType.REGEX),),
        ),
        request_headers=ir.HeaderModifier(
            set=(ir.Header(name="x-gateway", value="nantian"),), add=(ir.Header(name="x-route", value="measured"),)
        )
        if full
        else None,
        response_headers=ir.HeaderModifier(set=(ir.Header(name="x-served-by", value="nantian"),)) if full else None,
        timeouts=ir.Timeouts(request=15.0, backend_request=10.0),
        backends=() if local else (ir.WeightedCluster(cluster="bench/backend:80"),),
        direct_status=200 if local else None,
    )


def _filler_routes(prefix: str, count: int) -> list[ir.HttpRoute]:
    routes: list[ir.HttpRoute] = []
    for i in range(count):
        kind = i % 3
        if kind == 0:
            match = ir.HttpMatch(path=ir.PathMatch(type=ir.PathMatchType.EXACT, value=f"/api/v1/{prefix}{i}"))
        elif kind == 1:
            match = ir.HttpMatch(path=ir.PathMatch(type=ir.PathMatchType.PREFIX, value=f"/{prefix}{i}/"))
        else:
            match = ir.HttpMatch(
                path=ir.PathMatch(type=ir.PathMatchType.PREFIX, value=f"/{prefix}{i}"),
                headers=(ir.HeaderMatch(name="x-tenant", value=f"t{i}"),),
                method="POST",
            )
        routes.append(
            ir.HttpRoute(
                name=f"HTTPRoute/bench/{prefix}{i}/0/0",
                route=f"HTTPRoute/bench/{prefix}{i}",
                match=match,
                request_headers=ir.HeaderModifier(set=(ir.Header(name="x-svc", value=f"{prefix}{i}"),)),
                backends=(ir.WeightedCluster(cluster="bench/backend:80"),),
            )
        )
    # routes on "/" that the benchmark request does not match (more header matches: they come first)
    for i in range(10):
        routes.append(
            ir.HttpRoute(
                name=f"HTTPRoute/bench/{prefix}-canary{i}/0/0",
                route=f"HTTPRoute/bench/{prefix}-canary{i}",
                match=ir.HttpMatch(
                    headers=(
                        ir.HeaderMatch(name="x-canary", value="true"),
                        ir.HeaderMatch(name="x-tenant", value=f"c{i}"),
                    )
                ),
                backends=(ir.WeightedCluster(cluster="bench/backend:80"),),
            )
        )
    return routes


def build_snapshot(backend_host: str, backend_port: int, proxy_port: int, variant: str, routes: int) -> ir.Snapshot:
    """The benchmark snapshot: ``routes`` filler routes spread over 5 named hosts and the catch-all host."""
    per_host = max(routes // 6, 1)
    vhosts = [
        ir.VirtualHost(
            section=SECTION,
            section_hostname=None,
            hostname=f"app{h}.example.com",
            routes=tuple(_filler_routes(f"app{h}-", per_host)),
        )
        for h in range(5)
    ]
    vhosts.append(
        ir.VirtualHost(
            section=SECTION,
            section_hostname=None,
            hostname="*",
            routes=(*_filler_routes("svc", per_host), _measured_route(variant)),
        )
    )
    listener = ir.Listener(
        name=f"{GATEWAY}/{proxy_port}/HTTP",
        gateway=GATEWAY,
        address="127.0.0.1",
        port=proxy_port,
        protocol=ir.Protocol.HTTP,
        virtual_hosts=tuple(vhosts),
    )
    cluster = ir.Cluster(
        name="bench/backend:80", endpoints=(ir.Endpoint(address=backend_host, port=backend_port),), connect_timeout=1.0
    )
    return ir.Snapshot.build([listener], [cluster])


def hotpath_runner() -> asyncio.Runner:
    """An event loop runner for the in-memory hot-path benchmarks: uvloop's, as the proxy's, when installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


async def hotpath_runtime(variant: str, access_log: str, *, http2_cleartext: bool) -> tuple[ProxyRuntime, Any, Any]:
    """For the in-memory hot-path benchmarks: a runtime serving the benchmark snapshot on a free loopback port (the
    full variant writes the access log to ``access_log``, as benchmarks/proxy.sh's does), the measured listener's
    handle (:class:`~nantian.proxy.exchange.ListenerRef`) and the measured route's HTTP/1.1 upstream pool. Close
    the runtime when done."""
    from nantian.proxy.handler import CompiledListener
    from nantian.proxy.upstream_http1 import Http1Pool

    with socket.socket() as probe:  # the runtime binds the listener for real: a free loopback port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    full = variant == "full"
    rt = ProxyRuntime(
        RuntimeOptions(access_log=full, access_log_path=access_log if full else None, http2_cleartext=http2_cleartext)
    )
    await rt.apply(build_snapshot("127.0.0.1", 9, port, variant, 300))
    ref = next(iter(rt._bound.values())).ref
    assert ref is not None
    listener = ref.current
    assert isinstance(listener, CompiledListener)
    section = listener.sections.lookup("127.0.0.1")
    assert section is not None
    table = section.vhosts.lookup("127.0.0.1")
    assert table is not None
    plan = table.match("GET", "/", "", [("host", "127.0.0.1:8080")])
    assert plan is not None
    backend = plan.backends.pick()
    assert backend is not None and backend.cluster is not None
    pool = backend.cluster.pick()
    assert isinstance(pool, Http1Pool)
    return rt, ref, pool


async def serve(snapshot: ir.Snapshot, channel_path: str | None = None, access_log: str | None = None) -> None:
    """Serve ``snapshot`` until killed (a worker: until its supervisor goes away)."""
    channel = WorkerChannel(channel_path) if channel_path else None
    if channel is not None:
        await channel.connect()
    # HTTP/1.1 only, like the kit's Envoy bootstrap (codec_type: HTTP1)
    rt = ProxyRuntime(
        RuntimeOptions(
            access_log=access_log is not None,
            access_log_path=access_log,
            bind_failure="reject",
            http2_cleartext=False,
            reuse_port=channel is not None,
            port_guard=channel,
        )
    )
    await rt.apply(snapshot)
    try:
        if channel is not None:
            await channel.closed.wait()
        else:
            stop = asyncio.Event()
            for sig in (signal.SIGTERM, signal.SIGINT):  # exit cleanly: the temporary access log is removed
                asyncio.get_running_loop().add_signal_handler(sig, stop.set)
            await stop.wait()
    finally:
        await rt.close()
        if channel is not None:
            await channel.close()


async def supervise(workers: int, argv: list[str]) -> None:
    """Run ``workers`` copies of this script as workers until SIGTERM/SIGINT."""
    channel = WorkerChannelServer()
    await channel.start()
    supervisor = WorkerSupervisor(
        workers, lambda i: [sys.executable, os.path.abspath(__file__), *argv, "--worker-channel", channel.path]
    )
    await supervisor.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await supervisor.stop(5.0)
        await channel.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=("full", "passthrough", "local"), default="full")
    parser.add_argument("--routes", type=int, default=300)
    parser.add_argument("--workers", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)")
    parser.add_argument("--access-log", help="full variant: write the access log here (default: a temporary file)")
    parser.add_argument("--worker-channel", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    snap = build_snapshot(
        os.environ.get("BACKEND_HOST", "127.0.0.1"),
        int(os.environ["BACKEND_PORT"]),
        int(os.environ["PROXY_PORT"]),
        args.variant,
        args.routes,
    )
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    access_log: str | None = args.access_log
    temporary: str | None = None
    if args.variant == "full" and access_log is None:
        fd, temporary = tempfile.mkstemp(prefix="nantian-bench-access-", suffix=".log")
        os.close(fd)
        access_log = temporary
    try:
        with runner:
            if args.workers > 1 and not args.worker_channel:
                argv = ["--variant", args.variant, "--routes", str(args.routes)]
                runner.run(supervise(args.workers, [*argv, "--access-log", access_log] if access_log else argv))
            else:
                runner.run(serve(snap, args.worker_channel, access_log))
    finally:
        if temporary is not None:
            os.unlink(temporary)


if __name__ == "__main__":
    main()
