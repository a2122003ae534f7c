"""The runner's pieces against a real echo process, without nantian: pods, endpoints, probes, checks."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nantian.testing import CertificateFactory, load_case

from . import checks, probes
from .backends import PodPlan, PodPlanner, backend_of, doc_key
from .consistency import eventually
from .harness import EchoProcess
from .session import Session, case_path

CASES = ("httproute-simple-same-namespace", "tlsroute-mixed-termination-same-namespace", "udproute-weighted-routing")


class _Pods:
    def __init__(self, planner: PodPlanner, docs: dict[str, list[dict[str, Any]]], session: Session) -> None:
        self.planner = planner
        self.docs = docs
        self.session = session

    def pod(self, deployment: str) -> PodPlan:
        return next(p for p in self.planner.pods if p.deployment == deployment)


@pytest.fixture(scope="module")
def pods(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Pods]:
    work = tmp_path_factory.mktemp("pieces")
    planner = PodPlanner(work / "files", octet=random.randrange(41, 239, 2))
    session = Session(
        gateway=None,  # type: ignore[arg-type]  # the pieces never reach nantian
        planner=planner,
        factory=CertificateFactory(),
        request_log=work / "echo-requests.jsonl",
        work_dir=work,
        placeholders={},
    )
    docs = {}
    for slug in CASES:
        case = load_case(case_path(slug))
        session.plan(case)
        docs[slug] = session.documents(case)
    echo = EchoProcess(planner.pods, work)
    echo.start()
    try:
        yield _Pods(planner, docs, session)
    finally:
        echo.stop()


def test_pods_follow_deployments(pods: _Pods) -> None:
    names = [p.deployment for p in pods.planner.pods]
    assert names.count("infra-backend-v1") == 2  # replicas 2
    assert names.count("infra-backend-v3") == 1  # replicas 1: retry state lives in one pod
    assert len({p.ip for p in pods.planner.pods}) == len(pods.planner.pods)
    assert all(backend_of(p.pod) == p.deployment for p in pods.planner.pods)
    tcp = pods.pod("tcp-backend")
    assert set(tcp.spec) >= {"tcp", "tcps", "cert", "key"}
    assert Path(tcp.spec["cert"]).read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert set(pods.pod("infra-backend-v1").spec) >= {"http", "h2c"}
    assert set(pods.pod("tls-backend").spec) >= {"https", "cert", "key"}
    grpc_v1 = pods.pod("grpc-infra-backend-v1")
    assert set(grpc_v1.spec) >= {"grpc", "grpcs"}
    assert pods.pod("udp-backend-v1").spec["service"] == "udp-backend-v1"


def test_endpoint_slices_publish_the_pods(pods: _Pods) -> None:
    docs = pods.docs["httproute-simple-same-namespace"]
    slices = [d for d in docs if d.get("kind") == "EndpointSlice"]
    by_service = {d["metadata"]["labels"]["kubernetes.io/service-name"]: d for d in slices}
    v1 = by_service["infra-backend-v1"]
    ips = sorted(a for e in v1["endpoints"] for a in e["addresses"])
    assert ips == sorted(p.ip for p in pods.planner.pods if p.deployment == "infra-backend-v1")
    assert {p["name"]: p["port"] for p in v1["ports"]} == {"first-port": 3000, "second-port": 3001, "third-port": 3000}
    assert "coredns" not in by_service  # no echo pods behind it: no invented endpoints


async def test_http_probe_and_checks_against_a_pod(pods: _Pods) -> None:
    pod = pods.pod("infra-backend-v1")
    material = probes.Material(
        {doc_key(d): d for d in pods.docs["httproute-simple-same-namespace"]}, pods.session.work_dir
    )
    sent = {"scheme": "http", "host": "example.com", "method": "GET", "path": "/x?y=1", "headers": {"X-A": "b"}}
    outcome = await probes.http_probe(
        pod.ip, 3000, sent, material, path="/x?y=1", extra_headers={"X-Echo-Set-Header": "X-R:v"}
    )
    expect = {
        "status": [200],
        "backend": "infra-backend-v1",
        "namespace": "gateway-conformance-infra",
        "request": {"headers": {"X-A": "b"}, "absent_headers": ["X-Gone"]},
        "response": {"headers": {"X-R": "v"}},
    }
    assert checks.check_http(outcome, expect, sent, material) == []
    assert checks.check_http(outcome, {**expect, "backend": "infra-backend-v2"}, sent, material)
    assert checks.check_http(outcome, {"status": [404]}, sent, material) == ["status 200, want [404]"]
    assert checks.check_http(outcome, {"connection_error": True}, sent, material)
    h2c = await probes.http_probe(pod.ip, 3001, {**sent, "protocol": "h2c"}, material, path="/x")
    assert h2c.echo is not None and h2c.echo["proto"] == "HTTP/2.0"
    refused = await probes.http_probe(pod.ip, 1, sent, material, path="/")
    assert refused.status is None and checks.check_http(refused, {"connection_error": True}, sent, material) == []


async def test_https_probe_trusts_generated_material(pods: _Pods) -> None:
    pod = pods.pod("tls-backend")
    material = probes.Material(
        {doc_key(d): d for d in pods.docs["httproute-simple-same-namespace"]}, pods.session.work_dir
    )
    sent = {
        "scheme": "https",
        "host": "abc.example.com",
        "path": "/",
        "trusted_cert": "gateway-conformance-infra/tls-checks-ca-certificate",
        "protocol": "h2",
    }
    outcome = await probes.http_probe(pod.ip, 8443, sent, material, path="/")
    assert outcome.status == 200, outcome.error
    assert checks.check_http(outcome, {"request": {"sni": "abc.example.com"}}, sent, material) == []
    wrong = {**sent, "trusted_cert": "gateway-conformance-infra/mismatch-ca-certificate"}
    failed = await probes.http_probe(pod.ip, 8443, wrong, material, path="/")
    assert failed.status is None and "CERTIFICATE_VERIFY_FAILED" in str(failed.error)


async def test_stream_probes(pods: _Pods) -> None:
    material = probes.Material(
        {doc_key(d): d for d in pods.docs["tlsroute-mixed-termination-same-namespace"]}, pods.session.work_dir
    )
    tcp = pods.pod("tcp-backend")
    plain = await probes.tcp_probe(tcp.ip, 3000)
    assert checks.check_stream(plain, {"backend": "tcp-backend", "backend_tls": False}) == []
    context = probes.tls_context(
        material, trusted="gateway-conformance-infra/tls-checks-ca-certificate", client_cert=None, alpn=[]
    )
    secure = await probes.tcp_probe(tcp.ip, 8443, tls=context, sni="abc.example.com")
    assert (
        checks.check_stream(secure, {"backend": "tcp-backend", "backend_tls": True, "backend_sni": "abc.example.com"})
        == []
    )
    assert checks.check_stream(secure, {"backend_tls": False}) == ["backend IS_TLS True, want False"]
    udp = pods.pod("udp-backend-v1")
    answer = await probes.udp_probe(udp.ip, 8080)
    assert checks.check_stream(answer, {"backend": "udp-backend-v1"}, udp=True) == []
    grpc_pod = pods.pod("grpc-infra-backend-v2")
    call = {
        "service": "gateway_api_conformance.echo_basic.grpcecho.GrpcEcho",
        "method": "Echo",
        "metadata": {"Version": "one"},
    }
    outcome = await probes.grpc_probe(grpc_pod.ip, 3000, call)
    assert checks.check_grpc(outcome, {"code": "OK", "backend": "grpc-infra-backend-v2"}, call) == []
    missing = await probes.grpc_probe(grpc_pod.ip, 3000, {**call, "method": "EchoThree"})
    assert checks.check_grpc(missing, {"code": "Unimplemented"}, {**call, "method": "EchoThree"}) == []


async def test_websocket_probe(pods: _Pods) -> None:
    pod = pods.pod("infra-backend-v1")
    entry = {
        "url_path": "/ws",
        "exchange": [{"send_text": "hi", "expect_text": "hi"}, {"send_binary": [1, 2], "expect_binary": [1, 2]}],
    }
    assert await probes.websocket_probe(pod.ip, 3000, entry) is None
    wrong = {"url_path": "/ws", "exchange": [{"send_text": "hi", "expect_text": "ho"}]}
    assert "want text 'ho'" in str(await probes.websocket_probe(pod.ip, 3000, wrong))


def test_status_equivalence_and_redirects() -> None:
    assert checks.status_matches(504, [408]) and checks.status_matches(408, [504])
    assert not checks.status_matches(503, [500])
    material = probes.Material({}, Path("."))
    sent = {"scheme": "http", "path": "/"}
    redirect = probes.HttpOutcome(status=302, headers=(("location", "https://example.org:443/foo"),))
    assert (
        checks.check_http(
            redirect,
            {"status": [302], "redirect": {"scheme": "https", "host": "example.org", "path": "/foo"}},
            sent,
            material,
        )
        == []
    )
    assert checks.check_http(redirect, {"status": [302], "redirect": {"port": 8443}}, sent, material) == [
        "redirect port '443' (Location 'https://example.org:443/foo'), want 8443"
    ]


async def test_eventually_needs_consecutive_passes() -> None:
    answers = iter([[], ["bad"], [], [], []])

    async def attempt() -> list[str]:
        return next(answers)

    assert await eventually(attempt, needed=3, timeout=5, interval=0.001) == []

    async def never() -> list[str]:
        await asyncio.sleep(0)
        return ["nope"]

    assert await eventually(never, needed=1, timeout=0.05, interval=0.01) == ["not met within 0 s: nope"]


@pytest.mark.parametrize(
    ("pattern", "host", "match"),
    [
        ("*.org", "example.org", True),  # Go accepts it; OpenSSL's own check would not
        ("*.org", "a.example.org", False),
        ("*.wildcard.org", "fourth-example.wildcard.org", True),
        ("abc.example.com", "ABC.example.com.", True),
        ("a*.example.com", "ab.example.com", False),
    ],
)
def test_go_hostname_rules(pattern: str, host: str, match: bool) -> None:
    assert probes._go_match(pattern, host) is match
