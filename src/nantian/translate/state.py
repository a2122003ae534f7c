"""Intermediate values of a translation: each Gateway's listeners as validated, with what attached to them.

They never escape the translator. A :class:`~nantian.translate.Translator` keeps a Gateway's state from one
translation to the next while :func:`state_key` of a fresh one is unchanged, so that work keyed on the state
object (routes attached to it, its IR listeners) stays valid; ``attached`` is recounted every time.
"""

from __future__ import annotations

from typing import Any

import attrs

from nantian.ir import ClientValidation
from nantian.resources import Gateway, Listener, ListenerSet, ObjectRef

__all__ = ["GatewayState", "ListenerState", "OwnerState", "state_key"]


@attrs.define(eq=False)
class ListenerState:
    """One Gateway or ListenerSet listener after validation."""

    gateway: Gateway
    owner: ObjectRef
    """The Gateway or ListenerSet that declares the listener."""
    spec: Listener
    section: str
    """``namespace/owner/listener``: the IR section name."""
    protocol: str
    tls_mode: str | None
    kinds: tuple[str, ...]
    """Route kinds the listener admits (``supportedKinds``)."""
    accepted: bool = True
    accepted_reason: str = "Accepted"
    accepted_message: str = "Listener is accepted"
    resolved: bool = True
    resolved_reason: str = "ResolvedRefs"
    resolved_message: str = "All references are resolved"
    conflicted_reason: str | None = None
    conflicted_message: str = ""
    programmed_reason: str | None = None
    certificates: list[str] = attrs.field(factory=list)
    """IR secret names of the serving certificates."""
    client_validation: ClientValidation | None = None
    attached: int = 0

    @property
    def name(self) -> str:
        """The listener name (``sectionName``)."""
        return self.spec.name

    @property
    def port(self) -> int:
        """The Gateway port."""
        return self.spec.port

    @property
    def hostname(self) -> str | None:
        """The listener hostname, ``None`` for any."""
        return self.spec.hostname

    @property
    def usable(self) -> bool:
        """Serves traffic: accepted, not conflicted, certificates resolved."""
        return self.accepted and self.conflicted_reason is None and self.resolved_ok_for_serving

    @property
    def resolved_ok_for_serving(self) -> bool:
        """Unresolved route kinds leave the supported ones working; other unresolved references do not."""
        return self.resolved or self.resolved_reason == "InvalidRouteKinds"

    def fail_accepted(self, reason: str, message: str) -> None:
        """Record the first reason the listener is not accepted."""
        if self.accepted:
            self.accepted, self.accepted_reason, self.accepted_message = False, reason, message

    def fail_resolved(self, reason: str, message: str) -> None:
        """Record the first reference the listener cannot resolve."""
        if self.resolved:
            self.resolved, self.resolved_reason, self.resolved_message = False, reason, message


@attrs.define(eq=False)
class OwnerState:
    """A ListenerSet attached (or not) to one of our Gateways."""

    listener_set: ListenerSet
    gateway: Gateway | None
    allowed: bool
    message: str
    listeners: list[ListenerState] = attrs.field(factory=list)


@attrs.define(eq=False)
class GatewayState:
    """One of our Gateways: its own listeners, attached ListenerSets, address and Gateway-level problems."""

    gateway: Gateway
    listeners: list[ListenerState] = attrs.field(factory=list)
    listener_sets: list[OwnerState] = attrs.field(factory=list)
    addresses: list[dict[str, Any]] = attrs.field(factory=list)
    address: str | None = None
    accepted: tuple[bool, str, str] = (True, "Accepted", "Gateway is accepted")
    programmed_problem: tuple[str, str] | None = None
    extra_conditions: list[dict[str, Any]] = attrs.field(factory=list)
    client_certificate: str | None = None
    """IR secret of the Gateway's backend client certificate (``spec.tls.backend``)."""

    ref: ObjectRef = attrs.field(init=False)
    key: tuple[str, str] = attrs.field(init=False)
    """(namespace, name) of the Gateway."""

    def __attrs_post_init__(self) -> None:
        self.ref = self.gateway.ref
        self.key = (self.ref.namespace, self.ref.name)

    def all_listeners(self) -> list[ListenerState]:
        """Gateway listeners first, then those of each attached ListenerSet, in precedence order."""
        out = list(self.listeners)
        for ls in self.listener_sets:
            if ls.allowed:
                out.extend(ls.listeners)
        return out


_LISTENER_FIELDS = tuple(f.name for f in attrs.fields(ListenerState) if f.name != "attached")
_GATEWAY_FIELDS = tuple(f.name for f in attrs.fields(GatewayState) if f.name not in ("listeners", "listener_sets"))


def _listener_key(listener: ListenerState) -> tuple[Any, ...]:
    return tuple(getattr(listener, name) for name in _LISTENER_FIELDS)


def state_key(state: GatewayState) -> tuple[Any, ...]:
    """Everything a Gateway's state holds but the ``attached`` counts, as a value: equal keys, equal states."""
    return (
        tuple(getattr(state, name) for name in _GATEWAY_FIELDS),
        tuple(_listener_key(lst) for lst in state.listeners),
        tuple(
            (o.listener_set, o.gateway, o.allowed, o.message, tuple(_listener_key(lst) for lst in o.listeners))
            for o in state.listener_sets
        ),
    )
