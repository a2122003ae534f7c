"""The runtime: atomic swaps, listener lifecycle, bind failures, drain, counters and metrics."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest
from http1_harness import Upstream, cluster, free_port, listener, raw_exchange, route, running, snapshot, status_of
from prometheus_client import generate_latest

from nantian import ir
from nantian.errors import ConfigRejected
from nantian.proxy import ProxyRuntime, RuntimeOptions


async def test_apply_reports_version_states_and_counters() -> None:
    async with Upstream() as up:
        port = free_port()
        snap = snapshot([listener(port, [route("r", "c")])], [cluster("c", up.port)])
        async with running(snap) as rt:
            assert rt.version == snap.version and rt.snapshot == snap
            state = rt.listener_states()[f"ns/gw/{port}/HTTP"]
            assert state.bound and state.port == port and state.address == "127.0.0.1" and state.error is None
            async with httpx.AsyncClient() as c:
                assert (await c.get(f"http://127.0.0.1:{port}/")).status_code == 200
            counters = rt.counters()
            assert counters["requests"] == 1 and counters["active_connections"] == 1
            text = generate_latest(rt.metrics.registry).decode()  # type: ignore[arg-type]
            assert "nantian_proxy_requests_total" in text and 'code="200"' in text
            assert f'nantian_proxy_active_connections{{listener="ns/gw/{port}/HTTP"}} 1.0' in text
            assert "nantian_proxy_request_duration_seconds_bucket" in text


async def test_port_offset() -> None:
    async with Upstream() as up:
        base = free_port()
        snap = snapshot([listener(base - 7, [route("r", "c")])], [cluster("c", up.port)])
        async with running(snap, port_offset=7) as rt:
            assert rt.listener_states()[f"ns/gw/{base - 7}/HTTP"].port == base
            assert status_of(await raw_exchange(base, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")) == 200


async def test_inconsistent_or_uncompilable_snapshot_is_refused_and_last_good_serves() -> None:
    async with Upstream() as up:
        port = free_port()
        good = snapshot([listener(port, [route("r", "c")])], [cluster("c", up.port)])
        async with running(good) as rt:
            missing = snapshot([listener(port, [route("r", "nope")])], [])
            with pytest.raises(ConfigRejected, match="nope"):
                await rt.apply(missing)
            bad_regex = snapshot(
                [
                    listener(
                        port,
                        [
                            route(
                                "r", "c", match=ir.HttpMatch(path=ir.PathMatch(type=ir.PathMatchType.REGEX, value="("))
                            )
                        ],
                    )
                ],
                [cluster("c", up.port)],
            )
            with pytest.raises(ConfigRejected, match="regular expression"):
                await rt.apply(bad_regex)
            twice = snapshot(
                [listener(port, [route("r", "c")]), listener(port, [route("r", "c")], name="ns/gw/other/HTTP")],
                [cluster("c", up.port)],
            )
            with pytest.raises(ConfigRejected, match="both bind"):
                await rt.apply(twice)
            assert rt.version == good.version
            out = await raw_exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            assert status_of(out) == 200


async def test_swap_keeps_unchanged_listeners_connections_and_in_flight_requests() -> None:
    async with Upstream(name="one") as one, Upstream(name="two") as two:
        port = free_port()
        v1 = snapshot([listener(port, [route("r", "c")])], [cluster("c", one.port)])
        v2 = snapshot([listener(port, [route("r", "c")])], [cluster("c", two.port)])
        async with running(v1) as rt:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /delay/0.3 HTTP/1.1\r\nHost: a\r\n\r\n")
            await asyncio.sleep(0.1)  # in flight on v1
            result = await rt.apply(v2)
            assert result.kept == (f"ns/gw/{port}/HTTP",) and result.bound == () and result.ok
            async with asyncio.timeout(3):
                head = await reader.readuntil(b"\r\n\r\n")
            assert b"x-upstream: one" in head  # finished on the config it started with
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")  # same downstream connection, new config
            async with asyncio.timeout(3):
                head = await reader.readuntil(b"\r\n\r\n")
            assert b"x-upstream: two" in head
            writer.close()


async def test_listeners_added_and_removed() -> None:
    async with Upstream() as up:
        p1, p2 = free_port(), free_port()
        c = [cluster("c", up.port)]
        l1 = listener(p1, [route("r", "c")])
        l2 = listener(p2, [route("r", "c")])
        async with running(snapshot([l1], c)) as rt:
            result = await rt.apply(snapshot([l1, l2], c))
            assert result.bound == (l2.name,) and result.kept == (l1.name,)
            result = await rt.apply(snapshot([l2], c))
            assert result.closed == (l1.name,)
            with pytest.raises(OSError):
                await raw_exchange(p1, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            assert status_of(await raw_exchange(p2, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")) == 200


async def test_bind_failure_report_applies_the_rest() -> None:
    async with Upstream() as up:
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        ok_port = free_port()
        snap = snapshot(
            [listener(taken, [route("r", "c")]), listener(ok_port, [route("r", "c")])], [cluster("c", up.port)]
        )
        try:
            async with running(snap, bind_failure="report") as rt:
                states = rt.listener_states()
                assert not states[f"ns/gw/{taken}/HTTP"].bound
                assert "cannot bind" in (states[f"ns/gw/{taken}/HTTP"].error or "")
                assert states[f"ns/gw/{ok_port}/HTTP"].bound
                assert rt.version == snap.version
        finally:
            busy.close()


async def test_bind_failure_reject_refuses_everything() -> None:
    async with Upstream() as up:
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        ok_port, first = free_port(), free_port()
        c = [cluster("c", up.port)]
        rt = ProxyRuntime(RuntimeOptions(bind_failure="reject", access_log=False))
        try:
            await rt.apply(snapshot([listener(first, [route("r", "c")])], c))
            bad = snapshot([listener(taken, [route("r", "c")]), listener(ok_port, [route("r", "c")])], c)
            with pytest.raises(ConfigRejected, match="cannot bind"):
                await rt.apply(bad)
            assert rt.listener_states()[f"ns/gw/{first}/HTTP"].bound
            with pytest.raises(OSError):  # the listener bound for the refused snapshot was closed again
                await raw_exchange(ok_port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            assert (
                status_of(await raw_exchange(first, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")) == 200
            )
            # an address that is not local
            remote = snapshot([listener(free_port(), [route("r", "c")], address="192.0.2.1")], c)
            with pytest.raises(ConfigRejected):
                await rt.apply(remote)
        finally:
            busy.close()
            await rt.close()


async def test_unsupported_listener_protocols_are_reported() -> None:
    from nantian.proxy import runtime as runtime_module

    previous = runtime_module.register_listener_frontend(ir.Protocol.TCP, None)
    try:
        port = free_port()
        tcp = ir.Listener(name="ns/gw/1/TCP", gateway="ns/gw", address="127.0.0.1", port=port, protocol=ir.Protocol.TCP)
        async with running(snapshot([tcp], [])) as rt:
            state = rt.listener_states()["ns/gw/1/TCP"]
            assert not state.bound and "not served" in (state.error or "")
    finally:
        runtime_module.register_listener_frontend(ir.Protocol.TCP, previous)


async def test_config_swaps_under_load_lose_no_request() -> None:
    async with Upstream(name="a") as a, Upstream(name="b") as b:
        port = free_port()
        snaps = [
            snapshot([listener(port, [route("r", "c")])], [cluster("c", a.port)]),
            snapshot(
                [
                    listener(
                        port,
                        [route("r", "c", request_headers=ir.HeaderModifier(set=(ir.Header(name="x-v", value="2"),)))],
                    )
                ],
                [cluster("c", b.port)],
            ),
        ]
        failures: list[str] = []
        done = 0

        async def client() -> None:
            nonlocal done
            async with httpx.AsyncClient(timeout=5.0) as c:
                for _ in range(40):
                    r = await c.get(f"http://127.0.0.1:{port}/")
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text}")
                    done += 1

        async with running(snaps[0]) as rt:
            async with asyncio.timeout(30):
                clients = [asyncio.create_task(client()) for _ in range(8)]
                for i in range(20):
                    await rt.apply(snaps[i % 2])
                    await asyncio.sleep(0.01)
                await asyncio.gather(*clients)
        assert failures == []
        assert done == 320
        assert a.seen and b.seen


async def test_drain_finishes_in_flight_and_stops_accepting() -> None:
    async with Upstream() as up:
        port = free_port()
        snap = snapshot([listener(port, [route("r", "c")])], [cluster("c", up.port)])
        rt = ProxyRuntime(RuntimeOptions(access_log=False))
        await rt.apply(snap)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /delay/0.3 HTTP/1.1\r\nHost: a\r\n\r\n")
        await asyncio.sleep(0.1)
        idle_r, idle_w = await asyncio.open_connection("127.0.0.1", port)
        idle_w.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        async with asyncio.timeout(3):
            await idle_r.readuntil(b"\r\n\r\n")  # a keep-alive connection, idle after its response
        drain = asyncio.create_task(rt.drain(5.0))
        await asyncio.sleep(0.05)
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)
        async with asyncio.timeout(3):
            data = await reader.read()  # the in-flight response, then close
            rest = await idle_r.read()  # idle connections close at once (after the rest of the first response)
            assert b"HTTP/1.1" not in rest
        assert status_of(data) == 200 and b"connection: close" in data.lower()
        async with asyncio.timeout(3):
            await drain
        assert rt.counters()["active_connections"] == 0
        writer.close()
        idle_w.close()
        with pytest.raises(ConfigRejected):
            await rt.apply(snap)


async def test_drain_timeout_closes_stragglers() -> None:
    async with Upstream() as up:
        port = free_port()
        snap = snapshot([listener(port, [route("r", "c")])], [cluster("c", up.port)])
        rt = ProxyRuntime(RuntimeOptions(access_log=False))
        await rt.apply(snap)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /delay/5 HTTP/1.1\r\nHost: a\r\n\r\n")
        await asyncio.sleep(0.1)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await rt.drain(0.2)
        assert loop.time() - t0 < 2
        async with asyncio.timeout(3):
            await reader.read()
        writer.close()


class _EchoBinding:
    """A tiny TCP front end for the test: echoes, prefixed with the compiled config's tag."""

    def __init__(self, server: asyncio.Server, state: dict[str, object]) -> None:
        self.server = server
        self.state = state

    @property
    def port(self) -> int | None:
        return int(self.server.sockets[0].getsockname()[1]) if self.server.sockets else None

    def swap(self, compiled: object) -> None:
        self.state["tag"] = compiled

    def close(self) -> None:
        self.server.close()


