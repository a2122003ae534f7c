"""Per-node views: only the listeners of the served Gateways and what they reference."""

from __future__ import annotations

from nantian.ir import (
    ClientValidation,
    Cluster,
    HttpRoute,
    Listener,
    Mirror,
    Protocol,
    Secret,
    Snapshot,
    StreamRoute,
    TlsCertificate,
    UpstreamTls,
    VirtualHost,
    WeightedCluster,
)
from nantian.xds.filtering import clusters_of, for_gateways, secrets_of


def _snapshot() -> Snapshot:
    https = Listener(
        name="ns/a/443/HTTPS",
        gateway="ns/a",
        address="127.0.0.2",
        port=443,
        protocol=Protocol.HTTPS,
        certificates=(
            TlsCertificate(
                hostname=None,
                secret="ns/cert",
                section="ns/a/https",
                client_validation=ClientValidation(ca_secrets=("ns/client-ca",)),
            ),
        ),
        virtual_hosts=(
            VirtualHost(
                section="ns/a/https",
                section_hostname=None,
                hostname="*",
                routes=(
                    HttpRoute(
                        name="r",
                        route="HTTPRoute/ns/r",
                        backends=(WeightedCluster(cluster="ns/web:80"), WeightedCluster(cluster=None)),
                        mirrors=(Mirror(cluster="ns/shadow:80"),),
                    ),
                ),
            ),
        ),
    )
    tcp = Listener(
        name="ns/b/9000/TCP",
        gateway="ns/b",
        address="127.0.0.3",
        port=9000,
        protocol=Protocol.TCP,
        stream_routes=(
            StreamRoute(
                name="t", route="TCPRoute/ns/t", section="ns/b/tcp", backends=(WeightedCluster(cluster="ns/db:5432"),)
            ),
        ),
    )
    clusters = [
        Cluster(
            name="ns/web:80", tls=UpstreamTls(sni="web", ca_secrets=("ns/web-ca",), client_certificate="ns/gw-cert")
        ),
        Cluster(name="ns/shadow:80"),
        Cluster(name="ns/db:5432"),
        Cluster(name="ns/unused:80"),
    ]
    secrets = [Secret(name=n) for n in ("ns/cert", "ns/client-ca", "ns/web-ca", "ns/gw-cert", "ns/other")]
    return Snapshot.build([https, tcp], clusters, secrets)


def test_all_gateways_when_none_named() -> None:
    snap = _snapshot()
    assert for_gateways(snap, []) is snap


def test_one_gateway_gets_its_listeners_and_references_only() -> None:
    view = for_gateways(_snapshot(), ["ns/a"])
    assert [x.name for x in view.listeners] == ["ns/a/443/HTTPS"]
    assert [c.name for c in view.clusters] == ["ns/shadow:80", "ns/web:80"]
    assert [s.name for s in view.secrets] == ["ns/cert", "ns/client-ca", "ns/gw-cert", "ns/web-ca"]
    assert view.consistent()
    assert view.version != _snapshot().version


def test_stream_routes_pull_their_clusters() -> None:
    view = for_gateways(_snapshot(), ["ns/b"])
    assert [c.name for c in view.clusters] == ["ns/db:5432"]
    assert view.secrets == ()


def test_unknown_gateway_gets_an_empty_snapshot() -> None:
    view = for_gateways(_snapshot(), ["ns/none"])
    assert view == Snapshot.build()


def test_reference_helpers() -> None:
    snap = _snapshot()
    assert clusters_of(snap.listeners[0]) == {"ns/web:80", "ns/shadow:80"}
    assert secrets_of([], [snap.clusters[-1]]) == {"ns/web-ca", "ns/gw-cert"}
