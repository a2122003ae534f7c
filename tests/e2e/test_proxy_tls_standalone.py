"""`nantian standalone` as a process, from Gateway API manifests: HTTPS with SNI sections (h2 and 421), gRPC.

The whole path runs: file source -> translate -> IR -> proxy runtime -> TLS/HTTP/2 front end -> backends (the
echo app, HTTP/1.1 and its GrpcEcho service behind a Service with appProtocol kubernetes.io/h2c).
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from collections.abc import Iterator

import attrs
import grpc
import grpc.aio
import httpx
import processes
import pytest
import trustme
import yaml
from processes import free_port, port_offset

from nantian._proto.gateway_api_conformance import grpcecho_pb2, grpcecho_pb2_grpc

pytestmark = pytest.mark.e2e

ADDRESS = "127.0.0.12"
GW_API = "gateway.networking.k8s.io/v1"
TIMEOUT = 10.0


def _manifests(cert: trustme.LeafCert, http_port: int, grpc_port: int) -> list[dict[str, object]]:
    def service(name: str, port: int, target: int, app_protocol: str | None) -> list[dict[str, object]]:
        svc_port: dict[str, object] = {"name": "p", "protocol": "TCP", "port": port, "targetPort": target}
        ep_port: dict[str, object] = {"name": "p", "protocol": "TCP", "port": target}
        if app_protocol:
            svc_port["appProtocol"] = ep_port["appProtocol"] = app_protocol
        return [
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
             "spec": {"ports": [svc_port]}},
            {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
             "metadata": {"name": f"{name}-1", "namespace": "default", "labels": {"kubernetes.io/service-name": name}},
             "addressType": "IPv4", "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
             "ports": [ep_port]},
        ]  # fmt: skip

    chain = b"".join(b.bytes() for b in cert.cert_chain_pems)
    return [
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": "nantian"},
         "spec": {"controllerName": "nantian.io/gateway-controller"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "cert", "namespace": "default"},
         "type": "kubernetes.io/tls",
         "data": {"tls.crt": base64.b64encode(chain).decode(),
                  "tls.key": base64.b64encode(cert.private_key_pem.bytes()).decode()}},
        {"apiVersion": GW_API, "kind": "Gateway", "metadata": {"name": "gw", "namespace": "default"},
         "spec": {"gatewayClassName": "nantian", "addresses": [{"type": "IPAddress", "value": ADDRESS}], "listeners": [
             {"name": "https", "protocol": "HTTPS", "port": 8443,
              "tls": {"mode": "Terminate", "certificateRefs": [{"name": "cert"}]}},
             {"name": "second", "hostname": "second.example.org", "protocol": "HTTPS", "port": 8443,
              "tls": {"certificateRefs": [{"name": "cert"}]}},
             {"name": "grpc", "protocol": "HTTP", "port": 8080}]}},
        {"apiVersion": GW_API, "kind": "HTTPRoute", "metadata": {"name": "web", "namespace": "default"},
         "spec": {"parentRefs": [{"name": "gw", "sectionName": "https"}, {"name": "gw", "sectionName": "second"}],
                  "rules": [{"backendRefs": [{"name": "echo", "port": 80}]}]}},
        {"apiVersion": GW_API, "kind": "GRPCRoute", "metadata": {"name": "grpc", "namespace": "default"},
         "spec": {"parentRefs": [{"name": "gw", "sectionName": "grpc"}],
                  "rules": [{"backendRefs": [{"name": "grpc-echo", "port": 9000}]}]}},
        *service("echo", 80, http_port, None),
        *service("grpc-echo", 9000, grpc_port, "kubernetes.io/h2c"),
    ]  # fmt: skip


@attrs.define
class Deployment:
    https_port: int
    grpc_port: int
    ca: trustme.CA


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    ca = trustme.CA()
    cert = ca.issue_cert("example.org", "second.example.org")
    config = tmp_path_factory.mktemp("config")
    http_port, grpc_port = free_port(), free_port()
    (config / "all.yaml").write_text(yaml.safe_dump_all(_manifests(cert, http_port, grpc_port)))
    offset = port_offset(ADDRESS, 8443, (8080,))
    with (
        processes.echo("--port", str(http_port), "--grpc-port", str(grpc_port), "--pod", "p1"),
        processes.Standalone(config, "--drain-timeout", "2", offset=offset),
    ):
        yield Deployment(https_port=8443 + offset, grpc_port=8080 + offset, ca=ca)


def _get(d: Deployment, sni: str, host: str, *, http2: bool) -> httpx.Response:
    ctx = ssl.create_default_context()
    d.ca.configure_trust(ctx)
    with httpx.Client(verify=ctx, http2=http2, http1=not http2, timeout=TIMEOUT) as client:
        return client.get(
            f"https://{ADDRESS}:{d.https_port}/path", headers={"host": host}, extensions={"sni_hostname": sni}
        )


@pytest.mark.parametrize("http2", [True, False])
def test_https_sections_by_sni(deployment: Deployment, http2: bool) -> None:
    version = "HTTP/2" if http2 else "HTTP/1.1"
    ok = _get(deployment, "example.org", "example.org", http2=http2)
    assert (ok.status_code, ok.http_version) == (200, version)
    echoed = json.loads(ok.content)
    assert echoed["pod"] == "p1" and echoed["host"] == "example.org" and echoed["path"] == "/path"
    assert _get(deployment, "second.example.org", "second.example.org", http2=http2).status_code == 200
    assert _get(deployment, "example.org", "second.example.org", http2=http2).status_code == 421
    assert _get(deployment, "second.example.org", "example.org", http2=http2).status_code == 421


def test_grpc_route_to_an_h2c_service(deployment: Deployment) -> None:
    async def call() -> tuple[str, grpc.StatusCode]:
        async with grpc.aio.insecure_channel(f"{ADDRESS}:{deployment.grpc_port}") as channel:
            stub = grpcecho_pb2_grpc.GrpcEchoStub(channel)
            call = stub.Echo(grpcecho_pb2.EchoRequest(), timeout=TIMEOUT)
            answer = await call
            return answer.assertions.fully_qualified_method, await call.code()

    method, code = asyncio.run(call())
    assert code == grpc.StatusCode.OK
    assert method == "/gateway_api_conformance.echo_basic.grpcecho.GrpcEcho/Echo"
