"""GatewayClass: which classes are ours (by ``controllerName``) and their status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nantian.resources import GatewayClass, ObjectRef, ParametersReference, ResourceSet
from nantian.translate.conditions import condition
from nantian.translate.features import FEATURES

__all__ = ["class_status", "our_classes"]


def our_classes(resources: ResourceSet, controller_name: str) -> dict[str, GatewayClass]:
    """Classes whose ``spec.controllerName`` is ours, by name."""
    return {
        gc.metadata.name: gc
        for gc in resources.of_kind(GatewayClass)
        if isinstance(gc, GatewayClass) and gc.spec.controller_name == controller_name
    }


def class_status(gc: GatewayClass, resources: ResourceSet) -> Mapping[str, Any]:
    """Accepted (parametersRef must point at an existing object) and the supported features."""
    gen = gc.metadata.generation
    ref = gc.spec.parameters_ref
    ok, reason, message = True, "Accepted", "GatewayClass is accepted by nantian"
    if ref is not None and not _parameters_exist(ref, resources):
        ok, reason, message = False, "InvalidParameters", f"parametersRef {ref.kind} {ref.name} not found"
    return {
        "conditions": [
            condition("Accepted", ok, reason, message, gen),
            condition("SupportedVersion", True, "SupportedVersion", "Gateway API version is supported", gen),
        ],
        "supportedFeatures": [{"name": f} for f in sorted(FEATURES)],
    }


def _parameters_exist(ref: ParametersReference, resources: ResourceSet) -> bool:
    return resources.get(ObjectRef(kind=ref.kind, namespace=ref.namespace or "", name=ref.name)) is not None
