"""The callback fast path gives the same answers as the general path (warm keep-alive connections)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
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


async def test_fast_path_forwards_with_modifiers_and_rewrites() -> None:
    async with Upstream() as up:
        port = free_port()
        r = route(
            "r",
            ir.WeightedCluster(
                cluster="c", response_headers=ir.HeaderModifier(add=(ir.Header(name="x-b", value="1"),))
            ),
            request_headers=ir.HeaderModifier(set=(ir.Header(name="x-set", value="s"),)),
            response_headers=ir.HeaderModifier(remove=("x-upstream",)),
            rewrite=ir.Rewrite(path=ir.PathModifier(type=ir.PathModifierType.FULL, value="/rewritten")),
            timeouts=ir.Timeouts(request=5.0, backend_request=5.0),
        )
        snap = snapshot([listener(port, [r])], [cluster("c", up.port)])
        async with running(snap) as rt, httpx.AsyncClient() as c:
            for _ in range(5):
                resp = await c.get(f"http://127.0.0.1:{port}/x?q=1")
                assert resp.status_code == 200
                doc = resp.json()
                assert doc["target"] == "/rewritten?q=1" and ["x-set", "s"] in doc["headers"]
                assert resp.headers["x-b"] == "1" and "x-upstream" not in resp.headers
            assert rt.counters()["fast_path"] >= 4  # all but the first (which opened the connection)
            assert up.connections == 1


async def test_fast_path_timeouts_answer_504() -> None:
    async with Upstream() as up:
        port = free_port()
        routes = [
            route("req", "c", match=ir.HttpMatch(path=ir.PathMatch(value="/a")), timeouts=ir.Timeouts(request=0.2)),
            route(
                "try", "c", match=ir.HttpMatch(path=ir.PathMatch(value="/b")), timeouts=ir.Timeouts(backend_request=0.2)
            ),
        ]
        snap = snapshot([listener(port, routes)], [cluster("c", up.port)])
        async with running(snap) as rt, httpx.AsyncClient() as c:
            assert (await c.get(f"http://127.0.0.1:{port}/a/warm")).status_code == 200
            before = rt.counters()["fast_path"]
            async with asyncio.timeout(3):
                assert (await c.get(f"http://127.0.0.1:{port}/a/delay/2")).status_code == 504
            assert rt.counters()["fast_path"] == before + 1
            assert (await c.get(f"http://127.0.0.1:{port}/b/warm")).status_code == 200
            async with asyncio.timeout(3):
                assert (await c.get(f"http://127.0.0.1:{port}/b/delay/2")).status_code == 504
            assert (await c.get(f"http://127.0.0.1:{port}/a/fine")).status_code == 200


async def test_stale_keep_alive_connection_falls_back_transparently(monkeypatch: pytest.MonkeyPatch) -> None:
    from nantian.proxy import upstream_http1

    monkeypatch.setattr(upstream_http1, "STALE_IDLE", 0.0)  # any reused connection counts as possibly stale
    calls = 0

    async def drop_second(seen: Seen) -> tuple[int, list[tuple[str, str]], bytes] | None:
        nonlocal calls
        calls += 1
        return (0, [], b"") if calls == 2 else (200, [], b"ok")  # the 2nd request finds its connection closed

    async with Upstream(drop_second) as up:
        port = free_port()
        snap = snapshot([listener(port, [route("r", "c")])], [cluster("c", up.port)])
        async with running(snap) as rt, httpx.AsyncClient() as c:
            assert (await c.get(f"http://127.0.0.1:{port}/")).status_code == 200
            async with asyncio.timeout(3):
                r = await c.get(f"http://127.0.0.1:{port}/")
            assert r.status_code == 200 and r.content == b"ok"  # replayed on a fresh connection
            assert calls == 3 and up.connections == 2
            assert rt.counters()["fast_path"] == 1


async def test_fast_path_flow_control_with_a_slow_reader() -> None:
    big = b"x" * (4 * 1024 * 1024)

    async def large(seen: Seen) -> tuple[int, list[tuple[str, str]], bytes] | None:
        return 200, [], big

    async with Upstream(large) as up:
        port = free_port()
        snap = snapshot([listener(port, [route("r", "c")])], [cluster("c", up.port)])
        async with running(snap) as rt:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1024)
            for _ in range(2):  # the second request takes the fast path
                writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                async with asyncio.timeout(10):
                    head = await reader.readuntil(b"\r\n\r\n")
                    assert status_of(head) == 200
                    got = 0
                    while got < len(big):
                        chunk = await reader.read(65536)
                        assert chunk
                        got += len(chunk)
                        if got < 1024 * 1024:
                            await asyncio.sleep(0.001)  # slow at first: the proxy must pause the upstream
            assert rt.counters()["fast_path"] == 1
            writer.close()


async def test_client_leaving_mid_response_on_the_fast_path() -> None:
    async with Upstream() as up:
        port = free_port()
        snap = snapshot([listener(port, [route("r", "c")])], [cluster("c", up.port)])
        async with running(snap) as rt:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /warm HTTP/1.1\r\nHost: a\r\n\r\n")
            async with asyncio.timeout(3):
                await reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(0.05)
            writer.write(b"GET /chunks/30 HTTP/1.1\r\nHost: a\r\n\r\n")
            await asyncio.sleep(0.05)
            writer.transport.abort()
            await asyncio.sleep(0.1)
            out = await raw_exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            assert status_of(out) == 200
            assert rt.counters()["fast_path"] >= 1


async def test_a_fresh_reused_connection_failing_is_not_resent() -> None:
    """Below ``STALE_IDLE`` a reset is the request's own failure: no hidden extra try (retries count exactly)."""
    calls = 0

    async def drop_second(seen: Seen) -> tuple[int, list[tuple[str, str]], bytes] | None:
        nonlocal calls
        calls += 1
        return (0, [], b"") if calls == 2 else (200, [], b"ok")

    async with Upstream(drop_second) as up:
        port = free_port()
        snap = snapshot([listener(port, [route("r", "c")])], [cluster("c", up.port)])
        async with running(snap), httpx.AsyncClient() as c:
            assert (await c.get(f"http://127.0.0.1:{port}/")).status_code == 200
            assert (await c.get(f"http://127.0.0.1:{port}/")).status_code == 503
            assert calls == 2


