"""TLS through the real proxy runtime: SNI sections and 421, frontend mTLS, TLS to backends (HTTP/1.1 and h2).

Certificates come from trustme; backends are nantian's echo server (one identity per backend). Each test leaves
no socket open: clients, proxy and echo close everything they opened before the test's event loop ends.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trustme
from processes import free_port
from snapshots import http_listener, local_cluster, prefix_route

from nantian import ir
from nantian.echo import EchoServer, PodContext, ServeSpec
from nantian.proxy import ProxyRuntime, RuntimeOptions

pytestmark = pytest.mark.e2e

TIMEOUT = 10.0
SNI_NAMES = ("example.org", "second-example.org", "*.wildcard.org", "unknown-example.org")


def _pem_secret(name: str, cert: trustme.LeafCert) -> ir.Secret:
    return ir.Secret(
        name=name,
        certificate_chain="".join(b.bytes().decode() for b in cert.cert_chain_pems),
        private_key=cert.private_key_pem.bytes().decode(),
    )


def _open_sockets() -> set[str]:
    """The process's open sockets, as their ``socket:[inode]`` links under /proc/self/fd."""
    out: set[str] = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the directory's own fd is gone by the time it is read
            link = os.readlink(f"/proc/self/fd/{fd}")
            if link.startswith("socket:"):
                out.add(link)
    return out


@pytest.fixture(autouse=True)
def no_socket_left_open() -> Iterator[None]:
    """Every socket the test opened is closed once its event loop has ended.

    An unclosed socket is otherwise only reported (as a ResourceWarning) whenever the garbage collector finds it,
    often during a later test: this names the test that leaked it. Sockets other tests leaked are open before
    and may be collected during the test; they do not count.
    """
    before = _open_sockets()
    yield
    left = _open_sockets() - before
    assert not left, f"sockets left open: {sorted(left)}"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def client_ca() -> trustme.CA:
    return trustme.CA()


@asynccontextmanager
async def proxy(
    listener: ir.Listener, clusters: list[ir.Cluster], secrets: list[ir.Secret]
) -> AsyncIterator[ProxyRuntime]:
    async with AsyncExitStack() as stack:
        runtime = ProxyRuntime(RuntimeOptions(access_log=False, drain_timeout=1.0))
        stack.push_async_callback(runtime.close)
        result = await runtime.apply(ir.Snapshot.build([listener], clusters, secrets))
        assert not result.failed, result.failed
        yield runtime


async def _echo(*pods: str) -> EchoServer:
    server = EchoServer([ServeSpec(context=PodContext(pod=pod), http=("127.0.0.1", 0)) for pod in pods])
    await server.start()
    return server


def _misdirected_listener(port: int) -> ir.Listener:
    """The conformance Gateway ``same-namespace-with-https-listener``: four HTTPS sections on one port."""
    sections = [
        ("https", None, "*", "ns/v1:80"),
        ("second", "second-example.org", "second-example.org", "ns/v2:80"),
        ("wild", "*.wildcard.org", "*.wildcard.org", "ns/v3:80"),
        ("fourth", "fourth-example.wildcard.org", "fourth-example.wildcard.org", "ns/v1:80"),
    ]
    return ir.Listener(
        name="ns/gw/443/HTTPS",
        gateway="ns/gw",
        address="127.0.0.1",
        port=port,
        protocol=ir.Protocol.HTTPS,
        tls_mode=ir.TlsMode.TERMINATE,
        certificates=tuple(
            ir.TlsCertificate(hostname=hostname, secret="ns/cert", section=f"ns/gw/{section}")
            for section, hostname, _, _ in sections
        ),
        virtual_hosts=tuple(
            ir.VirtualHost(
                section=f"ns/gw/{section}",
                section_hostname=hostname,
                hostname=vhost,
                routes=(prefix_route(section, "/", cluster),),
            )
            for section, hostname, vhost, cluster in sections
        ),
    )


# (SNI, Host, expected status, expected backend pod): the rows of HTTPRouteHTTPSListenerDetectMisdirectedRequests.
MISDIRECTED_ROWS = [
    ("example.org", "example.org", 200, "v1"),
    ("example.org", "second-example.org", 421, None),
    ("example.org", "unknown-example.org", 200, "v1"),  # the catch-all section's "*" vhost answers here
    ("second-example.org", "second-example.org", 200, "v2"),
    ("second-example.org", "example.org", 421, None),
    ("second-example.org", "unknown-example.org", 421, None),
    ("third-example.wildcard.org", "third-example.wildcard.org", 200, "v3"),
    ("third-example.wildcard.org", "fith-example.wildcard.org", 200, "v3"),
    ("third-example.wildcard.org", "fourth-example.wildcard.org", 421, None),
    ("third-example.wildcard.org", "second-example.org", 421, None),
    ("fourth-example.wildcard.org", "fourth-example.wildcard.org", 200, "v1"),
    ("fourth-example.wildcard.org", "fith-example.wildcard.org", 421, None),
    ("unknown-example.org", "example.org", 200, "v1"),
]


