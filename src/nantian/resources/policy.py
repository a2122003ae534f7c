"""ReferenceGrant and BackendTLSPolicy."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from nantian.resources.meta import GATEWAY_GROUP, KubeObjectBase, ObjectMeta, map_field
from nantian.resources.references import LocalObjectReference, LocalPolicyTargetReferenceWithSectionName

__all__ = [
    "BackendTLSPolicy",
    "BackendTLSPolicySpec",
    "BackendTLSPolicyValidation",
    "ReferenceGrant",
    "ReferenceGrantFrom",
    "ReferenceGrantSpec",
    "ReferenceGrantTo",
    "SubjectAltName",
]


@attrs.frozen(kw_only=True)
class ReferenceGrantFrom:
    """Objects of ``group``/``kind`` in ``namespace`` that may refer into the grant's namespace."""

    group: str
    kind: str
    namespace: str


@attrs.frozen(kw_only=True)
class ReferenceGrantTo:
    """Objects of ``group``/``kind`` (only ``name`` if set) in the grant's namespace that may be referred to."""

    group: str
    kind: str
    name: str | None = None


@attrs.frozen(kw_only=True)
class ReferenceGrantSpec:
    """Who may refer (``from_``) to what (``to``)."""

    from_: tuple[ReferenceGrantFrom, ...]
    to: tuple[ReferenceGrantTo, ...]


@attrs.frozen(kw_only=True)
class ReferenceGrant(KubeObjectBase):
    """Allows references from other namespaces into this one."""

    KIND = "ReferenceGrant"
    GROUP = GATEWAY_GROUP

    metadata: ObjectMeta
    spec: ReferenceGrantSpec


@attrs.frozen(kw_only=True)
class SubjectAltName:
    """A name the backend certificate must carry: ``Hostname`` or ``URI``."""

    type: str
    hostname: str | None = None
    uri: str | None = None


@attrs.frozen(kw_only=True)
class BackendTLSPolicyValidation:
    """How to verify the backend: CA certificates (or ``well_known_ca_certificates: System``), hostname, SANs."""

    ca_certificate_refs: tuple[LocalObjectReference, ...] = ()
    well_known_ca_certificates: str | None = None
    hostname: str
    subject_alt_names: tuple[SubjectAltName, ...] = ()


@attrs.frozen(kw_only=True)
class BackendTLSPolicySpec:
    """Targets (Services, optionally one port by name), validation and implementation options."""

    target_refs: tuple[LocalPolicyTargetReferenceWithSectionName, ...]
    validation: BackendTLSPolicyValidation
    options: Mapping[str, str] = map_field()


@attrs.frozen(kw_only=True)
class BackendTLSPolicy(KubeObjectBase):
    """Connect to the targeted backends with TLS, verified as ``validation`` says."""

    KIND = "BackendTLSPolicy"
    GROUP = GATEWAY_GROUP

    metadata: ObjectMeta
    spec: BackendTLSPolicySpec
