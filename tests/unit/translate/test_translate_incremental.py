"""Translator: incremental translation equals a from-scratch translate() after any sequence of changes."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nantian.errors import ParseError
from nantian.resources import KubeObject, ObjectRef, ResourceSet, parse_object
from nantian.testing import strategies as nst
from nantian.translate import TranslateOptions, Translation, Translator, translate

OPTIONS = TranslateOptions(controller_name=nst.OUR_CONTROLLER, address_pool="127.0.0.0/8")
GATEWAY_API = nst.GATEWAY_API
Doc = Mapping[str, Any]


def _extra_documents() -> list[Doc]:
    """Kinds the shared strategies do not generate: BackendTLSPolicies (valid and not), ListenerSets, a
    Namespace whose labels flip."""
    docs: list[Doc] = []
    for ns in nst.NAMESPACES:
        for svc in nst.SERVICES[:2]:
            docs.append(
                {
                    "apiVersion": f"{GATEWAY_API}/v1",
                    "kind": "BackendTLSPolicy",
                    "metadata": {"name": f"tls-{svc}", "namespace": ns},
                    "spec": {
                        "targetRefs": [{"group": "", "kind": "Service", "name": svc}],
                        "validation": {"wellKnownCACertificates": "System", "hostname": f"{svc}.example.com"},
                    },
                }
            )
        docs.append(
            {
                "apiVersion": f"{GATEWAY_API}/v1",
                "kind": "BackendTLSPolicy",
                "metadata": {"name": "tls-svc-3", "namespace": ns},
                "spec": {
                    "targetRefs": [{"group": "", "kind": "Service", "name": "svc-3"}],
                    "validation": {
                        "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "missing"}],
                        "hostname": "svc-3.example.com",
                    },
                },
            }
        )
        for gw in nst.GATEWAYS[:2]:
            docs.append(
                {
                    "apiVersion": f"{GATEWAY_API}/v1",
                    "kind": "ListenerSet",
                    "metadata": {"name": f"ls-{gw}", "namespace": ns},
                    "spec": {
                        "parentRef": {"name": gw},
                        "listeners": [
                            {"name": "extra", "port": 8081, "protocol": "HTTP", "hostname": "ls.example.com"}
                        ],
                    },
                }
            )
        for labels in ({"team": "a"}, {"team": "b", "shared": "true"}):
            docs.append(
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns, **labels}},
                }
            )
    return docs


EXTRA = _extra_documents()


def _parse(doc: Doc) -> KubeObject | None:
    try:
        return parse_object(doc)
    except ParseError:
        return None


def _assert_same(incremental: Translation, scratch: Translation) -> None:
    assert incremental.snapshot.version == scratch.snapshot.version
    assert incremental.snapshot == scratch.snapshot
    assert dict(incremental.statuses) == dict(scratch.statuses)


@st.composite
def _steps(draw: st.DrawFn) -> tuple[Sequence[Sequence[Doc]], list[tuple[str, int]]]:
    worlds: list[list[dict[str, Any]]] = draw(
        st.lists(nst.documents(valid=None, max_gateways=3, max_routes=6, cel_rules=False), min_size=2, max_size=3)
    )
    ops = st.tuples(
        st.sampled_from(["put", "put", "put", "put", "drop", "drop", "world", "reparse", "same"]),
        st.integers(min_value=0, max_value=10_000),
    )
    return worlds, draw(st.lists(ops, min_size=1, max_size=12))


@settings(max_examples=40, deadline=None)
@given(_steps())
def test_incremental_translation_equals_translation_from_scratch(
    case: tuple[Sequence[Sequence[Doc]], list[tuple[str, int]]],
) -> None:
    worlds, ops = case
    pool = [obj for docs in [*worlds, EXTRA] for obj in map(_parse, docs) if obj is not None]
    translator = Translator(OPTIONS)
    rs = nst.build_resource_set(worlds[0])
    _assert_same(translator.translate(rs), translate(rs, OPTIONS))
    for op, n in ops:
        if op == "put":  # add or replace one object, every other object stays the same
            rs = rs.with_object(pool[n % len(pool)])
        elif op == "drop" and len(rs):
            rs = rs.without(rs.refs()[n % len(rs)])
        elif op == "world":  # a whole other set, all new objects
            rs = nst.build_resource_set(worlds[n % len(worlds)])
        elif op == "reparse":  # equal content, all new objects
            rs = ResourceSet.from_objects([_parse(rs.raw(ref)) or rs.get(ref) for ref in rs.refs()])  # type: ignore[misc]
        _assert_same(translator.translate(rs), translate(rs, OPTIONS))


def _bench_module() -> Any:
    path = Path(__file__).parents[3] / "benchmarks"
    sys.path.insert(0, str(path))
    try:
        import translate as bench  # type: ignore[import-not-found]  # the benchmark's document generator
    finally:
        sys.path.remove(str(path))
    return bench


def test_one_route_change_rebuilds_only_what_it_touches() -> None:
    bench = _bench_module()
    docs: Sequence[Doc] = bench.generate(4, 200, namespaces=10)
    rs = nst.build_resource_set(docs)
    translator = Translator(OPTIONS)
    before = translator.translate(rs)
    changed = bench.http_route(7, 4, 10, version="v2")
    rs2 = rs.with_object(parse_object(changed))
    after = translator.translate(rs2)
    _assert_same(after, translate(rs2, OPTIONS))
    assert after.snapshot.version != before.snapshot.version
    ref = ObjectRef("HTTPRoute", changed["metadata"]["namespace"], changed["metadata"]["name"])
    same = [r for r in before.statuses if r != ref and r.kind == "HTTPRoute"]
    assert same and all(after.statuses[r] is before.statuses[r] for r in same)
    # Only the Gateway route 7 attaches to gets a new listener; clusters are the same objects.
    new_listeners = [lst for lst in after.snapshot.listeners if lst not in before.snapshot.listeners]
    assert [lst.gateway for lst in new_listeners] == [f"gateways/gw-{7 % 4}"]
    kept = {id(lst) for lst in before.snapshot.listeners}
    assert sum(id(lst) in kept for lst in after.snapshot.listeners) == 3
    assert all(a is b for a, b in zip(after.snapshot.clusters, before.snapshot.clusters, strict=True))
    changed_vhosts = [
        vh
        for lst in new_listeners
        for vh in lst.virtual_hosts
        if not any(vh is old for b in before.snapshot.listeners for old in b.virtual_hosts)
    ]
    assert [vh.hostname for vh in changed_vhosts] == ["r7.example.com"]


def test_translating_the_same_set_again_returns_equal_results_and_keeps_objects() -> None:
    rs = nst.build_resource_set(_bench_module().generate(2, 20, namespaces=4))
    translator = Translator(OPTIONS)
    first, second = translator.translate(rs), translator.translate(rs)
    assert second.snapshot.version == first.snapshot.version
    assert all(a is b for a, b in zip(second.snapshot.listeners, first.snapshot.listeners, strict=True))
    _assert_same(second, translate(rs, OPTIONS))


def test_removing_a_route_and_a_gateway() -> None:
    rs = nst.build_resource_set(_bench_module().generate(2, 20, namespaces=4))
    translator = Translator(OPTIONS)
    translator.translate(rs)
    for ref in (ObjectRef("HTTPRoute", "ns-001", "route-5"), ObjectRef("Gateway", "gateways", "gw-1")):
        rs = rs.without(ref)
        result = translator.translate(rs)
        _assert_same(result, translate(rs, OPTIONS))
        assert ref not in result.statuses


def _doc(api: str, kind: str, name: str, namespace: str | None, **body: Any) -> Doc:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    return {"apiVersion": api, "kind": kind, "metadata": meta, **body}


def _gateway(hostname: str | None = None, selector: str = "a") -> Doc:
    listener: dict[str, Any] = {
        "name": "http",
        "port": 80,
        "protocol": "HTTP",
        "allowedRoutes": {"namespaces": {"from": "Selector", "selector": {"matchLabels": {"team": selector}}}},
    }
    if hostname is not None:
        listener["hostname"] = hostname
    return _doc(
        f"{GATEWAY_API}/v1", "Gateway", "gw", "infra", spec={"gatewayClassName": "nantian", "listeners": [listener]}
    )


def _namespace(name: str, team: str) -> Doc:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"team": team}}}


def _service(name: str, namespace: str, port: int = 80) -> Doc:
    return _doc("v1", "Service", name, namespace, spec={"ports": [{"name": "http", "port": port, "targetPort": 8080}]})


def _slice(service: str, namespace: str, address: str) -> Doc:
    doc = _doc(
        "discovery.k8s.io/v1",
        "EndpointSlice",
        f"{service}-x",
        namespace,
        addressType="IPv4",
        endpoints=[{"addresses": [address], "conditions": {"ready": True}}],
        ports=[{"name": "http", "port": 8080, "protocol": "TCP"}],
    )
    doc["metadata"]["labels"] = {"kubernetes.io/service-name": service}
    return doc


def _route(filter_target: str = "ext") -> Doc:
    return _doc(
        f"{GATEWAY_API}/v1",
        "HTTPRoute",
        "r",
        "apps",
        spec={
            "parentRefs": [{"name": "gw", "namespace": "infra"}],
            "hostnames": ["app.example.com"],
            "rules": [
                {
                    "filters": [
                        {
                            "type": "ExtensionRef",
                            "extensionRef": {"group": "example.com", "kind": "Example", "name": filter_target},
                        }
                    ],
                    "backendRefs": [{"name": "svc", "port": 80}, {"name": "svc2", "namespace": "other", "port": 80}],
                }
            ],
        },
    )


def _extension(value: int) -> Doc:
    return _doc("example.com/v1", "Example", "ext", "apps", spec={"value": value})


def _grant() -> Doc:
    return _doc(
        f"{GATEWAY_API}/v1beta1",
        "ReferenceGrant",
        "allow",
        "other",
        spec={
            "from": [{"group": GATEWAY_API, "kind": "HTTPRoute", "namespace": "apps"}],
            "to": [{"group": "", "kind": "Service"}],
        },
    )


def _policy() -> Doc:
    return _doc(
        f"{GATEWAY_API}/v1",
        "BackendTLSPolicy",
        "tls",
        "apps",
        spec={
            "targetRefs": [{"group": "", "kind": "Service", "name": "svc"}],
            "validation": {"wellKnownCACertificates": "System", "hostname": "svc.apps"},
        },
    )


BASE_DOCS: list[Doc] = [
    _doc(f"{GATEWAY_API}/v1", "GatewayClass", "nantian", None, spec={"controllerName": nst.OUR_CONTROLLER}),
    _gateway(),
    _namespace("apps", "a"),
    _namespace("other", "a"),
    _service("svc", "apps"),
    _slice("svc", "apps", "10.0.0.1"),
    _service("svc2", "other"),
    _slice("svc2", "other", "10.0.1.1"),
    _route(),
    _extension(1),
]


def _obj(doc: Doc) -> KubeObject:
    return parse_object(doc)


# Each step changes one input a route, a cluster or a Gateway reads, and must show in the next translation.
STEPS: list[tuple[str, Doc | ObjectRef]] = [
    ("namespace labels: the listener's selector no longer admits the route", _namespace("apps", "b")),
    ("namespace labels back", _namespace("apps", "a")),
    ("EndpointSlice: new endpoint address", _slice("svc", "apps", "10.0.0.2")),
    ("ReferenceGrant: the cross-namespace backend is permitted", _grant()),
    ("ExtensionRef target changes", _extension(2)),
    ("ExtensionRef target goes away", ObjectRef("Example", "apps", "ext")),
    ("ExtensionRef target comes back", _extension(3)),
    ("BackendTLSPolicy for the Service", _policy()),
    ("Service port changes: backend not found", _service("svc", "apps", port=81)),
    ("Service port back", _service("svc", "apps")),
    ("Gateway listener hostname", _gateway(hostname="*.example.com")),
    ("Gateway selector", _gateway(selector="b")),
    ("ReferenceGrant removed", ObjectRef("ReferenceGrant", "other", "allow")),
    ("route replaced", _route(filter_target="other")),
    ("GatewayClass removed", ObjectRef("GatewayClass", "", "nantian")),
]


def test_each_kind_of_input_change_shows_in_the_next_incremental_translation() -> None:
    rs = ResourceSet.from_objects([_obj(d) for d in BASE_DOCS])
    translator = Translator(OPTIONS)
    previous = translator.translate(rs)
    _assert_same(previous, translate(rs, OPTIONS))
    for what, change in STEPS:
        rs = rs.without(change) if isinstance(change, ObjectRef) else rs.with_object(_obj(change))
        result = translator.translate(rs)
        scratch = translate(rs, OPTIONS)
        assert result.snapshot.version == scratch.snapshot.version, what
        assert dict(result.statuses) == dict(scratch.statuses), what
        assert (result.snapshot.version, dict(result.statuses)) != (
            previous.snapshot.version,
            dict(previous.statuses),
        ), f"{what}: the step changes nothing, so it tests nothing"
        previous = result


def test_a_failed_translation_leaves_nothing_half_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    import nantian.translate.translator as translator_module

    rs = ResourceSet.from_objects([_obj(d) for d in BASE_DOCS])
    translator = Translator(OPTIONS)
    translator.translate(rs)
    rs = rs.with_object(_obj(_gateway(hostname="*.example.com")))
    real = translator_module.build_listeners  # type: ignore[attr-defined]

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in the translator")

    monkeypatch.setattr(translator_module, "build_listeners", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        translator.translate(rs)
    monkeypatch.setattr(translator_module, "build_listeners", real)
    _assert_same(translator.translate(rs), translate(rs, OPTIONS))