async def test_fast_path_response_heads_drop_hop_by_hop_fields() -> None:
    async def hop(seen: Seen) -> tuple[int, list[tuple[str, str]], bytes | list[bytes]] | None:
        if "named" in seen.target:
            return 200, [("Connection", "keep-alive, X-Private"), ("X-Private", "1"), ("X-Public", "2")], b"n"
        if "chunked" in seen.target:
            return 200, [("Keep-Alive", "timeout=5"), ("X-Public", "3")], [b"a", b"b"]
        return 200, [("Keep-Alive", "timeout=5"), ("Proxy-Authenticate", "x"), ("X-Public", "1")], b"body"

    async with Upstream(hop) as up:  # type: ignore[arg-type]
        port = free_port()
        snap = snapshot([listener(port, [route("r", "c")])], [cluster("c", up.port)])
        async with running(snap) as rt:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)

            async def ask(path: str, method: str = "GET") -> bytes:
                writer.write(f"{method} {path} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
                async with asyncio.timeout(3):
                    head = await reader.readuntil(b"\r\n\r\n")
                    lowered = head.lower()
                    if method == "HEAD":
                        return head
                    if b"transfer-encoding: chunked" in lowered:
                        body = await reader.readuntil(b"0\r\n\r\n")
                    else:
                        length = int(lowered.split(b"content-length: ")[1].split(b"\r\n")[0])
                        body = await reader.readexactly(length)
                return head + body

            for _ in range(2):  # the second of each goes the fast path
                out = (await ask("/plain")).lower()
                assert b"keep-alive: timeout" not in out and b"proxy-authenticate" not in out
                assert b"x-public: 1" in out and out.endswith(b"body")
                out = (await ask("/named")).lower()
                assert b"x-private" not in out and b"x-public: 2" in out
                out = (await ask("/chunked")).lower()
                assert b"transfer-encoding: chunked" in out and b"keep-alive: timeout" not in out
                assert out.endswith(b"1\r\na\r\n1\r\nb\r\n0\r\n\r\n")
                out = (await ask("/plain", "HEAD")).lower()
                assert b"content-length: 4" in out
            writer.close()
            assert rt.counters()["fast_path"] >= 4


async def test_small_bodies_are_buffered_and_take_the_fast_path() -> None:
    async with Upstream() as up:
        port = free_port()
        snap = snapshot([listener(port, [route("r", "c")])], [cluster("c", up.port)])
        async with running(snap) as rt:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for i in range(3):
                body = b"%d-" % i + b"x" * 5000
                writer.write(b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body))
                await writer.drain()
                await asyncio.sleep(0.02)  # the body arrives in pieces, after the head
                writer.write(body[:100])
                await writer.drain()
                await asyncio.sleep(0.02)
                writer.write(body[100:])
                async with asyncio.timeout(3):
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                    await reader.readexactly(length)
                assert status_of(head) == 200
                assert up.seen[-1].body == body
            writer.close()
            assert rt.counters()["fast_path"] == 2  # the first request opened the upstream connection


async def test_header_edits_on_the_fast_path_are_exact_whether_or_not_the_names_are_present() -> None:
    """Route header modifiers that only append are applied to the received bytes; set/remove of a present name
    falls back to decoding: either way, what the backend and the client see is what the modifier says."""

    async def answer(seen: Seen) -> tuple[int, list[tuple[str, str]], bytes] | None:
        present = [("x-resp", "upstream"), ("x-gone", "1")] if "with" in seen.target else []
        return 200, [*present, ("x-other", "kept")], b"ok"

    async with Upstream(answer) as up:
        port = free_port()
        r = route(
            "r",
            "c",
            request_headers=ir.HeaderModifier(
                set=(ir.Header(name="X-Gw", value="nantian"),),
                add=(ir.Header(name="x-add", value="two"),),
                remove=("x-drop",),
            ),
            response_headers=ir.HeaderModifier(
                set=(ir.Header(name="x-resp", value="set"),),
                add=(ir.Header(name="x-radd", value="1"),),
                remove=("x-gone",),
            ),
        )
        snap = snapshot([listener(port, [r])], [cluster("c", up.port)])
        async with running(snap) as rt, httpx.AsyncClient() as c:
            cases = [
                ("/plain", {}),
                ("/with", {"x-gw": "client", "x-add": "one", "x-drop": "d"}),
                ("/plain", {"x-add": "one"}),
                ("/with", {}),
            ]
            for path, headers in cases * 2:  # the second round is all fast path
                resp = await c.get(f"http://127.0.0.1:{port}{path}", headers=headers)
                assert resp.status_code == 200 and resp.content == b"ok"
                assert resp.headers.get_list("x-resp") == ["set"] and resp.headers["x-radd"] == "1"
                assert "x-gone" not in resp.headers and resp.headers["x-other"] == "kept"
                sent = up.seen[-1].headers
                assert [v for k, v in sent if k == "x-gw"] == ["nantian"]
                assert [v for k, v in sent if k == "x-add"] == ([headers["x-add"]] if "x-add" in headers else []) + [
                    "two"
                ]
                assert not [k for k, _ in sent if k == "x-drop"]
            assert rt.counters()["fast_path"] >= len(cases)
