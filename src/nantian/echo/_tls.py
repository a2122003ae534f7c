"""Server-side TLS for the echo listeners: contexts, the SNI the client sent, and the ``tls`` echo block."""

from __future__ import annotations

import ssl
from typing import Any

from nantian.echo._answer import TlsInfo

__all__ = ["server_context", "tls_info"]

_SNI_ATTRIBUTE = "_nantian_echo_sni"


def _remember_sni(ssl_object: Any, server_name: str | None, _context: ssl.SSLContext) -> None:
    # ssl.SSLObject instances accept attributes; the server name is otherwise not readable on the server side.
    setattr(ssl_object, _SNI_ATTRIBUTE, server_name or "")


def server_context(
    cert: str, key: str, *, alpn: tuple[str, ...] = (), client_ca: str | None = None, require_client_cert: bool = False
) -> ssl.SSLContext:
    """A server context serving ``cert``/``key`` (PEM files).

    With ``client_ca`` the server asks for a client certificate and verifies it against that CA; the
    certificate stays optional (upstream: ``VerifyClientCertIfGiven``) unless ``require_client_cert``.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if alpn:
        context.set_alpn_protocols(list(alpn))
    if client_ca:
        context.load_verify_locations(cafile=client_ca)
        context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    context.sni_callback = _remember_sni
    return context


def tls_info(ssl_object: Any) -> TlsInfo | None:
    """The ``tls`` echo block for an established ``ssl.SSLObject`` (or ``None`` without one)."""
    if ssl_object is None:
        return None
    cipher = ssl_object.cipher()
    peer = ssl_object.getpeercert(binary_form=True)
    return TlsInfo(
        version=ssl_object.version() or "",
        server_name=getattr(ssl_object, _SNI_ATTRIBUTE, ""),
        negotiated_protocol=ssl_object.selected_alpn_protocol() or "",
        cipher_suite=cipher[0] if cipher else "",
        peer_certificates=(ssl.DER_cert_to_PEM_cert(peer),) if peer else (),
    )
