"""The upstream GrpcEcho service (``gateway_api_conformance.echo_basic.grpcecho``) on a grpc.aio server."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from nantian._proto.gateway_api_conformance import grpcecho_pb2, grpcecho_pb2_grpc
from nantian.echo._context import PodContext
from nantian.echo._requestlog import RequestLog

__all__ = ["SERVICE_NAME", "GrpcEchoService", "start_grpc_server"]

log = logging.getLogger(__name__)

SERVICE_NAME = "gateway_api_conformance.echo_basic.grpcecho.GrpcEcho"


class GrpcEchoService(grpcecho_pb2_grpc.GrpcEchoServicer):  # type: ignore[misc]
    """Echo and EchoTwo answer with the call's assertions; EchoThree stays unimplemented, as upstream."""

    def __init__(self, context: PodContext, *, tls: bool, log_to: RequestLog | None = None) -> None:
        self._context = grpcecho_pb2.Context(
            namespace=context.namespace, ingress=context.ingress, service_name=context.service, pod=context.pod
        )
        self._pod = context
        self._tls = tls
        self._log = log_to

    async def Echo(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        """Answer with the assertions of this call."""
        return self._answer("Echo", context)

    async def EchoTwo(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        """Behaves like Echo at a second method name."""
        return self._answer("EchoTwo", context)

    def _answer(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        metadata = [
            (str(key), value if isinstance(value, str) else repr(value))
            for key, value in context.invocation_metadata() or ()
        ]
        authority = next((value for key, value in metadata if key == ":authority"), "")
        assertions = grpcecho_pb2.Assertions(
            fully_qualified_method=f"/{SERVICE_NAME}/{method}",
            headers=[grpcecho_pb2.Header(key=key, value=value) for key, value in metadata],
            authority=authority,
            context=self._context,
        )
        if self._tls:
            assertions.tls_assertions.CopyFrom(grpcecho_pb2.TLSAssertions(negotiated_protocol="h2"))
        if self._log is not None:
            self._log.add(
                self._pod, method="POST", path=f"/{SERVICE_NAME}/{method}", host=authority,
                protocol="grpcs" if self._tls else "grpc",
            )  # fmt: skip
        return grpcecho_pb2.EchoResponse(assertions=assertions)


def _server_credentials(cert: str, key: str) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials([(Path(key).read_bytes(), Path(cert).read_bytes())])


async def start_grpc_server(
    context: PodContext,
    address: tuple[str, int],
    *,
    cert: str | None = None,
    key: str | None = None,
    log_to: RequestLog | None = None,
) -> tuple[grpc.aio.Server, int]:
    """Start a GrpcEcho server on ``address`` (TLS when ``cert``/``key`` are given); returns it and its port.

    :raises OSError: when the address cannot be bound.
    """
    server = grpc.aio.server()
    tls = cert is not None and key is not None
    grpcecho_pb2_grpc.add_GrpcEchoServicer_to_server(GrpcEchoService(context, tls=tls, log_to=log_to), server)
    host, port = address
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if tls:
        assert cert is not None and key is not None
        bound = server.add_secure_port(target, _server_credentials(cert, key))
    else:
        bound = server.add_insecure_port(target)
    if bound == 0:
        raise OSError(f"grpc: cannot bind {target}")
    await server.start()
    return server, bound
