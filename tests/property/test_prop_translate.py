"""translate() properties over generated Gateway API resource sets.

Never raises; ignores input order; only serves routes on listeners that accepted them, each at most once per
virtual host or listener however its parentRefs overlap, with one status entry per distinct parentRef; virtual-host
hostnames are listener/route hostname intersections; no cross-namespace backend without a ReferenceGrant.
Routes include parentRefs the CRD's CEL rules refuse (``cel_rules=False``): a file source reads them as written.
The semantic checks read the generated documents (plain dicts), not nantian's parsed types, so they
check translate against the Gateway API rules rather than against itself.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from nantian import ir
from nantian.resources import ObjectRef, parse_object
from nantian.testing import strategies as nst
from nantian.translate import TranslateOptions, Translation, Translator, translate

GATEWAY_API = nst.GATEWAY_API
OPTIONS = TranslateOptions(controller_name=nst.OUR_CONTROLLER, address_pool="127.0.0.0/8")
Doc = Mapping[str, Any]


def _translate(docs: Sequence[Doc]) -> Translation:
    return translate(nst.build_resource_set(docs), OPTIONS)


class World:
    """The generated documents, indexed by (kind, namespace, name)."""

    def __init__(self, docs: Sequence[Doc]) -> None:
        self.docs = {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d for d in docs}

    def get(self, kind: str, namespace: str, name: str) -> Doc | None:
        return self.docs.get((kind, namespace, name))

    def of_kind(self, kind: str) -> Iterator[Doc]:
        return (d for (k, _, _), d in self.docs.items() if k == kind)

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        ns = self.get("Namespace", "", namespace)
        return ns["metadata"].get("labels", {}) if ns else {}

    def listener(self, section: str) -> tuple[Doc, Doc]:
        """The Gateway and its listener for an IR ``section`` (``namespace/gateway/listener``)."""
        namespace, gateway, name = section.split("/")
        gw = self.get("Gateway", namespace, gateway)
        assert gw is not None, f"section {section} names a Gateway that does not exist"
        listeners = [lst for lst in gw["spec"]["listeners"] if lst["name"] == name]
        assert len(listeners) == 1, f"section {section} names a listener that does not exist"
        return gw, listeners[0]

    def route(self, route: str) -> Doc:
        kind, namespace, name = route.split("/")
        doc = self.get(kind, namespace, name)
        assert doc is not None, f"IR names route {route} that is not in the input"
        return doc

    def granted(self, from_kind: str, from_ns: str, to_kind: str, to_ns: str, to_name: str) -> bool:
        for grant in self.of_kind("ReferenceGrant"):
            if grant["metadata"]["namespace"] != to_ns:
                continue
            spec = grant["spec"]
            froms = any(
                f["group"] == GATEWAY_API and f["kind"] == from_kind and f["namespace"] == from_ns for f in spec["from"]
            )
            tos = any(
                t["group"] == "" and t["kind"] == to_kind and t.get("name") in (None, to_name) for t in spec["to"]
            )
            if froms and tos:
                return True
        return False


def _served_routes(
    snapshot: ir.Snapshot,
) -> Iterator[tuple[ir.Listener, str, str, tuple[ir.WeightedCluster, ...], tuple[str, ...]]]:
    """(IR listener, section, route, backends, mirror clusters) for every HTTP and stream route in the IR."""
    for lst in snapshot.listeners:
        for vh in lst.virtual_hosts:
            for r in vh.routes:
                yield lst, vh.section, r.route, r.backends, tuple(m.cluster for m in r.mirrors)
        for sr in lst.stream_routes:
            yield lst, sr.section, sr.route, sr.backends, ()


def _condition(conditions: Sequence[Mapping[str, Any]], kind: str) -> str | None:
    return next((c["status"] for c in conditions if c["type"] == kind), None)


def _admits(world: World, gw: Doc, listener: Doc, route: Doc) -> bool:
    allowed = listener.get("allowedRoutes") or {}
    namespaces = allowed.get("namespaces") or {}
    where = namespaces.get("from", "Same")
    route_ns = route["metadata"]["namespace"]
    if where == "Same" and route_ns != gw["metadata"]["namespace"]:
        return False
    if where == "Selector":
        labels = world.namespace_labels(route_ns)
        wanted = namespaces["selector"].get("matchLabels", {})
        if any(labels.get(k) != v for k, v in wanted.items()):
            return False
    kinds = allowed.get("kinds")
    return kinds is None or any(
        k["kind"] == route["kind"] and k.get("group", GATEWAY_API) == GATEWAY_API for k in kinds
    )


def _covers(wildcard: str, host: str) -> bool:
    """``*.example.com`` covers ``a.example.com``, ``x.a.example.com`` and ``*.a.example.com``."""
    return wildcard.startswith("*.") and host.endswith(wildcard[1:]) and host != wildcard


def intersection(listener_hostname: str | None, route_hostnames: Sequence[str]) -> set[str]:
    """The hostnames a route serves on a listener, per the Gateway API."""
    if not route_hostnames:
        return {listener_hostname or "*"}
    if listener_hostname is None:
        return set(route_hostnames)
    out = set()
    for host in route_hostnames:
        if host == listener_hostname or _covers(listener_hostname, host):
            out.add(host)
        elif _covers(host, listener_hostname):
            out.add(listener_hostname)
    return out


# --- properties --------------------------------------------------------------------------------------------
# Each example costs a generation and a translation, so one test checks several properties of the same
# translation; the check_* helpers name the property that failed.


def check_served_routes_are_accepted_by_an_admitting_listener(world: World, t: Translation) -> None:
    attached: dict[str, int] = {}
    served: dict[str, set[str]] = {}
    for lst, section, route_name, _, _ in _served_routes(t.snapshot):
        gw, listener = world.listener(section)
        route = world.route(route_name)
        gw_ns, gw_name = gw["metadata"]["namespace"], gw["metadata"]["name"]
        assert lst.gateway == f"{gw_ns}/{gw_name}"
        assert lst.port == listener["port"]
        gateway_class = world.get("GatewayClass", "", gw["spec"]["gatewayClassName"])
        assert gateway_class is not None and gateway_class["spec"]["controllerName"] == nst.OUR_CONTROLLER
        assert _admits(world, gw, listener, route), f"{route_name} served on {section} whose allowedRoutes refuse it"
        route_ns = route["metadata"]["namespace"]
        assert any(
            p["name"] == gw_name
            and p.get("namespace", route_ns) == gw_ns
            and p.get("sectionName") in (None, listener["name"])
            and p.get("port") in (None, listener["port"])
            for p in route["spec"]["parentRefs"]
        ), f"{route_name} served on {section} but none of its parentRefs selects it"
        status = t.statuses.get(ObjectRef(route["kind"], route_ns, route["metadata"]["name"]), {})
        parents = [
            p
            for p in status.get("parents", ())
            if p["parentRef"]["name"] == gw_name and p["parentRef"].get("namespace", route_ns) == gw_ns
        ]
        assert parents, f"{route_name} is served on {section} but has no status for that Gateway"
        assert any(_condition(p["conditions"], "Accepted") == "True" for p in parents)
        assert all(p["controllerName"] == nst.OUR_CONTROLLER for p in parents)
        gw_status = t.statuses.get(ObjectRef("Gateway", gw_ns, gw_name), {})
        listener_status = [s for s in gw_status.get("listeners", ()) if s["name"] == listener["name"]]
        assert listener_status and _condition(listener_status[0]["conditions"], "Accepted") == "True"
        attached[section] = listener_status[0].get("attachedRoutes", 0)
        served.setdefault(section, set()).add(route_name)
    for section, routes in served.items():
        assert attached[section] >= len(routes), f"{section}: attachedRoutes {attached[section]} < {len(routes)} served"


def check_virtual_host_names_are_listener_route_intersections(world: World, t: Translation) -> None:
    for lst in t.snapshot.listeners:
        streams = [r.name for r in lst.stream_routes]
        assert len(streams) == len(set(streams)), f"{lst.name}: a stream route is served twice"
        for vh in lst.virtual_hosts:
            names = [r.name for r in vh.routes]
            assert len(names) == len(set(names)), f"{lst.name} {vh.hostname}: a route is served twice"
            _, listener = world.listener(vh.section)
            assert vh.section_hostname == listener.get("hostname")
            for r in vh.routes:
                route = world.route(r.route)
                allowed = intersection(listener.get("hostname"), route["spec"].get("hostnames", ()))
                assert vh.hostname in allowed, f"{r.route} on {vh.section}: {vh.hostname} not in {sorted(allowed)}"


def check_no_cross_namespace_backend_without_a_reference_grant(world: World, t: Translation) -> None:
    for _, _, route_name, backends, mirrors in _served_routes(t.snapshot):
        kind, route_ns, _ = route_name.split("/")
        clusters = [b.cluster for b in backends if b.cluster is not None] + list(mirrors)
        for cluster in clusters:
            namespace, rest = cluster.split("/", 1)
            service = rest.split(":", 1)[0]
            assert world.get("Service", namespace, service) is not None, f"{cluster}: no such Service"
            if namespace != route_ns:
                assert world.granted(kind, route_ns, "Service", namespace, service), (
                    f"{route_name} reaches {cluster} without a ReferenceGrant"
                )


def check_no_cross_namespace_certificate_without_a_reference_grant(world: World, t: Translation) -> None:
    secrets = {s.name for s in t.snapshot.secrets}
    for lst in t.snapshot.listeners:
        for cert in lst.certificates:
            assert cert.secret in secrets
            gw_ns = cert.section.split("/")[0]
            namespace, name = cert.secret.split("/", 1)
            assert world.get("Secret", namespace, name) is not None, f"{cert.secret}: no such Secret"
            if namespace != gw_ns:
                assert world.granted("Gateway", gw_ns, "Secret", namespace, name), (
                    f"{cert.section} serves {cert.secret} without a ReferenceGrant"
                )


def _specificity(match: ir.HttpMatch) -> tuple[bool, int, bool, int, int]:
    """Gateway API match precedence: exact path, longer prefix, method, more headers, more query params."""
    exact = match.path.type is ir.PathMatchType.EXACT
    return exact, 0 if exact else len(match.path.value), match.method is not None, len(match.headers), len(match.query)


def check_http_routes_are_in_precedence_order(world: World, t: Translation) -> None:
    """Within a virtual host: more specific matches first; on a tie the older route (then namespace/name),
    and within a route the earlier rule and match. Regular expressions are implementation-specific: skipped."""
    for lst in t.snapshot.listeners:
        for vh in lst.virtual_hosts:
            if any(r.grpc for r in vh.routes):
                continue  # GRPCRoute precedence has its own rules
            for a, b in itertools.pairwise(vh.routes):
                if ir.PathMatchType.REGEX in (a.match.path.type, b.match.path.type) or a.name == b.name:
                    continue
                where = f"{lst.name} {vh.hostname}: {a.name} before {b.name}"
                assert _specificity(a.match) >= _specificity(b.match), where
                if _specificity(a.match) != _specificity(b.match):
                    continue
                if a.route == b.route:
                    assert [int(i) for i in a.name.split("/")[-2:]] < [int(i) for i in b.name.split("/")[-2:]], where
                else:
                    ma, mb = world.route(a.route)["metadata"], world.route(b.route)["metadata"]
                    age_a = (ma.get("creationTimestamp", ""), ma["namespace"], ma["name"])
                    age_b = (mb.get("creationTimestamp", ""), mb["namespace"], mb["name"])
                    assert age_a < age_b, where


def check_backends_follow_the_rule(world: World, t: Translation) -> None:
    """Each IR route carries its rule's backendRefs with their weights; a rule without any answers 500."""
    for lst in t.snapshot.listeners:
        for vh in lst.virtual_hosts:
            for r in vh.routes:
                rule = world.route(r.route)["spec"]["rules"][int(r.name.split("/")[-2])]
                refs = rule.get("backendRefs", [])
                if r.redirect is None and r.direct_status is None:
                    assert [b.weight for b in r.backends] == [ref.get("weight", 1) for ref in refs], r.name
                if not refs and not any(f["type"] == "RequestRedirect" for f in rule.get("filters", ())):
                    assert r.direct_status == 500, f"{r.name}: a rule without backendRefs answers 500"


