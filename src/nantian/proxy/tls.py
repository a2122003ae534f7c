"""TLS for the data plane: server contexts for HTTPS / TLS-terminate listeners, client contexts for upstreams.

Server side (:func:`build_server_tls`): one :class:`ssl.SSLContext` per IR :class:`~nantian.ir.TlsCertificate`;
the listener's base context carries an SNI callback that switches the connection to the context whose hostname
matches the client's SNI (exact first, then the longest wildcard suffix), or to the fallback certificate (the one
with ``hostname=None``, else the first) when SNI is absent or unknown. After the handshake,
:meth:`ServerTls.inspect` says which Gateway listener section the SNI chose (for 421 detection), the ALPN
protocol, and whether the connection must be refused for a missing client certificate.

Frontend client-certificate validation: OpenSSL takes the *verify mode* from the context a connection starts
with (switching contexts in the SNI callback changes the certificate and the CA store, not the mode). So the base
context asks for a certificate when any section validates clients: ``CERT_REQUIRED`` when every section demands
one (``AllowValidOnly``; refused in the handshake), else ``CERT_OPTIONAL``; a connection whose section is
``AllowValidOnly`` but which presented no certificate is then refused by :meth:`ServerTls.inspect`. A presented
certificate is verified against the chosen section's CA bundle; ``AllowInsecureFallback`` (and sections without
validation) must accept one that does not verify, which needs an OpenSSL verify callback the ssl module does not
expose: on CPython it is installed through ctypes (:mod:`nantian.proxy.tls_fallback`); elsewhere such a certificate
fails the handshake (logged as ``tls.insecure_fallback_unavailable``).

Upstream TLS lives in :mod:`nantian.proxy.tls_upstream`, ClientHello peeking for passthrough in
:mod:`nantian.proxy.clienthello`, SNI pattern matching in :mod:`nantian.proxy.sni`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
import tempfile
import weakref
from collections.abc import Iterable, Mapping, Sequence

import attrs

from nantian.errors import ConfigRejected
from nantian.ir import (
    ClientValidation,
    ClientValidationMode,
    Listener,
    Protocol,
    Secret,
    TlsCertificate,
)
from nantian.proxy.sni import hostname_matches, normalize, specificity
from nantian.proxy.tls_fallback import lenient_verification

__all__ = [
    "ALPN_HTTP",
    "ServerTls",
    "TlsSession",
    "build_server_context",
    "build_server_tls",
    "hostname_matches",
    "load_ca",
    "load_certificate",
    "secret_named",
]

log = logging.getLogger(__name__)

ALPN_HTTP: tuple[str, ...] = ("h2", "http/1.1")
"""What an HTTPS listener offers, in preference order."""

SslConnection = ssl.SSLObject | ssl.SSLSocket


def load_certificate(ctx: ssl.SSLContext, secret: Secret) -> None:
    """Load ``secret``'s certificate chain and private key (PEM text) into ``ctx``.

    The ssl module only reads key material from files, so the PEM goes through a private temporary directory
    that is removed before returning.

    :raises ConfigRejected: the secret has no chain or key, or OpenSSL cannot load them.
    """
    if not secret.certificate_chain or not secret.private_key:
        raise ConfigRejected(f"secret {secret.name}: a certificate chain and a private key are required")
    with tempfile.TemporaryDirectory(prefix="nantian-tls-") as tmp:
        cert_path = os.path.join(tmp, "tls.crt")
        key_path = os.path.join(tmp, "tls.key")
        for path, text in ((cert_path, secret.certificate_chain), (key_path, secret.private_key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii", errors="replace") as f:
                f.write(text)
        try:
            ctx.load_cert_chain(cert_path, key_path)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ConfigRejected(f"secret {secret.name}: cannot load certificate and key: {exc}") from exc


def load_ca(ctx: ssl.SSLContext, names: Iterable[str], secrets: Mapping[str, Secret], where: str) -> None:
    loaded = 0
    for name in names:
        secret = secrets.get(name)
        if secret is None:
            raise ConfigRejected(f"{where}: CA secret {name} missing")
        bundle = secret.ca_bundle or secret.certificate_chain
        if not bundle:
            raise ConfigRejected(f"{where}: secret {name} holds no CA bundle")
        try:
            ctx.load_verify_locations(cadata=bundle)
        except (ssl.SSLError, ValueError) as exc:
            raise ConfigRejected(f"{where}: secret {name}: cannot load CA bundle: {exc}") from exc
        loaded += 1
    if not loaded:
        raise ConfigRejected(f"{where}: no CA certificates to validate against")


@attrs.frozen(kw_only=True)
class TlsSession:
    """What a finished server handshake decided, from :meth:`ServerTls.inspect`."""

    section: str | None
    """The Gateway listener (``namespace/gateway/listener``) the SNI selected: the one whose hostname matches it, or
    the one without a hostname. ``None`` when neither exists (a certificate was still served: the first one)."""
    server_name: str | None
    """The SNI the client sent (lower case), or ``None``."""
    alpn: str | None
    """The negotiated ALPN protocol (``"h2"``, ``"http/1.1"``) or ``None``."""
    refused: str | None = None
    """Why the connection must be closed without serving it (a required client certificate is missing)."""


@attrs.frozen(kw_only=True)
class _Entry:
    hostname: str | None
    section: str
    secrets: tuple[str, ...]
    context: ssl.SSLContext
    validation: ClientValidation | None


class ServerTls:
    """The compiled TLS of one listener. Use :attr:`context` to wrap accepted connections.

    Build with :func:`build_server_tls`. Thread-safe for reading; immutable after construction.
    """

    def __init__(self, listener: str, entries: Sequence[_Entry], fallback: _Entry, context: ssl.SSLContext) -> None:
        self.listener = listener
        self._entries = sorted(
            (e for e in entries if e.hostname is not None),
            key=lambda e: specificity(e.hostname or ""),
            reverse=True,
        )
        self._fallback = fallback
        self._by_context = {id(e.context): e for e in entries}
        self._server_names: weakref.WeakKeyDictionary[object, str] = weakref.WeakKeyDictionary()
        self.context = context
        """The context to give ``loop.create_server(ssl=...)`` / ``start_tls``; it selects by SNI itself."""
        context.sni_callback = self._on_sni

    @property
    def sections(self) -> frozenset[str]:
        """Every Gateway listener section this listener serves certificates for."""
        return frozenset(e.section for e in self._by_context.values())

    def select(self, server_name: str | None) -> str:
        """The section whose certificate a client sending ``server_name`` gets (the fallback when unknown)."""
        return self._select(server_name).section

    def _select(self, server_name: str | None) -> _Entry:
        if server_name:
            for entry in self._entries:
                if entry.hostname is not None and hostname_matches(entry.hostname, server_name):
                    return entry
        return self._fallback

    def _on_sni(self, conn: SslConnection, server_name: str | None, _ctx: ssl.SSLContext) -> int | None:
        entry = self._select(server_name)
        if server_name:
            with contextlib.suppress(TypeError):  # no weakref support: the name is only informative
                self._server_names[conn] = normalize(server_name)
        if entry.context is not conn.context:
            conn.context = entry.context
        return None

    def inspect(self, conn: SslConnection | None) -> TlsSession:
        """Describe a connection after its handshake: the section chosen by SNI, the SNI, ALPN, refusal.

        :param conn: ``transport.get_extra_info("ssl_object")`` (or an :class:`ssl.SSLSocket`).
        """
        if conn is None:
            return TlsSession(section=None, server_name=None, alpn=None, refused="not a TLS connection")
        entry = self._by_context.get(id(conn.context), self._fallback)
        refused = None
        validation = entry.validation
        if (
            validation is not None
            and validation.mode is ClientValidationMode.ALLOW_VALID_ONLY
            and not conn.getpeercert()
        ):
            refused = f"section {entry.section} requires a client certificate"
        server_name = self._server_names.get(conn)
        # A section is "chosen" when the SNI matched its hostname, or it is the catch-all (no hostname). A named
        # fallback served for lack of a match stands for no section: the router then goes by Host alone.
        matched = entry.hostname is None or (server_name is not None and hostname_matches(entry.hostname, server_name))
        return TlsSession(
            section=entry.section if matched else None,
            server_name=server_name,
            alpn=conn.selected_alpn_protocol(),
            refused=refused,
        )


def _server_context(alpn: Sequence[str]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def build_server_tls(
    listener: Listener, secrets: Mapping[str, Secret], *, alpn: Sequence[str] | None = None
) -> ServerTls:
    """Compile the TLS of an HTTPS (or TLS ``Terminate``) listener.

    Call it from the runtime's snapshot compile for every listener with ``protocol`` HTTPS, or TLS with
    ``tls_mode`` TERMINATE; pass the snapshot's secrets by name. Serve with ``ssl=server_tls.context`` and call
    :meth:`ServerTls.inspect` once the handshake is done (``transport.get_extra_info("ssl_object")``): close the
    connection when ``refused`` is set, pick the HTTP/2 front end when ``alpn == "h2"``, and hand ``section``
    to the router for 421 detection.

    :param alpn: Protocols to offer; default ``("h2", "http/1.1")`` for HTTPS and none for TLS listeners.
    :raises ConfigRejected: no certificates, a missing secret, or key material OpenSSL refuses.
    """
    where = f"listener {listener.name}"
    if not listener.certificates:
        raise ConfigRejected(f"{where}: TLS needs at least one certificate")
    if alpn is None:
        alpn = ALPN_HTTP if listener.protocol is Protocol.HTTPS else ()
    # Several certificates for one (hostname, section), e.g. an RSA and an ECDSA one, share a context: OpenSSL
    # keeps one per key type and serves the one the client's signature algorithms allow.
    by_name: dict[tuple[str | None, str], _Entry] = {}
    for cert in listener.certificates:
        key = (normalize(cert.hostname) if cert.hostname else None, cert.section)
        known = by_name.get(key)
        if known is None:
            by_name[key] = _compile_certificate(cert, secrets, alpn, where)
        else:
            load_certificate(known.context, secret_named(cert.secret, secrets, where))
            by_name[key] = attrs.evolve(known, secrets=(*known.secrets, cert.secret))
    entries = list(by_name.values())
    fallback = next((e for e in entries if e.hostname is None), entries[0])
    validations = [e.validation for e in entries]
    base = _server_context(alpn)
    if all(v is not None and v.mode is ClientValidationMode.ALLOW_VALID_ONLY for v in validations):
        base.verify_mode = ssl.CERT_REQUIRED
    elif any(v is not None for v in validations):
        base.verify_mode = ssl.CERT_OPTIONAL
        strict = [e.context for e in entries if e.validation is not None and e.validation.mode is _VALID_ONLY]
        if not lenient_verification(base, strict):
            log.warning(
                "tls.insecure_fallback_unavailable listener=%s: an invalid client certificate fails the handshake",
                listener.name,
            )
    # The base context serves the fallback certificate until the SNI callback switches contexts.
    _load_cert_for(base, fallback, listener.name, secrets)
    log.debug("tls.compiled listener=%s certificates=%d", listener.name, len(entries))
    return ServerTls(listener.name, entries, fallback, base)


_VALID_ONLY = ClientValidationMode.ALLOW_VALID_ONLY


def _load_cert_for(ctx: ssl.SSLContext, entry: _Entry, listener: str, secrets: Mapping[str, Secret]) -> None:
    for name in entry.secrets:
        load_certificate(ctx, secrets[name])
    if entry.validation is not None:
        load_ca(ctx, entry.validation.ca_secrets, secrets, f"listener {listener} client validation")


def _compile_certificate(
    cert: TlsCertificate, secrets: Mapping[str, Secret], alpn: Sequence[str], where: str
) -> _Entry:
    ctx = _server_context(alpn)
    load_certificate(ctx, secret_named(cert.secret, secrets, where))
    validation = cert.client_validation
    if validation is not None:
        load_ca(ctx, validation.ca_secrets, secrets, f"{where} client validation")
        ctx.verify_mode = (
            ssl.CERT_REQUIRED if validation.mode is ClientValidationMode.ALLOW_VALID_ONLY else ssl.CERT_OPTIONAL
        )
    hostname = normalize(cert.hostname) if cert.hostname else None
    return _Entry(hostname=hostname, section=cert.section, secrets=(cert.secret,), context=ctx, validation=validation)


def secret_named(name: str, secrets: Mapping[str, Secret], where: str) -> Secret:
    secret = secrets.get(name)
    if secret is None:
        raise ConfigRejected(f"{where}: certificate secret {name} missing")
    return secret


def build_server_context(listener: Listener, secrets: Mapping[str, Secret]) -> ssl.SSLContext:
    """The SNI-selecting server context of ``listener`` (see :func:`build_server_tls` for the full object)."""
    return build_server_tls(listener, secrets).context
