"""Fan-out benchmark: one gateway.control.v1 server, N data planes, a snapshot of R routes.

The server runs in this process; the N clients (``XdsClient`` with recording consumers) run in a child
process, so this process's CPU time is the controller's. Phases, each timed from ``store.publish`` to the
moment every node has acked (the server's own registry says so):

- initial sync: N nodes connect and get the full snapshot;
- one-route change: one route's path changes (a delta: the changed listener travels as a patch);
- full resync: every route and cluster changes (the server sends the full snapshot: smaller than that delta).

For each: seconds to all-acked, bytes sent per node, controller CPU seconds; and what one node spends decoding
each kind of message (the floor of a node's latency in its own process; the N clients here share one process,
so the full-snapshot phases mostly measure N decodes in a row). Writes results/fanout.json.

    .venv/bin/python benchmarks/fanout.py                 # N = 100, R = 1,000
    .venv/bin/python benchmarks/fanout.py --nodes 20 --routes 200

Target: a one-route change acked by 100 nodes in < 1 s; delta bytes proportional to the change.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import time
from pathlib import Path
from typing import Any

import attrs

from nantian import ir
from nantian.testing.transport import RecordingConsumer
from nantian.xds import NodeRecord, NodeRegistry, SnapshotStore, XdsClient, XdsServer

RESULTS = Path(__file__).parent / "results" / "fanout.json"
GATEWAY = "bench/gw"


def build_snapshot(routes: int, *, generation: int = 0, changed_route: int | None = None) -> ir.Snapshot:
    """``routes`` HTTP routes over 10 hostnames on one listener, one cluster (2 endpoints) per route."""
    clusters = [
        ir.Cluster(
            name=f"bench/svc-{i}-g{generation}:80",
            endpoints=(
                ir.Endpoint(address=f"10.{generation % 250}.{i // 250}.{i % 250}", port=8080),
                ir.Endpoint(address=f"10.{generation % 250}.{i // 250}.{i % 250 + 1}", port=8080),
            ),
        )
        for i in range(routes)
    ]
    hosts: dict[int, list[ir.HttpRoute]] = {}
    for i, cluster in enumerate(clusters):
        path = f"/svc-{i}/v{generation}" + ("/changed" if i == changed_route else "")
        hosts.setdefault(i % 10, []).append(
            ir.HttpRoute(
                name=f"HTTPRoute/bench/route-{i}/0/0",
                route=f"HTTPRoute/bench/route-{i}",
                match=ir.HttpMatch(path=ir.PathMatch(type=ir.PathMatchType.PREFIX, value=path)),
                request_headers=ir.HeaderModifier(set=(ir.Header(name="x-route", value=str(i)),)),
                backends=(ir.WeightedCluster(cluster=cluster.name),),
            )
        )
    listener = ir.Listener(
        name=f"{GATEWAY}/80/HTTP",
        gateway=GATEWAY,
        address="127.0.0.2",
        port=80,
        protocol=ir.Protocol.HTTP,
        virtual_hosts=tuple(
            ir.VirtualHost(
                section=f"{GATEWAY}/http", section_hostname=None, hostname=f"app{h}.example.com", routes=tuple(rs)
            )
            for h, rs in sorted(hosts.items())
        ),
    )
    return ir.Snapshot.build([listener], clusters)


class _CountingRegistry(NodeRegistry):
    """Wakes the benchmark when every node has acked the awaited version."""

    def __init__(self) -> None:
        super().__init__()
        self.awaited: str | None = None
        self.count = 0
        self.nodes_expected = 0
        self.done = asyncio.Event()

    def acked(self, record: NodeRecord, version: str) -> None:
        super().acked(record, version)
        if version == self.awaited:
            self.count += 1
            if self.count >= self.nodes_expected:
                self.done.set()

    def expect(self, version: str, nodes: int) -> None:
        self.awaited, self.count, self.nodes_expected = version, 0, nodes
        self.done = asyncio.Event()


def _run_clients(address: str, nodes: int) -> None:
    async def main() -> None:
        clients = [
            XdsClient(address, RecordingConsumer(), node_id=f"node-{i:03d}", status_interval=3600, status_poll=3600)
            for i in range(nodes)
        ]
        await asyncio.gather(*(c.run() for c in clients))

    asyncio.run(main())


@attrs.frozen
class Phase:
    name: str
    seconds: float
    bytes_per_node: float
    messages_per_node: float
    controller_cpu_seconds: float


async def _phase(
    name: str, store: SnapshotStore, registry: _CountingRegistry, snapshot: ir.Snapshot, nodes: int
) -> Phase:
    before = {r.node_id: (r.bytes_sent, r.messages_sent) for r in registry.nodes()}
    registry.expect(snapshot.version, nodes)
    cpu, started = time.process_time(), time.perf_counter()
    store.publish(snapshot)
    await asyncio.wait_for(registry.done.wait(), 120)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    records = registry.nodes()
    sent = [r.bytes_sent - before.get(r.node_id, (0, 0))[0] for r in records]
    messages = [r.messages_sent - before.get(r.node_id, (0, 0))[1] for r in records]
    return Phase(name, seconds, sum(sent) / len(sent), sum(messages) / len(messages), cpu)


async def run(nodes: int, routes: int) -> dict[str, Any]:
    registry = _CountingRegistry()
    store = SnapshotStore()
    server = XdsServer(store, registry=registry)
    await server.start()
    child = multiprocessing.get_context("spawn").Process(target=_run_clients, args=(server.address, nodes), daemon=True)
    base = build_snapshot(routes)
    one_route = build_snapshot(routes, changed_route=routes // 2)
    everything = build_snapshot(routes, generation=1)
    try:
        registry.expect(base.version, nodes)
        store.publish(base)
        cpu, started = time.process_time(), time.perf_counter()
        child.start()
        await asyncio.wait_for(registry.done.wait(), 120)
        initial = Phase(
            "initial sync (connect + full snapshot)",
            time.perf_counter() - started,
            sum(r.bytes_sent for r in registry.nodes()) / nodes,
            1.0,
            time.process_time() - cpu,
        )
        phases = [
            initial,
            await _phase("one-route change", store, registry, one_route, nodes),
            await _phase("full resync (every resource changed)", store, registry, everything, nodes),
        ]
    finally:
        child.terminate()
        child.join(10)
        await server.stop(0)
    full_size = len(ir.dumps(base))
    return {
        "nodes": nodes,
        "routes": routes,
        "snapshot_json_bytes": full_size,
        "phases": [attrs.asdict(p) for p in phases],
        "per_node_decode_seconds": _decode_costs(base, one_route, everything),
    }


def _decode_costs(base: ir.Snapshot, one_route: ir.Snapshot, everything: ir.Snapshot) -> dict[str, float]:
    """What one data plane spends turning each message into a snapshot (best of 5): the latency floor of a
    node running in its own process, and what N in-process clients add up to here."""
    from nantian.xds._codec import encode_delta, encode_snapshot, pb
    from nantian.xds._held import HeldConfig

    held = HeldConfig.of(base)
    full = encode_snapshot(base).SerializeToString()
    delta = encode_delta(ir.diff(base, one_route), "1", base).SerializeToString()

    def best(fn: Any) -> float:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        return min(times)

    return {
        "full snapshot": best(lambda: HeldConfig.from_message(pb.Snapshot.FromString(full))),
        "one-route delta": best(lambda: held.apply_delta(pb.Delta.FromString(delta))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--routes", type=int, default=1000)
    parser.add_argument("--no-write", action="store_true", help="do not write results/fanout.json")
    args = parser.parse_args()
    result = asyncio.run(run(args.nodes, args.routes))
    print(f"{args.nodes} nodes, {args.routes} routes, snapshot {result['snapshot_json_bytes']:,} bytes of IR JSON")
    print(f"{'phase':40} {'all acked (s)':>14} {'bytes/node':>12} {'msgs/node':>10} {'controller CPU (s)':>19}")
    for p in result["phases"]:
        print(
            f"{p['name']:40} {p['seconds']:14.3f} {p['bytes_per_node']:12,.0f} {p['messages_per_node']:10.1f}"
            f" {p['controller_cpu_seconds']:19.3f}"
        )
    for name, seconds in result["per_node_decode_seconds"].items():
        print(f"one node decodes a {name} in {seconds * 1000:.1f} ms")
    if not args.no_write:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
