"""Test a transport: :class:`RecordingConsumer` stands in for the proxy, :func:`check_transport` checks the rules.

A plugin author passes a ``make_pair`` factory and awaits the check::

    async def make_pair(store, consumer):
        transport = MyTransport()
        server = transport.server(store, ServerOptions())
        await server.start()
        return server, transport.client(consumer, ClientOptions(node_id="n1", address=server.address))

    asyncio.run(check_transport(make_pair))
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping

import attrs

from nantian.errors import ConfigRejected
from nantian.ir import Cluster, Endpoint, Listener, Protocol, Snapshot, VirtualHost
from nantian.xds.consumer import ConfigConsumer
from nantian.xds.store import SnapshotStore
from nantian.xds.transport import TransportClient, TransportServer

__all__ = ["MakePair", "RecordedListener", "RecordingConsumer", "check_transport", "sample_snapshot"]


@attrs.frozen(kw_only=True)
class RecordedListener:
    """A listener as a :class:`RecordingConsumer` pretends to serve it."""

    address: str
    port: int
    bound: bool = True
    error: str | None = None


class RecordingConsumer:
    """A :class:`~nantian.xds.consumer.ConfigConsumer` that records every snapshot it is given.

    :param reject: Called with each snapshot; a returned string refuses it (:class:`ConfigRejected` with
        that message) and nothing changes, as a proxy runtime does with a config it cannot compile.
    :param port_offset: Added to listener ports in :meth:`listener_states`.
    :param unbound: Listener names reported as not bound, with the error, as a runtime with
        ``bind_failure="report"`` does for ports it cannot bind.
    """

    def __init__(
        self,
        reject: Callable[[Snapshot], str | None] | None = None,
        *,
        port_offset: int = 0,
        unbound: Mapping[str, str] | None = None,
    ) -> None:
        self.reject = reject
        self.port_offset = port_offset
        self.unbound = dict(unbound or {})
        self.snapshot: Snapshot | None = None
        self.applied: list[Snapshot] = []
        self.refused: list[tuple[Snapshot, str]] = []
        self.changed = asyncio.Event()
        """Set on every apply or refusal; clear it before waiting for the next."""

    @property
    def version(self) -> str | None:
        return None if self.snapshot is None else self.snapshot.version

    async def apply(self, snapshot: Snapshot) -> object:
        reason = self.reject(snapshot) if self.reject is not None else None
        if reason is not None:
            self.refused.append((snapshot, reason))
            self.changed.set()
            raise ConfigRejected(reason)
        self.snapshot = snapshot
        self.applied.append(snapshot)
        self.changed.set()
        return None

    def listener_states(self) -> Mapping[str, RecordedListener]:
        if self.snapshot is None:
            return {}
        return {
            x.name: RecordedListener(
                address=x.address,
                port=x.port + self.port_offset,
                bound=x.name not in self.unbound,
                error=self.unbound.get(x.name),
            )
            for x in self.snapshot.listeners
        }

    def counters(self) -> Mapping[str, int]:
        return {"applied": len(self.applied), "refused": len(self.refused)}


MakePair = Callable[[SnapshotStore, ConfigConsumer], Awaitable[tuple[TransportServer, TransportClient]]]
"""``(store, consumer) -> (server, client)``: the server started, the client not yet running."""


def sample_snapshot(routes: int = 1, *, gateway: str = "default/gw", port: int = 8080, tag: str = "") -> Snapshot:
    """A small valid snapshot: one HTTP listener with ``routes`` routes, each to its own cluster.

    ``tag`` goes into names, so two calls with different tags give different versions.
    """
    from nantian.ir import HttpMatch, HttpRoute, PathMatch, WeightedCluster

    clusters = [
        Cluster(name=f"default/svc{i}{tag}:80", endpoints=(Endpoint(address="127.0.0.1", port=9000 + i % 100),))
        for i in range(routes)
    ]
    http_routes = tuple(
        HttpRoute(
            name=f"HTTPRoute/default/r{i}{tag}/0/0",
            route=f"HTTPRoute/default/r{i}{tag}",
            match=HttpMatch(path=PathMatch(value=f"/r{i}")),
            backends=(WeightedCluster(cluster=c.name),),
        )
        for i, c in enumerate(clusters)
    )
    listener = Listener(
        name=f"{gateway}/{port}/HTTP",
        gateway=gateway,
        address="127.0.0.2",
        port=port,
        protocol=Protocol.HTTP,
        virtual_hosts=(
            VirtualHost(section=f"{gateway}/http", section_hostname=None, hostname="*", routes=http_routes),
        ),
    )
    return Snapshot.build([listener], clusters)


async def check_transport(make_pair: MakePair, *, step_timeout: float = 10.0) -> None:
    """Check that a transport delivers configuration the way nantian's data planes rely on.

    1. A snapshot published before the client starts arrives whole.
    2. A later change arrives, and the consumer ends up with exactly the store's snapshot.
    3. A snapshot the consumer refuses is not applied: the client keeps (and reports) the last good version,
       records why, and is not sent the refused version again.
    4. The next good snapshot after a refusal arrives.

    Raises :class:`AssertionError` (or :class:`TimeoutError`) naming the step that failed.
    """
    store = SnapshotStore()
    refuse: set[str] = set()
    consumer = RecordingConsumer(lambda s: "refused by the test" if s.version in refuse else None)
    first = sample_snapshot(2, tag="a")
    store.publish(first)
    server, client = await make_pair(store, consumer)
    task = asyncio.create_task(client.run(), name="check-transport-client")
    try:
        async with asyncio.timeout(step_timeout):
            await client.wait_for(lambda: client.version == first.version)
        assert consumer.snapshot == first, "step 1: the first snapshot did not arrive intact"

        second = sample_snapshot(3, tag="a")
        store.publish(second)
        async with asyncio.timeout(step_timeout):
            await client.wait_for(lambda: client.version == second.version)
        assert consumer.snapshot == second, "step 2: the changed snapshot differs from the store's"

        bad = sample_snapshot(4, tag="bad")
        refuse.add(bad.version)
        store.publish(bad)
        async with asyncio.timeout(step_timeout):
            await client.wait_for(lambda: client.last_error is not None)
        assert client.version == second.version, "step 3: the client does not keep its last good version"
        assert consumer.snapshot == second, "step 3: the refused snapshot replaced the last good one"
        await asyncio.sleep(0.2)
        tries = [s for s, _ in consumer.refused if s.version == bad.version]
        assert len(tries) == 1, f"step 3: the refused version was sent {len(tries)} times"

        third = sample_snapshot(5, tag="c")
        store.publish(third)
        async with asyncio.timeout(step_timeout):
            await client.wait_for(lambda: client.version == third.version)
        assert consumer.snapshot == third, "step 4: the snapshot after a refusal did not arrive intact"
    finally:
        await client.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await server.stop()