def _normalized_parent_ref(ref: Mapping[str, Any], route_ns: str) -> dict[str, Any]:
    out = {
        "group": ref.get("group", GATEWAY_API),
        "kind": ref.get("kind", "Gateway"),
        "namespace": ref.get("namespace", route_ns),
        "name": ref["name"],
    }
    out.update({k: ref[k] for k in ("sectionName", "port") if k in ref})
    return out


def check_statuses_describe_the_input(world: World, t: Translation) -> None:
    for ref, status in t.statuses.items():
        doc = world.get(ref.kind, ref.namespace, ref.name)
        assert doc is not None, f"status for {ref}, which is not in the input"
        generation = doc["metadata"].get("generation", 1)
        entries = status.get("parents", ())
        if entries:
            refs = [_normalized_parent_ref(p, ref.namespace) for p in doc["spec"]["parentRefs"]]
            for entry in entries:
                assert entry["parentRef"] in refs, f"{ref}: status for a parentRef it does not have"
            keys = [sorted(entry["parentRef"].items()) for entry in entries]
            assert all(keys.count(k) == 1 for k in keys), f"{ref}: two status entries for one parent"
        conditions = [c for e in entries for c in e["conditions"]] + list(status.get("conditions", ()))
        conditions += [c for lst in status.get("listeners", ()) for c in lst["conditions"]]
        assert all(c["observedGeneration"] == generation for c in conditions), f"{ref}: stale observedGeneration"
        assert all("lastTransitionTime" not in c for c in conditions), "the status writer stamps times, not translate"


