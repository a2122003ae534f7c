"""Helpers for testing nantian and code built on it: Gateway API cases, the TLS material they need, transport checks.

Hypothesis strategies live in :mod:`nantian.testing.strategies` (imported on demand: it pulls in hypothesis).
"""

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
from nantian.testing.transport import RecordingConsumer, check_transport, sample_snapshot

__all__ = [
    "DEFAULT_PLACEHOLDERS",
    "Case",
    "CertificateFactory",
    "EndpointSpec",
    "MaterialSpec",
    "RecordingConsumer",
    "accepted_entries",
    "apply_step",
    "case_documents",
    "check_status",
    "check_transport",
    "data_dir",
    "generated_objects",
    "load_case",
    "sample_snapshot",
    "suite_material",
]
