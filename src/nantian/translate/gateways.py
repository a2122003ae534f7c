"""Gateways and ListenerSets: acceptance, addresses, listeners (with conflicts), and their status objects."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from nantian.resources import (
    ConfigMap,
    Gateway,
    ListenerSet,
    Namespace,
    ObjectRef,
    ResourceSet,
    Secret,
)
from nantian.translate.addresses import AddressPlan
from nantian.translate.conditions import condition
from nantian.translate.listeners import listener_status, mark_conflicts, validate_listener
from nantian.translate.referencegrant import GrantIndex
from nantian.translate.state import GatewayState, OwnerState
from nantian.translate.tls import certificate_problem

__all__ = ["build_gateway", "gateway_status", "listener_set_status", "listener_sets_by_parent"]

GROUP = "gateway.networking.k8s.io"


def listener_sets_by_parent(resources: ResourceSet) -> dict[tuple[str, str], list[ListenerSet]]:
    """ListenerSets keyed by the (namespace, name) of the Gateway they name, oldest first."""
    out: dict[tuple[str, str], list[ListenerSet]] = {}
    for ls in resources.of_kind(ListenerSet):
        if not isinstance(ls, ListenerSet):
            continue
        p = ls.spec.parent_ref
        if (p.group or GROUP) != GROUP or (p.kind or "Gateway") != "Gateway":
            continue
        out.setdefault((p.namespace or ls.metadata.namespace, p.name), []).append(ls)
    for sets in out.values():
        sets.sort(key=lambda s: (s.metadata.creation_timestamp or "~", s.metadata.namespace, s.metadata.name))
    return out


def _listener_set_allowed(gw: Gateway, ls: ListenerSet, resources: ResourceSet) -> tuple[bool, str]:
    allowed = gw.spec.allowed_listeners
    ns_from = allowed.namespaces.from_ if allowed is not None else "None"
    ls_ns, gw_ns = ls.metadata.namespace, gw.metadata.namespace
    if ns_from == "All":
        return True, ""
    if ns_from == "Same":
        ok = ls_ns == gw_ns
        return ok, "" if ok else f"Gateway {gw_ns}/{gw.metadata.name} allows ListenerSets from its own namespace only"
    if ns_from == "Selector" and allowed is not None and allowed.namespaces.selector is not None:
        ns = resources.namespace(ls_ns)
        labels = dict(ns.metadata.labels) if isinstance(ns, Namespace) else {}
        labels.setdefault("kubernetes.io/metadata.name", ls_ns)
        ok = allowed.namespaces.selector.matches(labels)
        return ok, "" if ok else f"namespace {ls_ns} is not selected by the Gateway's allowedListeners"
    return False, f"Gateway {gw_ns}/{gw.metadata.name} does not allow ListenerSets (allowedListeners)"


def _backend_client_certificate(
    state: GatewayState, resources: ResourceSet, grants: GrantIndex, secrets: dict[str, Any]
) -> tuple[bool, str, str]:
    gw = state.gateway
    backend = gw.spec.tls.backend if gw.spec.tls is not None else None
    ref = backend.client_certificate_ref if backend is not None else None
    if ref is None:
        return True, "ResolvedRefs", "All references are resolved"
    ns = ref.namespace or gw.metadata.namespace
    what = f"clientCertificateRef {ref.kind} {ns}/{ref.name}"
    if (ref.group or "") != "" or ref.kind != "Secret":
        return False, "InvalidClientCertificateRef", f"{what}: only core Secrets are supported"
    if not grants.permits(
        from_group=GROUP,
        from_kind="Gateway",
        from_ns=gw.metadata.namespace,
        to_group="",
        to_kind="Secret",
        to_ns=ns,
        to_name=ref.name,
    ):
        return False, "RefNotPermitted", f"{what}: no ReferenceGrant allows it"
    secret = resources.get(ObjectRef("Secret", ns, ref.name))
    if not isinstance(secret, Secret):
        return False, "InvalidClientCertificateRef", f"{what} not found"
    problem = certificate_problem(secret)
    if problem is not None:
        return False, "InvalidClientCertificateRef", f"{what}: {problem}"
    secrets[f"{ns}/{ref.name}"] = secret
    state.client_certificate = f"{ns}/{ref.name}"
    return True, "ResolvedRefs", "All references are resolved"


def build_gateway(
    gw: Gateway,
    plan: AddressPlan,
    listener_sets: Iterable[ListenerSet],
    resources: ResourceSet,
    grants: GrantIndex,
    secrets: dict[str, Any],
    config_maps: dict[str, ConfigMap],
) -> GatewayState:
    """Validate one of our Gateways and the ListenerSets that name it."""
    state = GatewayState(gateway=gw)
    infra = gw.spec.infrastructure
    if infra is not None and infra.parameters_ref is not None:
        p = infra.parameters_ref
        if resources.get(ObjectRef(p.kind, gw.metadata.namespace, p.name)) is None:
            state.accepted = (False, "InvalidParameters", f"parametersRef {p.group}/{p.kind} {p.name} not found")
    if plan.unsupported is not None and state.accepted[0]:
        state.accepted = (False, "UnsupportedAddress", plan.unsupported)
    if plan.unusable is not None:
        state.programmed_problem = ("AddressNotUsable", plan.unusable)
    state.address = plan.address
    state.addresses = [{"type": "IPAddress", "value": a} for a in plan.status_addresses]
    for spec in gw.spec.listeners:
        state.listeners.append(validate_listener(gw, gw.ref, spec, resources, grants, secrets, config_maps))
    for ls in listener_sets:
        allowed, message = _listener_set_allowed(gw, ls, resources)
        owner = OwnerState(listener_set=ls, gateway=gw, allowed=allowed, message=message)
        if allowed:
            for spec in ls.spec.listeners:
                owner.listeners.append(validate_listener(gw, ls.ref, spec, resources, grants, secrets, config_maps))
        state.listener_sets.append(owner)
    mark_conflicts([state.listeners, *(o.listeners for o in state.listener_sets if o.allowed)])
    resolved = _backend_client_certificate(state, resources, grants, secrets)
    gen = gw.metadata.generation
    state.extra_conditions.append(condition("ResolvedRefs", resolved[0], resolved[1], resolved[2], gen))
    if any(
        lst.client_validation is not None and lst.client_validation.mode.value == "AllowInsecureFallback"
        for lst in state.listeners
    ):
        state.extra_conditions.append(
            condition(
                "InsecureFrontendValidationMode",
                True,
                "ConfigurationChanged",
                "client certificate validation allows clients without a valid certificate (AllowInsecureFallback)",
                gen,
            )
        )
    return state


def gateway_status(state: GatewayState) -> Mapping[str, Any]:
    """The Gateway's ``status``."""
    gw = state.gateway
    gen = gw.metadata.generation
    ok, reason, message = state.accepted
    if not ok:
        programmed = condition("Programmed", False, "Invalid", f"Gateway is not accepted: {message}", gen)
    elif state.programmed_problem is not None:
        programmed = condition("Programmed", False, *state.programmed_problem, gen)
    elif state.listeners and not any(lst.usable for lst in state.all_listeners()):
        programmed = condition("Programmed", False, "Invalid", "no listener is valid", gen)
    elif state.address is None:
        programmed = condition("Programmed", False, "AddressNotAssigned", "no address could be assigned", gen)
    else:
        programmed = condition("Programmed", True, "Programmed", f"Gateway is programmed at {state.address}", gen)
    attached_sets = sum(1 for o in state.listener_sets if o.allowed and any(lst.usable for lst in o.listeners))
    status: dict[str, Any] = {
        "addresses": list(state.addresses),
        "conditions": [condition("Accepted", ok, reason, message, gen), programmed, *state.extra_conditions],
        "listeners": [listener_status(lst, gen) for lst in state.listeners],
    }
    if state.gateway.spec.allowed_listeners is not None or state.listener_sets:
        status["attachedListenerSets"] = attached_sets
    return status


def listener_set_status(owner: OwnerState, gateway_state: GatewayState | None) -> Mapping[str, Any]:
    """A ListenerSet's ``status``: accepted by its Gateway (allowedListeners) and its listeners' statuses."""
    ls = owner.listener_set
    gen = ls.metadata.generation
    if gateway_state is None:
        reason, message, ok = "NotAllowed", "parent Gateway not found or not accepted", False
    elif not owner.allowed:
        reason, message, ok = "NotAllowed", owner.message, False
    elif not gateway_state.accepted[0]:
        reason, message, ok = "ParentNotAccepted", "parent Gateway is not accepted", False
    elif owner.listeners and not any(lst.usable for lst in owner.listeners):
        reason, message, ok = "ListenersNotValid", "no listener of this ListenerSet is valid", False
    else:
        reason, message, ok = "Accepted", "ListenerSet is accepted", True
    conditions = [
        condition("Accepted", ok, reason, message, gen),
        condition(
            "Programmed", ok, "Programmed" if ok else reason, message if not ok else "ListenerSet is programmed", gen
        ),
    ]
    return {
        "conditions": conditions,
        "listeners": [listener_status(lst, gen) for lst in owner.listeners] if owner.allowed else [],
    }