def _ours(world: World, parent_ref: Mapping[str, Any]) -> bool:
    """A normalized parentRef names a Gateway of a class with our controller (so its route gets a status entry)."""
    if parent_ref["group"] != GATEWAY_API or parent_ref["kind"] != "Gateway":
        return False
    gw = world.get("Gateway", parent_ref["namespace"], parent_ref["name"])
    gateway_class = world.get("GatewayClass", "", gw["spec"]["gatewayClassName"]) if gw is not None else None
    return gateway_class is not None and gateway_class["spec"]["controllerName"] == nst.OUR_CONTROLLER


def check_one_status_entry_per_distinct_parent_ref(world: World, t: Translation) -> None:
    """Routes get one ``status.parents`` entry for each distinct parentRef (as written, the route's namespace
    filled in) that names one of our Gateways, in the order written, however the refs overlap."""
    for kind in nst.ROUTE_KINDS:
        for doc in world.of_kind(kind):
            ns = doc["metadata"]["namespace"]
            written = [_normalized_parent_ref(p, ns) for p in doc["spec"]["parentRefs"]]
            wanted = [p for i, p in enumerate(written) if p not in written[:i] and _ours(world, p)]
            status = t.statuses.get(ObjectRef(kind, ns, doc["metadata"]["name"]), {})
            got = [entry["parentRef"] for entry in status.get("parents", ())]
            assert got == wanted, f"{kind} {ns}/{doc['metadata']['name']}: status parents {got}, wanted {wanted}"


