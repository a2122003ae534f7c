"""References between objects, as the Gateway API spells them (upstream Go type names).

Defaults are those of the CRDs: a ``ParentReference`` points to a ``Gateway`` of
``gateway.networking.k8s.io``; a backend reference to a core ``Service`` with weight 1. ``namespace``
stays ``None`` when absent: the translator defaults it to the referring object's namespace.
"""

from __future__ import annotations

import attrs

from nantian.resources.meta import GATEWAY_GROUP

__all__ = [
    "BackendObjectReference",
    "BackendRef",
    "LocalObjectReference",
    "LocalPolicyTargetReferenceWithSectionName",
    "ObjectReference",
    "ParametersReference",
    "ParentReference",
    "SecretObjectReference",
]


@attrs.frozen(kw_only=True)
class ParentReference:
    """A route's (or policy's) parent: by default a Gateway, optionally one listener (section) or port."""

    group: str = GATEWAY_GROUP
    kind: str = "Gateway"
    namespace: str | None = None
    name: str
    section_name: str | None = None
    port: int | None = None


@attrs.frozen(kw_only=True)
class BackendObjectReference:
    """A backend: by default a core Service (``group=""``) of the referring namespace."""

    group: str = ""
    kind: str = "Service"
    name: str
    namespace: str | None = None
    port: int | None = None


@attrs.frozen(kw_only=True)
class BackendRef(BackendObjectReference):
    """A weighted backend of a rule."""

    weight: int = 1


@attrs.frozen(kw_only=True)
class SecretObjectReference:
    """A reference to a Secret (by default) holding TLS material."""

    group: str = ""
    kind: str = "Secret"
    name: str
    namespace: str | None = None


@attrs.frozen(kw_only=True)
class ObjectReference:
    """A reference with no defaults (CA certificate references: ConfigMap or Secret)."""

    group: str
    kind: str
    name: str
    namespace: str | None = None


@attrs.frozen(kw_only=True)
class LocalObjectReference:
    """A reference in the same namespace (ExtensionRef filters, CA certificates of a BackendTLSPolicy)."""

    group: str
    kind: str
    name: str


@attrs.frozen(kw_only=True)
class ParametersReference:
    """A GatewayClass's ``parametersRef``; also a Gateway infrastructure's (with ``namespace`` unset)."""

    group: str
    kind: str
    name: str
    namespace: str | None = None


@attrs.frozen(kw_only=True)
class LocalPolicyTargetReferenceWithSectionName:
    """A policy target in the policy's namespace, optionally one section (a Service port name)."""

    group: str
    kind: str
    name: str
    section_name: str | None = None
