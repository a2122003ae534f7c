"""Routes of every kind against the Gateways they name: parent resolution, attachment, status, IR placement."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any

import attrs

from nantian.ir import HttpRoute, StreamRoute
from nantian.resources import (
    GRPCRoute,
    HTTPRoute,
    ObjectRef,
    ParentReference,
    ResourceSet,
    TCPRoute,
    TLSRoute,
    UDPRoute,
)
from nantian.translate.attachment import Attachment, attach
from nantian.translate.backends import BackendResolver
from nantian.translate.compiled import CompiledHttp, CompiledStream, Problems
from nantian.translate.conditions import condition
from nantian.translate.grpcroute import compile_grpc_route
from nantian.translate.httproute import compile_http_route
from nantian.translate.irbuild import GatewayRoutes
from nantian.translate.precedence import MatchKey, RouteAge, route_age
from nantian.translate.state import GatewayState, ListenerState, OwnerState
from nantian.translate.streamroutes import compile_stream_route

__all__ = [
    "Compile",
    "ParentTarget",
    "Placement",
    "Route",
    "RouteContext",
    "RouteResult",
    "compile_route",
    "route_parents",
    "translate_route",
]

GROUP = "gateway.networking.k8s.io"
Route = HTTPRoute | GRPCRoute | TLSRoute | TCPRoute | UDPRoute


Compile = Callable[["Route", str | None], CompiledHttp | CompiledStream]
"""Compiles a route for parents whose Gateway presents this backend client certificate (or none)."""


class RouteContext:
    """What route translation reads, shared by every route of one translation. Nothing in it is written."""

    def __init__(
        self,
        *,
        resources: ResourceSet,
        gateways: Mapping[tuple[str, str], GatewayState],
        listener_sets: Mapping[tuple[str, str], tuple[OwnerState, GatewayState]],
        controller_name: str,
        compile: Compile,
    ) -> None:
        self.resources = resources
        self.gateways = gateways
        self.listener_sets = listener_sets
        self.controller_name = controller_name
        self.compile = compile
        self.parent_targets: dict[tuple[str | None, str, str, str], ParentTarget] = {}
        """_resolve_parent results by (group, kind, namespace, name): shared by every route naming that parent."""


@attrs.frozen(eq=False)
class Placement:
    """Where a route's IR goes: HTTP entries served on ``listener`` for each of ``hostnames``, or a stream route."""

    gateway: tuple[str, str]
    """(namespace, name) of the Gateway."""
    listener: ListenerState
    hostnames: tuple[str, ...] = ()
    entries: tuple[tuple[MatchKey, HttpRoute], ...] = ()
    stream: tuple[RouteAge, StreamRoute] | None = None

    def add_to(self, routes: GatewayRoutes) -> None:
        """Add the IR to what ``routes`` gathers for the Gateway."""
        if self.stream is not None:
            routes.add_stream(self.listener, *self.stream)
            return
        for hostname in self.hostnames:
            routes.add_http(self.listener, hostname, self.entries)


@attrs.frozen(eq=False)
class RouteResult:
    """One route translated against the Gateways it names: its status and what it contributes to them."""

    status: Mapping[str, Any]
    attached: tuple[ListenerState, ...]
    """Listeners the route attaches to (each counts the route once in ``attachedRoutes``)."""
    placements: tuple[Placement, ...]
    users: tuple[tuple[ObjectRef, AbstractSet[tuple[str, str]]], ...]
    """(Gateway, Services) for each parent that accepted the route: BackendTLSPolicy ancestors."""
    reads_namespace: bool
    """Attachment read the route's Namespace (a listener selects namespaces by label)."""


def _parent_ref_status(p: ParentReference, route_ns: str) -> dict[str, Any]:
    out: dict[str, Any] = {"group": p.group, "kind": p.kind, "namespace": p.namespace or route_ns, "name": p.name}
    if p.section_name is not None:
        out["sectionName"] = p.section_name
    if p.port is not None:
        out["port"] = p.port
    return out


def _resolve_parent(
    p: ParentReference, route_ns: str, ctx: RouteContext
) -> tuple[GatewayState, list[ListenerState] | None] | None:
    """The Gateway state behind a parentRef and the candidate listeners (``None``: the ListenerSet is not
    attached), or ``None`` when the parent is not one of ours."""
    memo_key = (p.group, p.kind, p.namespace or route_ns, p.name)
    targets = ctx.parent_targets
    if memo_key in targets:
        return targets[memo_key]
    found = targets[memo_key] = _parent_target(p, route_ns, ctx)
    return found


def _parent_target(p: ParentReference, route_ns: str, ctx: RouteContext) -> ParentTarget:
    if (p.group or GROUP) != GROUP:
        return None
    key = (p.namespace or route_ns, p.name)
    if p.kind == "Gateway":
        gw = ctx.gateways.get(key)
        return (gw, gw.listeners) if gw is not None else None
    if p.kind in ("ListenerSet", "XListenerSet"):
        found = ctx.listener_sets.get(key)
        if found is None:
            return None
        owner, gw = found
        return gw, (owner.listeners if owner.allowed else None)
    return None


def compile_route(
    route: Route, resolver: BackendResolver, resources: ResourceSet, client_cert: str | None
) -> CompiledHttp | CompiledStream:
    """The route's IR and problems, independent of the listeners it attaches to."""
    if isinstance(route, HTTPRoute):
        return compile_http_route(route, resolver, resources, client_cert)
    if isinstance(route, GRPCRoute):
        return compile_grpc_route(route, resolver, resources, client_cert)
    return compile_stream_route(route, resolver)


