"""What every case of a pytest session shares, and the documents each case loads."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from nantian.testing import Case, CertificateFactory, apply_step, case_documents, data_dir
from nantian.testing.cases import EndpointSpec

from .backends import Document, PodPlanner, doc_key
from .harness import CONTROLLER_NAME, GATEWAY_CLASS, Gateway


@attrs.define
class Session:
    """What every case of a pytest session shares: processes, pods, certificates, addresses."""

    gateway: Gateway
    planner: PodPlanner
    factory: CertificateFactory
    request_log: Path
    work_dir: Path
    placeholders: Mapping[str, str]

    _cache: dict[str, list[dict[str, Any]]] = attrs.field(factory=dict)

    def documents(self, case: Case) -> list[dict[str, Any]]:
        """The case's documents, EndpointSlices publishing the planned echo pods (computed once per case)."""
        if case.slug not in self._cache:
            docs = case_documents(
                case,
                gateway_class=GATEWAY_CLASS,
                controller_name=CONTROLLER_NAME,
                placeholders=self.placeholders,
                factory=self.factory,
            )
            self.planner.plan(docs)
            self._cache[case.slug] = _with_endpoints(docs, self.planner.endpoints(docs))
        return copy.deepcopy(self._cache[case.slug])

    def step_documents(self, docs: Sequence[Document], step: Mapping[str, Any]) -> list[dict[str, Any]]:
        changed = apply_step(
            docs, step, gateway_class=GATEWAY_CLASS, controller_name=CONTROLLER_NAME, placeholders=self.placeholders
        )
        changed = apply_step(
            docs,
            step,
            gateway_class=GATEWAY_CLASS,
            controller_name=CONTROLLER_NAME,
            placeholders=self.placeholders,
            endpoints=self.planner.endpoints(changed, ipv6=True),
        )
        return _with_endpoints(changed, self.planner.endpoints(changed))

    def prepare(self, cases: Sequence[Case]) -> None:
        """Plan echo pods for every case; pods that IPv6 EndpointSlices will name also serve on ``::1``."""
        for case in cases:
            for step in case.steps:
                fill = step.get("set_endpoints") or {}
                if fill.get("address_type") == "IPv6" and fill.get("from_backend"):
                    namespace = str(fill.get("name", "")).rpartition("/")[0]
                    self.planner.want_ipv6.add((namespace, str(fill["from_backend"])))
        for case in cases:
            self.plan(case)

    def plan(self, case: Case) -> None:
        """Plan echo pods for the case and for every document set its steps lead to."""
        docs = self.documents(case)
        for step in case.steps:
            docs = self.step_documents(docs, step)
            self.planner.plan(docs)


def _with_endpoints(
    docs: list[dict[str, Any]], endpoints: Mapping[tuple[str, str], Sequence[EndpointSpec]]
) -> list[dict[str, Any]]:
    """``docs`` with the generated EndpointSlices of every selector Service replaced by ones for ``endpoints``."""
    from nantian.testing.cases import _slices_for  # the same slices case_documents makes

    def generated(doc: Mapping[str, Any]) -> bool:
        labels = (doc.get("metadata") or {}).get("labels") or {}
        service = labels.get("kubernetes.io/service-name")
        _, ns, name = doc_key(doc)
        return (
            doc.get("kind") == "EndpointSlice" and (ns, service) in endpoints and name.startswith(f"{service}-nantian-")
        )

    out = [d for d in docs if not generated(d)]
    for doc in docs:
        if doc.get("kind") == "Service" and (doc.get("spec") or {}).get("selector"):
            _, ns, name = doc_key(doc)
            if (ns, name) in endpoints:
                out.extend(_slices_for(doc, endpoints[(ns, name)]))
    return out


def case_path(slug: str) -> Path:
    """The case file of ``slug`` (``tests/data/gateway-api/cases/<slug>.yaml``)."""
    return data_dir() / "cases" / f"{slug}.yaml"
