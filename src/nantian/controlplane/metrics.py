"""Control-plane metrics (reconciles, translate time, objects) in their own Prometheus registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from nantian.controlplane.reconciler import Reconciled

__all__ = ["ControlPlaneMetrics"]


class ControlPlaneMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.reconciles = Counter("nantian_reconciles", "Translations of the resource set", registry=self.registry)
        self.translate_seconds = Histogram(
            "nantian_translate_seconds",
            "Time to translate the resource set",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.objects = Gauge("nantian_source_objects", "Objects the source holds", registry=self.registry)
        self.parse_errors = Gauge(
            "nantian_source_parse_errors", "Documents the source could not parse", registry=self.registry
        )

    def observe(self, result: Reconciled) -> None:
        self.reconciles.inc()
        self.translate_seconds.observe(result.seconds)
        self.objects.set(len(result.resources))
        self.parse_errors.set(len(result.resources.errors))
