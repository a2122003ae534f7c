"""The TCP line echo (plain or TLS) and the UDP JSON echo of the upstream echo-basic server."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from typing import Any, cast

from nantian.echo._context import PodContext
from nantian.echo._tls import tls_info

__all__ = ["WELCOME", "UdpEcho", "serve_tcp_connection", "tcp_payload", "udp_payload"]

log = logging.getLogger(__name__)

WELCOME = b"Gateway API Test TCP Server\n"
_IDLE_TIMEOUT = 300.0


def tcp_payload(context: PodContext, *, tcp_port: str, tls_port: str, tls: dict[str, Any] | None) -> bytes:
    """The JSON line answering ``TEST`` (upstream ``TCPAssertions``)."""
    document: dict[str, Any] = {
        "namespace": context.namespace,
        "ingress": context.ingress,
        "service": context.service,
        "pod": context.pod,
        "tcpport": tcp_port,
    }
    if tls_port:
        document["tlsport"] = tls_port
    document["isTLS"] = tls is not None
    if tls is not None:
        document["tls"] = tls
    return json.dumps(document, separators=(",", ":")).encode() + b"\n"


async def serve_tcp_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, context: PodContext, *, tcp_port: str, tls_port: str
) -> None:
    """Speak the line protocol on one connection: welcome, then ``PING``/``IS_TLS``/``TEST`` until EOF."""
    ssl_object = writer.get_extra_info("ssl_object")
    info = tls_info(ssl_object) if isinstance(ssl_object, ssl.SSLObject) else None
    tls = None
    if info is not None:
        tls = {"version": info.version, "serverName": info.server_name, "cipherSuite": info.cipher_suite}
        if info.negotiated_protocol:
            tls["negotiatedProtocol"] = info.negotiated_protocol
    payload = tcp_payload(context, tcp_port=tcp_port, tls_port=tls_port, tls=tls)
    answers = {b"TEST": payload, b"IS_TLS": b"true\n" if tls is not None else b"false\n", b"PING": b"PONG\n"}
    try:
        writer.write(WELCOME)
        while True:
            line = await asyncio.wait_for(reader.readline(), _IDLE_TIMEOUT)
            if not line:
                break
            answer = answers.get(line.rstrip(b"\r\n"))
            if answer is not None:
                writer.write(answer)
                await writer.drain()
    except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
        log.debug("echo.tcp.connection_error error=%s", exc)
    finally:
        writer.close()


def udp_payload(context: PodContext, request: bytes) -> bytes:
    """The JSON datagram answering ``request`` (upstream ``EchoResponse``)."""
    document = {
        "request": request.decode("utf-8", "replace"),
        "namespace": context.namespace,
        "ingress": context.ingress,
        "service": context.service,
        "pod": context.pod,
    }
    return json.dumps(document, separators=(",", ":")).encode()


class UdpEcho(asyncio.DatagramProtocol):
    """Answers every datagram with :func:`udp_payload` to its sender."""

    def __init__(self, context: PodContext) -> None:
        self._context = context
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)  # uvloop transports do not subclass asyncio's

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if self._transport is not None:
            self._transport.sendto(udp_payload(self._context, data[:1024]), addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("echo.udp.error error=%s", exc)
