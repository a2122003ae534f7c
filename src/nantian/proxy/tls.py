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
expose: on CPython it is installed through ctypes (see ``_lenient_verification``); elsewhere such a certificate fails
the handshake (logged as ``tls.insecure_fallback_unavailable``).

Upstream side (:func:`build_upstream_tls`): a client context for a cluster's IR
:class:`~nantian.ir.UpstreamTls` (CA bundle or system roots, SNI, optional client certificate), and
:meth:`UpstreamTlsConfig.verify_peer` for the ``subjectAltNames`` check, which must run after the handshake.

TLS passthrough (sans-IO): :func:`peek_client_hello` reads the SNI and ALPN of a ClientHello without terminating it,
and :func:`select_stream_route` picks the TLSRoute for that SNI; the stream proxy uses both.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import logging
import os
import ssl
import sys
import tempfile
import typing
import weakref
from collections.abc import Iterable, Mapping, Sequence

import attrs

from nantian.errors import ConfigRejected, RemoteProtocolError
from nantian.ir import (
    ClientValidation,
    ClientValidationMode,
    Listener,
    Protocol,
    Secret,
    StreamRoute,
    TlsCertificate,
    UpstreamTls,
)

__all__ = [
    "ALPN_HTTP",
    "ClientHello",
    "ServerTls",
    "TlsSession",
    "UpstreamTlsConfig",
    "build_server_context",
    "build_server_tls",
    "build_upstream_tls",
    "hostname_matches",
    "load_certificate",
    "peek_client_hello",
    "select_stream_route",
]

log = logging.getLogger(__name__)

ALPN_HTTP: tuple[str, ...] = ("h2", "http/1.1")
"""What an HTTPS listener offers, in preference order."""

SslConnection = ssl.SSLObject | ssl.SSLSocket


def _normalize(name: str) -> str:
    return name.strip().rstrip(".").lower()


def hostname_matches(pattern: str, name: str) -> bool:
    """Whether ``name`` matches ``pattern``: exact, ``*`` (any), or ``*.suffix`` (one or more labels before it)."""
    pattern, name = _normalize(pattern), _normalize(name)
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        suffix = pattern[1:]
        return name.endswith(suffix) and len(name) > len(suffix)
    return pattern == name


def _specificity(pattern: str) -> tuple[int, int]:
    """Sort key: exact names beat wildcards, longer wildcards beat shorter ones."""
    p = _normalize(pattern)
    return (0 if p.startswith("*") else 1, len(p))


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


def _load_ca(ctx: ssl.SSLContext, names: Iterable[str], secrets: Mapping[str, Secret], where: str) -> None:
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
            key=lambda e: _specificity(e.hostname or ""),
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
                self._server_names[conn] = _normalize(server_name)
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
        key = (_normalize(cert.hostname) if cert.hostname else None, cert.section)
        known = by_name.get(key)
        if known is None:
            by_name[key] = _compile_certificate(cert, secrets, alpn, where)
        else:
            load_certificate(known.context, _secret(cert.secret, secrets, where))
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
        if not _lenient_verification(base, strict):
            log.warning(
                "tls.insecure_fallback_unavailable listener=%s: an invalid client certificate fails the handshake",
                listener.name,
            )
    # The base context serves the fallback certificate until the SNI callback switches contexts.
    _load_cert_for(base, fallback, listener.name, secrets)
    log.debug("tls.compiled listener=%s certificates=%d", listener.name, len(entries))
    return ServerTls(listener.name, entries, fallback, base)


_VALID_ONLY = ClientValidationMode.ALLOW_VALID_ONLY


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


def _lenient_verification(base: ssl.SSLContext, strict: Sequence[ssl.SSLContext]) -> bool:
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


def _load_cert_for(ctx: ssl.SSLContext, entry: _Entry, listener: str, secrets: Mapping[str, Secret]) -> None:
    for name in entry.secrets:
        load_certificate(ctx, secrets[name])
    if entry.validation is not None:
        _load_ca(ctx, entry.validation.ca_secrets, secrets, f"listener {listener} client validation")