def check_gateway_addresses(t: Translation) -> None:
    addresses = {
        f"{ref.namespace}/{ref.name}": [a["value"] for a in status.get("addresses", ())]
        for ref, status in t.statuses.items()
        if ref.kind == "Gateway"
    }
    every = [a for values in addresses.values() for a in values]
    assert len(every) == len(set(every)), f"Gateways share an address: {addresses}"
    assert "127.0.0.1" not in every
    for lst in t.snapshot.listeners:
        assert lst.address in addresses.get(lst.gateway, ()), f"{lst.name} binds an address its Gateway lacks"


@given(nst.documents(valid=None, cel_rules=False), st.integers(min_value=0, max_value=2**32))
def test_translate_never_raises_and_ignores_input_order(docs: list[dict[str, Any]], seed: int) -> None:
    a = _translate(docs)
    assert a.snapshot.version
    assert a.snapshot.problems() == [], "translate must publish consistent snapshots"
    assert all(isinstance(ref, ObjectRef) for ref in a.statuses)
    b = _translate(nst.shuffled(docs, seed))
    assert a.snapshot == b.snapshot
    assert a.statuses == b.statuses


def _one_route(*parent_refs: dict[str, Any]) -> list[dict[str, Any]]:
    """Our GatewayClass, Gateway ``default/gw-1`` with two HTTP listeners on port 80, and an HTTPRoute."""
    listeners = [{"name": "l0", "port": 80, "protocol": "HTTP"}, {"name": "l1", "port": 80, "protocol": "HTTP"}]
    return [
        *nst.gateway_class_documents(),
        {
            "apiVersion": f"{GATEWAY_API}/v1",
            "kind": "Gateway",
            "metadata": {"name": "gw-1", "namespace": "default"},
            "spec": {"gatewayClassName": "nantian", "listeners": listeners},
        },
        {
            "apiVersion": f"{GATEWAY_API}/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "r", "namespace": "default"},
            "spec": {"parentRefs": list(parent_refs), "rules": [{}]},
        },
    ]


