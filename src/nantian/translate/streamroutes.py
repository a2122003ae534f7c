"""TCPRoute, UDPRoute and TLSRoute -> weighted backends for IR :class:`~nantian.ir.StreamRoute` values."""

from __future__ import annotations

from nantian.ir import WeightedCluster
from nantian.resources import TCPRoute, TLSRoute, UDPRoute
from nantian.translate.backends import BackendResolver
from nantian.translate.compiled import CompiledStream, Problems
from nantian.translate.filters import Problem

__all__ = ["compile_stream_route"]


def compile_stream_route(route: TCPRoute | UDPRoute | TLSRoute, resolver: BackendResolver) -> CompiledStream:
    """All backends of the route's rules (stream routes have one effective rule)."""
    kind = route.KIND
    stream = "UDP" if kind == "UDPRoute" else "TCP"
    ns = route.metadata.namespace
    problems = Problems()
    out: list[WeightedCluster] = []
    rules = route.spec.rules
    if len(rules) > 1:
        problems.add(Problem("Accepted", "UnsupportedValue", f"{kind} supports one rule, got {len(rules)}"))
    for rule in rules[:1]:
        for ref in rule.backend_refs:
            res = resolver.resolve(
                group=ref.group,
                kind=ref.kind,
                name=ref.name,
                namespace=ref.namespace,
                port=ref.port,
                route_kind=kind,
                route_ns=ns,
                stream=stream,
            )
            if res.service is not None:
                problems.services.add(res.service)
            if res.cluster is None:
                problems.add(
                    Problem(
                        "ResolvedRefs", res.reason if res.reason != "ResolvedRefs" else "BackendNotFound", res.message
                    )
                )
            out.append(WeightedCluster(cluster=res.cluster, weight=max(0, ref.weight)))
    return CompiledStream(backends=tuple(out), problems=problems)