class _EchoFrontEnd:
    def compile(self, listener: ir.Listener, snapshot: ir.Snapshot) -> object:
        if not listener.stream_routes:
            raise ConfigRejected(f"{listener.name}: no stream route")
        return listener.stream_routes[0].name.encode()

    async def bind(
        self, listener: ir.Listener, port: int, compiled: object, connections: set[object], *, reuse_port: bool = False
    ) -> _EchoBinding:
        state: dict[str, object] = {"tag": compiled}

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connections.add(writer)
            try:
                data = await reader.read(100)
                tag = state["tag"]
                assert isinstance(tag, bytes)
                writer.write(tag + b":" + data)
                await writer.drain()
            finally:
                writer.close()
                connections.discard(writer)

        server = await asyncio.start_server(serve, listener.address, port)
        return _EchoBinding(server, state)


async def test_stream_listeners_are_served_by_a_registered_front_end() -> None:
    from nantian.proxy import runtime as runtime_module

    def tcp(port: int, tag: str) -> ir.Listener:
        return ir.Listener(
            name="ns/gw/1/TCP",
            gateway="ns/gw",
            address="127.0.0.1",
            port=port,
            protocol=ir.Protocol.TCP,
            stream_routes=(ir.StreamRoute(name=tag, route="TCPRoute/ns/r", section="ns/gw/tcp"),),
        )

    async def talk(port: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hi")
        async with asyncio.timeout(3):
            out = await reader.read()
        writer.close()
        return out

    previous = runtime_module.register_listener_frontend(ir.Protocol.TCP, _EchoFrontEnd())
    try:
        port = free_port()
        async with running(snapshot([tcp(port, "v1")], [])) as rt:
            assert rt.listener_states()["ns/gw/1/TCP"].bound
            assert rt.bound_port("ns/gw/1/TCP") == port
            assert await talk(port) == b"v1:hi"
            result = await rt.apply(snapshot([tcp(port, "v2")], []))
            assert result.kept == ("ns/gw/1/TCP",)
            assert await talk(port) == b"v2:hi"
            bad = ir.Listener(
                name="ns/gw/1/TCP", gateway="ns/gw", address="127.0.0.1", port=port, protocol=ir.Protocol.TCP
            )
            with pytest.raises(ConfigRejected, match="no stream route"):
                await rt.apply(snapshot([bad], []))
            assert await talk(port) == b"v2:hi"
            await rt.apply(snapshot([], []))
            with pytest.raises(OSError):
                await talk(port)
    finally:
        runtime_module.register_listener_frontend(ir.Protocol.TCP, previous)


async def test_a_port_held_by_another_runtime_is_a_bind_failure() -> None:
    async with Upstream() as up:
        port = free_port()
        snap = snapshot([listener(port, [route("r", "c")])], [cluster("c", up.port)])
        async with running(snap), running(snap) as second:
            state = second.listener_states()[f"ns/gw/{port}/HTTP"]
            assert not state.bound and "cannot bind" in (state.error or "")


async def test_a_replacement_listener_takes_over_the_socket() -> None:
    async with Upstream(name="one") as one:
        port = free_port()
        c = [cluster("c", one.port)]
        async with running(snapshot([listener(port, [route("r", "c")], name="ns/gw/a/HTTP")], c)) as rt:
            result = await rt.apply(snapshot([listener(port, [route("r", "c")], name="ns/gw/b/HTTP")], c))
            assert result.bound == ("ns/gw/b/HTTP",) and result.closed == ("ns/gw/a/HTTP",) and result.ok
            out = await raw_exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            assert status_of(out) == 200
