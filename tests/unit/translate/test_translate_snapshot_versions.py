"""Snapshot versions stay a content hash while encodings and hash states are reused across builds."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st
from translate_harness import OPTIONS, resource_set

from nantian import ir
from nantian.ir.snapshot import encoded, resource_type
from nantian.translate import translate


def _plain_version(snap: ir.Snapshot) -> str:
    """The version as defined: sha256 over ``type NUL dumps(resource) LF`` of every resource, no caches."""
    h = hashlib.sha256()
    resources: tuple[ir.Resource, ...] = (*snap.listeners, *snap.clusters, *snap.secrets)
    for r in resources:
        h.update(resource_type(r).value.encode() + b"\0" + ir.dumps(r) + b"\n")
    return h.hexdigest()[:16]


def _route(i: int, host: str) -> ir.HttpRoute:
    return ir.HttpRoute(
        name=f"HTTPRoute/ns/r{i}/0/0",
        route=f"HTTPRoute/ns/r{i}",
        match=ir.HttpMatch(path=ir.PathMatch(type=ir.PathMatchType.PREFIX, value=f"/{host}/{i}")),
        backends=(ir.WeightedCluster(cluster=f"ns/svc-{i % 3}:80"),),
    )


def _listener(port: int, hosts: list[str]) -> ir.Listener:
    vhosts = tuple(
        ir.VirtualHost(section="ns/gw/http", section_hostname=None, hostname=h, routes=(_route(i, h),))
        for i, h in enumerate(hosts)
    )
    return ir.Listener(
        name=f"ns/gw/{port}/HTTP",
        gateway="ns/gw",
        address="127.0.0.2",
        port=port,
        protocol=ir.Protocol.HTTP,
        virtual_hosts=vhosts,
    )


def _clusters() -> list[ir.Cluster]:
    return [
        ir.Cluster(name=f"ns/svc-{i}:80", endpoints=(ir.Endpoint(address="10.0.0.1", port=8080),)) for i in range(3)
    ]


hosts = st.lists(st.sampled_from(["a.example", "b.example", "c.example", "d.example", "*"]), unique=True, max_size=4)


@settings(max_examples=40)
@given(st.lists(st.tuples(st.integers(80, 84), hosts), min_size=1, max_size=6))
def test_version_equals_plain_hash_over_a_sequence_of_builds(steps: list[tuple[int, list[str]]]) -> None:
    listeners: dict[int, ir.Listener] = {}
    for port, names in steps:  # each step replaces one listener; the others stay the same objects
        listeners[port] = _listener(port, names)
        snap = ir.Snapshot.build(listeners.values(), _clusters())
        assert snap.version == _plain_version(snap)


def test_listener_encoding_spliced_from_virtual_hosts_is_the_plain_encoding() -> None:
    lst = attrs.evolve(_listener(80, ["a.example", "*"]), detect_misdirected=False)
    assert encoded(lst) == ir.dumps(lst)
    empty = _listener(81, [])
    assert encoded(empty) == ir.dumps(empty)


def test_equal_content_in_new_objects_gives_the_same_version() -> None:
    a = ir.Snapshot.build([_listener(80, ["a.example"])], _clusters())
    b = ir.Snapshot.build([_listener(80, ["a.example"])], _clusters())
    c = ir.Snapshot.build([_listener(80, ["b.example"])], _clusters())
    assert a.version == b.version != c.version


_SCRIPT = """
from nantian import ir
snap = ir.Snapshot.build(
    [ir.Listener(name="ns/gw/80/HTTP", gateway="ns/gw", address="127.0.0.2", port=80, protocol=ir.Protocol.HTTP,
                 virtual_hosts=(ir.VirtualHost(section="ns/gw/http", section_hostname=None, hostname="*"),))],
    [ir.Cluster(name="ns/svc:80")],
)
print(snap.version)
"""


def test_same_content_same_version_in_another_process() -> None:
    exec_globals: dict[str, object] = {}
    exec(compile(_SCRIPT.replace("print(snap.version)", "version = snap.version"), "<script>", "exec"), exec_globals)
    other = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=60, check=True)
    assert other.stdout.strip() == exec_globals["version"]


def test_translations_of_equal_input_in_one_process_share_the_version() -> None:
    docs = [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": "nantian"},
            "spec": {"controllerName": OPTIONS.controller_name},
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": "ns"},
            "spec": {"gatewayClassName": "nantian", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
        },
    ]
    first = translate(resource_set(docs), OPTIONS).snapshot
    second = translate(resource_set(docs), OPTIONS).snapshot
    assert first.version == second.version == _plain_version(second)
