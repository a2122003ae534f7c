"""Runs one case against the live processes: documents in, status polled, traffic sent, steps applied."""

from __future__ import annotations

import asyncio
import copy
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from nantian.echo import read_request_log
from nantian.testing import (
    Case,
    CertificateFactory,
    accepted_entries,
    apply_step,
    case_documents,
    check_status,
    data_dir,
)
from nantian.testing.cases import EndpointSpec

from . import checks, probes
from .backends import Document, Key, PodPlanner, backend_of, doc_key
from .harness import CONTROLLER_NAME, GATEWAY_CLASS, PORT_OFFSET, Gateway

GROUP = "gateway.networking.k8s.io"


@attrs.frozen(kw_only=True)
class Timing:
    """Bounds of every wait (upstream allows 30-180 s; CI cannot)."""

    sync: float = 20.0
    status: float = 20.0
    traffic: float = 10.0
    stream: float = 10.0
    mirror: float = 10.0
    interval: float = 0.1
    consecutive: int = 3
    samples: int = 500
    sample_attempts: int = 3
    in_flight: int = 10

    def scaled(self, factor: float) -> Timing:
        return attrs.evolve(
            self,
            sync=self.sync * factor,
            status=self.status * factor,
            traffic=self.traffic * factor,
            stream=self.stream * factor,
            mirror=self.mirror * factor,
            sample_attempts=1 if factor < 1 else self.sample_attempts,
        )


class StopCase(Exception):
    """Raised by :meth:`CaseResult.add` in fail-fast mode once a check failed."""


@attrs.define
class CaseResult:
    """Every check of a case with its failures (empty: passed).

    With ``fail_fast`` the first failing check ends the case (enough to show an unsupported case still fails).
    """

    checks: list[tuple[str, list[str]]] = attrs.field(factory=list)
    notes: list[str] = attrs.field(factory=list)
    fail_fast: bool = False

    def add(self, label: str, failures: list[str]) -> None:
        self.checks.append((label, failures))
        if failures and self.fail_fast:
            raise StopCase(label)

    @property
    def passed(self) -> int:
        return sum(1 for _, failures in self.checks if not failures)

    @property
    def failures(self) -> list[str]:
        return [f"{label}: {line}" for label, failures in self.checks for line in failures]


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
        endpoints = self.planner.endpoints(changed)
        changed = apply_step(
            docs,
            step,
            gateway_class=GATEWAY_CLASS,
            controller_name=CONTROLLER_NAME,
            placeholders=self.placeholders,
            endpoints=endpoints,
        )
        return _with_endpoints(changed, endpoints)

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


def _fill(text: str, request_id: str) -> str:
    return text.replace("{REQUEST_ID}", request_id).replace("{UUID}", str(uuid.uuid4()))


