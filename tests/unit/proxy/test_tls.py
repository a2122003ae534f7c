"""TLS contexts from the IR, exercised with real handshakes on loopback (certificates from trustme)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given
from hypothesis import strategies as st

from nantian import ir
from nantian.errors import ConfigRejected, RemoteProtocolError
from nantian.proxy.clienthello import ClientHello, peek_client_hello, select_stream_route
from nantian.proxy.tls import ServerTls, TlsSession, build_server_context, build_server_tls, hostname_matches
from nantian.proxy.tls_upstream import build_upstream_tls

TIMEOUT = 5.0


def _secret(name: str, cert: trustme.LeafCert) -> ir.Secret:
    return ir.Secret(
        name=name,
        certificate_chain="".join(b.bytes().decode() for b in cert.cert_chain_pems),
        private_key=cert.private_key_pem.bytes().decode(),
    )


def _ca_secret(name: str, ca: trustme.CA) -> ir.Secret:
    return ir.Secret(name=name, ca_bundle=ca.cert_pem.bytes().decode())


@pytest.fixture(scope="module")
def server_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def client_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def secrets(server_ca: trustme.CA, client_ca: trustme.CA) -> dict[str, ir.Secret]:
    made = [
        _secret("ns/exact", server_ca.issue_cert("a.example.com")),
        _secret("ns/wild", server_ca.issue_cert("*.example.com")),
        _secret("ns/deep", server_ca.issue_cert("*.deep.example.com")),
        _secret("ns/fallback", server_ca.issue_cert("fallback.test", "127.0.0.1")),
        _ca_secret("ns/client-ca", client_ca),
    ]
    return {s.name: s for s in made}


def _listener(*certs: ir.TlsCertificate, protocol: ir.Protocol = ir.Protocol.HTTPS) -> ir.Listener:
    return ir.Listener(
        name="ns/gw/443/HTTPS", gateway="ns/gw", address="127.0.0.1", port=443, protocol=protocol, certificates=certs
    )


SNI_LISTENER = _listener(
    ir.TlsCertificate(hostname="*.example.com", secret="ns/wild", section="ns/gw/wild"),
    ir.TlsCertificate(hostname="a.example.com", secret="ns/exact", section="ns/gw/exact"),
    ir.TlsCertificate(hostname="*.deep.example.com", secret="ns/deep", section="ns/gw/deep"),
    ir.TlsCertificate(hostname=None, secret="ns/fallback", section="ns/gw/fallback"),
)


class _Recorder(asyncio.Protocol):
    def __init__(self, tls: ServerTls, sessions: list[TlsSession]) -> None:
        self.tls = tls
        self.sessions = sessions

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        session = self.tls.inspect(transport.get_extra_info("ssl_object"))
        self.sessions.append(session)
        assert isinstance(transport, asyncio.Transport)
        if session.refused:
            transport.abort()
        else:
            transport.write(b"hello")


async def _serve(tls: ServerTls, sessions: list[TlsSession]) -> AsyncIterator[int]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Recorder(tls, sessions), "127.0.0.1", 0, ssl=tls.context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def _client_context(server_ca: trustme.CA, *, cert: trustme.LeafCert | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    server_ca.configure_trust(ctx)
    if cert is not None:
        cert.configure_cert(ctx)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    return ctx


async def _handshake(port: int, ctx: ssl.SSLContext, server_hostname: str | None) -> tuple[bytes, dict[str, object]]:
    """Connect, read the greeting; returns it and the peer certificate. Raises on failure."""
    async with asyncio.timeout(TIMEOUT):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname=server_hostname or ""
        )
        try:
            data = await reader.read(5)
            peer = writer.get_extra_info("peercert") or {}
            return data, dict(peer)
        finally:
            writer.close()
            with contextlib.suppress(ssl.SSLError, ConnectionError):
                await writer.wait_closed()


def _sans(peer: dict[str, object]) -> set[str]:
    raw = peer.get("subjectAltName", ())
    assert isinstance(raw, tuple)
    return {str(v) for _, v in raw}


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("a.example.com", "a.example.com", True),
        ("a.example.com", "A.Example.COM.", True),
        ("a.example.com", "b.example.com", False),
        ("*.example.com", "a.example.com", True),
        ("*.example.com", "x.a.example.com", True),
        ("*.example.com", "example.com", False),
        ("*", "anything", True),
    ],
)
def test_hostname_matches(pattern: str, name: str, expected: bool) -> None:
    assert hostname_matches(pattern, name) is expected


def test_select_prefers_exact_then_longest_wildcard(secrets: dict[str, ir.Secret]) -> None:
    tls = build_server_tls(SNI_LISTENER, secrets)
    assert tls.select("a.example.com") == "ns/gw/exact"
    assert tls.select("b.example.com") == "ns/gw/wild"
    assert tls.select("x.deep.example.com") == "ns/gw/deep"
    assert tls.select("other.test") == "ns/gw/fallback"
    assert tls.select(None) == "ns/gw/fallback"
    assert tls.sections == {"ns/gw/exact", "ns/gw/wild", "ns/gw/deep", "ns/gw/fallback"}


@pytest.mark.parametrize(
    ("sni", "section", "san"),
    [
        ("a.example.com", "ns/gw/exact", "a.example.com"),
        ("b.example.com", "ns/gw/wild", "*.example.com"),
        ("q.deep.example.com", "ns/gw/deep", "*.deep.example.com"),
    ],
)
async def test_handshake_serves_the_certificate_sni_selects(
    secrets: dict[str, ir.Secret], server_ca: trustme.CA, sni: str, section: str, san: str
) -> None:
    tls = build_server_tls(SNI_LISTENER, secrets)
    sessions: list[TlsSession] = []
    async for port in _serve(tls, sessions):
        data, peer = await _handshake(port, _client_context(server_ca), sni)
        assert data == b"hello"
        assert san in _sans(peer)
    assert sessions == [TlsSession(section=section, server_name=sni, alpn="h2")]


async def test_no_or_unknown_sni_gets_the_fallback(secrets: dict[str, ir.Secret], server_ca: trustme.CA) -> None:
    tls = build_server_tls(SNI_LISTENER, secrets)
    sessions: list[TlsSession] = []
    ctx = _client_context(server_ca)
    ctx.check_hostname = False
    async for port in _serve(tls, sessions):
        _, peer = await _handshake(port, ctx, None)
        assert "fallback.test" in _sans(peer)
        _, peer = await _handshake(port, ctx, "unknown.test")
        assert "fallback.test" in _sans(peer)
    assert [s.section for s in sessions] == ["ns/gw/fallback", "ns/gw/fallback"]
    assert [s.server_name for s in sessions] == [None, "unknown.test"]


async def test_tls_terminate_listener_offers_no_alpn(secrets: dict[str, ir.Secret], server_ca: trustme.CA) -> None:
    listener = _listener(
        ir.TlsCertificate(hostname="a.example.com", secret="ns/exact", section="ns/gw/tls"), protocol=ir.Protocol.TLS
    )
    tls = build_server_tls(listener, secrets)
    sessions: list[TlsSession] = []
    async for port in _serve(tls, sessions):
        await _handshake(port, _client_context(server_ca), "a.example.com")
    assert sessions[0].alpn is None
    assert sessions[0].section == "ns/gw/tls"


def _mtls_listener(mode: ir.ClientValidationMode, *, second_validated: bool = True) -> ir.Listener:
    validation = ir.ClientValidation(ca_secrets=("ns/client-ca",), mode=mode)
    return _listener(
        ir.TlsCertificate(hostname="a.example.com", secret="ns/exact", section="ns/gw/a", client_validation=validation),
        ir.TlsCertificate(
            hostname="*.example.com",
            secret="ns/wild",
            section="ns/gw/wild",
            client_validation=validation if second_validated else None,
        ),
    )


async def _outcome(port: int, ctx: ssl.SSLContext, sni: str) -> str:
    try:
        data, _ = await _handshake(port, ctx, sni)
    except (ssl.SSLError, ConnectionError):
        return "refused"
    return "ok" if data == b"hello" else "refused"


async def test_allow_valid_only_requires_a_certificate_from_the_bundle(
    secrets: dict[str, ir.Secret], server_ca: trustme.CA, client_ca: trustme.CA
) -> None:
    tls = build_server_tls(_mtls_listener(ir.ClientValidationMode.ALLOW_VALID_ONLY), secrets)
    assert tls.context.verify_mode is ssl.CERT_REQUIRED
    stranger = trustme.CA().issue_cert("intruder@example.com")
    sessions: list[TlsSession] = []
    async for port in _serve(tls, sessions):
        assert await _outcome(port, _client_context(server_ca), "a.example.com") == "refused"
        assert await _outcome(port, _client_context(server_ca, cert=stranger), "a.example.com") == "refused"
        good = client_ca.issue_cert("client@example.com")
        assert await _outcome(port, _client_context(server_ca, cert=good), "a.example.com") == "ok"
    assert [s.refused for s in sessions] == [None]


async def test_allow_insecure_fallback_accepts_missing_and_invalid_certificates(
    secrets: dict[str, ir.Secret], server_ca: trustme.CA, client_ca: trustme.CA
) -> None:
    tls = build_server_tls(_mtls_listener(ir.ClientValidationMode.ALLOW_INSECURE_FALLBACK), secrets)
    assert tls.context.verify_mode is ssl.CERT_OPTIONAL
    stranger = trustme.CA().issue_cert("intruder@example.com")
    sessions: list[TlsSession] = []
    async for port in _serve(tls, sessions):
        assert await _outcome(port, _client_context(server_ca), "a.example.com") == "ok"
        good = client_ca.issue_cert("client@example.com")
        assert await _outcome(port, _client_context(server_ca, cert=good), "a.example.com") == "ok"
        assert await _outcome(port, _client_context(server_ca, cert=stranger), "a.example.com") == "ok"
    assert [s.refused for s in sessions] == [None, None, None]


async def test_validation_applies_per_section(
    secrets: dict[str, ir.Secret], server_ca: trustme.CA, client_ca: trustme.CA
) -> None:
    listener = _mtls_listener(ir.ClientValidationMode.ALLOW_VALID_ONLY, second_validated=False)
    tls = build_server_tls(listener, secrets)
    assert tls.context.verify_mode is ssl.CERT_OPTIONAL
    sessions: list[TlsSession] = []
    async for port in _serve(tls, sessions):
        # The section without validation serves clients without certificates ...
        assert await _outcome(port, _client_context(server_ca), "b.example.com") == "ok"
        # ... the validated one refuses them once the handshake shows no certificate.
        assert await _outcome(port, _client_context(server_ca), "a.example.com") == "refused"
        good = client_ca.issue_cert("client@example.com")
        assert await _outcome(port, _client_context(server_ca, cert=good), "a.example.com") == "ok"
        # A certificate that does not verify: refused by the validated section, ignored by the other one.
        stranger = trustme.CA().issue_cert("intruder@example.com")
        assert await _outcome(port, _client_context(server_ca, cert=stranger), "a.example.com") == "refused"
        assert await _outcome(port, _client_context(server_ca, cert=stranger), "b.example.com") == "ok"
    assert [(s.section, s.refused is not None) for s in sessions] == [
        ("ns/gw/wild", False),
        ("ns/gw/a", True),
        ("ns/gw/a", False),
        ("ns/gw/wild", False),
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: {k: v for k, v in s.items() if k != "ns/exact"}, "certificate secret ns/exact missing"),
        (
            lambda s: {**s, "ns/exact": ir.Secret(name="ns/exact", certificate_chain="junk", private_key="junk")},
            "cannot load",
        ),
        (lambda s: {**s, "ns/exact": ir.Secret(name="ns/exact")}, "a certificate chain and a private key"),
    ],
)
def test_bad_key_material_is_rejected(
    secrets: dict[str, ir.Secret], change: Callable[[dict[str, ir.Secret]], dict[str, ir.Secret]], message: str
) -> None:
    listener = _listener(ir.TlsCertificate(hostname="a.example.com", secret="ns/exact", section="ns/gw/a"))
    with pytest.raises(ConfigRejected, match=message):
        build_server_context(listener, change(secrets))


def test_listener_without_certificates_is_rejected(secrets: dict[str, ir.Secret]) -> None:
    with pytest.raises(ConfigRejected, match="at least one certificate"):
        build_server_tls(_listener(), secrets)


# --- upstream -------------------------------------------------------------------------------------------------


async def _backend(cert: trustme.LeafCert, *, client_ca: trustme.CA | None = None) -> tuple[asyncio.Server, int]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    if client_ca is not None:
        client_ca.configure_trust(ctx)
        ctx.verify_mode = ssl.CERT_REQUIRED

    class Greeter(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            transport.write(b"hello")

    server = await asyncio.get_running_loop().create_server(Greeter, "127.0.0.1", 0, ssl=ctx)
    return server, server.sockets[0].getsockname()[1]


async def _connect_upstream(port: int, tls: ir.UpstreamTls, secrets: dict[str, ir.Secret]) -> str:
    config = build_upstream_tls(tls, secrets)
    try:
        async with asyncio.timeout(TIMEOUT):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=config.context, server_hostname=config.server_hostname
            )
            try:
                config.verify_peer(writer.get_extra_info("ssl_object"))
                return "ok" if await reader.read(5) == b"hello" else "closed"
            finally:
                writer.close()
    except (ssl.SSLError, ssl.CertificateError, ConnectionError):
        return "refused"


async def test_upstream_tls_verifies_the_backend(server_ca: trustme.CA, client_ca: trustme.CA) -> None:
    secrets = {"ns/ca": _ca_secret("ns/ca", server_ca), "ns/other-ca": _ca_secret("ns/other-ca", client_ca)}
    server, port = await _backend(server_ca.issue_cert("backend.internal", "alt.internal"))
    try:
        assert (
            await _connect_upstream(port, ir.UpstreamTls(sni="backend.internal", ca_secrets=("ns/ca",)), secrets)
            == "ok"
        )
        wrong_name = ir.UpstreamTls(sni="other.internal", ca_secrets=("ns/ca",))
        assert await _connect_upstream(port, wrong_name, secrets) == "refused"
        wrong_ca = ir.UpstreamTls(sni="backend.internal", ca_secrets=("ns/other-ca",))
        assert await _connect_upstream(port, wrong_ca, secrets) == "refused"
        by_san = ir.UpstreamTls(sni="x.internal", ca_secrets=("ns/ca",), subject_alt_names=("alt.internal",))
        assert await _connect_upstream(port, by_san, secrets) == "ok"
        bad_san = ir.UpstreamTls(sni="backend.internal", ca_secrets=("ns/ca",), subject_alt_names=("nope.internal",))
        assert await _connect_upstream(port, bad_san, secrets) == "refused"
    finally:
        server.close()
        await server.wait_closed()


async def test_upstream_tls_presents_the_client_certificate(server_ca: trustme.CA, client_ca: trustme.CA) -> None:
    secrets = {
        "ns/ca": _ca_secret("ns/ca", server_ca),
        "ns/client": _secret("ns/client", client_ca.issue_cert("gateway.internal")),
    }
    server, port = await _backend(server_ca.issue_cert("backend.internal"), client_ca=client_ca)
    try:
        plain = ir.UpstreamTls(sni="backend.internal", ca_secrets=("ns/ca",))
        assert await _connect_upstream(port, plain, secrets) in ("refused", "closed")
        with_cert = ir.UpstreamTls(sni="backend.internal", ca_secrets=("ns/ca",), client_certificate="ns/client")
        assert await _connect_upstream(port, with_cert, secrets) == "ok"
    finally:
        server.close()
        await server.wait_closed()


def test_upstream_tls_with_missing_secret_is_rejected() -> None:
    with pytest.raises(ConfigRejected, match="CA secret ns/ca missing"):
        build_upstream_tls(ir.UpstreamTls(sni="b", ca_secrets=("ns/ca",)), {})


async def test_unknown_sni_without_a_catch_all_section_selects_none(
    secrets: dict[str, ir.Secret], server_ca: trustme.CA
) -> None:
    listener = _listener(
        ir.TlsCertificate(hostname="a.example.com", secret="ns/exact", section="ns/gw/a"),
        ir.TlsCertificate(hostname="*.deep.example.com", secret="ns/deep", section="ns/gw/deep"),
    )
    tls = build_server_tls(listener, secrets)
    sessions: list[TlsSession] = []
    ctx = _client_context(server_ca)
    ctx.check_hostname = False
    async for port in _serve(tls, sessions):
        _, peer = await _handshake(port, ctx, "elsewhere.test")
        assert "a.example.com" in _sans(peer)  # the first certificate is still served
        await _handshake(port, ctx, "x.deep.example.com")
    assert [(s.section, s.server_name) for s in sessions] == [
        (None, "elsewhere.test"),
        ("ns/gw/deep", "x.deep.example.com"),
    ]


# --- ClientHello peeking (TLS passthrough) ----------------------------------------------------------------------


def _client_hello(server_hostname: str | None, alpn: list[str] | None = None) -> bytes:
    ctx = ssl.create_default_context()
    if server_hostname is None:
        ctx.check_hostname = False
    if alpn:
        ctx.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    conn = ctx.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    with pytest.raises(ssl.SSLWantReadError):
        conn.do_handshake()
    return outgoing.read()


def test_peek_client_hello_reads_sni_and_alpn() -> None:
    hello = peek_client_hello(_client_hello("Backend.Example.COM", ["h2", "http/1.1"]))
    assert hello == ClientHello(server_name="backend.example.com", alpn=("h2", "http/1.1"))
    assert peek_client_hello(_client_hello(None)) == ClientHello(server_name=None, alpn=())


def test_peek_client_hello_waits_for_the_whole_hello() -> None:
    data = _client_hello("a.example.com")
    for n in range(len(data)):
        assert peek_client_hello(data[:n]) is None
    assert peek_client_hello(data + b"trailing bytes are ignored") == ClientHello(server_name="a.example.com")


def test_peek_client_hello_across_records() -> None:
    data = _client_hello("split.example.com")
    handshake = data[5:]
    half = len(handshake) // 2
    records = b"".join(
        b"\x16\x03\x01" + len(part).to_bytes(2, "big") + part for part in (handshake[:half], handshake[half:])
    )
    assert peek_client_hello(records[: len(records) - 1]) is None
    assert peek_client_hello(records) == ClientHello(server_name="split.example.com")


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00",  # a ServerHello, not a ClientHello
        b"\x16\x03\x01\x00\x08\x01\x00\x00\x04\x03\x03\x00\x00",  # truncated inside the hello body
    ],
)
def test_peek_client_hello_rejects_what_is_not_a_client_hello(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        peek_client_hello(data)


@given(st.binary(max_size=300))
def test_peek_client_hello_never_fails_otherwise(data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        peek_client_hello(data)


@given(st.integers(min_value=0, max_value=400), st.binary(min_size=1, max_size=8))
def test_peek_client_hello_survives_corruption(at: int, junk: bytes) -> None:
    data = bytearray(HELLO)
    at %= len(data)
    data[at : at + len(junk)] = junk
    with contextlib.suppress(RemoteProtocolError):
        peek_client_hello(bytes(data))


HELLO = _client_hello("fuzz.example.com", ["h2"])


def _stream_route(name: str, *hostnames: str) -> ir.StreamRoute:
    return ir.StreamRoute(name=name, route=f"TLSRoute/ns/{name}", section="ns/gw/tls", hostnames=hostnames)


def test_select_stream_route_by_sni() -> None:
    routes = [
        _stream_route("any"),
        _stream_route("wild", "*.example.com"),
        _stream_route("deep", "*.a.example.com"),
        _stream_route("exact", "x.a.example.com", "other.test"),
    ]
    assert select_stream_route(routes, "x.a.example.com") == routes[3]
    assert select_stream_route(routes, "y.a.example.com") == routes[2]
    assert select_stream_route(routes, "b.example.com") == routes[1]
    assert select_stream_route(routes, "elsewhere.test") == routes[0]
    assert select_stream_route(routes, None) == routes[0]
    assert select_stream_route(routes[1:], "elsewhere.test") is None
    assert select_stream_route(routes[1:], None) is None


@pytest.mark.parametrize(
    ("cipher", "key_type"),
    [("ECDHE-RSA-AES128-GCM-SHA256", rsa.RSAPublicKey), ("ECDHE-ECDSA-AES128-GCM-SHA256", ec.EllipticCurvePublicKey)],
)
async def test_rsa_and_ecdsa_certificates_for_one_name_share_a_context(
    server_ca: trustme.CA, cipher: str, key_type: type
) -> None:
    rsa_secret = _secret("ns/rsa", server_ca.issue_cert("dual.example.com", key_type=trustme.KeyType.RSA))
    ecdsa_secret = _secret("ns/ecdsa", server_ca.issue_cert("dual.example.com", key_type=trustme.KeyType.ECDSA))
    listener = _listener(
        ir.TlsCertificate(hostname="dual.example.com", secret="ns/rsa", section="ns/gw/dual"),
        ir.TlsCertificate(hostname="dual.example.com", secret="ns/ecdsa", section="ns/gw/dual"),
    )
    tls = build_server_tls(listener, {"ns/rsa": rsa_secret, "ns/ecdsa": ecdsa_secret})
    ctx = _client_context(server_ca)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # TLS 1.2 cipher suites name the certificate's key type
    ctx.set_ciphers(cipher)
    sessions: list[TlsSession] = []
    async for port in _serve(tls, sessions):
        async with asyncio.timeout(TIMEOUT):
            _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="dual.example.com")
            ssl_object = writer.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True)
            writer.close()
    assert isinstance(x509.load_der_x509_certificate(der).public_key(), key_type)
    assert [s.section for s in sessions] == ["ns/gw/dual"]
