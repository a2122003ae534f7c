"""Port sharing of ``--workers``: SO_REUSEPORT only through the parent's worker channel, only for this deployment;
the supervisor restarts workers that die and stops them all."""

from __future__ import annotations

import asyncio
import socket
import sys

import httpx
import pytest
from processes import free_port
from snapshots import GATEWAY, http_listener

from nantian import ir
from nantian.errors import ConfigRejected
from nantian.proxy import ProxyRuntime, RuntimeOptions
from nantian.proxy.workers import WorkerChannel, WorkerChannelServer, WorkerSupervisor


def _snapshot(port: int) -> ir.Snapshot:
    """One HTTP listener on ``port`` whose only route answers a redirect (no backend needed)."""
    route = ir.HttpRoute(
        name="HTTPRoute/ns/r/0/0",
        route="HTTPRoute/ns/r",
        redirect=ir.Redirect(hostname="elsewhere.example", status_code=302),
    )
    return ir.Snapshot.build([http_listener(port, [route], name=f"{GATEWAY}/{port}/HTTP")], [])


def _plain_bind_fails(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
        except OSError:
            return True
        return False


async def _worker(channel_path: str) -> tuple[ProxyRuntime, WorkerChannel]:
    channel = WorkerChannel(channel_path)
    await channel.connect()
    options = RuntimeOptions(access_log=False, bind_failure="reject", reuse_port=True, port_guard=channel)
    return ProxyRuntime(options), channel


async def test_one_process_never_shares_a_taken_port() -> None:
    port = free_port()
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", port))
        other.listen()
        rt = ProxyRuntime(RuntimeOptions(access_log=False, bind_failure="reject"))
        with pytest.raises(ConfigRejected, match="cannot bind"):
            await rt.apply(_snapshot(port))
        await rt.close()


async def test_workers_share_a_port_and_release_it() -> None:
    port = free_port()
    server = WorkerChannelServer()
    await server.start()
    try:
        (rt1, ch1), (rt2, ch2) = await _worker(server.path), await _worker(server.path)
        await rt1.apply(_snapshot(port))
        await rt2.apply(_snapshot(port))
        assert server.anchored() == {("127.0.0.1", port)}
        assert _plain_bind_fails(port), "a process outside the deployment cannot bind the shared port"
        async with httpx.AsyncClient() as client:
            for _ in range(10):
                reply = await client.get(f"http://127.0.0.1:{port}/", headers={"Connection": "close"})
                assert reply.status_code == 302
        served = rt1.counters()["requests"] + rt2.counters()["requests"]
        assert served == 10
        await rt1.close()
        await asyncio.sleep(0.05)
        assert server.anchored() == {("127.0.0.1", port)}, "still held by the other worker"
        await rt2.close()
        for _ in range(100):
            if not server.anchored():
                break
            await asyncio.sleep(0.02)
        assert server.anchored() == set()
        assert not _plain_bind_fails(port), "the port is free again once no worker holds it"
        await ch1.close()
        await ch2.close()
    finally:
        await server.close()


async def test_a_port_held_by_another_reuseport_process_is_refused() -> None:
    port = free_port()
    server = WorkerChannelServer()
    await server.start()
    try:
        with socket.socket() as other:
            # the kernel alone would let this socket share the port with us (same user, SO_REUSEPORT)
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            other.bind(("127.0.0.1", port))
            other.listen()
            rt, channel = await _worker(server.path)
            with pytest.raises(ConfigRejected, match="in use"):
                await rt.apply(_snapshot(port))
            assert server.anchored() == set()
            await rt.close()
            await channel.close()
    finally:
        await server.close()


async def test_a_worker_sees_its_supervisor_go_away() -> None:
    server = WorkerChannelServer()
    await server.start()
    rt, channel = await _worker(server.path)
    port = free_port()
    await channel.claim("127.0.0.1", port)  # a round trip: the parent knows this worker
    assert server.anchored() == {("127.0.0.1", port)}
    await server.close()
    await asyncio.wait_for(channel.closed.wait(), 5.0)
    with pytest.raises(OSError):
        await channel.claim("127.0.0.1", free_port())
    await rt.close()
    await channel.close()


async def test_supervisor_restarts_dead_workers_with_backoff_and_stops_them() -> None:
    crashing = WorkerSupervisor(1, lambda i: [sys.executable, "-c", "raise SystemExit(3)"], backoff=(0.05, 0.1))
    await crashing.start()
    for _ in range(200):
        if crashing.restarts >= 2:
            break
        await asyncio.sleep(0.05)
    assert crashing.restarts >= 2
    await crashing.stop(5.0)

    sleeping = WorkerSupervisor(2, lambda i: [sys.executable, "-c", "import time; time.sleep(60)"])
    await sleeping.start()
    for _ in range(200):
        if len(sleeping.pids()) == 2:
            break
        await asyncio.sleep(0.05)
    assert len(sleeping.pids()) == 2
    await asyncio.wait_for(sleeping.stop(5.0), 10.0)
    assert sleeping.pids() == {}
    assert sleeping.exit_codes() == {0: -15, 1: -15}
    assert sleeping.restarts == 0
