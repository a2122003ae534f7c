"""Routes of every kind against the Gateways they name: parent resolution, attachment, status, IR placement."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nantian.ir import StreamRoute
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
from nantian.translate.precedence import route_age
from nantian.translate.state import GatewayState, ListenerState, OwnerState
from nantian.translate.streamroutes import compile_stream_route

__all__ = ["RouteContext", "translate_route"]

GROUP = "gateway.networking.k8s.io"
Route = HTTPRoute | GRPCRoute | TLSRoute | TCPRoute | UDPRoute


class RouteContext:
    """Everything route translation reads and fills, shared by every route of one translation."""

    def __init__(
        self,
        *,
        resources: ResourceSet,
        resolver: BackendResolver,
        gateways: Mapping[tuple[str, str], GatewayState],
        listener_sets: Mapping[tuple[str, str], tuple[OwnerState, GatewayState]],
        controller_name: str,
    ) -> None:
        self.resources = resources
        self.resolver = resolver
        self.gateways = gateways
        self.listener_sets = listener_sets
        self.controller_name = controller_name
        self.ir: dict[ObjectRef, GatewayRoutes] = {}
        self.service_users: dict[tuple[str, str], set[ObjectRef]] = {}
        """(namespace, service) -> Gateways whose accepted routes use it (BackendTLSPolicy ancestors); only
        Services that some policy targets are tracked."""
        self.policy_targets: frozenset[tuple[str, str]] = frozenset()

    def routes_for(self, gateway: ObjectRef) -> GatewayRoutes:
        """What routes contributed so far to ``gateway``."""
        found = self.ir.get(gateway)
        if found is None:
            found = self.ir[gateway] = GatewayRoutes()
        return found


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


def _compile(route: Route, ctx: RouteContext, client_cert: str | None) -> CompiledHttp | CompiledStream:
    if isinstance(route, HTTPRoute):
        return compile_http_route(route, ctx.resolver, ctx.resources, client_cert)
    if isinstance(route, GRPCRoute):
        return compile_grpc_route(route, ctx.resolver, ctx.resources, client_cert)
    return compile_stream_route(route, ctx.resolver)


def translate_route(route: Route, ctx: RouteContext) -> Mapping[str, Any] | None:
    """Attach ``route`` to its parents, place its IR, and return its status (``None``: no parent is ours)."""
    ns = route.metadata.namespace
    kind = route.KIND
    parents: list[tuple[ParentReference, GatewayState, list[ListenerState] | None]] = []
    refs = route.spec.parent_refs
    if len(refs) > 1:
        refs = tuple(dict.fromkeys(refs))  # the same parentRef twice gets one status entry
    for p in refs:
        found = _resolve_parent(p, ns, ctx)
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
    counted: set[int] = set()
    entries: list[dict[str, Any]] = []
    for p, gw, candidates in parents:
        cert = gw.client_certificate
        comp = compiled.get(cert)
        if comp is None:
            comp = compiled[cert] = _compile(route, ctx, cert)
        problems: Problems = comp.problems
        if candidates is None:
            att = Attachment((), "NotAllowedByListeners", f"ListenerSet {p.name} is not attached to its Gateway")
        else:
            att = attach(candidates, p, kind, ns, hostnames, ctx.resources)
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
            if id(lst) not in counted:
                counted.add(id(lst))
                lst.attached += 1
        if accepted["status"] != "True":
            continue
        if ctx.policy_targets:
            for svc in problems.services:
                if svc in ctx.policy_targets:
                    ctx.service_users.setdefault(svc, set()).add(gw.ref)
        gw_routes = ctx.routes_for(gw.ref)
        for lst, served in att.listeners:
            if not lst.usable:
                continue
            if isinstance(comp, CompiledHttp):
                for hostname in served:
                    gw_routes.add_http(lst, hostname, comp.entries)
            else:
                gw_routes.add_stream(
                    lst,
                    age,
                    StreamRoute(
                        name=f"{kind}/{ns}/{route.metadata.name}@{lst.section}",
                        route=f"{kind}/{ns}/{route.metadata.name}",
                        section=lst.section,
                        hostnames=tuple(h for h in served if h != "*") if kind == "TLSRoute" else (),
                        backends=comp.backends,
                    ),
                )
    return {"parents": entries}