def _compile_certificate(
    cert: TlsCertificate, secrets: Mapping[str, Secret], alpn: Sequence[str], where: str
) -> _Entry:
    ctx = _server_context(alpn)
    load_certificate(ctx, _secret(cert.secret, secrets, where))
    validation = cert.client_validation
    if validation is not None:
        _load_ca(ctx, validation.ca_secrets, secrets, f"{where} client validation")
        ctx.verify_mode = (
            ssl.CERT_REQUIRED if validation.mode is ClientValidationMode.ALLOW_VALID_ONLY else ssl.CERT_OPTIONAL
        )
    hostname = _normalize(cert.hostname) if cert.hostname else None
    return _Entry(hostname=hostname, section=cert.section, secrets=(cert.secret,), context=ctx, validation=validation)


def _secret(name: str, secrets: Mapping[str, Secret], where: str) -> Secret:
    secret = secrets.get(name)
    if secret is None:
        raise ConfigRejected(f"{where}: certificate secret {name} missing")
    return secret


def build_server_context(listener: Listener, secrets: Mapping[str, Secret]) -> ssl.SSLContext:
    """The SNI-selecting server context of ``listener`` (see :func:`build_server_tls` for the full object)."""
    return build_server_tls(listener, secrets).context


@attrs.frozen(kw_only=True)
class UpstreamTlsConfig:
    """A compiled client-side TLS setup for one cluster.

    Connect with ``ssl=config.context, server_hostname=config.server_hostname``, then call
    :meth:`verify_peer` with the connection's ``ssl_object``; close the connection if it raises.
    """

    context: ssl.SSLContext
    server_hostname: str
    subject_alt_names: tuple[str, ...] = ()

    def verify_peer(self, conn: SslConnection | None) -> None:
        """Check the backend certificate names one of ``subject_alt_names`` (no-op when that is empty).

        :raises ssl.CertificateError: no SAN of the certificate matches.
        """
        if not self.subject_alt_names:
            return
        cert = conn.getpeercert() if conn is not None else None
        raw = cert.get("subjectAltName", ()) if cert else ()
        sans = [(str(item[0]), str(item[1])) for item in raw if isinstance(item, tuple) and len(item) == 2]
        for kind, value in sans:
            for wanted in self.subject_alt_names:
                if _san_matches(kind, value, wanted):
                    return
        raise ssl.CertificateError(
            f"backend certificate names {[v for _, v in sans]} match none of {list(self.subject_alt_names)}"
        )


def _san_matches(kind: str, value: str, wanted: str) -> bool:
    if kind == "URI":
        return value == wanted
    if kind == "IP Address":
        try:
            return ipaddress.ip_address(value.strip()) == ipaddress.ip_address(wanted)
        except ValueError:
            return False
    if kind == "DNS":
        # A wildcard in the certificate covers exactly one label (RFC 6125), unlike Gateway API hostnames.
        v, w = _normalize(value), _normalize(wanted)
        if v.startswith("*."):
            head, _, rest = w.partition(".")
            return bool(head) and rest == v[2:]
        return v == w
    return False


def build_upstream_tls(
    tls: UpstreamTls, secrets: Mapping[str, Secret], *, alpn: Sequence[str] = ("http/1.1",)
) -> UpstreamTlsConfig:
    """Compile a cluster's :class:`~nantian.ir.UpstreamTls` into a client context (BackendTLSPolicy).

    Verification uses ``ca_secrets``, plus the system roots when ``system_roots`` is set (or when there are no
    CA secrets at all: a backend is never trusted unverified). With ``subject_alt_names`` the hostname check is
    done by :meth:`UpstreamTlsConfig.verify_peer` against those names instead of the SNI.

    :raises ConfigRejected: a missing secret or unusable key material.
    """
    where = f"upstream TLS sni={tls.sni}"
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH) if tls.system_roots or not tls.ca_secrets else None
    if ctx is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.ca_secrets:
        _load_ca(ctx, tls.ca_secrets, secrets, where)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = not tls.subject_alt_names
    if tls.client_certificate is not None:
        secret = secrets.get(tls.client_certificate)
        if secret is None:
            raise ConfigRejected(f"{where}: client certificate secret {tls.client_certificate} missing")
        load_certificate(ctx, secret)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return UpstreamTlsConfig(context=ctx, server_hostname=tls.sni, subject_alt_names=tls.subject_alt_names)


# --- TLS passthrough: what the ClientHello asks for, without terminating ------------------------------------------

