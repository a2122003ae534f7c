"""One attempt of each kind of traffic a case sends: HTTP(S), gRPC, TLS, TCP, UDP, WebSocket.

A probe never raises for a network failure: it returns an outcome that says what happened, and the
checks in ``checks.py`` decide whether that outcome meets an expectation.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import json
import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import grpc
import grpc.aio
import httpx

from nantian._proto.gateway_api_conformance import grpcecho_pb2
from nantian.echo._websocket import encode_frame

from .backends import Document, Key

PROBE_TIMEOUT = 10.0
_CERTIFICATE_REQUEST = 13  # TLS HandshakeType certificate_request


@attrs.frozen(kw_only=True)
class HttpOutcome:
    """What one HTTP request got: a response (status, headers, echo body if any) or an error."""

    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    echo: Mapping[str, Any] | None = None
    error: str | None = None
    client_cert_requested: bool = False

    def header_values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


@attrs.frozen(kw_only=True)
class GrpcOutcome:
    code: str
    pod: str = ""
    namespace: str = ""
    method: str = ""
    error: str = ""


@attrs.frozen(kw_only=True)
class StreamOutcome:
    """A TCP/TLS/UDP probe: the echo's JSON (``pod``, ``namespace``, ...) or an error."""

    answer: Mapping[str, Any] | None = None
    is_tls: bool | None = None
    error: str | None = None
    rejected: bool = False


class Material:
    """TLS material of the current case's documents, as files a client can load."""

    def __init__(self, documents: Mapping[Key, Document], directory: Path) -> None:
        self._documents = documents
        self._directory = directory

    def pem(self, ref: str, *, kind: str | None = None) -> bytes:
        """``tls.crt`` of Secret ``ref`` or ``ca.crt`` of ConfigMap ``ref`` (``namespace/name``)."""
        namespace, _, name = ref.rpartition("/")
        for candidate in (kind,) if kind else ("Secret", "ConfigMap"):
            doc = self._documents.get((str(candidate), namespace, name))
            if doc is None:
                continue
            data = doc.get("data") or {}
            if candidate == "Secret" and "tls.crt" in data:
                return base64.b64decode(data["tls.crt"])
            if candidate == "ConfigMap" and "ca.crt" in data:
                return str(data["ca.crt"]).encode()
        raise KeyError(f"no generated TLS material {ref}")

    def client_pair(self, ref: str) -> Path:
        """A file with the certificate and key of Secret ``ref``, for ``load_cert_chain``."""
        namespace, _, name = ref.rpartition("/")
        doc = self._documents[("Secret", namespace, name)]
        data = doc.get("data") or {}
        path = self._directory / f"client-{namespace}-{name}.pem"
        path.write_bytes(base64.b64decode(data["tls.crt"]) + b"\n" + base64.b64decode(data["tls.key"]))
        return path


def tls_context(material: Material, *, trusted: str | None, client_cert: str | None, alpn: list[str]) -> ssl.SSLContext:
    """A client context trusting only ``trusted`` (no verification without it), offering ``client_cert``.

    Like Go's client (the upstream suite's), a trusted leaf certificate is a valid anchor by itself (partial
    chains), and host names are checked by :func:`hostname_problem` after the handshake, because OpenSSL refuses
    wildcards such as ``*.org`` that Go accepts.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    if trusted:
        context.load_verify_locations(cadata=material.pem(trusted).decode())
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    else:
        context.verify_mode = ssl.CERT_NONE
    if client_cert:
        context.load_cert_chain(material.client_pair(client_cert))
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


def _go_match(pattern: str, host: str) -> bool:
    """Go's ``matchHostnames``: equal label counts, ``*`` only as a whole left-most label."""
    pattern_labels, host_labels = pattern.lower().rstrip(".").split("."), host.lower().rstrip(".").split(".")
    if len(pattern_labels) != len(host_labels) or not host:
        return False
    return all(
        p == h or (i == 0 and p == "*") for i, (p, h) in enumerate(zip(pattern_labels, host_labels, strict=True))
    )


def hostname_problem(ssl_object: Any, hostname: str) -> str | None:
    """Why the verified peer certificate does not name ``hostname`` (Go's rules), or ``None`` when it does."""
    if ssl_object is None or ssl_object.context.verify_mode == ssl.CERT_NONE or not hostname:
        return None
    cert = ssl_object.getpeercert() or {}
    sans = cert.get("subjectAltName") or ()
    try:
        ip = ipaddress.ip_address(hostname)
    except ValueError:
        ip = None
    if ip is not None:
        ok = any(kind == "IP Address" and ipaddress.ip_address(value.strip()) == ip for kind, value in sans)
    else:
        ok = any(kind == "DNS" and _go_match(value, hostname) for kind, value in sans)
    return None if ok else f"certificate is not valid for {hostname!r} (SANs {list(sans)})"


