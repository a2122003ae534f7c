"""ResourceSet: lookups, indices, cheap changes, equality and diff."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nantian.errors import ParseError
from nantian.resources import (
    EndpointSlice,
    Gateway,
    HTTPRoute,
    KubeObject,
    Namespace,
    ObjectRef,
    ResourceSet,
    ResourceSetDiff,
    Service,
    UnknownObject,
    parse_object,
)


def svc(ns: str, name: str, port: int = 80) -> KubeObject:
    return parse_object(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"ports": [{"port": port}]},
        }
    )


def slice_(ns: str, name: str, service: str | None) -> KubeObject:
    labels = {"kubernetes.io/service-name": service} if service else {}
    return parse_object(
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "addressType": "IPv4",
        }
    )


def ns(name: str) -> KubeObject:
    return parse_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


def route(ns: str, name: str, hostname: str = "a.example") -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"hostnames": [hostname]},
    }


@pytest.fixture
def rs() -> ResourceSet:
    objs = [
        svc("b", "s2"),
        svc("a", "s1"),
        svc("b", "s1"),
        slice_("a", "s1-x", "s1"),
        slice_("a", "s1-y", "s1"),
        slice_("b", "s1-z", "s1"),
        slice_("a", "orphan", None),
        ns("a"),
        ns("b"),
        parse_object(route("a", "r")),
        parse_object({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "a"}}),
    ]
    return ResourceSet.from_objects(objs, raw={ObjectRef("HTTPRoute", "a", "r"): route("a", "r")})


def test_lookups(rs: ResourceSet) -> None:
    assert len(rs) == 11
    got = rs.get(ObjectRef("Service", "b", "s1"))
    assert isinstance(got, Service) and got.metadata.name == "s1"
    assert rs.get(ObjectRef("Service", "c", "s1")) is None and rs.get(ObjectRef("Nope", "a", "b")) is None
    assert ObjectRef("Service", "a", "s1") in rs and ObjectRef("Service", "a", "zz") not in rs
    assert [s.ref for s in rs.of_kind(Service)] == [
        ObjectRef("Service", "a", "s1"),
        ObjectRef("Service", "b", "s1"),
        ObjectRef("Service", "b", "s2"),
    ]
    assert rs.of_kind("Service") == rs.of_kind(Service)
    assert rs.of_kind(Gateway) == ()
    assert [s.metadata.name for s in rs.in_namespace(Service, "b")] == ["s1", "s2"]
    assert rs.in_namespace("Service", "zz") == ()
    assert isinstance(rs.namespace("a"), Namespace) and rs.namespace("zz") is None
    assert [e.metadata.name for e in rs.endpoint_slices_for("a", "s1")] == ["s1-x", "s1-y"]
    assert [e.metadata.name for e in rs.endpoint_slices_for("b", "s1")] == ["s1-z"]
    assert rs.endpoint_slices_for("a", "s2") == ()
    assert rs.kinds() == ("Deployment", "EndpointSlice", "HTTPRoute", "Namespace", "Service")
    assert rs.refs() == tuple(sorted(obj.ref for obj in rs))
    assert next(iter(rs)).ref.kind == "Deployment"


def test_of_kind_with_a_class_skips_unknown_objects_of_that_kind() -> None:
    old = parse_object({**route("a", "old"), "apiVersion": "gateway.networking.k8s.io/v1alpha1"})
    assert isinstance(old, UnknownObject)
    rs = ResourceSet.from_objects([old, parse_object(route("a", "new"))])
    assert [r.metadata.name for r in rs.of_kind(HTTPRoute)] == ["new"]
    assert [r.metadata.name for r in rs.of_kind("HTTPRoute")] == ["new", "old"]


def test_raw(rs: ResourceSet) -> None:
    assert rs.raw(ObjectRef("HTTPRoute", "a", "r")) == route("a", "r")
    shaped = rs.raw(ObjectRef("Service", "a", "s1"))
    assert shaped["apiVersion"] == "v1" and shaped["kind"] == "Service"
    assert shaped["metadata"]["name"] == "s1" and shaped["spec"]["ports"][0]["port"] == 80
    assert rs.raw(ObjectRef("Deployment", "a", "d"))["apiVersion"] == "apps/v1"
    with pytest.raises(KeyError):
        rs.raw(ObjectRef("Service", "a", "missing"))


def test_with_object_and_without_leave_the_original_alone(rs: ResourceSet) -> None:
    before = list(rs)
    bigger = rs.with_object(svc("c", "s9"))
    assert len(bigger) == 12 and len(rs) == 11 and list(rs) == before
    assert bigger.get(ObjectRef("Service", "c", "s9")) is not None and rs.get(ObjectRef("Service", "c", "s9")) is None
    replaced = rs.with_object(svc("a", "s1", port=81), raw={"x": 1})
    assert len(replaced) == 11
    new = replaced.get(ObjectRef("Service", "a", "s1"))
    assert isinstance(new, Service) and new.spec.ports[0].port == 81
    assert replaced.raw(ObjectRef("Service", "a", "s1")) == {"x": 1}
    smaller = rs.without(ObjectRef("Service", "a", "s1"))
    assert len(smaller) == 10 and [s.metadata.name for s in smaller.in_namespace(Service, "a")] == []
    assert rs.without(ObjectRef("Service", "zz", "zz")) is rs
    only = ResourceSet.from_objects([ns("a")]).without(ObjectRef("Namespace", "", "a"))
    assert len(only) == 0 and only.kinds() == ()


def test_changes_update_indices(rs: ResourceSet) -> None:
    assert len(rs.endpoint_slices_for("a", "s1")) == 2  # build the cached index first
    more = rs.with_object(slice_("a", "s1-w", "s1"))
    assert [e.metadata.name for e in more.endpoint_slices_for("a", "s1")] == ["s1-w", "s1-x", "s1-y"]
    fewer = more.without(ObjectRef("EndpointSlice", "a", "s1-x"))
    assert [e.metadata.name for e in fewer.endpoint_slices_for("a", "s1")] == ["s1-w", "s1-y"]
    assert len(rs.endpoint_slices_for("a", "s1")) == 2
    relabelled = rs.with_object(slice_("a", "s1-x", "other"))
    assert [e.metadata.name for e in relabelled.endpoint_slices_for("a", "other")] == ["s1-x"]
    assert isinstance(relabelled.endpoint_slices_for("a", "other")[0], EndpointSlice)


def test_with_object_shares_untouched_kinds(rs: ResourceSet) -> None:
    changed = rs.with_object(svc("c", "s9"))
    assert changed.of_kind(EndpointSlice) is rs.of_kind(EndpointSlice)  # cached view shared, not rebuilt


def test_equality_by_content(rs: ResourceSet) -> None:
    same = ResourceSet.from_objects(reversed(list(rs)))
    assert same == rs
    assert rs.with_object(svc("a", "s1")) == rs
    assert rs.with_object(svc("a", "s1", port=81)) != rs
    assert rs.without(ObjectRef("Namespace", "", "a")) != rs
    error = ParseError("Service a/x", ["bad @ spec"], source="f.yaml:1")
    assert rs.with_errors([error]) != rs
    assert rs.with_errors([error]) == same.with_errors([ParseError("Service a/x", ["bad @ spec"], source="f.yaml:1")])
    assert rs.with_errors([error]).errors == (error,)
    assert rs != "not a set"


def test_later_object_with_the_same_ref_wins() -> None:
    rs = ResourceSet.from_objects([svc("a", "s", 1), svc("a", "s", 2)])
    got = rs.get(ObjectRef("Service", "a", "s"))
    assert len(rs) == 1 and isinstance(got, Service) and got.spec.ports[0].port == 2


def test_diff(rs: ResourceSet) -> None:
    assert rs.diff(rs) == ResourceSetDiff() and not rs.diff(rs)
    new = (
        rs.with_object(svc("c", "s9"))
        .without(ObjectRef("Namespace", "", "b"))
        .with_object(parse_object(route("a", "r", hostname="b.example")))
        .with_object(svc("a", "s1"))  # equal content: not a change
    )
    d = rs.diff(new)
    assert d.added == (ObjectRef("Service", "c", "s9"),)
    assert d.removed == (ObjectRef("Namespace", "", "b"),)
    assert d.changed == (ObjectRef("HTTPRoute", "a", "r"),)
    assert d.refs == (
        ObjectRef("HTTPRoute", "a", "r"),
        ObjectRef("Namespace", "", "b"),
        ObjectRef("Service", "c", "s9"),
    )
    assert bool(d) and str(d) == "added=1 removed=1 changed=1"
    back = new.diff(rs)
    assert (back.added, back.removed, back.changed) == (d.removed, d.added, d.changed)
    rebuilt = ResourceSet.from_objects(list(new))
    assert not new.diff(rebuilt)


def test_empty_set() -> None:
    empty = ResourceSet.from_objects([])
    assert len(empty) == 0 and list(empty) == [] and empty.errors == () and empty.refs() == ()
    assert empty.endpoint_slices_for("a", "b") == () and empty.of_kind(Service) == ()
    assert "objects=0" in repr(empty)


@given(
    st.lists(
        st.tuples(
            st.booleans(), st.sampled_from(["a", "b", "c"]), st.sampled_from(["x", "y", "z", "w"]), st.integers(1, 3)
        ),
        max_size=25,
    )
)
def test_incremental_views_match_a_fresh_build(ops: list[tuple[bool, str, str, int]]) -> None:
    rs = ResourceSet.from_objects([svc("a", "x"), svc("b", "y"), svc("c", "w")])
    for add, namespace, name, port in ops:
        rs.of_kind(Service), rs.in_namespace(Service, namespace)  # build views so they are carried over
        rs = rs.with_object(svc(namespace, name, port)) if add else rs.without(ObjectRef("Service", namespace, name))
        fresh = ResourceSet.from_objects(list(rs))
        assert rs.of_kind(Service) == fresh.of_kind(Service)
        assert rs.of_kind("Service") == fresh.of_kind("Service")
        for ns_name in ("a", "b", "c"):
            assert rs.in_namespace(Service, ns_name) == fresh.in_namespace(Service, ns_name)
        assert len(rs) == len(fresh) and rs == fresh