MAX_CLIENT_HELLO = 1 << 16
"""Bytes :func:`peek_client_hello` waits for at most before giving up on a ClientHello."""


@attrs.frozen(kw_only=True)
class ClientHello:
    """The routing-relevant parts of a TLS ClientHello (for TLSRoute passthrough)."""

    server_name: str | None
    """The SNI host name, lower case, or ``None`` when the client sent none."""
    alpn: tuple[str, ...] = ()


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise RemoteProtocolError("TLS: ClientHello field runs past its end")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vector(self, length_bytes: int) -> _Reader:
        return _Reader(self.take(self.uint(length_bytes)))

    @property
    def left(self) -> int:
        return len(self.data) - self.pos


def peek_client_hello(data: bytes) -> ClientHello | None:
    """Parse the ClientHello at the start of a TLS connection, without consuming or answering anything.

    Sans-IO: call it with everything received so far; forward the same bytes to the chosen backend afterwards.

    :returns: The ClientHello, or ``None`` when more bytes are needed (it may span several TLS records).
    :raises RemoteProtocolError: the bytes are not a TLS ClientHello, or it is larger than :data:`MAX_CLIENT_HELLO`.
    """
    handshake = b""
    pos = 0
    while True:
        if len(data) - pos < 5:
            _check_size(data)
            return None
        content_type, major, length = data[pos], data[pos + 1], int.from_bytes(data[pos + 3 : pos + 5], "big")
        if content_type != 0x16 or major != 3:
            raise RemoteProtocolError("TLS: not a handshake record")
        if len(data) - pos - 5 < length:
            _check_size(data)
            return None
        handshake += data[pos + 5 : pos + 5 + length]
        pos += 5 + length
        if len(handshake) >= 4:
            if handshake[0] != 0x01:
                raise RemoteProtocolError("TLS: the first handshake message is not a ClientHello")
            body_length = int.from_bytes(handshake[1:4], "big")
            if len(handshake) - 4 >= body_length:
                return _parse_client_hello(_Reader(handshake[4 : 4 + body_length]))


def _check_size(data: bytes) -> None:
    if len(data) > MAX_CLIENT_HELLO:
        raise RemoteProtocolError("TLS: ClientHello too large")


def _parse_client_hello(r: _Reader) -> ClientHello:
    r.take(2 + 32)  # legacy_version, random
    r.vector(1)  # legacy_session_id
    r.vector(2)  # cipher_suites
    r.vector(1)  # legacy_compression_methods
    server_name: str | None = None
    alpn: tuple[str, ...] = ()
    if r.left == 0:
        return ClientHello(server_name=None)
    extensions = r.vector(2)
    while extensions.left:
        kind = extensions.uint(2)
        body = extensions.vector(2)
        if kind == 0x0000:  # server_name
            names = body.vector(2)
            while names.left:
                name_type = names.uint(1)
                raw = names.vector(2).data
                if name_type == 0 and server_name is None:
                    server_name = _host_name(raw)
        elif kind == 0x0010:  # application_layer_protocol_negotiation
            protocols = body.vector(2)
            found: list[str] = []
            while protocols.left:
                found.append(protocols.vector(1).data.decode("ascii", "replace"))
            alpn = tuple(found)
    return ClientHello(server_name=server_name, alpn=alpn)


def _host_name(raw: bytes) -> str:
    try:
        name = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError("TLS: SNI host name is not ASCII") from exc
    if not name or any(c.isspace() or c == "/" for c in name):
        raise RemoteProtocolError("TLS: invalid SNI host name")
    return _normalize(name)


def select_stream_route(routes: Iterable[StreamRoute], server_name: str | None) -> StreamRoute | None:
    """The TLS route for a connection whose ClientHello named ``server_name``: exact hostnames first, then the
    longest wildcard, then a route without hostnames (it takes any SNI); ``None`` when nothing matches."""
    best: tuple[tuple[int, int], StreamRoute] | None = None
    for route in routes:
        if not route.hostnames:
            candidate = ((-1, 0), route)
        elif server_name is None:
            continue
        else:
            matching = [h for h in route.hostnames if hostname_matches(h, server_name)]
            if not matching:
                continue
            candidate = (max(_specificity(h) for h in matching), route)
        if best is None or candidate[0] > best[0]:
            best = candidate
    return best[1] if best is not None else None