async def eventually(
    attempt: Callable[[], Awaitable[list[str]]],
    *,
    needed: int,
    timeout: float,  # noqa: ASYNC109 (a deadline for the whole loop, not one await)
    interval: float,
    fatal: Callable[[list[str]], bool] | None = None,
) -> list[str]:
    """Repeat ``attempt`` until it passes ``needed`` times in a row; the last failures if time runs out."""
    deadline = time.monotonic() + timeout
    streak, last = 0, ["never attempted"]
    while True:
        failures = await attempt()
        if not failures:
            streak += 1
            if streak >= needed:
                return []
            continue
        if fatal is not None and fatal(failures):
            return failures
        streak, last = 0, failures
        if time.monotonic() > deadline:
            return [f"not met within {timeout:.0f} s: {line}" for line in last]
        await asyncio.sleep(interval)


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

    # -- traffic ---------------------------------------------------------------------------------------
    def _address(self, gateway_ref: str, port: int | None, protocols: Sequence[str]) -> tuple[str, int]:
        ns, _, name = gateway_ref.rpartition("/")
        gateway = self.objects.get(("Gateway", ns, name))
        if gateway is None:
            raise LookupError(f"Gateway {gateway_ref} not found")
        addresses = (gateway.get("status") or {}).get("addresses") or []
        if not addresses:
            raise LookupError(f"Gateway {gateway_ref} has no status.addresses")
        if port is None:
            listeners = (gateway.get("spec") or {}).get("listeners") or []
            port = next((int(x["port"]) for x in listeners if x.get("protocol") in protocols), None)
            if port is None:
                raise LookupError(f"Gateway {gateway_ref} has no {'/'.join(protocols)} listener")
        return str(addresses[0]["value"]), int(port) + PORT_OFFSET

    async def _traffic(self, section: Mapping[str, Any], prefix: str) -> None:
        handlers: list[tuple[str, Callable[[Mapping[str, Any]], Awaitable[list[str]]]]] = [
            ("http", self._http),
            ("grpc", self._grpc),
            ("tls", self._tls),
            ("tcp", self._tcp),
            ("udp", self._udp),
            ("websocket", self._websocket),
        ]
        for name, handler in handlers:
            for i, entry in enumerate(section.get(name) or ()):
                try:
                    failures = await handler(entry)
                except LookupError as exc:
                    failures = [str(exc)]
                self.result.add(f"{prefix}{name}[{i}]", failures)

    async def _http(self, entry: Mapping[str, Any]) -> list[str]:
        request = dict(entry.get("request") or {})
        scheme = str(request.get("scheme") or "http")
        address, port = self._address(
            str(entry["gateway"]), entry.get("port"), ["HTTPS"] if scheme == "https" else ["HTTP"]
        )
        expect = dict(entry.get("expect") or {})
        extra: dict[str, str] = {}
        if entry.get("backend_response_headers"):
            extra["X-Echo-Set-Header"] = ",".join(f"{k}:{v}" for k, v in entry["backend_response_headers"].items())
        if entry.get("rounds"):
            return await self._rounds(entry, address, port, request, expect, extra)
        request_id = str(uuid.uuid4())

        async def attempt(jitter: bool = False) -> list[str]:
            sent = dict(request, path=_fill(str(request.get("path") or "/"), request_id))
            want = _filled_expect(expect, request_id)
            headers = dict(extra)
            if jitter and random.random() < 0.5:
                headers["X-Jitter"] = str(random.randint(0, 9999))
            outcome = await probes.http_probe(
                address, port, sent, self.material, path=sent["path"], extra_headers=headers
            )
            failures = checks.check_http(outcome, want, sent, self.material)
            if not failures and outcome.echo is not None:
                self._last_pod = str(outcome.echo.get("pod", ""))
            return failures

        started = time.time()
        if entry.get("repeat"):
            for _ in range(int(entry["repeat"]) + 1):
                failures = await attempt()
                if failures:
                    return failures
        else:
            status_not = expect.get("status_not")

            def fatal(failures: list[str]) -> bool:
                return bool(status_not) and any(line.startswith("status 200,") for line in failures)

            failures = await eventually(
                attempt,
                needed=self.timing.consecutive,
                timeout=self.timing.traffic,
                interval=self.timing.interval,
                fatal=fatal,
            )
            if failures:
                return failures
        if expect.get("mirrored_to"):
            path = _fill(str(request.get("path") or "/"), request_id)
            mirror_failures = await self._mirrored(expect["mirrored_to"], path, started)
            if mirror_failures:
                return mirror_failures
        if entry.get("distribution"):

            async def sample() -> str:
                self._last_pod = ""
                failures = await attempt(jitter=True)
                return "" if failures else backend_of(self._last_pod)

            return await self._distribution(entry["distribution"], sample)
        return []

    _last_pod = ""

    async def _mirrored(self, mirrors: Sequence[Mapping[str, Any]], path: str, since: float) -> list[str]:
        deadline = time.monotonic() + self.timing.mirror
        while True:
            records = [r for r in read_request_log(self.session.request_log) if r.time >= since - 1 and r.path == path]
            missing = [
                f"mirror {m['backend']} in {m.get('namespace')} never saw {path}"
                for m in mirrors
                if not any(
                    r.pod.startswith(str(m["backend"])) and (not m.get("namespace") or r.namespace == m["namespace"])
                    for r in records
                )
            ]
            if not missing or time.monotonic() > deadline:
                return missing
            await asyncio.sleep(0.5)

    async def _rounds(
        self,
        entry: Mapping[str, Any],
        address: str,
        port: int,
        request: Mapping[str, Any],
        expect: Mapping[str, Any],
        extra: Mapping[str, str],
    ) -> list[str]:
        rounds = entry["rounds"]
        total = int(rounds.get("requests", 500))
        failures: list[str] = []
        for _ in range(int(rounds.get("max_rounds", 1))):
            request_id = str(uuid.uuid4())
            sent = dict(request, path=_fill(str(request.get("path") or "/"), request_id))
            want = _filled_expect(expect, request_id)
            started = time.time()
            limiter = asyncio.Semaphore(int(rounds.get("concurrency", 10)))

            async def one(
                sent: dict[str, Any] = sent, want: dict[str, Any] = want, limiter: asyncio.Semaphore = limiter
            ) -> list[str]:
                async with limiter:
                    outcome = await probes.http_probe(
                        address, port, sent, self.material, path=sent["path"], extra_headers=extra
                    )
                    return checks.check_http(outcome, want, sent, self.material)

            results = await asyncio.gather(*(one() for _ in range(total)))
            failures = [line for result in results for line in result][:5]
            if not failures:
                await asyncio.sleep(1.0)  # let mirrored copies land
                records = [
                    r
                    for r in read_request_log(self.session.request_log)
                    if r.time >= started - 1 and r.path == sent["path"]
                ]
                for mirror in expect.get("mirrored_to") or ():
                    count = sum(1 for r in records if r.pod.startswith(str(mirror["backend"])))
                    p = float(mirror.get("percent", 100)) / 100
                    spread = 3 * math.sqrt(total * p * (1 - p))
                    if not total * p - spread <= count <= total * p + spread:
                        failures.append(
                            f"mirror {mirror['backend']} got {count}/{total}, want {total * p:.0f} +/- {spread:.1f}"
                        )
            if not failures:
                return []
            await asyncio.sleep(float(rounds.get("pause_s", 0)))
        return failures

    async def _distribution(self, weights: Mapping[str, float], sample: Callable[[], Awaitable[str]]) -> list[str]:
        failures: list[str] = []
        limiter = asyncio.Semaphore(self.timing.in_flight)

        async def limited() -> str:
            async with limiter:
                return await sample()

        for _ in range(self.timing.sample_attempts):
            seen = Counter(await asyncio.gather(*(limited() for _ in range(self.timing.samples))))
            failures = []
            if seen.get(""):
                failures.append(f"{seen['']} of {self.timing.samples} requests failed their expectation")
            unknown = sorted(set(seen) - set(weights) - {""})
            if unknown:
                failures.append(f"traffic reached unlisted backends {unknown}")
            expected = {b for b, w in weights.items() if w > 0}
            if {b for b in seen if b} != expected and not unknown:
                failures.append(f"backends seen {sorted(b for b in seen if b)}, want {sorted(expected)}")
            for backend, weight in weights.items():
                share = seen.get(backend, 0) / self.timing.samples
                if abs(share - weight) > 0.05:
                    failures.append(f"{backend} share {share:.3f}, want {weight} +/- 0.05")
            if not failures:
                return []
        return failures

    async def _grpc(self, entry: Mapping[str, Any]) -> list[str]:
        address, port = self._address(str(entry["gateway"]), entry.get("port"), ["HTTP"])
        request = dict(entry.get("request") or {})
        expect = dict(entry.get("expect") or {})
        pods: list[str] = []

        async def attempt(jitter: bool = False) -> list[str]:
            call = dict(request)
            if jitter and random.random() < 0.5:
                call["metadata"] = dict(call.get("metadata") or {}, **{"x-jitter": str(random.randint(0, 9999))})
            outcome = await probes.grpc_probe(address, port, call)
            failures = checks.check_grpc(outcome, expect, request)
            if not failures:
                pods.append(outcome.pod)
            return failures

        failures = await eventually(
            attempt, needed=self.timing.consecutive, timeout=self.timing.traffic, interval=self.timing.interval
        )
        if failures or not entry.get("distribution"):
            return failures

        async def sample() -> str:
            ok = not await attempt(jitter=True)
            return backend_of(pods[-1]) if ok and pods else ""

        return await self._distribution(entry["distribution"], sample)

    async def _tls(self, entry: Mapping[str, Any]) -> list[str]:
        address, port = self._address(str(entry["gateway"]), entry.get("port"), ["TLS"])
        expect = dict(entry.get("expect") or {})
        sni = str(entry.get("sni") or "")

        async def attempt() -> list[str]:
            if expect.get("rejected"):
                outcome = await probes.tls_rejected_probe(address, port, sni)
            else:
                context = probes.tls_context(
                    self.material, trusted=entry.get("trusted_cert"), client_cert=None, alpn=[]
                )
                outcome = await probes.tcp_probe(address, port, tls=context, sni=sni)
            return checks.check_stream(outcome, expect)

        return await eventually(attempt, needed=1, timeout=self.timing.stream, interval=self.timing.interval)

    async def _tcp(self, entry: Mapping[str, Any]) -> list[str]:
        address, port = self._address(str(entry["gateway"]), entry.get("port"), ["TCP"])
        expect = dict(entry.get("expect") or {})
        pods: list[str] = []

        async def attempt() -> list[str]:
            outcome = await probes.tcp_probe(address, port)
            failures = checks.check_stream(outcome, expect)
            if not failures and outcome.answer:
                pods.append(str(outcome.answer.get("pod", "")))
            return failures

        failures = await eventually(attempt, needed=1, timeout=self.timing.stream, interval=self.timing.interval)
        if failures or not entry.get("distribution"):
            return failures

        async def sample() -> str:
            return backend_of(pods[-1]) if not await attempt() and pods else ""

        return await self._distribution(entry["distribution"], sample)

    async def _udp(self, entry: Mapping[str, Any]) -> list[str]:
        address, port = self._address(str(entry["gateway"]), entry.get("port"), ["UDP"])
        expect = dict(entry.get("expect") or {})

        async def probe() -> tuple[list[str], str]:
            outcome = await probes.udp_probe(address, port)
            failures = checks.check_stream(outcome, expect, udp=True)
            if not failures and not (outcome.answer or {}).get("pod"):
                failures = ["UDP answer names no pod"]
            return failures, str((outcome.answer or {}).get("pod", ""))

        async def attempt() -> list[str]:
            return (await probe())[0]

        failures = await eventually(attempt, needed=1, timeout=self.timing.stream, interval=self.timing.interval)
        if failures or not entry.get("distribution"):
            return failures

        async def sample() -> str:
            failures, pod = await probe()
            return "" if failures else backend_of(pod)

        return await self._distribution(entry["distribution"], sample)

    async def _websocket(self, entry: Mapping[str, Any]) -> list[str]:
        address, port = self._address(str(entry["gateway"]), entry.get("port"), ["HTTP"])

        async def attempt() -> list[str]:
            problem = await probes.websocket_probe(address, port, entry)
            return [problem] if problem else []

        return await eventually(
            attempt, needed=self.timing.consecutive, timeout=self.timing.traffic, interval=self.timing.interval
        )


def _filled_expect(expect: Mapping[str, Any], request_id: str) -> dict[str, Any]:
    out = dict(expect)
    if isinstance(expect.get("request"), Mapping) and expect["request"].get("path"):
        out["request"] = dict(
            expect["request"], path=str(expect["request"]["path"]).replace("{REQUEST_ID}", request_id)
        )
    return out
