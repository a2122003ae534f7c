"""An echo backend: a faithful stand-in for the Gateway API conformance ``echo-basic`` server.

Every HTTP request (HTTP/1.1, h2c with prior knowledge, HTTPS with h2 or http/1.1) is answered with JSON
describing it: ``path`` (the raw request URI), ``host``, ``method``, ``proto``, ``headers`` (canonical names,
list values), ``namespace``, ``ingress``, ``service``, ``pod``, ``httpPort`` and, over TLS, ``tls``.
Controls: ``X-Echo-Set-Header: Name:value,...``, ``?delay=1s``, ``/status/NNN``, ``/health``,
``/retry/?uuid=U&succeedAfter=N[&responseCode=C][&delayRetry=D]`` and WebSocket echo on ``/ws``.
Also the GrpcEcho gRPC service, the TCP line echo and the UDP JSON echo. One process serves many
identities (:class:`ServeSpec`); :class:`EchoServer` runs them inside any asyncio program.
"""

from nantian.echo._answer import Echo, EchoRequest, Reply, Reset, TlsInfo, canonical_header_name, parse_go_duration
from nantian.echo._cli import main
from nantian.echo._context import PodContext, ServeSpec, SpecError, parse_address, parse_serve_spec
from nantian.echo._grpc import SERVICE_NAME as GRPC_SERVICE_NAME
from nantian.echo._requestlog import RequestLog, RequestRecord, read_request_log
from nantian.echo._server import BoundListener, EchoServer, serve_echo
from nantian.echo._stream import WELCOME as TCP_WELCOME

__all__ = [
    "GRPC_SERVICE_NAME",
    "TCP_WELCOME",
    "BoundListener",
    "Echo",
    "EchoRequest",
    "EchoServer",
    "PodContext",
    "Reply",
    "RequestLog",
    "RequestRecord",
    "Reset",
    "ServeSpec",
    "SpecError",
    "TlsInfo",
    "canonical_header_name",
    "main",
    "parse_address",
    "parse_go_duration",
    "parse_serve_spec",
    "read_request_log",
    "serve_echo",
]
