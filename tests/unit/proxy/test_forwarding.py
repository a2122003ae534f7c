"""Forwarding through the proxy to real upstreams on loopback: routing, filters, bodies, pools, failures."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence

import httpx
from http1_harness import (
    Seen,
    Upstream,
    cluster,
    free_port,
    listener,
    raw_exchange,
    route,
    running,
    snapshot,
    status_of,
)

from nantian import ir


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=5.0)


async def test_forwards_with_forwarded_headers_and_keep_alive_reuse() -> None:
    async with Upstream() as up:
        port = free_port()
        snap = snapshot([listener(port, [route("r", "c")])], [cluster("c", up.port)])
        async with running(snap) as rt, _client() as c:
            for _ in range(5):
                r = await c.get(f"http://127.0.0.1:{port}/hello?x=1", headers={"x-forwarded-for": "10.0.0.1"})
                assert r.status_code == 200
            doc = r.json()
            assert doc["target"] == "/hello?x=1"
            h = dict(doc["headers"])
            assert h["x-forwarded-for"].startswith("10.0.0.1") and h["x-forwarded-for"].endswith("127.0.0.1")
            assert h["x-forwarded-proto"] == "http"
            assert h["host"] == f"127.0.0.1:{port}"
            assert up.connections == 1  # one pooled upstream connection for five requests
            assert rt.counters()["requests"] == 5


async def test_hop_by_hop_headers_are_not_forwarded() -> None:
    async with Upstream() as up:
        port = free_port()
        snap = snapshot([listener(port, [route("r", "c")])], [cluster("c", up.port)])
        async with running(snap), _client() as c:
            r = await c.get(
                f"http://127.0.0.1:{port}/",
                headers={"connection": "keep-alive, x-private", "x-private": "1", "keep-alive": "5", "te": "gzip"},
            )
            names = {k for k, _ in r.json()["headers"]}
            assert not names & {"connection", "x-private", "keep-alive", "te"}


async def test_404_without_route_and_host_routing() -> None:
    async with Upstream(name="a") as a, Upstream(name="b") as b:
        port = free_port()
        lst = ir.Listener(
            name="ns/gw/1/HTTP",
            gateway="ns/gw",
            address="127.0.0.1",
            port=port,
            protocol=ir.Protocol.HTTP,
            virtual_hosts=(
                ir.VirtualHost(
                    section="ns/gw/s", section_hostname=None, hostname="a.example", routes=(route("ra", "a"),)
                ),
                ir.VirtualHost(
                    section="ns/gw/s", section_hostname=None, hostname="*.b.example", routes=(route("rb", "b"),)
                ),
            ),
        )
        snap = snapshot([lst], [cluster("a", a.port), cluster("b", b.port)])
        async with running(snap), _client() as c:
            base = f"http://127.0.0.1:{port}/"
            assert (await c.get(base, headers={"host": "a.example:80"})).headers["x-upstream"] == "a"
            assert (await c.get(base, headers={"host": "x.y.b.example"})).headers["x-upstream"] == "b"
            assert (await c.get(base, headers={"host": "c.example"})).status_code == 404


async def test_streaming_bodies_both_ways() -> None:
    async with Upstream() as up:
        port = free_port()
        snap = snapshot([listener(port, [route("r", "c")])], [cluster("c", up.port)])
        async with running(snap), _client() as c:

            async def gen() -> object:
                for i in range(50):
                    yield b"%04d" % i * 1000

            r = await c.post(f"http://127.0.0.1:{port}/up", content=gen())  # type: ignore[arg-type]
            assert r.status_code == 200
            assert len(r.json()["body"]) == 50 * 4000
            big = b"z" * 3_000_000
            r = await c.put(f"http://127.0.0.1:{port}/big", content=big)
            assert len(r.json()["body"]) == len(big)
            r = await c.get(f"http://127.0.0.1:{port}/chunks/5")
            assert r.text == "chunk0;chunk1;chunk2;chunk3;chunk4;"


async def test_weighted_split_and_zero_weight() -> None:
    async with Upstream(name="a") as a, Upstream(name="b") as b, Upstream(name="z") as z:
        port = free_port()
        r = route(
            "r",
            ir.WeightedCluster(cluster="a", weight=3),
            ir.WeightedCluster(cluster="b", weight=1),
            ir.WeightedCluster(cluster="z", weight=0),
        )
        snap = snapshot([listener(port, [r])], [cluster(n, u.port) for n, u in (("a", a), ("b", b), ("z", z))])
        async with running(snap), _client() as c:
            seen = [(await c.get(f"http://127.0.0.1:{port}/")).headers["x-upstream"] for _ in range(200)]
        assert "z" not in seen
        assert 0.6 < seen.count("a") / 200 < 0.9


async def test_invalid_backend_share_answers_500_and_no_backends_500() -> None:
    async with Upstream() as up:
        port = free_port()
        routes = [
            route("bad", ir.WeightedCluster(cluster=None), match=ir.HttpMatch(path=ir.PathMatch(value="/bad"))),
            route("none", match=ir.HttpMatch(path=ir.PathMatch(value="/none"))),
            route("direct", match=ir.HttpMatch(path=ir.PathMatch(value="/direct")), direct_status=503),
        ]
        snap = snapshot([listener(port, routes)], [cluster("c", up.port)])
        async with running(snap), _client() as c:
            assert (await c.get(f"http://127.0.0.1:{port}/bad")).status_code == 500
            assert (await c.get(f"http://127.0.0.1:{port}/none")).status_code == 500
            assert (await c.get(f"http://127.0.0.1:{port}/direct")).status_code == 503


async def test_garbage_from_the_upstream_gives_502() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    try:
        port = free_port()
        snap = snapshot([listener(port, [route("r", "c")])], [cluster("c", server.sockets[0].getsockname()[1])])
        async with running(snap), _client() as c:
            assert (await c.get(f"http://127.0.0.1:{port}/")).status_code == 502
    finally:
        server.close()


async def test_dead_backend_answers_503_quickly() -> None:
    dead = free_port()
    port = free_port()
    snap = snapshot([listener(port, [route("r", "c")])], [cluster("c", dead), cluster("empty")])
    async with running(snap) as rt, _client() as c:
        async with asyncio.timeout(3):
            assert (await c.get(f"http://127.0.0.1:{port}/")).status_code == 503
        assert rt.counters()["upstream_connect_errors"] == 1
        text = _metrics_text(rt)
        assert 'nantian_proxy_upstream_connect_errors_total{cluster="c"} 1.0' in text


async def test_unreachable_backend_times_out_with_connect_timeout() -> None:
    import socket

    # a listener whose accept queue is full: the kernel drops further SYNs, so connecting hangs
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    fillers = []
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            s.connect(full.getsockname())
        fillers.append(s)
    await asyncio.sleep(0.05)
    port = free_port()
    c1 = ir.Cluster(
        name="c", endpoints=(ir.Endpoint(address="127.0.0.1", port=full.getsockname()[1]),), connect_timeout=0.3
    )
    snap = snapshot([listener(port, [route("r", "c")])], [c1])
    try:
        async with running(snap), _client() as c:
            async with asyncio.timeout(3):
                t0 = asyncio.get_running_loop().time()
                assert (await c.get(f"http://127.0.0.1:{port}/")).status_code == 503
                assert asyncio.get_running_loop().time() - t0 >= 0.25
    finally:
        for s in fillers:
            s.close()
        full.close()


async def test_request_and_backend_timeouts_answer_504() -> None:
    async with Upstream() as up:
        port = free_port()
        routes = [
            route("req", "c", match=ir.HttpMatch(path=ir.PathMatch(value="/a")), timeouts=ir.Timeouts(request=0.2)),
            route(
                "try", "c", match=ir.HttpMatch(path=ir.PathMatch(value="/b")), timeouts=ir.Timeouts(backend_request=0.2)
            ),
        ]
        snap = snapshot([listener(port, routes)], [cluster("c", up.port)])
        async with running(snap), _client() as c:
            async with asyncio.timeout(3):
                assert (await c.get(f"http://127.0.0.1:{port}/a/delay/2")).status_code == 504
                assert (await c.get(f"http://127.0.0.1:{port}/b/delay/2")).status_code == 504
                assert (await c.get(f"http://127.0.0.1:{port}/a/fast")).status_code == 200


async def test_retries_on_codes_and_connection_errors() -> None:
    calls = 0

    async def flaky(seen: Seen) -> tuple[int, list[tuple[str, str]], bytes] | None:
        nonlocal calls
        calls += 1
        return (503, [], b"") if calls < 3 else (200, [], seen.body)

    async with Upstream(flaky) as up:
        port = free_port()
        retry = ir.Retry(codes=(503,), attempts=3, backoff=0.01)
        snap = snapshot([listener(port, [route("r", "c", retry=retry)])], [cluster("c", up.port)])
        async with running(snap) as rt, _client() as c:
            r = await c.post(f"http://127.0.0.1:{port}/", content=b"payload")
            assert r.status_code == 200 and r.content == b"payload"  # the body was replayed
            assert calls == 3
            assert 'nantian_proxy_retries_total{route="r"} 2.0' in _metrics_text(rt)


async def test_backend_request_timeouts_are_retried_within_the_attempts() -> None:
    calls = 0

    async def slow_twice(seen: Seen) -> tuple[int, list[tuple[str, str]], bytes] | None:
        nonlocal calls
        calls += 1
        if calls <= 2:
            await asyncio.sleep(0.5)
        return 200, [], b"late ok"

    async with Upstream(slow_twice) as up:
        port = free_port()
        r = route("r", "c", retry=ir.Retry(attempts=2, backoff=0.01), timeouts=ir.Timeouts(backend_request=0.2))
        snap = snapshot([listener(port, [r])], [cluster("c", up.port)])
        async with running(snap), _client() as c:
            async with asyncio.timeout(5):
                resp = await c.get(f"http://127.0.0.1:{port}/")
            assert resp.status_code == 200 and resp.content == b"late ok"
            assert calls == 3


async def test_retries_exhausted_return_last_status() -> None:
    async with Upstream() as up:
        port = free_port()
        retry = ir.Retry(codes=(500,), attempts=1, backoff=0.01)
        snap = snapshot([listener(port, [route("r", "c", retry=retry)])], [cluster("c", up.port)])
        async with running(snap), _client() as c:
            assert (await c.get(f"http://127.0.0.1:{port}/status/500")).status_code == 500
        assert len(up.seen) == 2


async def test_retry_on_connection_error_moves_to_another_endpoint() -> None:
    async with Upstream() as up:
        port = free_port()
        dead = free_port()
        c1 = ir.Cluster(
            name="c",
            endpoints=(ir.Endpoint(address="127.0.0.1", port=dead), ir.Endpoint(address="127.0.0.1", port=up.port)),
        )
        snap = snapshot([listener(port, [route("r", "c", retry=ir.Retry(attempts=2, backoff=0.01))])], [c1])
        async with running(snap), _client() as c:
            for _ in range(4):
                assert (await c.get(f"http://127.0.0.1:{port}/")).status_code == 200


async def test_mirrors_get_a_copy_and_never_change_the_answer() -> None:
    async with Upstream(name="main") as main, Upstream(name="mirror") as mirror:
        port = free_port()
        dead = free_port()
        r = route("r", "main", mirrors=(ir.Mirror(cluster="mirror"), ir.Mirror(cluster="dead")))
        snap = snapshot(
            [listener(port, [r])], [cluster("main", main.port), cluster("mirror", mirror.port), cluster("dead", dead)]
        )
        async with running(snap), _client() as c:
            resp = await c.post(f"http://127.0.0.1:{port}/m", content=b"copy me")
            assert resp.status_code == 200 and resp.headers["x-upstream"] == "main"
            async with asyncio.timeout(3):
                await mirror.wait_for(1)
            assert mirror.seen[0].target == "/m" and mirror.seen[0].body == b"copy me"


async def test_mirror_percent_zero_sends_nothing() -> None:
    async with Upstream(name="main") as main, Upstream(name="mirror") as mirror:
        port = free_port()
        r = route("r", "main", mirrors=(ir.Mirror(cluster="mirror", percent=0.0),))
        snap = snapshot([listener(port, [r])], [cluster("main", main.port), cluster("mirror", mirror.port)])
        async with running(snap), _client() as c:
            for _ in range(10):
                await c.get(f"http://127.0.0.1:{port}/")
            await asyncio.sleep(0.05)
        assert mirror.seen == []


async def test_redirect_and_rewrite() -> None:
    async with Upstream() as up:
        port = free_port()
        routes = [
            route(
                "redir",
                match=ir.HttpMatch(path=ir.PathMatch(value="/old")),
                redirect=ir.Redirect(
                    scheme="https", path=ir.PathModifier(type=ir.PathModifierType.PREFIX, value="/new"), status_code=301
                ),
            ),
            route(
                "rw",
                "c",
                match=ir.HttpMatch(path=ir.PathMatch(value="/api")),
                rewrite=ir.Rewrite(
                    hostname="internal.svc", path=ir.PathModifier(type=ir.PathModifierType.PREFIX, value="/v2")
                ),
            ),
        ]
        snap = snapshot([listener(port, routes)], [cluster("c", up.port)])
        async with running(snap), _client() as c:
            r = await c.get(f"http://127.0.0.1:{port}/old/x?q=1", headers={"host": "site.example"})
            assert r.status_code == 301
            assert r.headers["location"] == "https://site.example/new/x?q=1"
            r = await c.get(f"http://127.0.0.1:{port}/api/users?id=3")
            doc = r.json()
            assert doc["target"] == "/v2/users?id=3"
            assert dict(doc["headers"])["host"] == "internal.svc"


async def test_header_modifiers_route_and_backend() -> None:
    async with Upstream() as up:
        port = free_port()
        r = route(
            "r",
            ir.WeightedCluster(
                cluster="c",
                request_headers=ir.HeaderModifier(add=(ir.Header(name="x-backend", value="c"),)),
                response_headers=ir.HeaderModifier(set=(ir.Header(name="x-b-resp", value="1"),)),
            ),
            request_headers=ir.HeaderModifier(
                set=(ir.Header(name="x-set", value="s"),), remove=("x-drop",), add=(ir.Header(name="x-add", value="a"),)
            ),
            response_headers=ir.HeaderModifier(remove=("x-upstream",), add=(ir.Header(name="x-resp", value="r"),)),
        )
        snap = snapshot([listener(port, [r])], [cluster("c", up.port)])
        async with running(snap), _client() as c:
            resp = await c.get(f"http://127.0.0.1:{port}/", headers={"x-drop": "1", "x-set": "old", "x-add": "z"})
            h = resp.json()["headers"]
            assert ["x-set", "s"] in h and ["x-backend", "c"] in h
            assert ["x-add", "z"] in h and ["x-add", "a"] in h
            assert not any(k == "x-drop" for k, _ in h)
            assert resp.headers["x-resp"] == "r" and resp.headers["x-b-resp"] == "1"
            assert "x-upstream" not in resp.headers


async def test_cors_preflight_answered_locally_and_headers_on_responses() -> None:
    async with Upstream() as up:
        port = free_port()
        cors = ir.Cors(allow_origins=("https://app.test",), allow_methods=("GET",), expose_headers=("x-upstream",))
        snap = snapshot([listener(port, [route("r", "c", cors=cors)])], [cluster("c", up.port)])
        async with running(snap), _client() as c:
            pre = await c.request(
                "OPTIONS",
                f"http://127.0.0.1:{port}/",
                headers={"origin": "https://app.test", "access-control-request-method": "GET"},
            )
            assert pre.status_code == 200 and pre.headers["access-control-allow-methods"] == "GET"
            assert up.seen == []
            r = await c.get(f"http://127.0.0.1:{port}/", headers={"origin": "https://app.test"})
            assert r.headers["access-control-allow-origin"] == "https://app.test"
            assert r.headers["access-control-expose-headers"] == "x-upstream"


async def test_misdirected_request_421() -> None:
    from nantian.proxy.asyncio_http1 import Http1Server  # the TLS front end passes sni_section the same way

    async with Upstream() as up:
        port = free_port()
        lst = ir.Listener(
            name="ns/gw/1/HTTP",
            gateway="ns/gw",
            address="127.0.0.1",
            port=port,
            protocol=ir.Protocol.HTTP,
            virtual_hosts=(
                ir.VirtualHost(
                    section="ns/gw/a", section_hostname="a.example", hostname="a.example", routes=(route("ra", "c"),)
                ),
                ir.VirtualHost(
                    section="ns/gw/b", section_hostname="b.example", hostname="b.example", routes=(route("rb", "c"),)
                ),
            ),
        )
        snap = snapshot([lst], [cluster("c", up.port)])
        async with running(snap) as rt:
            ref = rt._bound[lst.name].ref
            loop = asyncio.get_running_loop()
            server = await loop.create_server(lambda: Http1Server(ref, sni_section="ns/gw/a"), "127.0.0.1", 0)
            sport = server.sockets[0].getsockname()[1]
            try:
                ok = await raw_exchange(sport, b"GET / HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n")
                bad = await raw_exchange(sport, b"GET / HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n")
            finally:
                server.close()
            assert status_of(ok) == 200
            assert status_of(bad) == 421


async def test_plugin_filters_change_requests_answer_locally_and_fail_with_500() -> None:
    import pluggy

    from nantian.plugins import hookspecs
    from nantian.proxy import FilterRequest, FilterResponse, LocalResponse, ProxyRuntime, RuntimeOptions

    class Tagger:
        async def on_request(self, request: FilterRequest) -> LocalResponse | None:
            if request.target.startswith("/deny"):
                return LocalResponse(403, [("x-why", "denied")], b"no")
            if request.target.startswith("/boom"):
                raise RuntimeError("filter bug")
            request.headers.append(("x-tag", json.loads(cfg)["tag"]))
            return None

        async def on_response(self, request: FilterRequest, response: FilterResponse) -> None:
            response.headers.append(("x-filtered", "yes"))

    cfg = '{"tag": "t1"}'

    class Plugin:
        @hookspecs.hookimpl
        def nantian_http_filters(self, route: ir.HttpRoute, filter: ir.PluginFilter) -> Sequence[object] | None:
            return [Tagger()] if filter.name.endswith("/tagger") else None

    pm = pluggy.PluginManager("nantian")
    pm.add_hookspecs(hookspecs)
    pm.register(Plugin())
    async with Upstream() as up:
        port = free_port()
        routes = [
            route(
                "missing",
                "c",
                match=ir.HttpMatch(path=ir.PathMatch(value="/missing")),
                plugin_filters=(ir.PluginFilter(name="g/K/ns/unknown"),),
            ),
            route("r", "c", plugin_filters=(ir.PluginFilter(name="g/K/ns/tagger", config=cfg),)),
        ]
        snap = snapshot([listener(port, routes)], [cluster("c", up.port)])
        rt = ProxyRuntime(RuntimeOptions(access_log=False), plugin_manager=pm)
        await rt.apply(snap)
        try:
            async with _client() as c:
                r = await c.get(f"http://127.0.0.1:{port}/ok")
                assert ["x-tag", "t1"] in r.json()["headers"] and r.headers["x-filtered"] == "yes"
                r = await c.get(f"http://127.0.0.1:{port}/deny")
                assert r.status_code == 403 and r.headers["x-why"] == "denied" and r.content == b"no"
                assert (await c.get(f"http://127.0.0.1:{port}/boom")).status_code == 500
                assert (await c.get(f"http://127.0.0.1:{port}/missing")).status_code == 500
            assert rt.counters()["filter_errors"] == 1
        finally:
            await rt.close()


async def test_upstream_reset_before_the_head_gives_503_and_body_truncation_aborts() -> None:
    async with Upstream() as up:
        port = free_port()
        snap = snapshot([listener(port, [route("r", "c")])], [cluster("c", up.port)])
        async with running(snap), _client() as c:
            assert (await c.get(f"http://127.0.0.1:{port}/close")).status_code == 503
            assert (await c.get(f"http://127.0.0.1:{port}/ok")).status_code == 200

    async def short_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(short_body, "127.0.0.1", 0)
    try:
        port = free_port()
        snap = snapshot([listener(port, [route("r", "c")])], [cluster("c", server.sockets[0].getsockname()[1])])
        async with running(snap):
            out = await raw_exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        head, _, body = out.partition(b"\r\n\r\n")
        assert status_of(head) == 200 and b"content-length: 100" in head.lower()
        assert body == b"0123456789"  # the client sees the truncation: the connection closed early
    finally:
        server.close()


async def test_access_log_line(caplog: object) -> None:
    import logging

    import pytest

    assert isinstance(caplog, pytest.LogCaptureFixture)
    async with Upstream() as up:
        port = free_port()
        snap = snapshot([listener(port, [route("r", "c")])], [cluster("c", up.port)])
        with caplog.at_level(logging.INFO, logger="nantian.access"):
            async with running(snap, access_log=True), _client() as c:
                await c.get(f"http://127.0.0.1:{port}/logged")
        lines = [r.getMessage() for r in caplog.records if r.name == "nantian.access"]
        assert len(lines) == 1
        line = lines[0]
        assert "route=r" in line and "backend=c" in line and "status=200" in line and "path=/logged" in line
        assert "duration_ms=" in line and "bytes_out=" in line


def _metrics_text(rt: object) -> str:
    from prometheus_client import generate_latest

    from nantian.proxy import ProxyRuntime

    assert isinstance(rt, ProxyRuntime)
    return generate_latest(rt.metrics.registry).decode()
