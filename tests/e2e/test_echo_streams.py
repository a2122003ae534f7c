"""The echo backend's gRPC, TCP and UDP sides, and the ``nantian echo`` command as a subprocess."""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import grpc.aio
import httpx
import pytest
import trustme

from nantian._proto.gateway_api_conformance import grpcecho_pb2, grpcecho_pb2_grpc
from nantian.echo import GRPC_SERVICE_NAME, TCP_WELCOME, EchoServer, PodContext, ServeSpec

pytestmark = pytest.mark.e2e

POD = PodContext(namespace="gateway-conformance-infra", service="tcp-backend", pod="tcp-backend-5f6d-q2")
LOCAL = ("127.0.0.1", 0)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 20))


def address(server: EchoServer, kind: str) -> str:
    listener = next(b for b in server.bound if b.kind == kind)
    return f"{listener.host}:{listener.port}"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    server = ca.issue_cert("abc.example.com")
    server.cert_chain_pems[0].write_to_path(str(root / "server.crt"))
    server.private_key_pem.write_to_path(str(root / "server.key"))
    ca.cert_pem.write_to_path(str(root / "ca.crt"))
    return {"cert": str(root / "server.crt"), "key": str(root / "server.key"), "ca": str(root / "ca.crt")}


def test_grpc_echo_methods_and_metadata() -> None:
    async def scenario() -> None:
        async with EchoServer([ServeSpec(context=POD, grpc=LOCAL)]) as server:
            async with grpc.aio.insecure_channel(address(server, "grpc")) as channel:
                stub = grpcecho_pb2_grpc.GrpcEchoStub(channel)
                reply = await stub.Echo(grpcecho_pb2.EchoRequest(), metadata=(("x-header-set", "one"),), timeout=5)
                assertions = reply.assertions
                assert assertions.fully_qualified_method == f"/{GRPC_SERVICE_NAME}/Echo"
                assert ("x-header-set", "one") in [(h.key, h.value) for h in assertions.headers]
                assert (assertions.context.namespace, assertions.context.pod) == (POD.namespace, POD.pod)
                assert assertions.context.service_name == POD.service
                two = await stub.EchoTwo(grpcecho_pb2.EchoRequest(), timeout=5)
                assert two.assertions.fully_qualified_method.endswith("/EchoTwo")
                with pytest.raises(grpc.aio.AioRpcError) as failure:
                    await stub.EchoThree(grpcecho_pb2.EchoRequest(), timeout=5)
                assert failure.value.code() == grpc.StatusCode.UNIMPLEMENTED
            assert [r.path for r in server.request_log.records()] == [
                f"/{GRPC_SERVICE_NAME}/Echo",
                f"/{GRPC_SERVICE_NAME}/EchoTwo",
            ]

    run(scenario)


def test_grpc_over_tls(tls_files: dict[str, str]) -> None:
    spec = ServeSpec(context=POD, grpcs=LOCAL, cert=tls_files["cert"], key=tls_files["key"])

    credentials = grpc.ssl_channel_credentials(Path(tls_files["ca"]).read_bytes())

    async def scenario() -> None:
        async with EchoServer([spec]) as server:
            options = (("grpc.ssl_target_name_override", "abc.example.com"),)
            async with grpc.aio.secure_channel(address(server, "grpcs"), credentials, options=options) as channel:
                reply = await grpcecho_pb2_grpc.GrpcEchoStub(channel).Echo(grpcecho_pb2.EchoRequest(), timeout=5)
            assert reply.assertions.tls_assertions.negotiated_protocol == "h2"

    run(scenario)


