"""The echo backend over real sockets: HTTP/1.1, h2c, HTTPS (h2, http/1.1, client certificates), WebSocket."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from nantian.echo import EchoServer, PodContext, ServeSpec
from nantian.echo._websocket import encode_frame

pytestmark = pytest.mark.e2e

POD = PodContext(namespace="gateway-conformance-infra", service="infra-backend-v1", pod="infra-backend-v1-7c9d-x1")
LOCAL = ("127.0.0.1", 0)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 20))


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("tls")
    server = ca.issue_cert("echo.test", "abc.example.com")
    client_ca = trustme.CA()
    client = client_ca.issue_cert("client.test")
    files = {
        "cert": root / "server.crt",
        "key": root / "server.key",
        "ca": root / "ca.crt",
        "client_ca": root / "client-ca.crt",
        "client_cert": root / "client.pem",
    }
    server.cert_chain_pems[0].write_to_path(str(files["cert"]))
    server.private_key_pem.write_to_path(str(files["key"]))
    ca.cert_pem.write_to_path(str(files["ca"]))
    client_ca.cert_pem.write_to_path(str(files["client_ca"]))
    files["client_cert"].write_bytes(client.private_key_and_cert_chain_pem.bytes())
    return {name: str(path) for name, path in files.items()}


def address(server: EchoServer, kind: str) -> str:
    listener = next(b for b in server.bound if b.kind == kind)
    return f"{listener.host}:{listener.port}"


def test_http1_echo_describes_the_request() -> None:
    async def scenario() -> None:
        async with EchoServer([ServeSpec(context=POD, http=LOCAL)]) as server:
            url = f"http://{address(server, 'http')}/some/path?b=2&a=1"
            async with httpx.AsyncClient() as client:
                response = await client.get(url, headers={"Host": "example.com", "x-custom-THING": "one"})
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/json"
            body = response.json()
            assert body["path"] == "/some/path?b=2&a=1"
            assert body["host"] == "example.com"
            assert body["method"] == "GET"
            assert body["proto"] == "HTTP/1.1"
            assert body["headers"]["X-Custom-Thing"] == ["one"]
            assert "Host" not in body["headers"]
            assert (body["namespace"], body["service"], body["pod"]) == (POD.namespace, POD.service, POD.pod)
            assert body["httpPort"] == address(server, "http").rsplit(":", 1)[1]
            assert "tls" not in body
            records = server.request_log.records()
            assert [(r.pod, r.path) for r in records] == [(POD.pod, "/some/path?b=2&a=1")]

    run(scenario)


def test_controls_set_headers_status_health_delay() -> None:
    async def scenario() -> None:
        async with EchoServer([ServeSpec(context=POD, http=LOCAL)]) as server:
            base = f"http://{address(server, 'http')}"
            async with httpx.AsyncClient() as client:
                response = await client.get(f"{base}/", headers={"X-Echo-Set-Header": "X-Foo:one, X-Bar:two"})
                assert response.headers["x-foo"] == "one"
                assert response.headers["x-bar"] == "two"
                assert (await client.get(f"{base}/status/418")).status_code == 418
                assert (await client.get(f"{base}/status/418?x=1")).status_code == 400
                health = await client.get(f"{base}/health")
                assert (health.status_code, health.text) == (200, "OK")
                started = time.monotonic()
                assert (await client.get(f"{base}/?delay=300ms")).status_code == 200
                assert time.monotonic() - started >= 0.29
                bad = await client.get(f"{base}/?delay=soon")
                assert bad.status_code == 500
                assert "invalid duration" in bad.json()["message"]
                head = await client.head(f"{base}/")
                assert head.status_code == 200 and head.content == b""

    run(scenario)


def test_retry_fails_first_attempts_with_status_or_reset() -> None:
    async def scenario() -> None:
        async with EchoServer([ServeSpec(context=POD, http=LOCAL)]) as server:
            base = f"http://{address(server, 'http')}/retry/x"
            async with httpx.AsyncClient() as client:
                codes = [
                    (await client.get(f"{base}?responseCode=503&succeedAfter=2&uuid=u1")).status_code for _ in "abc"
                ]
                assert codes == [503, 503, 200]
                started = time.monotonic()
                delayed = await client.get(f"{base}?delayRetry=200ms&responseCode=500&succeedAfter=1&uuid=u2")
                assert delayed.status_code == 500 and time.monotonic() - started >= 0.19
                with pytest.raises(httpx.TransportError):
                    await client.get(f"{base}?succeedAfter=1&uuid=u3")
                assert (await client.get(f"{base}?succeedAfter=1&uuid=u3")).status_code == 200
                assert (await client.get(f"{base}?uuid=u4")).status_code == 400

    run(scenario)


def test_h2c_prior_knowledge_and_http1_refused() -> None:
    async def scenario() -> None:
        async with EchoServer([ServeSpec(context=POD, h2c=LOCAL)]) as server:
            url = f"http://{address(server, 'h2c')}/h2?x=1"
            async with httpx.AsyncClient(http1=False, http2=True) as client:
                responses = await asyncio.gather(*(client.get(url, headers={"X-Index": str(i)}) for i in range(5)))
            for i, response in enumerate(responses):
                assert response.http_version == "HTTP/2"
                body = response.json()
                assert (body["proto"], body["path"], body["headers"]["X-Index"]) == ("HTTP/2.0", "/h2?x=1", [str(i)])
                assert body["host"] == address(server, "h2c")
            async with httpx.AsyncClient() as client:
                refused = await client.get(url)
            assert (refused.status_code, refused.text) == (400, "Expected h2c request")

    run(scenario)


@pytest.mark.parametrize("http2", [True, False], ids=["h2", "http1.1"])
def test_https_reports_tls_and_client_certificate(tls_files: dict[str, str], http2: bool) -> None:
    spec = ServeSpec(
        context=POD, https=LOCAL, cert=tls_files["cert"], key=tls_files["key"], client_ca=tls_files["client_ca"]
    )

    async def scenario() -> None:
        async with EchoServer([spec]) as server:
            context = ssl.create_default_context(cafile=tls_files["ca"])
            context.load_cert_chain(tls_files["client_cert"])
            url = f"https://{address(server, 'https')}/secure"
            async with httpx.AsyncClient(verify=context, http2=http2) as client:
                response = await client.get(
                    url, headers={"Host": "abc.example.com"}, extensions={"sni_hostname": "abc.example.com"}
                )
            body = response.json()
            assert body["proto"] == ("HTTP/2.0" if http2 else "HTTP/1.1")
            tls = body["tls"]
            assert tls["serverName"] == "abc.example.com" == body["sni"]
            assert tls["negotiatedProtocol"] == ("h2" if http2 else "http/1.1")
            assert tls["version"].startswith("TLSv1.")
            assert tls["peerCertificates"][0].startswith("-----BEGIN CERTIFICATE-----")
            # without a client certificate the handshake still succeeds (upstream: VerifyClientCertIfGiven)
            anonymous = ssl.create_default_context(cafile=tls_files["ca"])
            async with httpx.AsyncClient(verify=anonymous, http2=http2) as client:
                plain = await client.get(url, extensions={"sni_hostname": "echo.test"})
            assert "peerCertificates" not in plain.json()["tls"]

    run(scenario)


def test_https_can_require_a_client_certificate(tls_files: dict[str, str]) -> None:
    spec = ServeSpec(
        context=POD,
        https=LOCAL,
        cert=tls_files["cert"],
        key=tls_files["key"],
        client_ca=tls_files["client_ca"],
        require_client_cert=True,
    )

    async def scenario() -> None:
        async with EchoServer([spec]) as server:
            url = f"https://{address(server, 'https')}/"
            anonymous = ssl.create_default_context(cafile=tls_files["ca"])
            async with httpx.AsyncClient(verify=anonymous) as client:
                with pytest.raises(httpx.TransportError):
                    await client.get(url, extensions={"sni_hostname": "echo.test"})
            with_cert = ssl.create_default_context(cafile=tls_files["ca"])
            with_cert.load_cert_chain(tls_files["client_cert"])
            async with httpx.AsyncClient(verify=with_cert) as client:
                response = await client.get(url, extensions={"sni_hostname": "echo.test"})
            assert response.status_code == 200

    run(scenario)


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readexactly(2)
    size = head[1] & 0x7F
    if size == 126:
        size = int.from_bytes(await reader.readexactly(2), "big")
    return head[0] & 0x0F, await reader.readexactly(size)


def test_websocket_echoes_text_and_binary_frames() -> None:
    async def scenario() -> None:
        async with EchoServer([ServeSpec(context=POD, http=LOCAL)]) as server:
            host, port = address(server, "http").rsplit(":", 1)
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(
                b"GET /ws HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                b"Origin: ws://gateway/test\r\n\r\n"
            )
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101")
            assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
            mask = os.urandom(4)
            writer.write(encode_frame(0x1, b"Websocket Support!", mask=mask))
            assert await _read_frame(reader) == (0x1, b"Websocket Support!")
            writer.write(encode_frame(0x2, bytes(range(1, 8)), mask=mask) + encode_frame(0x9, b"hi", mask=mask))
            assert await _read_frame(reader) == (0x2, bytes(range(1, 8)))
            assert await _read_frame(reader) == (0xA, b"hi")
            writer.write(encode_frame(0x8, b"\x03\xe8", mask=mask))
            assert await _read_frame(reader) == (0x8, b"\x03\xe8")
            assert await reader.read() == b""
            writer.close()

    run(scenario)


def test_malformed_request_gets_400_and_close() -> None:
    async def scenario() -> None:
        async with EchoServer([ServeSpec(context=POD, http=LOCAL)]) as server:
            host, port = address(server, "http").rsplit(":", 1)
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n")
            answer = await reader.read()
            assert answer.startswith(b"HTTP/1.1 400 Bad Request")
            writer.close()

    run(scenario)


def test_request_then_half_close_is_answered_and_closed() -> None:
    async def scenario() -> None:
        async with EchoServer([ServeSpec(context=POD, http=LOCAL)]) as server:
            host, port = address(server, "http").rsplit(":", 1)
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"GET /eof?delay=50ms HTTP/1.1\r\nHost: x\r\n\r\n")
            writer.write_eof()
            answer = await asyncio.wait_for(reader.read(), 5)  # complete: the server closes after answering
            assert answer.startswith(b"HTTP/1.1 200 OK") and b'"path": "/eof?delay=50ms"' in answer
            writer.close()

    run(scenario)


def test_oversized_request_head_gets_431() -> None:
    async def scenario() -> None:
        async with EchoServer([ServeSpec(context=POD, http=LOCAL)]) as server:
            host, port = address(server, "http").rsplit(":", 1)
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"a" * 70_000 + b"\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(), 5)
            assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large")
            writer.close()

    run(scenario)


def test_expect_100_continue_is_answered_before_the_body() -> None:
    async def scenario() -> None:
        async with EchoServer([ServeSpec(context=POD, http=LOCAL)]) as server:
            host, port = address(server, "http").rsplit(":", 1)
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
            assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2) == b"HTTP/1.1 100 Continue\r\n\r\n"
            writer.write(b"data")
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 OK")
            writer.close()

    run(scenario)


def test_pipelined_requests_answered_in_order() -> None:
    async def scenario() -> None:
        async with EchoServer([ServeSpec(context=POD, http=LOCAL)]) as server:
            host, port = address(server, "http").rsplit(":", 1)
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"".join(f"GET /{i}?delay={3 - i}0ms HTTP/1.1\r\nHost: x\r\n\r\n".encode() for i in range(3)))
            paths: list[Any] = []
            for _ in range(3):
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(
                    next(v for k, v in (h.split(b": ", 1) for h in head.split(b"\r\n")[1:-2]) if k == b"Content-Length")
                )
                paths.append(json.loads(await reader.readexactly(length))["path"].split("?")[0])
            assert paths == ["/0", "/1", "/2"]
            writer.close()

    run(scenario)


def test_request_log_file(tmp_path: Path) -> None:
    from nantian.echo import RequestLog, read_request_log

    log_path = tmp_path / "requests.jsonl"

    async def scenario() -> None:
        request_log = RequestLog(log_path)
        server = EchoServer([ServeSpec(context=POD, http=LOCAL)], request_log=request_log)
        async with server, httpx.AsyncClient() as client:
            await client.get(f"http://{address(server, 'http')}/mirror?id=1")
            await client.get(f"http://{address(server, 'http')}/health")
        request_log.close()

    run(scenario)
    records = list(read_request_log(log_path))
    assert [(r.service, r.path, r.protocol) for r in records] == [("infra-backend-v1", "/mirror?id=1", "http")]
