"""The data plane: listeners, HTTP/1.1 and HTTP/2 front ends, router, filters, upstream pools.

Embed it with :class:`ProxyRuntime` (``await rt.apply(snapshot)``). Protocol front ends plug into the core through
:mod:`nantian.proxy.exchange`; plugin filters implement :class:`HttpFilter`.
"""

from nantian import _native

_native.guard()  # before the first hot-path module is imported: compiled ones only if they match their sources

from nantian.proxy.filters import FilterRequest, FilterResponse, HttpFilter, LocalResponse  # noqa: E402
from nantian.proxy.runtime import ApplyResult, ListenerState, ProxyRuntime, RuntimeOptions  # noqa: E402

__all__ = [
    "ApplyResult",
    "FilterRequest",
    "FilterResponse",
    "HttpFilter",
    "ListenerState",
    "LocalResponse",
    "ProxyRuntime",
    "RuntimeOptions",
]
