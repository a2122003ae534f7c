"""`nantian standalone` as a process (on uvloop), from Gateway API manifests: TCPRoute, UDPRoute and TLSRoute
(passthrough by SNI), to `nantian echo` serving the upstream echo's TCP line protocol, UDP echo and TLS line echo.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import processes
import pytest
import trustme
import yaml
from processes import free_port, port_offset

pytestmark = pytest.mark.e2e

ADDRESS = "127.0.0.13"
GW_API = "gateway.networking.k8s.io/v1"
GW_API_ALPHA = "gateway.networking.k8s.io/v1alpha2"
TIMEOUT = 10.0
TCP, UDP, TLS = 9000, 9001, 9443


def _service(name: str, port: int, target: int, protocol: str = "TCP") -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
         "spec": {"ports": [{"name": "p", "protocol": protocol, "port": port, "targetPort": target}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": f"{name}-1", "namespace": "default", "labels": {"kubernetes.io/service-name": name}},
         "addressType": "IPv4", "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
         "ports": [{"name": "p", "protocol": protocol, "port": target}]},
    ]  # fmt: skip


def _manifests(ports: dict[str, int]) -> list[dict[str, Any]]:
    def route(kind: str, name: str, section: str, service: str, port: int, **spec: Any) -> dict[str, Any]:
        return {"apiVersion": GW_API_ALPHA, "kind": kind, "metadata": {"name": name, "namespace": "default"},
                "spec": {"parentRefs": [{"name": "gw", "sectionName": section}], **spec,
                         "rules": [{"backendRefs": [{"name": service, "port": port}]}]}}  # fmt: skip

    return [
        {"apiVersion": GW_API, "kind": "GatewayClass", "metadata": {"name": "nantian"},
         "spec": {"controllerName": "nantian.io/gateway-controller"}},
        {"apiVersion": GW_API, "kind": "Gateway", "metadata": {"name": "gw", "namespace": "default"},
         "spec": {"gatewayClassName": "nantian", "addresses": [{"type": "IPAddress", "value": ADDRESS}], "listeners": [
             {"name": "tcp", "protocol": "TCP", "port": TCP},
             {"name": "udp", "protocol": "UDP", "port": UDP},
             {"name": "tls", "protocol": "TLS", "port": TLS, "tls": {"mode": "Passthrough"}}]}},
        route("TCPRoute", "tcp", "tcp", "tcp-echo", 3000),
        route("UDPRoute", "udp", "udp", "udp-echo", 3001),
        route("TLSRoute", "a", "tls", "tls-a", 443, hostnames=["a.example"]),
        route("TLSRoute", "b", "tls", "tls-b", 443, hostnames=["*.b.example"]),
        *_service("tcp-echo", 3000, ports["tcp"]),
        *_service("udp-echo", 3001, ports["udp"], "UDP"),
        *_service("tls-a", 443, ports["tls-a"]),
        *_service("tls-b", 443, ports["tls-b"]),
    ]  # fmt: skip


@attrs.define
class Deployment:
    offset: int
    ca: trustme.CA


def _pem_files(directory: Path, name: str, cert: trustme.LeafCert) -> tuple[Path, Path]:
    crt, key = directory / f"{name}.crt", directory / f"{name}.key"
    crt.write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems))
    key.write_bytes(cert.private_key_pem.bytes())
    return crt, key


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    ca = trustme.CA()
    work = tmp_path_factory.mktemp("streams")
    config = work / "config"
    config.mkdir()
    a_crt, a_key = _pem_files(work, "a", ca.issue_cert("a.example"))
    b_crt, b_key = _pem_files(work, "b", ca.issue_cert("*.b.example"))
    ports = {
        "tcp": free_port(),
        "udp": free_port(kind=socket.SOCK_DGRAM),
        "tls-a": free_port(),
        "tls-b": free_port(),
    }
    serve = [
        f"tcp=127.0.0.1:{ports['tcp']},udp=127.0.0.1:{ports['udp']},pod=plain",
        f"tcps=127.0.0.1:{ports['tls-a']},cert={a_crt},key={a_key},pod=tls-a",
        f"tcps=127.0.0.1:{ports['tls-b']},cert={b_crt},key={b_key},pod=tls-b",
    ]
    (config / "all.yaml").write_text(yaml.safe_dump_all(_manifests(ports)))
    offset = port_offset(ADDRESS, TLS, (TCP, UDP, TLS), kinds=(socket.SOCK_STREAM, socket.SOCK_DGRAM))
    with (
        processes.echo(*(arg for spec in serve for arg in ("--serve", spec))),
        processes.Standalone(config, "--drain-timeout", "2", offset=offset),
    ):
        yield Deployment(offset=offset, ca=ca)


async def _line_echo(port: int, tls: ssl.SSLContext | None = None, sni: str | None = None) -> dict[str, Any]:
    """Speak the echo's TCP line protocol (retried while the listener comes up); the ``TEST`` answer."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while True:
        try:
            async with asyncio.timeout(2.0):
                reader, writer = await asyncio.open_connection(ADDRESS, port, ssl=tls, server_hostname=sni)
                try:
                    assert await reader.readline() == b"Gateway API Test TCP Server\n"
                    writer.write(b"PING\nTEST\n")
                    assert await reader.readline() == b"PONG\n"
                    answer: dict[str, Any] = json.loads(await reader.readline())
                    return answer
                finally:
                    writer.close()
                    with contextlib.suppress(OSError, ssl.SSLError):
                        await writer.wait_closed()  # else the TLS shutdown is cut short and the socket leaks
        except (OSError, TimeoutError, AssertionError, ValueError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)


def test_tcp_route(deployment: Deployment) -> None:
    answers = [asyncio.run(_line_echo(TCP + deployment.offset)) for _ in range(3)]
    assert [a["pod"] for a in answers] == ["plain"] * 3 and not answers[0]["isTLS"]


def test_udp_route(deployment: Deployment) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        s.connect((ADDRESS, UDP + deployment.offset))
        deadline = time.monotonic() + TIMEOUT
        while True:
            s.send(b"hello")
            try:
                answer = json.loads(s.recv(65536))
                break
            except (TimeoutError, ConnectionRefusedError):
                assert time.monotonic() < deadline, "no UDP answer"
    assert answer["pod"] == "plain" and answer["request"] == "hello"


def test_tls_passthrough_by_sni(deployment: Deployment) -> None:
    ctx = ssl.create_default_context()
    deployment.ca.configure_trust(ctx)
    port = TLS + deployment.offset
    a = asyncio.run(_line_echo(port, ctx, "a.example"))
    b = asyncio.run(_line_echo(port, ctx, "x.b.example"))
    # the backends terminated TLS themselves and saw the client's SNI: the proxy passed the bytes through
    assert (a["pod"], a["isTLS"], a["tls"]["serverName"]) == ("tls-a", True, "a.example")
    assert (b["pod"], b["tls"]["serverName"]) == ("tls-b", "x.b.example")
