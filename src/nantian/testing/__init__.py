"""Helpers for testing nantian and code built on it: Gateway API cases and the TLS material they need."""

from nantian.testing.cases import (
    DEFAULT_PLACEHOLDERS,
    Case,
    EndpointSpec,
    accepted_entries,
    apply_step,
    case_documents,
    check_status,
    data_dir,
    load_case,
)
from nantian.testing.certs import CertificateFactory, MaterialSpec, generated_objects, suite_material

__all__ = [
    "DEFAULT_PLACEHOLDERS",
    "Case",
    "CertificateFactory",
    "EndpointSpec",
    "MaterialSpec",
    "accepted_entries",
    "apply_step",
    "case_documents",
    "check_status",
    "data_dir",
    "generated_objects",
    "load_case",
    "suite_material",
]
