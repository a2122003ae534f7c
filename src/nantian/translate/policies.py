"""BackendTLSPolicy: validation, conflicts, which policy applies to a Service port, and policy status."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from nantian.ir import UpstreamTls
from nantian.resources import BackendTLSPolicy, ConfigMap, ObjectRef, ResourceSet
from nantian.translate.conditions import condition
from nantian.translate.tls import ca_bundle_problem

__all__ = ["PolicyIndex", "PolicyResult", "policy_status"]

GROUP = "gateway.networking.k8s.io"


@attrs.frozen(kw_only=True)
class PolicyResult:
    """One policy after validation: the TLS it asks for, or why it cannot be used."""

    policy: BackendTLSPolicy
    tls: UpstreamTls | None
    resolved: tuple[bool, str, str]
    accepted: tuple[bool, str, str]
    ca_maps: tuple[ConfigMap, ...] = ()


def _validate(policy: BackendTLSPolicy, resources: ResourceSet) -> PolicyResult:
    v = policy.spec.validation
    ns = policy.metadata.namespace
    names: list[str] = []
    maps: list[ConfigMap] = []
    resolved = (True, "ResolvedRefs", "All references are resolved")
    for ref in v.ca_certificate_refs:
        what = f"caCertificateRef {ref.kind} {ns}/{ref.name}"
        if (ref.group or "") != "" or ref.kind != "ConfigMap":
            resolved = (False, "InvalidKind", f"{what}: only core ConfigMaps are supported")
            break
        cm = resources.get(ObjectRef("ConfigMap", ns, ref.name))
        problem = ca_bundle_problem(cm) if isinstance(cm, ConfigMap) else "not found"
        if problem is not None or not isinstance(cm, ConfigMap):
            resolved = (False, "InvalidCACertificateRef", f"{what}: {problem}")
            break
        names.append(f"{ns}/{ref.name}")
        maps.append(cm)
    system = v.well_known_ca_certificates == "System"
    if v.well_known_ca_certificates not in (None, "System") and resolved[0]:
        return PolicyResult(
            policy=policy,
            tls=None,
            resolved=resolved,
            accepted=(False, "Invalid", f"wellKnownCACertificates {v.well_known_ca_certificates} is not supported"),
        )
    if not resolved[0]:
        return PolicyResult(
            policy=policy,
            tls=None,
            resolved=resolved,
            accepted=(False, "NoValidCACertificate", resolved[2]),
        )
    if not names and not system:
        return PolicyResult(
            policy=policy,
            tls=None,
            resolved=resolved,
            accepted=(False, "NoValidCACertificate", "no caCertificateRefs and no wellKnownCACertificates"),
        )
    sans = tuple(s.hostname or "" if s.type == "Hostname" else s.uri or "" for s in v.subject_alt_names)
    tls = UpstreamTls(sni=v.hostname, ca_secrets=tuple(names), system_roots=system, subject_alt_names=sans)
    return PolicyResult(
        policy=policy,
        tls=tls,
        resolved=resolved,
        accepted=(True, "Accepted", "Policy is accepted"),
        ca_maps=tuple(maps),
    )


def _age(p: BackendTLSPolicy) -> tuple[str, str, str]:
    return (p.metadata.creation_timestamp or "", p.metadata.namespace, p.metadata.name)


class PolicyIndex:
    """Every BackendTLSPolicy validated and indexed by the Service (and port name) it targets."""

    def __init__(self, policies: Iterable[BackendTLSPolicy], resources: ResourceSet) -> None:
        self.results: dict[ObjectRef, PolicyResult] = {}
        self.conflicted: dict[ObjectRef, str] = {}
        # (namespace, service, section or None) -> winning policy
        self._by_target: dict[tuple[str, str, str | None], PolicyResult] = {}
        for policy in sorted(policies, key=_age):
            result = _validate(policy, resources)
            self.results[policy.ref] = result
            for target in policy.spec.target_refs:
                if (target.group or "") != "" or target.kind != "Service":
                    continue
                key = (policy.metadata.namespace, target.name, target.section_name)
                winner = self._by_target.get(key)
                if winner is None:
                    self._by_target[key] = result
                elif winner.policy.ref != policy.ref:
                    self.conflicted[policy.ref] = f"policy {winner.policy.ref} targets the same Service and section"

    def targets(self) -> frozenset[tuple[str, str]]:
        """(namespace, service) of every Service some policy targets."""
        return frozenset(
            (r.policy.metadata.namespace, t.name)
            for r in self.results.values()
            for t in r.policy.spec.target_refs
            if (t.group or "") == "" and t.kind == "Service"
        )

    def for_port(self, namespace: str, service: str, port_name: str | None) -> PolicyResult | None:
        """The policy for one Service port: one naming the port wins over one for the whole Service."""
        if port_name:
            found = self._by_target.get((namespace, service, port_name))
            if found is not None:
                return found
        return self._by_target.get((namespace, service, None))

    def targeting(self, namespace: str, service: str) -> list[BackendTLSPolicy]:
        """Policies (winning or not) that target ``namespace/service``."""
        return [
            r.policy
            for r in self.results.values()
            if r.policy.metadata.namespace == namespace
            and any(t.kind == "Service" and t.name == service for t in r.policy.spec.target_refs)
        ]


def policy_status(
    result: PolicyResult, conflict: str | None, ancestors: Iterable[ObjectRef], controller_name: str
) -> Mapping[str, Any]:
    """``status.ancestors``: one entry per Gateway whose routes use a targeted Service."""
    gen = result.policy.metadata.generation
    accepted = result.accepted
    if conflict is not None and accepted[0]:
        accepted = (False, "Conflicted", conflict)
    entries = []
    for gw in sorted(set(ancestors)):
        entries.append(
            {
                "ancestorRef": {"group": GROUP, "kind": "Gateway", "namespace": gw.namespace, "name": gw.name},
                "controllerName": controller_name,
                "conditions": [
                    condition("Accepted", accepted[0], accepted[1], accepted[2], gen),
                    condition("ResolvedRefs", result.resolved[0], result.resolved[1], result.resolved[2], gen),
                ],
            }
        )
    return {"ancestors": entries}