async def test_sni_section_and_host_mismatch_is_421(ca: trustme.CA) -> None:
    echo = await _echo("v1", "v2", "v3")
    try:
        ports = {b.pod: b.port for b in echo.bound}
        port = free_port()
        cert = ca.issue_cert(*SNI_NAMES, "third-example.wildcard.org", "fourth-example.wildcard.org")
        clusters = [local_cluster(f"ns/{pod}:80", ports[pod]) for pod in ("v1", "v2", "v3")]
        client_ctx = ssl.create_default_context()
        ca.configure_trust(client_ctx)
        async with proxy(_misdirected_listener(port), clusters, [_pem_secret("ns/cert", cert)]):
            for http2 in (True, False):
                for sni, host, status, pod in MISDIRECTED_ROWS:
                    # One client per row: httpx pools connections by origin, whatever the SNI.
                    async with httpx.AsyncClient(verify=client_ctx, http2=http2, http1=not http2, timeout=TIMEOUT) as c:
                        r = await c.get(
                            f"https://127.0.0.1:{port}/detect-misdirected-requests",
                            headers={"host": host},
                            extensions={"sni_hostname": sni},
                        )
                        row = (sni, host, r.http_version)
                        assert r.http_version == ("HTTP/2" if http2 else "HTTP/1.1"), row
                        assert r.status_code == status, row
                        if pod is not None:
                            assert r.json()["pod"] == pod, row
    finally:
        await echo.aclose()


async def test_frontend_mtls_allow_valid_only(ca: trustme.CA, client_ca: trustme.CA) -> None:
    echo = await _echo("v1")
    try:
        port = free_port()
        validation = ir.ClientValidation(ca_secrets=("ns/client-ca",))
        listener = ir.Listener(
            name="ns/gw/443/HTTPS",
            gateway="ns/gw",
            address="127.0.0.1",
            port=port,
            protocol=ir.Protocol.HTTPS,
            certificates=(
                ir.TlsCertificate(hostname=None, secret="ns/cert", section="ns/gw/https", client_validation=validation),
            ),
            virtual_hosts=(
                ir.VirtualHost(
                    section="ns/gw/https",
                    section_hostname=None,
                    hostname="*",
                    routes=(prefix_route("r", "/", "ns/v1:80"),),
                ),
            ),
        )
        secrets = [
            _pem_secret("ns/cert", ca.issue_cert("secure.example")),
            ir.Secret(name="ns/client-ca", ca_bundle=client_ca.cert_pem.bytes().decode()),
        ]
        async with proxy(listener, [local_cluster("ns/v1:80", echo.bound[0].port)], secrets):
            url = f"https://127.0.0.1:{port}/"
            ext = {"sni_hostname": "secure.example"}
            anonymous = ssl.create_default_context()
            ca.configure_trust(anonymous)
            async with httpx.AsyncClient(verify=anonymous, timeout=TIMEOUT) as c:
                with pytest.raises(httpx.TransportError):
                    await c.get(url, extensions=ext)
            with_cert = ssl.create_default_context()
            ca.configure_trust(with_cert)
            client_ca.issue_cert("client@example.org").configure_cert(with_cert)
            for http2 in (False, True):
                async with httpx.AsyncClient(verify=with_cert, http2=http2, timeout=TIMEOUT) as c:
                    r = await c.get(url, extensions=ext)
                    assert r.status_code == 200
                    assert r.json()["pod"] == "v1"
    finally:
        await echo.aclose()


async def test_tls_to_backends_http1_and_h2(ca: trustme.CA, tmp_path: Path) -> None:
    backend_ca = trustme.CA()
    backend_cert = backend_ca.issue_cert("backend.internal")
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert_file.write_bytes(b"".join(b.bytes() for b in backend_cert.cert_chain_pems))
    key_file.write_bytes(backend_cert.private_key_pem.bytes())
    echo = EchoServer(
        [
            ServeSpec(
                context=PodContext(pod="secure"),
                https=("127.0.0.1", 0),
                cert=str(cert_file),
                key=str(key_file),
            )
        ]
    )
    await echo.start()
    try:
        https_port = echo.bound[0].port
        port = free_port()
        upstream_tls = ir.UpstreamTls(sni="backend.internal", ca_secrets=("ns/backend-ca",))
        clusters = [
            local_cluster("ns/h1:443", https_port, tls=upstream_tls),
            local_cluster("ns/h2:443", https_port, protocol=ir.AppProtocol.H2C, tls=upstream_tls),
            local_cluster(
                "ns/wrong:443", https_port, tls=ir.UpstreamTls(sni="other.internal", ca_secrets=("ns/backend-ca",))
            ),
        ]
        listener = http_listener(port, [prefix_route(n, f"/{n}", f"ns/{n}:443") for n in ("h1", "h2", "wrong")])
        secrets = [ir.Secret(name="ns/backend-ca", ca_bundle=backend_ca.cert_pem.bytes().decode())]
        async with proxy(listener, clusters, secrets), httpx.AsyncClient(timeout=TIMEOUT) as c:
            r1 = await c.get(f"http://127.0.0.1:{port}/h1")
            r2 = await c.get(f"http://127.0.0.1:{port}/h2")
            r3 = await c.get(f"http://127.0.0.1:{port}/wrong")
        assert r1.status_code == 200
        assert r1.json()["tls"]["serverName"] == "backend.internal"
        assert r1.json()["proto"] == "HTTP/1.1"
        assert r2.status_code == 200
        assert r2.json()["proto"] == "HTTP/2.0"
        assert r2.json()["tls"]["negotiatedProtocol"] == "h2"
        assert r3.status_code == 503  # the certificate does not name other.internal: the connect fails
    finally:
        await echo.aclose()