ParentTarget = tuple[GatewayState, list[ListenerState] | None] | None


def distinct_parent_refs(route: Route) -> tuple[ParentReference, ...]:
    """The route's parentRefs, each parent once: a ref without ``namespace`` names the same parent as one that
    spells out the route's own namespace, so both get one status entry and one attachment (not two IR copies)."""
    refs = route.spec.parent_refs
    if len(refs) <= 1:
        return tuple(refs)
    ns = route.metadata.namespace
    return tuple(dict.fromkeys(p if p.namespace is not None else attrs.evolve(p, namespace=ns) for p in refs))


def route_parents(route: Route, ctx: RouteContext) -> tuple[ParentTarget, ...]:
    """What each distinct parentRef of ``route`` resolves to (``None``: not one of ours)."""
    ns = route.metadata.namespace
    return tuple([_resolve_parent(p, ns, ctx) for p in distinct_parent_refs(route)])


def translate_route(
    route: Route, ctx: RouteContext, targets: tuple[ParentTarget, ...] | None = None
) -> RouteResult | None:
    """Attach ``route`` to its parents and return its status and IR placements (``None``: no parent is ours).

    :param targets: :func:`route_parents` of the route, when the caller has it already.
    """
    ns = route.metadata.namespace
    kind = route.KIND
    parents: list[tuple[ParentReference, GatewayState, list[ListenerState] | None]] = []
    refs = distinct_parent_refs(route)
    for p, found in zip(refs, targets if targets is not None else route_parents(route, ctx), strict=True):
        if found is not None:
            parents.append((p, found[0], found[1]))
    if not parents:
        return None
    compiled: dict[str | None, CompiledHttp | CompiledStream] = {}
    hostnames: tuple[str, ...] | None = None
    if isinstance(route, HTTPRoute | GRPCRoute | TLSRoute):
        hostnames = tuple(route.spec.hostnames)
    gen = route.metadata.generation
    age = route_age(route.metadata)
    attached: dict[int, ListenerState] = {}
    placements: list[Placement] = []
    users: list[tuple[ObjectRef, AbstractSet[tuple[str, str]]]] = []
    reads_namespace = False
    entries: list[dict[str, Any]] = []
    # (Gateway, section, hostname or None for a stream route) placed so far: parentRefs that select the same
    # listener ({gw} and {gw, sectionName: l0}, with and without a port) serve the route there once. One parentRef
    # selects each listener once, and serves each hostname once: then there is nothing to check.
    placed: set[tuple[tuple[str, str], str, str | None]] | None = set() if len(parents) > 1 else None
    for p, gw, candidates in parents:
        cert = gw.client_certificate
        comp = compiled.get(cert)
        if comp is None:
            comp = compiled[cert] = ctx.compile(route, cert)
        problems: Problems = comp.problems
        if candidates is None:
            att = Attachment((), "NotAllowedByListeners", f"ListenerSet {p.name} is not attached to its Gateway")
        else:
            att = attach(candidates, p, kind, ns, hostnames, ctx.resources)
            reads_namespace = reads_namespace or any(
                lst.spec.allowed_routes.namespaces.from_ == "Selector" for lst in candidates
            )
        if not att.accepted:
            accepted = condition("Accepted", False, att.reason, att.message, gen)
        elif problems.accepted is not None:
            accepted = condition("Accepted", False, problems.accepted.reason, problems.accepted.message, gen)
        elif not gw.accepted[0]:
            accepted = condition(
                "Accepted", False, "NoMatchingParent", f"parent Gateway is not accepted: {gw.accepted[2]}", gen
            )
        else:
            accepted = condition("Accepted", True, "Accepted", "Route is accepted", gen)
        if problems.resolved is not None:
            resolved = condition("ResolvedRefs", False, problems.resolved.reason, problems.resolved.message, gen)
        else:
            resolved = condition("ResolvedRefs", True, "ResolvedRefs", "All references are resolved", gen)
        entries.append(
            {
                "parentRef": _parent_ref_status(p, ns),
                "controllerName": ctx.controller_name,
                "conditions": [accepted, resolved],
            }
        )
        for lst, _ in att.listeners:
            attached.setdefault(id(lst), lst)
        if accepted["status"] != "True":
            continue
        if problems.services:
            users.append((gw.ref, problems.services))  # complete once compiled: shared, never changed
        for lst, served in att.listeners:
            if not lst.usable:
                continue
            if isinstance(comp, CompiledHttp):
                if placed is not None:
                    served = tuple([h for h in served if (gw.key, lst.section, h) not in placed])
                    if not served:
                        continue
                    placed.update((gw.key, lst.section, h) for h in served)
                placements.append(Placement(gateway=gw.key, listener=lst, hostnames=served, entries=comp.entries))
            else:
                if placed is not None:
                    if (gw.key, lst.section, None) in placed:
                        continue
                    placed.add((gw.key, lst.section, None))
                stream = StreamRoute(
                    name=f"{kind}/{ns}/{route.metadata.name}@{lst.section}",
                    route=f"{kind}/{ns}/{route.metadata.name}",
                    section=lst.section,
                    hostnames=tuple(h for h in served if h != "*") if kind == "TLSRoute" else (),
                    backends=comp.backends,
                )
                placements.append(Placement(gateway=gw.key, listener=lst, stream=(age, stream)))
    return RouteResult(
        status={"parents": entries},
        attached=tuple(attached.values()),
        placements=tuple(placements),
        users=tuple(users),
        reads_namespace=reads_namespace,
    )
