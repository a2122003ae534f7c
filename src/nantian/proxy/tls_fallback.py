"""AllowInsecureFallback: accepting a client certificate that does not verify (CPython, through ctypes).

The server contexts themselves are built in :mod:`nantian.proxy.tls`; this module only installs the OpenSSL verify
callback that the ssl module does not expose. :func:`lenient_verification` returns ``False`` (and installs nothing)
wherever that cannot be done safely.
"""

from __future__ import annotations

import ctypes
import logging
import ssl
import sys
import typing
import weakref
from collections.abc import Sequence

__all__ = ["lenient_verification"]

log = logging.getLogger(__name__)


# --- AllowInsecureFallback: accepting a client certificate that does not verify ------------------------------------
#
# Python's ssl module has no verify callback, and with CERT_OPTIONAL OpenSSL fails the handshake on a client
# certificate that does not verify. AllowInsecureFallback must accept it. So, on CPython, the OpenSSL verify callback
# of the listener's base context is set through ctypes: it returns OpenSSL's verdict for connections whose SNI chose
# an AllowValidOnly section and accepts everywhere else. The SSL_CTX pointer is read from the PySSLContext object and
# checked against two values Python reports (verify mode, options) before it is used; if anything does not add up,
# nothing is installed and the documented limitation stays.

_VerifyCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)
_strict_contexts: weakref.WeakValueDictionary[int, ssl.SSLContext] = weakref.WeakValueDictionary()


class _OpenSsl:
    def __init__(self) -> None:
        lib = ctypes.CDLL(ssl._ssl.__file__)  # type: ignore[attr-defined]  # resolves libssl/libcrypto symbols
        self.get_verify_mode = _fn(lib.SSL_CTX_get_verify_mode, ctypes.c_int, ctypes.c_void_p)
        self.get_options = _fn(lib.SSL_CTX_get_options, ctypes.c_uint64, ctypes.c_void_p)
        self.set_verify = _fn(lib.SSL_CTX_set_verify, None, ctypes.c_void_p, ctypes.c_int, _VerifyCallback)
        self.store_ssl_index = _fn(lib.SSL_get_ex_data_X509_STORE_CTX_idx, ctypes.c_int)
        self.store_ex_data = _fn(lib.X509_STORE_CTX_get_ex_data, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int)
        self.ssl_context_of = _fn(lib.SSL_get_SSL_CTX, ctypes.c_void_p, ctypes.c_void_p)
        self.callback = _VerifyCallback(self._verify)

    def _verify(self, preverify_ok: int, store: int | None) -> int:
        ssl_ptr = self.store_ex_data(store, self.store_ssl_index())
        ctx_ptr = self.ssl_context_of(ssl_ptr) if ssl_ptr else None
        return preverify_ok if ctx_ptr is None or ctx_ptr in _strict_contexts else 1


def _fn(f: typing.Any, restype: typing.Any, *argtypes: typing.Any) -> typing.Any:
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


_OPENSSL_VERIFY_MODE = {
    ssl.CERT_NONE: 0,
    ssl.CERT_OPTIONAL: 1,
    ssl.CERT_REQUIRED: 3,
}  # SSL_VERIFY_PEER = 1, | FAIL_IF_NO_PEER_CERT = 2
_openssl: _OpenSsl | typing.Literal[False] | None = None  # None: not tried yet; False: unavailable


def _ssl_ctx_pointer(ctx: ssl.SSLContext, lib: _OpenSsl) -> int | None:
    if sys.implementation.name != "cpython":
        return None
    pointer = ctypes.c_void_p.from_address(id(ctx) + 2 * ctypes.sizeof(ctypes.c_void_p)).value
    if not pointer:
        return None
    if lib.get_verify_mode(pointer) != _OPENSSL_VERIFY_MODE[ctx.verify_mode] or lib.get_options(pointer) != int(
        ctx.options
    ):
        return None
    return int(pointer)


def lenient_verification(base: ssl.SSLContext, strict: Sequence[ssl.SSLContext]) -> bool:
    """Make ``base`` accept client certificates that do not verify, except on the ``strict`` contexts."""
    global _openssl
    if _openssl is None:
        try:
            _openssl = _OpenSsl()
        except (OSError, AttributeError) as exc:
            log.warning("tls.openssl_unavailable error=%r", exc)
            _openssl = False
    if _openssl is False:
        return False
    lib = _openssl
    pointers = [_ssl_ctx_pointer(c, lib) for c in (base, *strict)]
    if any(p is None for p in pointers):
        return False
    for pointer, ctx in zip(pointers[1:], strict, strict=True):
        assert pointer is not None
        _strict_contexts[pointer] = ctx
    lib.set_verify(pointers[0], _OPENSSL_VERIFY_MODE[ssl.CERT_OPTIONAL], lib.callback)
    return True
