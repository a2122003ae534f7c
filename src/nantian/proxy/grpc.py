"""gRPC over the proxy: recognising gRPC requests and answering them locally the gRPC way.

gRPC clients read the outcome of a call from the ``grpc-status`` trailer, so a proxy's own error answers (no
route, no healthy backend, timeout) are sent as *trailers-only* responses: HTTP status 200,
``content-type: application/grpc``, ``grpc-status`` and ``grpc-message`` in the one header block and no body.
The HTTP/2 front end applies :func:`local_answer` to every non-gRPC error answer of a gRPC request, so the core
can keep answering with plain HTTP statuses.
"""

from __future__ import annotations

import enum
import urllib.parse
from collections.abc import Iterable

__all__ = ["GrpcStatus", "is_grpc", "local_answer", "status_for_http"]


class GrpcStatus(enum.IntEnum):
    """The gRPC status codes (grpc/doc/statuscodes.md)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


# The mapping gRPC clients apply to HTTP statuses (grpc/doc/http-grpc-status-mapping.md), which Envoy uses too.
_FROM_HTTP = {
    400: GrpcStatus.INTERNAL,
    401: GrpcStatus.UNAUTHENTICATED,
    403: GrpcStatus.PERMISSION_DENIED,
    404: GrpcStatus.UNIMPLEMENTED,
    429: GrpcStatus.UNAVAILABLE,
    502: GrpcStatus.UNAVAILABLE,
    503: GrpcStatus.UNAVAILABLE,
    504: GrpcStatus.DEADLINE_EXCEEDED,
}


def status_for_http(status: int) -> GrpcStatus:
    """The gRPC status a proxy-local HTTP ``status`` stands for (``UNKNOWN`` when there is no closer one)."""
    if status == 200:
        return GrpcStatus.OK
    return _FROM_HTTP.get(status, GrpcStatus.UNKNOWN)


def is_grpc(headers: Iterable[tuple[str, str]]) -> bool:
    """Whether ``content-type`` says gRPC (``application/grpc`` or ``application/grpc+proto`` ...)."""
    for name, value in headers:
        if name == "content-type":
            return value.lower().startswith("application/grpc")
    return False


def local_answer(status: int, message: str | None = None) -> list[tuple[str, str]]:
    """The trailers-only response head (without ``:status``, which is 200) for a local HTTP ``status``."""
    code = status_for_http(status)
    text = message if message is not None else f"proxy answered HTTP status {status}"
    return [
        ("content-type", "application/grpc"),
        ("grpc-status", str(int(code))),
        ("grpc-message", urllib.parse.quote(text, safe=" !#$&'()*+,-./:;=?@[]^_`{|}~")),
    ]