def _watch_certificate_request(context: ssl.SSLContext, seen: list[bool]) -> None:
    def callback(_conn: Any, _direction: Any, _version: Any, content_type: Any, msg_type: Any, _data: Any) -> None:
        if int(content_type) == 22 and int(msg_type) == _CERTIFICATE_REQUEST:
            seen.append(True)

    context._msg_callback = callback  # type: ignore[attr-defined]  # CPython's hook onto OpenSSL's msg callback


async def http_probe(
    address: str,
    port: int,
    request: Mapping[str, Any],
    material: Material,
    *,
    path: str,
    extra_headers: Mapping[str, str] | None = None,
) -> HttpOutcome:
    """Send one HTTP request as a case describes it, on a fresh connection."""
    scheme = str(request.get("scheme") or "http")
    protocol = str(request.get("protocol") or "")
    headers = {str(k): str(v) for k, v in (request.get("headers") or {}).items()}
    headers.update(extra_headers or {})
    if request.get("host"):
        headers["Host"] = str(request["host"])
    seen: list[bool] = []
    verify: ssl.SSLContext | bool = False
    extensions: dict[str, Any] = {}
    http2 = protocol in ("h2c", "h2")
    if scheme == "https":
        verify = tls_context(
            material,
            trusted=request.get("trusted_cert"),
            client_cert=request.get("client_cert"),
            alpn=["h2"] if protocol == "h2" else ["http/1.1"],
        )
        _watch_certificate_request(verify, seen)
        sni = request.get("sni") or request.get("host")
        if sni:
            extensions["sni_hostname"] = str(sni)
    url = f"{scheme}://{address}:{port}{path}"
    verify_name = str(request.get("sni") or request.get("host") or "")
    try:
        async with (
            httpx.AsyncClient(
                verify=verify,
                http1=protocol not in ("h2c", "h2"),
                http2=http2,
                timeout=PROBE_TIMEOUT,
                follow_redirects=bool(request.get("follow_redirects")),
                limits=httpx.Limits(max_keepalive_connections=0),
            ) as client,
            client.stream(
                str(request.get("method") or "GET"),
                url,
                headers=headers,
                content=request.get("body"),
                extensions=extensions,
            ) as response,
        ):
            if scheme == "https":
                stream = response.extensions.get("network_stream")
                problem = hostname_problem(stream.get_extra_info("ssl_object") if stream else None, verify_name)
                if problem:
                    return HttpOutcome(error=problem, client_cert_requested=bool(seen))
            await response.aread()
    except (httpx.HTTPError, ssl.SSLError, OSError, KeyError) as exc:
        return HttpOutcome(error=f"{type(exc).__name__}: {exc}", client_cert_requested=bool(seen))
    echo: Mapping[str, Any] | None = None
    if response.headers.get("content-type", "").startswith("application/json"):
        try:
            parsed = response.json()
            echo = parsed if isinstance(parsed, dict) and "pod" in parsed else None
        except ValueError:
            echo = None
    return HttpOutcome(
        status=response.status_code,
        headers=tuple(response.headers.multi_items()),
        echo=echo,
        client_cert_requested=bool(seen),
    )


async def grpc_probe(address: str, port: int, request: Mapping[str, Any]) -> GrpcOutcome:
    """One unary call with an empty EchoRequest on a fresh channel."""
    options: list[tuple[str, Any]] = [("grpc.use_local_subchannel_pool", 1)]
    if request.get("host"):
        options.append(("grpc.default_authority", str(request["host"])))
    method = f"/{request.get('service')}/{request.get('method')}"
    metadata = tuple((str(k).lower(), str(v)) for k, v in (request.get("metadata") or {}).items())
    async with grpc.aio.insecure_channel(f"{address}:{port}", options=options) as channel:
        call = channel.unary_unary(
            method,
            request_serializer=grpcecho_pb2.EchoRequest.SerializeToString,
            response_deserializer=grpcecho_pb2.EchoResponse.FromString,
        )
        try:
            reply = await call(grpcecho_pb2.EchoRequest(), metadata=metadata, timeout=PROBE_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            return GrpcOutcome(code=exc.code().name, error=str(exc.details()))
    assertions = reply.assertions
    return GrpcOutcome(
        code="OK",
        pod=assertions.context.pod,
        namespace=assertions.context.namespace,
        method=assertions.fully_qualified_method,
    )


async def _close(writer: asyncio.StreamWriter | None) -> None:
    """Close and wait (briefly) until closed, so no transport outlives the test's event loop."""
    if writer is None:
        return
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), 2.0)


