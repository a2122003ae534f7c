"""Runs one case against the live processes: documents in, status polled, traffic sent, steps applied."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from nantian.testing import Case, accepted_entries, check_status

from . import probes
from .backends import Key, doc_key
from .consistency import Timing, eventually
from .harness import CONTROLLER_NAME, GATEWAY_CLASS
from .results import CaseResult, StopCase
from .session import Session, case_path
from .traffic import Traffic

__all__ = ["CaseRunner", "Session", "Timing", "case_path"]


class CaseRunner:
    """Runs one case; :meth:`run` returns a :class:`CaseResult`."""

    def __init__(self, session: Session, case: Case, timing: Timing, *, fail_fast: bool = False) -> None:
        self.session = session
        self.case = case
        self.timing = timing
        self.result = CaseResult(fail_fast=fail_fast)
        self.docs: list[dict[str, Any]] = []
        self.objects: dict[Key, dict[str, Any]] = {}
        self.material = probes.Material({}, session.work_dir)

    async def run(self) -> CaseResult:
        try:
            await self._run()
        except StopCase as stop:
            self.result.notes.append(f"stopped after the first failing check ({stop})")
        self.session.gateway.check_alive()
        return self.result

    async def _run(self) -> None:
        self.docs = self.session.documents(self.case)
        await self._sync()
        if self._skipped_by_features():
            return
        preconditions = await self._status(accepted_entries(self.case), "accepted")
        await self._status(list(self.case.status), "status")
        if self.case.infrastructure:
            await self._infrastructure(self.case.infrastructure)
        if preconditions:
            self.result.notes.append("traffic not sent: the accepted preconditions do not hold")
            for section in ("http", "grpc", "tls", "tcp", "udp", "websocket"):
                for i, _ in enumerate(getattr(self.case, section)):
                    self.result.add(f"{section}[{i}]", ["not run: preconditions failed"])
        else:
            await self._traffic(self.case.raw, "")
        for index, step in enumerate(self.case.steps):
            before = dict(self.objects)
            self.docs = self.session.step_documents(self.docs, step)
            await self._sync()
            if step.get("delay_seconds"):
                await asyncio.sleep(float(step["delay_seconds"]))
            then = step.get("then") or {}
            if then.get("status"):
                await self._status(list(then["status"]), f"step[{index}].status", before=before)
            await self._traffic(then, f"step[{index}].")

    async def _sync(self) -> None:
        gateway = self.session.gateway
        gateway.write(self.docs)
        self.objects = await asyncio.to_thread(gateway.wait_synced, self.timing.sync)
        self.material = probes.Material({doc_key(d): d for d in self.docs}, self.session.work_dir)

    def _skipped_by_features(self) -> bool:
        if not (self.case.skip_if_features or self.case.skip_unless_features):
            return False
        gc = self.objects.get(("GatewayClass", "", GATEWAY_CLASS)) or {}
        claimed = {
            str(f.get("name") if isinstance(f, Mapping) else f)
            for f in (gc.get("status") or {}).get("supportedFeatures") or ()
        }
        if set(self.case.skip_if_features) & claimed or not set(self.case.skip_unless_features) <= claimed:
            self.result.notes.append(f"skipped as upstream does: supportedFeatures {sorted(claimed)}")
            self.result.add("features", [])
            return True
        return False

    async def _status(
        self, entries: Sequence[Mapping[str, Any]], label: str, *, before: Mapping[Key, Any] | None = None
    ) -> list[str]:
        if not entries:
            return []

        async def attempt() -> list[str]:
            self.objects = await asyncio.to_thread(self.session.gateway.admin.objects)
            return check_status(
                entries,
                self.objects,
                controller_name=CONTROLLER_NAME,
                before=before,
                placeholders=self.session.placeholders,
            )

        failures = await eventually(attempt, needed=1, timeout=self.timing.status, interval=self.timing.interval)
        self.result.add(label, failures)
        return failures

    async def _infrastructure(self, spec: Mapping[str, Any]) -> None:
        """Objects generated for a Gateway carry its spec.infrastructure labels and annotations."""
        kinds = [str(k) for k in spec.get("kinds") or ("ServiceAccount", "Pod", "Service")]
        namespace = str(spec.get("namespace", ""))
        selector = {str(k): str(v) for k, v in (spec.get("selector") or {}).items()}

        async def attempt() -> list[str]:
            self.objects = await asyncio.to_thread(self.session.gateway.admin.objects)
            found: dict[str, Mapping[str, Any]] = {}
            for (kind, ns, _), obj in sorted(self.objects.items()):
                labels = (obj.get("metadata") or {}).get("labels") or {}
                selected = all(labels.get(k) == v for k, v in selector.items())
                if kind in kinds and ns == namespace and kind not in found and selected:
                    found[kind] = obj
            if not found:
                return [f"no {'/'.join(kinds)} in {namespace} labelled {selector} (generated for the Gateway)"]
            failures: list[str] = []
            for kind, generated in found.items():
                meta = generated.get("metadata") or {}
                for field in ("labels", "annotations"):
                    for key, value in (spec.get(field) or {}).items():
                        if (meta.get(field) or {}).get(str(key)) != str(value):
                            failures.append(f"{kind} {meta.get('name')}: {field} lack {key}={value}")
            return failures

        failures = await eventually(attempt, needed=1, timeout=self.timing.status, interval=self.timing.interval)
        self.result.add("infrastructure", failures)

    async def _traffic(self, section: Mapping[str, Any], prefix: str) -> None:
        traffic = Traffic(
            timing=self.timing,
            material=self.material,
            objects=self.objects,
            request_log=self.session.request_log,
            result=self.result,
        )
        await traffic.run(section, prefix)
