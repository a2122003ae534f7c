"""UDP listeners through the runtime to real datagram echo servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import typing
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvloop
from http1_harness import free_port, running
from prometheus_client import generate_latest

from nantian import ir
from nantian.proxy import runtime as runtime_module
from nantian.proxy.stream_listeners import StreamFrontEnd, StreamOptions
from nantian.proxy.udp_proxy import UdpOptions

TIMEOUT = 5.0


class _Echo(asyncio.DatagramProtocol):
    def __init__(self, name: str, sources: list[tuple[str, int]]) -> None:
        self.name = name
        self.sources = sources
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # cast: asyncio's selector datagram transport does not subclass DatagramTransport
        self.transport = typing.cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.sources.append((str(addr[0]), int(addr[1])))
        assert self.transport is not None
        self.transport.sendto(self.name.encode() + b":" + data, addr)


@contextlib.asynccontextmanager
async def udp_echo(name: str) -> AsyncIterator[tuple[int, list[tuple[str, int]]]]:
    """A UDP server answering ``name:<datagram>``; yields its port and the source addresses it saw."""
    sources: list[tuple[str, int]] = []
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: _Echo(name, sources), local_addr=("127.0.0.1", 0)
    )
    try:
        yield int(transport.get_extra_info("sockname")[1]), sources
    finally:
        transport.close()


class _Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answers: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.answers.put_nowait(data)


class Ask(typing.Protocol):
    async def __call__(self, payload: bytes, wait: float = TIMEOUT) -> bytes | None: ...


@contextlib.asynccontextmanager
async def client(port: int) -> AsyncIterator[Ask]:
    """A UDP client socket; yields ``ask(payload, wait) -> answer | None``."""
    transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
        _Client, remote_addr=("127.0.0.1", port)
    )

    async def ask(payload: bytes, wait: float = TIMEOUT) -> bytes | None:
        transport.sendto(payload)
        try:
            async with asyncio.timeout(wait):
                return await protocol.answers.get()
        except TimeoutError:
            return None

    try:
        yield ask
    finally:
        transport.close()


def udp_listener(port: int, *routes: ir.StreamRoute) -> ir.Listener:
    return ir.Listener(
        name=f"ns/gw/{port}/UDP",
        gateway="ns/gw",
        address="127.0.0.1",
        port=port,
        protocol=ir.Protocol.UDP,
        stream_routes=routes,
    )


def udp_route(*backends: tuple[str | None, int]) -> ir.StreamRoute:
    return ir.StreamRoute(
        name="UDPRoute/ns/r@ns/gw/udp",
        route="UDPRoute/ns/r",
        section="ns/gw/udp",
        backends=tuple(ir.WeightedCluster(cluster=c, weight=w) for c, w in backends),
    )


def udp_cluster(name: str, *ports: int) -> ir.Cluster:
    return ir.Cluster(
        name=name, protocol=ir.AppProtocol.UDP, endpoints=tuple(ir.Endpoint(address="127.0.0.1", port=p) for p in ports)
    )


@contextlib.contextmanager
def frontend(udp: UdpOptions) -> Iterator[StreamFrontEnd]:
    fe = StreamFrontEnd(StreamOptions(udp=udp, access_log=False))
    previous = runtime_module.register_listener_frontend(ir.Protocol.UDP, fe)
    try:
        yield fe
    finally:
        runtime_module.register_listener_frontend(ir.Protocol.UDP, previous)


async def test_request_reply_with_a_session_per_client() -> None:
    async with udp_echo("one") as (echo_port, sources):
        port = free_port()
        snap = ir.Snapshot.build([udp_listener(port, udp_route(("c", 1)))], [udp_cluster("c", echo_port)])
        async with running(snap) as rt:
            assert rt.listener_states()[f"ns/gw/{port}/UDP"].bound
            async with client(port) as ask1, client(port) as ask2:
                assert await ask1(b"a1") == b"one:a1"
                assert await ask1(b"a2") == b"one:a2"
                assert await ask2(b"b1") == b"one:b1"
            # two clients, two sessions: the backend saw two source ports, each client's datagrams from one
            assert len(sources) == 3 and sources[0] == sources[1] != sources[2]
            text = generate_latest(rt.metrics_registry).decode()
            assert f'nantian_proxy_udp_active_sessions{{listener="ns/gw/{port}/UDP"}} 2.0' in text


async def test_sessions_split_by_weight() -> None:
    async with udp_echo("a") as (port_a, _), udp_echo("b") as (port_b, _):
        port = free_port()
        route = udp_route(("ca", 1), ("cb", 1))
        snap = ir.Snapshot.build([udp_listener(port, route)], [udp_cluster("ca", port_a), udp_cluster("cb", port_b)])
        async with running(snap):
            seen: collections.Counter[bytes] = collections.Counter()
            for _ in range(40):
                async with client(port) as ask:
                    answer = await ask(b"x")
                    assert answer is not None
                    seen[answer] += 1
    assert set(seen) == {b"a:x", b"b:x"} and sum(seen.values()) == 40
    assert 8 <= seen[b"a:x"] <= 32  # 20 expected; beyond 3.7 standard deviations either way


async def test_idle_sessions_expire_and_new_datagrams_start_a_new_one() -> None:
    with frontend(UdpOptions(session_timeout=0.2)) as fe:
        async with udp_echo("one") as (echo_port, sources):
            port = free_port()
            snap = ir.Snapshot.build([udp_listener(port, udp_route(("c", 1)))], [udp_cluster("c", echo_port)])
            async with running(snap), client(port) as ask:
                assert await ask(b"1") == b"one:1"
                assert fe.metrics.counts["udp_sessions"] == 0
                async with asyncio.timeout(TIMEOUT):
                    while fe.metrics.counts["udp_sessions"] < 1:  # noqa: ASYNC110 (nothing signals an expiry)
                        await asyncio.sleep(0.02)
                assert await ask(b"2") == b"one:2"
            assert len(sources) == 2 and sources[0] != sources[1]  # a new upstream socket for the new session


async def test_sessions_are_bounded() -> None:
    with frontend(UdpOptions(max_sessions=1)) as fe:
        async with udp_echo("one") as (echo_port, _):
            port = free_port()
            snap = ir.Snapshot.build([udp_listener(port, udp_route(("c", 1)))], [udp_cluster("c", echo_port)])
            async with running(snap), client(port) as ask1, client(port) as ask2:
                assert await ask1(b"first") == b"one:first"
                assert await ask2(b"second", 0.3) is None
                assert fe.metrics.counts["udp_dropped"] == 1
                assert await ask1(b"again") == b"one:again"


async def test_no_route_or_invalid_backend_drops() -> None:
    port_none, port_invalid = free_port(), free_port()
    listeners = [udp_listener(port_none), udp_listener(port_invalid, udp_route((None, 1)))]
    async with running(ir.Snapshot.build(listeners, [])) as rt:
        for port in (port_none, port_invalid):
            async with client(port) as ask:
                assert await ask(b"x", 0.2) is None
        assert 'nantian_proxy_udp_dropped_total{listener="ns/gw/' in generate_latest(rt.metrics_registry).decode()


async def test_config_swap_changes_new_sessions_only() -> None:
    async with udp_echo("v1") as (port_1, _), udp_echo("v2") as (port_2, _):
        port = free_port()
        v1 = ir.Snapshot.build([udp_listener(port, udp_route(("c1", 1)))], [udp_cluster("c1", port_1)])
        v2 = ir.Snapshot.build([udp_listener(port, udp_route(("c2", 1)))], [udp_cluster("c2", port_2)])
        async with running(v1) as rt, client(port) as old:
            assert await old(b"a") == b"v1:a"
            result = await rt.apply(v2)
            assert result.kept == (f"ns/gw/{port}/UDP",)
            assert await old(b"b") == b"v1:b"
            async with client(port) as new:
                assert await new(b"c") == b"v2:c"


def test_udp_on_uvloop() -> None:
    """The apps run on uvloop, whose datagram transports are not asyncio's classes."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(test_request_reply_with_a_session_per_client())
        runner.run(test_idle_sessions_expire_and_new_datagrams_start_a_new_one())