async def _line_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> StreamOutcome:
    welcome = await asyncio.wait_for(reader.readline(), PROBE_TIMEOUT)
    if not welcome.startswith(b"Gateway API Test TCP Server"):
        return StreamOutcome(error=f"unexpected welcome {welcome[:80]!r}")
    writer.write(b"PING\n")
    if await asyncio.wait_for(reader.readline(), PROBE_TIMEOUT) != b"PONG\n":
        return StreamOutcome(error="no PONG")
    writer.write(b"IS_TLS\n")
    is_tls = (await asyncio.wait_for(reader.readline(), PROBE_TIMEOUT)).strip() == b"true"
    writer.write(b"TEST\n")
    answer = json.loads(await asyncio.wait_for(reader.readline(), PROBE_TIMEOUT))
    return StreamOutcome(answer=answer, is_tls=is_tls)


async def tcp_probe(
    address: str, port: int, *, tls: ssl.SSLContext | None = None, sni: str | None = None
) -> StreamOutcome:
    """Connect (and shake hands when ``tls``), then speak the TCP echo line protocol."""
    writer: asyncio.StreamWriter | None = None
    try:
        reader, opened = await asyncio.wait_for(
            asyncio.open_connection(address, port, ssl=tls, server_hostname=sni if tls else None), PROBE_TIMEOUT
        )
        writer = opened
        problem = hostname_problem(opened.get_extra_info("ssl_object"), sni or "") if tls else None
        if problem:
            return StreamOutcome(error=problem)
        return await _line_echo(reader, opened)
    except (OSError, ssl.SSLError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
        return StreamOutcome(error=f"{type(exc).__name__}: {exc}")
    finally:
        await _close(writer)


async def tls_rejected_probe(address: str, port: int, sni: str) -> StreamOutcome:
    """A TLS handshake with ``sni`` that must end in EOF or a reset (a timeout does not count)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(address, port, ssl=context, server_hostname=sni), 5.0
        )
    except TimeoutError:
        return StreamOutcome(error="handshake timed out")
    except (ConnectionResetError, ConnectionAbortedError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
        return StreamOutcome(rejected=True, error=f"{type(exc).__name__}")
    except OSError as exc:
        return StreamOutcome(rejected="EOF" in str(exc) or "reset" in str(exc).lower(), error=str(exc))
    await _close(writer)
    return StreamOutcome(error="handshake succeeded")


async def udp_probe(address: str, port: int, payload: bytes = b"ping") -> StreamOutcome:
    """One datagram on a fresh socket; the echo's JSON answer (2 s timeout)."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[bytes] = loop.create_future()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            if not answer.done():
                answer.set_result(data)

        def error_received(self, exc: Exception) -> None:
            if not answer.done():
                answer.set_exception(exc)

    try:
        transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=(address, port))
    except OSError as exc:
        return StreamOutcome(error=str(exc))
    try:
        transport.sendto(payload)
        data = await asyncio.wait_for(answer, 2.0)
        return StreamOutcome(answer=json.loads(data))
    except (OSError, TimeoutError, ValueError) as exc:
        return StreamOutcome(error=f"{type(exc).__name__}: {exc}")
    finally:
        transport.close()


async def websocket_probe(address: str, port: int, entry: Mapping[str, Any]) -> str | None:
    """Dial, upgrade and run the entry's exchange on one connection; ``None`` on success, else why not."""
    writer: asyncio.StreamWriter | None = None
    try:
        reader, opened = await asyncio.wait_for(asyncio.open_connection(address, port), PROBE_TIMEOUT)
        writer = opened
        key = base64.b64encode(os.urandom(16)).decode()
        opened.write(
            (
                f"GET {entry.get('url_path', '/')} HTTP/1.1\r\nHost: {address}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Origin: {entry.get('origin', 'ws://gateway/')}\r\n\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), PROBE_TIMEOUT)
        if not head.startswith(b"HTTP/1.1 101"):
            return f"no upgrade: {head.splitlines()[0]!r}"
        for step in entry.get("exchange") or ():
            if "send_text" in step:
                opened.write(encode_frame(0x1, str(step["send_text"]).encode(), mask=os.urandom(4)))
            else:
                opened.write(encode_frame(0x2, bytes(step["send_binary"]), mask=os.urandom(4)))
            first = await asyncio.wait_for(reader.readexactly(2), PROBE_TIMEOUT)
            size = first[1] & 0x7F
            if size == 126:
                size = int.from_bytes(await reader.readexactly(2), "big")
            elif size == 127:
                size = int.from_bytes(await reader.readexactly(8), "big")
            payload = await asyncio.wait_for(reader.readexactly(size), PROBE_TIMEOUT)
            opcode = first[0] & 0x0F
            if "expect_text" in step and (opcode, payload) != (0x1, str(step["expect_text"]).encode()):
                return f"got opcode {opcode} {payload!r}, want text {step['expect_text']!r}"
            if "expect_binary" in step and (opcode, payload) != (0x2, bytes(step["expect_binary"])):
                return f"got opcode {opcode} {payload!r}, want binary {step['expect_binary']}"
        return None
    except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        await _close(writer)
