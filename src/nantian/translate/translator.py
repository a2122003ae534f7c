"""``translate()``: a ResourceSet in, an IR snapshot and Kubernetes statuses out. Pure and deterministic."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import attrs

from nantian.ir import Listener, Snapshot
from nantian.ir import Secret as IrSecret
from nantian.resources import (
    BackendTLSPolicy,
    ConfigMap,
    Gateway,
    GRPCRoute,
    HTTPRoute,
    ObjectRef,
    ReferenceGrant,
    ResourceSet,
    Secret,
    TCPRoute,
    TLSRoute,
    UDPRoute,
)
from nantian.translate.addresses import plan_addresses
from nantian.translate.backends import BackendResolver
from nantian.translate.gatewayclass import class_status, our_classes
from nantian.translate.gateways import (
    build_gateway,
    gateway_status,
    listener_set_status,
    listener_sets_by_parent,
)
from nantian.translate.irbuild import GatewayRoutes, build_listeners
from nantian.translate.policies import PolicyIndex, policy_status
from nantian.translate.referencegrant import GrantIndex
from nantian.translate.routes import RouteContext, translate_route
from nantian.translate.state import GatewayState, OwnerState
from nantian.translate.tls import ca_secret, server_secret

__all__ = ["TranslateOptions", "Translation", "translate"]

log = logging.getLogger(__name__)

DEFAULT_CONTROLLER_NAME = "nantian.io/gateway-controller"


@attrs.frozen(kw_only=True)
class TranslateOptions:
    """How to translate.

    :param controller_name: Only GatewayClasses with this ``spec.controllerName`` (and their Gateways) are ours.
    :param address_pool: CIDR the Gateway addresses come from (``127.0.0.1`` is never handed out).
    """

    controller_name: str = DEFAULT_CONTROLLER_NAME
    address_pool: str = "127.0.0.0/8"


@attrs.frozen(kw_only=True)
class Translation:
    """The result of :func:`translate`.

    ``statuses`` maps each object nantian manages to the Kubernetes ``status`` it computed: JSON-able,
    conditions with ``observedGeneration`` and without ``lastTransitionTime``.
    """

    snapshot: Snapshot
    statuses: Mapping[ObjectRef, Mapping[str, Any]]


_ROUTE_KINDS: tuple[type[HTTPRoute | GRPCRoute | TLSRoute | TCPRoute | UDPRoute], ...] = (
    HTTPRoute,
    GRPCRoute,
    TLSRoute,
    TCPRoute,
    UDPRoute,
)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a translation allocates its many small, acyclic values.

    With a large ResourceSet alive, generation-2 collections triggered by those allocations rescan the whole
    heap and double the cost of a translation; nothing translate() builds needs the cycle collector.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def translate(resources: ResourceSet, options: TranslateOptions | None = None) -> Translation:
    """Translate every object of ours in ``resources`` (see the module docstring of :mod:`nantian.translate`)."""
    with _gc_paused():
        return _translate(resources, options or TranslateOptions())


def _translate(resources: ResourceSet, opts: TranslateOptions) -> Translation:
    statuses: dict[ObjectRef, Mapping[str, Any]] = {}
    classes = our_classes(resources, opts.controller_name)
    for gclass in classes.values():
        statuses[gclass.ref] = class_status(gclass, resources)

    grants = GrantIndex(resources.of_kind(ReferenceGrant))
    policies = PolicyIndex(resources.of_kind(BackendTLSPolicy), resources)
    gateways = [gw for gw in resources.of_kind(Gateway) if gw.spec.gateway_class_name in classes]
    plans = plan_addresses(gateways, opts.address_pool)
    sets_by_parent = listener_sets_by_parent(resources)
    secrets: dict[str, Secret] = {}
    config_maps: dict[str, ConfigMap] = {}
    states: dict[tuple[str, str], GatewayState] = {}
    owners: dict[tuple[str, str], tuple[OwnerState, GatewayState]] = {}
    for gw in gateways:
        key = (gw.metadata.namespace, gw.metadata.name)
        state = build_gateway(gw, plans[key], sets_by_parent.get(key, ()), resources, grants, secrets, config_maps)
        class_conditions = statuses[classes[gw.spec.gateway_class_name].ref]["conditions"]
        if class_conditions[0]["status"] != "True" and state.accepted[0]:
            state.accepted = (False, "Invalid", f"GatewayClass {gw.spec.gateway_class_name} is not accepted")
        states[key] = state
        for owner in state.listener_sets:
            ls = owner.listener_set
            owners[(ls.metadata.namespace, ls.metadata.name)] = (owner, state)

    resolver = BackendResolver(resources, grants, policies)
    ctx = RouteContext(
        resources=resources,
        resolver=resolver,
        gateways=states,
        listener_sets=owners,
        controller_name=opts.controller_name,
    )
    ctx.policy_targets = policies.targets()
    for kind in _ROUTE_KINDS:
        for route in resources.of_kind(kind):
            status = translate_route(route, ctx)
            if status is not None:
                statuses[route.ref] = status

    listeners: list[Listener] = []
    for state in states.values():
        statuses[state.ref] = gateway_status(state)
        for owner in state.listener_sets:
            statuses[owner.listener_set.ref] = listener_set_status(owner, state)
        if _programmed(state):
            listeners.extend(build_listeners(state, ctx.ir.get(state.ref) or GatewayRoutes()))

    for ref, result in policies.results.items():
        ancestors: set[ObjectRef] = set()
        for target in result.policy.spec.target_refs:
            ancestors |= ctx.service_users.get((result.policy.metadata.namespace, target.name), set())
        if ancestors:
            statuses[ref] = policy_status(result, policies.conflicted.get(ref), ancestors, opts.controller_name)

    ir_secrets = _secrets(listeners, resolver, secrets, config_maps)
    snapshot = Snapshot.build(listeners, resolver.clusters.values(), ir_secrets)
    log.debug(
        "translate.done gateways=%d listeners=%d clusters=%d version=%s",
        len(states),
        len(snapshot.listeners),
        len(snapshot.clusters),
        snapshot.version,
    )
    return Translation(snapshot=snapshot, statuses=statuses)


def _programmed(state: GatewayState) -> bool:
    return state.accepted[0] and state.programmed_problem is None and state.address is not None


def _secrets(
    listeners: list[Listener],
    resolver: BackendResolver,
    secrets: Mapping[str, Secret],
    config_maps: Mapping[str, ConfigMap],
) -> list[IrSecret]:
    """IR secrets referenced by the listeners and clusters (and nothing else)."""
    wanted: set[str] = set()
    for lst in listeners:
        for cert in lst.certificates:
            wanted.add(cert.secret)
            if cert.client_validation is not None:
                wanted.update(cert.client_validation.ca_secrets)
    for cluster in resolver.clusters.values():
        if cluster.tls is not None:
            wanted.update(cluster.tls.ca_secrets)
            if cluster.tls.client_certificate is not None:
                wanted.add(cluster.tls.client_certificate)
    maps: dict[str, ConfigMap] = {**config_maps, **resolver.ca_maps}
    out: list[IrSecret] = []
    for name in sorted(wanted):
        if name in secrets:
            out.append(server_secret(secrets[name]))
        elif name in maps:
            out.append(ca_secret(maps[name]))
    return out