async def _tcp_session(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> tuple[bytes, bytes, dict[str, object]]:
    welcome = await reader.readline()
    writer.write(b"PING\nIS_TLS\r\nTEST\n")
    assert await reader.readline() == b"PONG\n"
    is_tls = await reader.readline()
    test = json.loads(await reader.readline())
    writer.close()
    return welcome, is_tls, test


def test_tcp_line_echo_plain_and_tls(tls_files: dict[str, str]) -> None:
    spec = ServeSpec(context=POD, tcp=LOCAL, tcps=LOCAL, cert=tls_files["cert"], key=tls_files["key"])

    async def scenario() -> None:
        async with EchoServer([spec]) as server:
            host, port = address(server, "tcp").rsplit(":", 1)
            welcome, is_tls, test = await _tcp_session(*await asyncio.open_connection(host, int(port)))
            assert welcome == TCP_WELCOME and is_tls == b"false\n"
            assert test["pod"] == POD.pod and test["namespace"] == POD.namespace and test["isTLS"] is False
            assert test["tcpport"] == port
            context = ssl.create_default_context(cafile=tls_files["ca"])
            host, port = address(server, "tcps").rsplit(":", 1)
            streams = await asyncio.open_connection(host, int(port), ssl=context, server_hostname="abc.example.com")
            welcome, is_tls, test = await _tcp_session(*streams)
            assert welcome == TCP_WELCOME and is_tls == b"true\n"
            assert test["isTLS"] is True
            assert test["tls"]["serverName"] == "abc.example.com"  # type: ignore[index]

    run(scenario)


def test_udp_json_echo() -> None:
    async def scenario() -> None:
        async with EchoServer([ServeSpec(context=POD, udp=LOCAL)]) as server:
            host, port = address(server, "udp").rsplit(":", 1)
            loop = asyncio.get_running_loop()
            answer: asyncio.Future[bytes] = loop.create_future()

            class Client(asyncio.DatagramProtocol):
                def datagram_received(self, data: bytes, addr: object) -> None:
                    answer.set_result(data)

            transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=(host, int(port)))
            transport.sendto(b"hello")
            reply = json.loads(await asyncio.wait_for(answer, 5))
            transport.close()
            assert reply == {
                "request": "hello",
                "namespace": POD.namespace,
                "ingress": "",
                "service": POD.service,
                "pod": POD.pod,
            }

    run(scenario)


def test_cli_serves_many_identities_and_stops_on_sigterm(tmp_path: Path) -> None:
    log_path = tmp_path / "requests.jsonl"
    specs = [
        "http=127.0.0.1:0,namespace=ns-a,service=one,pod=one-abc-1",
        json.dumps(
            {"http": "127.0.0.1:0", "udp": "127.0.0.1:0", "namespace": "ns-b", "service": "two", "pod": "two-x-2"}
        ),
    ]
    argv = [sys.executable, "-m", "nantian.echo", "--request-log", str(log_path)]
    for spec in specs:
        argv += ["--serve", spec]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            events = []
            for _ in range(4):
                events.append(json.loads(process.stdout.readline()))
            assert events[-1] == {"event": "ready", "listeners": 3}
            http = [e for e in events[:-1] if e["kind"] == "http"]
            pods = []
            for event in http:
                body = httpx.get(f"http://{event['address']}/x", timeout=5).json()
                pods.append((body["namespace"], body["pod"]))
            assert pods == [("ns-a", "one-abc-1"), ("ns-b", "two-x-2")]
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
    assert [json.loads(line)["pod"] for line in log_path.read_text().splitlines()] == ["one-abc-1", "two-x-2"]


def test_ipv6_listener_address_is_bracketed() -> None:
    async def scenario() -> None:
        async with EchoServer([ServeSpec(context=POD, http=("::1", 0))]) as server:
            listener = server.bound[0]
            assert listener.address == f"[::1]:{listener.port}"
            async with httpx.AsyncClient() as client:
                body = (await client.get(f"http://{listener.address}/v6", timeout=5)).json()
            assert body["path"] == "/v6"

    run(scenario)


def test_cli_rejects_bad_spec() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nantian.echo", "--serve", "https=127.0.0.1:0,pod=p"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 2
    assert "needs cert= and key=" in result.stderr
