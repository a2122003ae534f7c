"""The traffic of a case section (http, grpc, tls, tcp, udp, websocket), sent and checked entry by entry."""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nantian.echo import read_request_log

from . import checks, probes
from .backends import Key, backend_of
from .consistency import Timing, eventually
from .harness import PORT_OFFSET
from .results import CaseResult


class Traffic:
    """Sends the traffic of case sections to the Gateways in ``objects`` and adds each entry's checks to ``result``."""

    def __init__(
        self,
        *,
        timing: Timing,
        material: probes.Material,
        objects: Mapping[Key, Mapping[str, Any]],
        request_log: Path,
        result: CaseResult,
    ) -> None:
        self.timing = timing
        self.material = material
        self.objects = objects
        self.request_log = request_log
        self.result = result

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

    async def run(self, section: Mapping[str, Any], prefix: str) -> None:
        """Send every entry of ``section`` (a case or a step's ``then``) and record each as a check."""
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
            records = [r for r in read_request_log(self.request_log) if r.time >= since - 1 and r.path == path]
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
                    r for r in read_request_log(self.request_log) if r.time >= started - 1 and r.path == sent["path"]
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


def _fill(text: str, request_id: str) -> str:
    return text.replace("{REQUEST_ID}", request_id).replace("{UUID}", str(uuid.uuid4()))


def _filled_expect(expect: Mapping[str, Any], request_id: str) -> dict[str, Any]:
    out = dict(expect)
    if isinstance(expect.get("request"), Mapping) and expect["request"].get("path"):
        out["request"] = dict(
            expect["request"], path=str(expect["request"]["path"]).replace("{REQUEST_ID}", request_id)
        )
    return out
