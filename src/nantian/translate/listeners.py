"""Listener validation: protocol, route kinds, TLS certificates, frontend client validation, conflicts.

Conflicts follow listener precedence: a Gateway's own listeners first, then each attached ListenerSet (oldest
first, then namespace/name). Listeners that conflict inside one Gateway (or one ListenerSet) are all marked; a
ListenerSet listener that conflicts with a listener of higher precedence is the one marked.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from nantian.ir import ClientValidation, ClientValidationMode
from nantian.resources import ConfigMap, Gateway, Listener, ObjectRef, ResourceSet, Secret
from nantian.translate.conditions import condition
from nantian.translate.hostnames import valid_hostname
from nantian.translate.referencegrant import GrantIndex
from nantian.translate.state import ListenerState
from nantian.translate.tls import ca_bundle_problem, certificate_problem

__all__ = ["GROUP", "KINDS_BY_PROTOCOL", "listener_status", "mark_conflicts", "validate_listener"]

GROUP = "gateway.networking.k8s.io"

KINDS_BY_PROTOCOL: dict[str, tuple[str, ...]] = {
    "HTTP": ("HTTPRoute", "GRPCRoute"),
    "HTTPS": ("HTTPRoute", "GRPCRoute"),
    "TLS": ("TLSRoute",),
    "TCP": ("TCPRoute",),
    "UDP": ("UDPRoute",),
}


def _route_kinds(listener: ListenerState) -> None:
    allowed = KINDS_BY_PROTOCOL.get(listener.protocol, ())
    wanted = listener.spec.allowed_routes.kinds
    if not wanted:
        listener.kinds = allowed
        return
    valid: list[str] = []
    invalid: list[str] = []
    for rgk in wanted:
        if (rgk.group or "") == GROUP and rgk.kind in allowed:
            if rgk.kind not in valid:
                valid.append(rgk.kind)
        else:
            invalid.append(f"{rgk.group}/{rgk.kind}" if rgk.group else rgk.kind)
    listener.kinds = tuple(valid)
    if invalid:
        listener.fail_resolved(
            "InvalidRouteKinds", f"route kinds {', '.join(invalid)} are not supported on a {listener.protocol} listener"
        )


def _certificates(listener: ListenerState, resources: ResourceSet, grants: GrantIndex, secrets: dict[str, Any]) -> None:
    tls = listener.spec.tls
    refs = tls.certificate_refs if tls is not None else ()
    if not refs:
        listener.fail_resolved("InvalidCertificateRef", "listener needs at least one certificateRef")
        return
    owner = listener.owner
    for ref in refs:
        ns = ref.namespace or owner.namespace
        what = f"certificateRef {ref.kind} {ns}/{ref.name}"
        if (ref.group or "") != "" or ref.kind != "Secret":
            listener.fail_resolved("InvalidCertificateRef", f"{what}: only core Secrets are supported")
            continue
        if not grants.permits(
            from_group=GROUP,
            from_kind=owner.kind,
            from_ns=owner.namespace,
            to_group="",
            to_kind="Secret",
            to_ns=ns,
            to_name=ref.name,
        ):
            listener.fail_resolved("RefNotPermitted", f"{what}: no ReferenceGrant allows it")
            continue
        secret = resources.get(ObjectRef("Secret", ns, ref.name))
        if not isinstance(secret, Secret):
            listener.fail_resolved("InvalidCertificateRef", f"{what} not found")
            continue
        problem = certificate_problem(secret)
        if problem is not None:
            listener.fail_resolved("InvalidCertificateRef", f"{what}: {problem}")
            continue
        name = f"{ns}/{ref.name}"
        secrets[name] = secret
        listener.certificates.append(name)


def _frontend_validation(
    listener: ListenerState, resources: ResourceSet, grants: GrantIndex, config_maps: dict[str, ConfigMap]
) -> None:
    gw = listener.gateway
    frontend = gw.spec.tls.frontend if gw.spec.tls is not None else None
    if frontend is None:
        return
    tls_config = frontend.default
    for per_port in frontend.per_port:
        if per_port.port == listener.port:
            tls_config = per_port.tls
    validation = tls_config.validation if tls_config is not None else None
    if validation is None:
        return
    names: list[str] = []
    for ref in validation.ca_certificate_refs:
        ns = ref.namespace or gw.metadata.namespace
        what = f"caCertificateRef {ref.kind} {ns}/{ref.name}"
        if (ref.group or "") != "" or ref.kind != "ConfigMap":
            listener.fail_resolved("InvalidCACertificateKind", f"{what}: only core ConfigMaps are supported")
        elif not grants.permits(
            from_group=GROUP,
            from_kind="Gateway",
            from_ns=gw.metadata.namespace,
            to_group="",
            to_kind="ConfigMap",
            to_ns=ns,
            to_name=ref.name,
        ):
            listener.fail_resolved("RefNotPermitted", f"{what}: no ReferenceGrant allows it")
        else:
            cm = resources.get(ObjectRef("ConfigMap", ns, ref.name))
            problem = ca_bundle_problem(cm) if isinstance(cm, ConfigMap) else "not found"
            if problem is not None or not isinstance(cm, ConfigMap):
                listener.fail_resolved("InvalidCACertificateRef", f"{what}: {problem}")
            else:
                config_maps[f"{ns}/{ref.name}"] = cm
                names.append(f"{ns}/{ref.name}")
    if not listener.resolved and listener.resolved_reason != "InvalidRouteKinds":
        listener.fail_accepted("NoValidCACertificate", f"client certificate validation: {listener.resolved_message}")
        return
    if not names:
        return
    mode = (
        ClientValidationMode.ALLOW_INSECURE_FALLBACK
        if validation.mode == "AllowInsecureFallback"
        else ClientValidationMode.ALLOW_VALID_ONLY
    )
    listener.client_validation = ClientValidation(ca_secrets=tuple(names), mode=mode)


def validate_listener(
    gateway: Gateway,
    owner: ObjectRef,
    spec: Listener,
    resources: ResourceSet,
    grants: GrantIndex,
    secrets: dict[str, Any],
    config_maps: dict[str, ConfigMap],
) -> ListenerState:
    """Check one listener on its own (conflicts come later, see :func:`mark_conflicts`)."""
    protocol = spec.protocol
    tls_mode = (spec.tls.mode if spec.tls is not None else "Terminate") if protocol in ("HTTPS", "TLS") else None
    state = ListenerState(
        gateway=gateway,
        owner=owner,
        spec=spec,
        section=f"{owner.namespace}/{owner.name}/{spec.name}",
        protocol=protocol,
        tls_mode=tls_mode,
        kinds=(),
    )
    if not 1 <= spec.port <= 65535:
        state.fail_accepted("UnsupportedValue", f"port {spec.port} is out of range")
        return state
    if protocol not in KINDS_BY_PROTOCOL:
        state.fail_accepted("UnsupportedProtocol", f"protocol {protocol} is not supported")
        return state
    if spec.hostname is not None and protocol in ("HTTP", "HTTPS", "TLS") and not valid_hostname(spec.hostname):
        state.fail_accepted("UnsupportedValue", f"hostname {spec.hostname!r} is not a valid DNS name")
        return state
    if protocol == "HTTPS" and tls_mode != "Terminate":
        state.fail_accepted("UnsupportedValue", "HTTPS listeners terminate TLS; tls.mode must be Terminate")
        return state
    if tls_mode not in (None, "Terminate", "Passthrough"):
        state.fail_accepted("UnsupportedValue", f"tls.mode {tls_mode} is not supported")
        return state
    _route_kinds(state)
    if protocol == "HTTPS" or (protocol == "TLS" and tls_mode == "Terminate"):
        _certificates(state, resources, grants, secrets)
        if protocol == "HTTPS":
            _frontend_validation(state, resources, grants, config_maps)
    return state


def _proto_key(listener: ListenerState) -> str:
    """Listeners on one port must agree on this. TLS Terminate and Passthrough may share a port (TLSRouteModeMixed):
    the data plane terminates for SNI names whose section has certificates and passes the others through."""
    return listener.protocol


def _family(listener: ListenerState) -> str:
    return "udp" if listener.protocol == "UDP" else "tcp"


def _conflict(a: ListenerState, b: ListenerState) -> tuple[str, str] | None:
    if a.port != b.port or _family(a) != _family(b):
        return None
    if _proto_key(a) != _proto_key(b):
        return (
            "ProtocolConflict",
            f"port {a.port} is also used with protocol {b.protocol}" + f" by listener {b.section}",
        )
    if (a.hostname or "") == (b.hostname or ""):
        return ("HostnameConflict", f"port {a.port} and hostname {a.hostname or '(none)'} are also used by {b.section}")
    return None


def _set_conflict(listener: ListenerState, found: tuple[str, str]) -> None:
    if listener.conflicted_reason is None:
        listener.conflicted_reason, listener.conflicted_message = found


def mark_conflicts(groups: Iterable[Sequence[ListenerState]]) -> None:
    """Mark conflicting listeners, group by group in precedence order (see the module docstring)."""
    before: list[ListenerState] = []
    for group in groups:
        candidates = [lst for lst in group if lst.accepted]
        for lst in candidates:
            for other in before:
                found = _conflict(lst, other)
                if found is not None:
                    _set_conflict(lst, found)
                    break
        fresh = [lst for lst in candidates if lst.conflicted_reason is None]
        for i, a in enumerate(fresh):
            for b in fresh[i + 1 :]:
                found = _conflict(a, b)
                if found is not None:
                    _set_conflict(a, found)
                    back = _conflict(b, a)
                    if back is not None:
                        _set_conflict(b, back)
        for lst in candidates:
            if lst.conflicted_reason is None:
                before.append(lst)
        for lst in candidates:
            if lst.conflicted_reason is not None:
                lst.kinds = ()


def listener_status(listener: ListenerState, generation: int) -> dict[str, Any]:
    """The ``status.listeners[]`` entry of one listener."""
    conflicted = listener.conflicted_reason
    if conflicted is not None:
        accepted = condition("Accepted", False, conflicted, listener.conflicted_message, generation)
    else:
        accepted = condition(
            "Accepted", listener.accepted, listener.accepted_reason, listener.accepted_message, generation
        )
    if listener.usable:
        programmed = condition("Programmed", True, "Programmed", "Listener is programmed", generation)
    else:
        reason = conflicted or "Invalid"
        message = (
            listener.conflicted_message
            if conflicted
            else (listener.accepted_message if not listener.accepted else listener.resolved_message)
        )
        programmed = condition("Programmed", False, reason, message, generation)
    return {
        "name": listener.name,
        "supportedKinds": [{"group": GROUP, "kind": k} for k in (listener.kinds if listener.accepted else ())],
        "attachedRoutes": listener.attached,
        "conditions": [
            accepted,
            programmed,
            condition(
                "ResolvedRefs", listener.resolved, listener.resolved_reason, listener.resolved_message, generation
            ),
            condition(
                "Conflicted",
                conflicted is not None,
                conflicted or "NoConflicts",
                listener.conflicted_message or "No conflicts",
                generation,
            ),
        ],
    }
