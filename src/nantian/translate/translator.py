"""``translate()``: a ResourceSet in, an IR snapshot and Kubernetes statuses out. Pure and deterministic."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import attrs

from nantian.ir import Cluster, Listener, Snapshot
from nantian.ir import Secret as IrSecret
from nantian.resources import (
    BackendTLSPolicy,
    ConfigMap,
    Gateway,
    GRPCRoute,
    HTTPRoute,
    Namespace,
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
from nantian.translate.irbuild import GatewayRoutes, IrReuse, build_listeners
from nantian.translate.policies import PolicyIndex, policy_status
from nantian.translate.referencegrant import GrantIndex
from nantian.translate.routememo import RouteEntry, RouteMemo
from nantian.translate.routes import RouteContext
from nantian.translate.state import GatewayState, OwnerState, state_key
from nantian.translate.tls import ca_secret, server_secret

__all__ = ["TranslateOptions", "Translation", "Translator", "translate"]

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
    """Translate every object of ours in ``resources`` (see the module docstring of :mod:`nantian.translate`).

    Stateless: the same as ``Translator(options).translate(resources)`` with a fresh :class:`Translator`.
    """
    with _gc_paused():  # the Translator is freed before the collector resumes: it never scans what it remembered
        return _translate_once(resources, options)


def _translate_once(resources: ResourceSet, options: TranslateOptions | None) -> Translation:
    return Translator(options).translate(resources)


class Translator:
    """Translates successive ResourceSets, redoing only the work whose inputs changed.

    ``Translator(options).translate(rs)`` returns what :func:`translate` returns for ``rs`` (an equal
    ``statuses`` mapping and a snapshot with the same bytes and version), whatever was translated before. Work
    is remembered per route, per compiled route, per backend resolution, per cluster, per Gateway and per IR
    virtual host and listener, keyed by the identity of the objects it read (Kubernetes objects and IR values
    are immutable), and forgotten as soon as a translation no longer uses it: the memory held is about one
    translation's worth. Cheap changes are those that keep most objects: ``ResourceSet.with_object`` /
    ``without`` do, and so does a source that re-uses unchanged parsed objects.

    Statuses of unchanged objects are the same mapping objects as last time: treat them as read-only.
    One translation runs at a time (a lock); the instance may be used from any thread.
    """

    def __init__(self, options: TranslateOptions | None = None) -> None:
        self.options = options or TranslateOptions()
        self._lock = threading.Lock()
        self._forget()

    def _forget(self) -> None:
        """Start from nothing: the next translation computes everything."""
        self._resolver = BackendResolver()
        self._memo = RouteMemo()
        self._states: dict[tuple[str, str], tuple[tuple[Any, ...], GatewayState]] = {}
        self._parents: tuple[dict[tuple[str, str], GatewayState], dict[tuple[str, str], Any]] = ({}, {})
        self._gateway_epoch = 0
        self._namespaces: tuple[object, ...] | None = None
        self._built: dict[ObjectRef, tuple[GatewayState, list[Listener]]] = {}
        self._ir = IrReuse()
        self._ir_secrets: dict[str, tuple[object, IrSecret]] = {}
        self._epochs = (-1, -1)
        self._epoch = 0
        self._route_statuses: dict[ObjectRef, Mapping[str, Any]] = {}

    def translate(self, resources: ResourceSet) -> Translation:
        """Translate ``resources``; see :func:`translate` and the class docstring."""
        with self._lock, _gc_paused():
            try:
                return self._translate(resources)
            except BaseException:
                # translate() raises only for our own bugs; what was remembered may be half updated, so the
                # next translation starts from scratch rather than from it.
                log.error("translate.failed remembered=%d (forgotten)", len(self._memo.entries))
                self._forget()
                raise

    def _gateway_layer(
        self, resources: ResourceSet, statuses: dict[ObjectRef, Mapping[str, Any]], grants: GrantIndex
    ) -> tuple[dict[tuple[str, str], GatewayState], dict[str, Secret], dict[str, ConfigMap], set[tuple[str, str]]]:
        """Classes, Gateways and ListenerSets, keeping last time's state object for every unchanged Gateway.

        Returns the states, the Secrets and ConfigMaps their listeners use, and the Gateways that changed.
        """
        opts = self.options
        classes = our_classes(resources, opts.controller_name)
        for gclass in classes.values():
            statuses[gclass.ref] = class_status(gclass, resources)
        gateways = [gw for gw in resources.of_kind(Gateway) if gw.spec.gateway_class_name in classes]
        plans = plan_addresses(gateways, opts.address_pool)
        sets_by_parent = listener_sets_by_parent(resources)
        secrets: dict[str, Secret] = {}
        config_maps: dict[str, ConfigMap] = {}
        states: dict[tuple[str, str], GatewayState] = {}
        kept: dict[tuple[str, str], tuple[tuple[Any, ...], GatewayState]] = {}
        changed: set[tuple[str, str]] = set()
        for gw in gateways:
            key = (gw.metadata.namespace, gw.metadata.name)
            state = build_gateway(gw, plans[key], sets_by_parent.get(key, ()), resources, grants, secrets, config_maps)
            class_conditions = statuses[classes[gw.spec.gateway_class_name].ref]["conditions"]
            if class_conditions[0]["status"] != "True" and state.accepted[0]:
                state.accepted = (False, "Invalid", f"GatewayClass {gw.spec.gateway_class_name} is not accepted")
            fingerprint = state_key(state)
            old = self._states.get(key)
            if old is not None and old[0] == fingerprint:
                state = old[1]
            else:
                changed.add(state.key)
            kept[key] = (fingerprint, state)
            states[key] = state
        for key, (_, state) in self._states.items():
            if key not in kept:
                changed.add(state.key)
        self._states = kept
        return states, secrets, config_maps, changed

    def _translate(self, resources: ResourceSet) -> Translation:
        opts = self.options
        statuses: dict[ObjectRef, Mapping[str, Any]] = {}
        grants = GrantIndex(resources.of_kind(ReferenceGrant))
        policies = PolicyIndex(resources.of_kind(BackendTLSPolicy), resources)
        states, secrets, config_maps, dirty = self._gateway_layer(resources, statuses, grants)
        owners: dict[tuple[str, str], tuple[OwnerState, GatewayState]] = {}
        for state in states.values():
            for owner in state.listener_sets:
                ls = owner.listener_set
                owners[(ls.metadata.namespace, ls.metadata.name)] = (owner, state)
        old_states, old_owners = self._parents
        if (
            states.keys() != old_states.keys()
            or owners.keys() != old_owners.keys()
            or any(state is not old_states[k] for k, state in states.items())
            or any(found[0] is not old_owners[k][0] for k, found in owners.items())
        ):
            self._gateway_epoch += 1
        self._parents = (states, owners)
        gateway_epoch = self._gateway_epoch

        resolver = self._resolver
        resolver.begin(resources, grants, policies)
        if (gateway_epoch, resolver.epoch) != self._epochs:
            self._epochs = (gateway_epoch, resolver.epoch)
            self._epoch += 1
        epoch = self._epoch
        memo = self._memo
        ctx = RouteContext(
            resources=resources,
            gateways=states,
            listener_sets=owners,
            controller_name=opts.controller_name,
            compile=memo.compile,
        )
        namespaces = resources.of_kind(Namespace)
        namespaces_changed = namespaces != self._namespaces
        self._namespaces = namespaces

        entries = memo.entries
        get = entries.get
        route_statuses = self._route_statuses
        claimed: set[ObjectRef] = set()
        count = 0
        for kind in _ROUTE_KINDS:
            for route in resources.of_kind(kind):
                count += 1
                entry = get(id(route))
                if entry is not None and (
                    entry.checked == epoch or memo.still_valid(entry, ctx, resolver, gateway_epoch, namespaces_changed)
                ):
                    if entry.plain:
                        entry.checked = epoch
                    continue
                fresh = memo.compute(route, entry, ctx, resolver, gateway_epoch)
                if fresh.plain:
                    fresh.checked = epoch
                ref = route.ref
                dirty |= memo.store(fresh, entry, ref)
                claimed.add(ref)
                if fresh.result is not None:
                    route_statuses[ref] = fresh.result.status
                else:
                    route_statuses.pop(ref, None)
        if len(entries) != count:  # routes went away
            live = {id(route) for kind in _ROUTE_KINDS for route in resources.of_kind(kind)}
            for key in [k for k in entries if k not in live]:
                gone, gateways = memo.drop(key)
                dirty |= gateways
                ref = gone.route.ref
                if ref not in claimed:
                    route_statuses.pop(ref, None)
        attached = memo.attached
        for state in states.values():
            for lst in state.all_listeners():
                lst.attached = attached.get(lst, 0)
            for owner in state.listener_sets:
                if not owner.allowed:
                    for lst in owner.listeners:
                        lst.attached = attached.get(lst, 0)
        memo.release_unheld(resolver)
        statuses.update(route_statuses)

        listeners = self._listeners(states, dirty, statuses)
        self._policy_statuses(policies, entries.values(), statuses)
        clusters = resolver.clusters()
        ir_secrets = self._secrets(listeners, clusters, secrets, {**config_maps, **resolver.ca_maps()})
        snapshot = Snapshot.build(listeners, clusters, ir_secrets)
        log.debug(
            "translate.done gateways=%d listeners=%d clusters=%d version=%s",
            len(states),
            len(snapshot.listeners),
            len(snapshot.clusters),
            snapshot.version,
        )
        return Translation(snapshot=snapshot, statuses=statuses)

    def _listeners(
        self,
        states: Mapping[tuple[str, str], GatewayState],
        dirty: set[tuple[str, str]],
        statuses: dict[ObjectRef, Mapping[str, Any]],
    ) -> list[Listener]:
        """Gateway and ListenerSet statuses, and the IR listeners of programmed Gateways (rebuilt for the
        ``dirty`` ones only)."""
        rebuild: dict[tuple[str, str], GatewayRoutes] = {}
        for state in states.values():
            built = self._built.get(state.ref)
            if _programmed(state) and (state.key in dirty or built is None or built[0] is not state):
                rebuild[state.key] = GatewayRoutes()
        for key, gathered in rebuild.items():  # the order routes are added in does not show (see irbuild)
            for entry in self._memo.by_gateway.get(key, {}).values():
                assert entry.result is not None
                for placement in entry.result.placements:
                    if placement.gateway == key:
                        placement.add_to(gathered)
        listeners: list[Listener] = []
        built_now: dict[ObjectRef, tuple[GatewayState, list[Listener]]] = {}
        for state in states.values():
            statuses[state.ref] = gateway_status(state)
            for owner in state.listener_sets:
                statuses[owner.listener_set.ref] = listener_set_status(owner, state)
            if not _programmed(state):
                continue
            routes = rebuild.get(state.key)
            if routes is not None:
                built_now[state.ref] = (state, build_listeners(state, routes, self._ir))
            else:
                built_now[state.ref] = self._built[state.ref]
            listeners.extend(built_now[state.ref][1])
        self._built = built_now
        self._ir.forget_except(set(built_now))
        return listeners

    def _policy_statuses(
        self, policies: PolicyIndex, entries: Iterable[RouteEntry], statuses: dict[ObjectRef, Mapping[str, Any]]
    ) -> None:
        """BackendTLSPolicy statuses: an ancestor per Gateway whose accepted routes use a targeted Service."""
        if not policies.results:
            return
        targets = policies.targets()
        users: dict[tuple[str, str], set[ObjectRef]] = {}
        for entry in entries:
            if entry.result is not None:
                for gateway, services in entry.result.users:
                    for svc in services & targets:
                        users.setdefault(svc, set()).add(gateway)
        for ref, result in policies.results.items():
            ancestors: set[ObjectRef] = set()
            for target in result.policy.spec.target_refs:
                ancestors |= users.get((result.policy.metadata.namespace, target.name), set())
            if ancestors:
                statuses[ref] = policy_status(
                    result, policies.conflicted.get(ref), ancestors, self.options.controller_name
                )

    def _secrets(
        self,
        listeners: list[Listener],
        clusters: list[Cluster],
        secrets: Mapping[str, Secret],
        config_maps: Mapping[str, ConfigMap],
    ) -> list[IrSecret]:
        """IR secrets referenced by the listeners and clusters (and nothing else), the same objects as last time
        for unchanged Secrets and ConfigMaps."""
        wanted: set[str] = set()
        for lst in listeners:
            for cert in lst.certificates:
                wanted.add(cert.secret)
                if cert.client_validation is not None:
                    wanted.update(cert.client_validation.ca_secrets)
        for cluster in clusters:
            if cluster.tls is not None:
                wanted.update(cluster.tls.ca_secrets)
                if cluster.tls.client_certificate is not None:
                    wanted.add(cluster.tls.client_certificate)
        out: list[IrSecret] = []
        kept: dict[str, tuple[object, IrSecret]] = {}
        for name in sorted(wanted):
            source: Secret | ConfigMap | None = secrets.get(name)
            if source is None:
                source = config_maps.get(name)
                if source is None:
                    continue
            old = self._ir_secrets.get(name)
            if old is not None and old[0] is source:
                ir_secret = old[1]
            else:
                ir_secret = server_secret(source) if isinstance(source, Secret) else ca_secret(source)
            kept[name] = (source, ir_secret)
            out.append(ir_secret)
        self._ir_secrets = kept
        return out


def _programmed(state: GatewayState) -> bool:
    return state.accepted[0] and state.programmed_problem is None and state.address is not None