# The same parent twice (namespace implied, then spelled out): one attachment, one status entry.
_TWO_REFS_ONE_PARENT = _one_route({"name": "gw-1"}, {"name": "gw-1", "namespace": "default"})
# The whole Gateway and one of its sections (the CRD's CEL rules refuse it, a file source does not): the route
# is served once on l0, and each ref as written has its status entry.
_GATEWAY_AND_ITS_SECTION = _one_route({"name": "gw-1"}, {"name": "gw-1", "sectionName": "l0"})
_WITH_AND_WITHOUT_PORT = _one_route({"name": "gw-1", "port": 80}, {"name": "gw-1"}, {"name": "gw-1", "port": 80})


@given(nst.documents(cel_rules=False))
@example(docs=_TWO_REFS_ONE_PARENT)
@example(docs=_GATEWAY_AND_ITS_SECTION)
@example(docs=_WITH_AND_WITHOUT_PORT)
def test_translation_follows_gateway_api_rules(docs: list[dict[str, Any]]) -> None:
    resources = nst.build_resource_set(docs)
    assert not resources.errors, "valid generated documents all parse"
    world = World(docs)
    assert len(world.docs) == len(docs), "generated sets name each object once"
    t = translate(resources, OPTIONS)
    check_served_routes_are_accepted_by_an_admitting_listener(world, t)
    check_virtual_host_names_are_listener_route_intersections(world, t)
    check_no_cross_namespace_backend_without_a_reference_grant(world, t)
    check_no_cross_namespace_certificate_without_a_reference_grant(world, t)
    check_statuses_describe_the_input(world, t)
    check_one_status_entry_per_distinct_parent_ref(world, t)
    check_gateway_addresses(t)
    check_http_routes_are_in_precedence_order(world, t)
    check_backends_follow_the_rule(world, t)


def _changed(doc: Mapping[str, Any]) -> dict[str, Any]:
    """``doc`` after a typical edit: new labels (namespace selectors see them), routes get other hostnames."""
    new = copy.deepcopy(dict(doc))
    meta = new["metadata"]
    meta["labels"] = {"team": "a", "shared": "true"}
    meta["generation"] = meta.get("generation", 1) + 1
    if new["kind"] in ("HTTPRoute", "GRPCRoute"):
        new["spec"]["hostnames"] = ["a.example.com"]
    return new


@given(nst.documents(max_routes=4, cel_rules=False), st.data())
def test_incremental_changes_match_a_rebuild(docs: list[dict[str, Any]], data: st.DataObject) -> None:
    resources = nst.build_resource_set(docs)
    i = data.draw(st.integers(min_value=0, max_value=len(docs) - 1), label="changed document")
    ref = parse_object(docs[i]).ref
    if data.draw(st.booleans(), label="delete"):
        rest = docs[:i] + docs[i + 1 :]
        incremental, rebuilt = resources.without(ref), nst.build_resource_set(rest)
    else:
        new = _changed(docs[i])
        obj = parse_object(new)
        incremental = resources.with_object(obj, raw=new)
        rebuilt = nst.build_resource_set([*docs[:i], new, *docs[i + 1 :]])
        assert incremental.get(ref) == obj
        assert incremental.raw(ref) == new
    assert incremental == rebuilt
    assert len(incremental) == len(rebuilt)
    a, b = translate(incremental, OPTIONS), translate(rebuilt, OPTIONS)
    assert a.snapshot == b.snapshot
    assert a.statuses == b.statuses
    # A Translator that saw the set before the change re-translates incrementally, to the same result.
    translator = Translator(OPTIONS)
    translator.translate(resources)
    c = translator.translate(incremental)
    assert c.snapshot == b.snapshot
    assert c.statuses == b.statuses
