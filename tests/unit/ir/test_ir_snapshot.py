"""Snapshot.build: sorted resources, a content version, and problems()."""

from __future__ import annotations

import attrs

from nantian import ir


def _listener(name: str = "ns/gw/80/HTTP", **kw: object) -> ir.Listener:
    fields: dict[str, object] = {"name": name, "gateway": "ns/gw", "address": "127.0.0.2", "port": 80}
    fields["protocol"] = ir.Protocol.HTTP
    fields.update(kw)
    return ir.Listener(**fields)  # type: ignore[arg-type]


def _vhost(*clusters: str | None, mirror: str | None = None) -> ir.VirtualHost:
    route = ir.HttpRoute(
        name="r",
        route="HTTPRoute/ns/r",
        backends=tuple(ir.WeightedCluster(cluster=c) for c in clusters),
        mirrors=(ir.Mirror(cluster=mirror),) if mirror else (),
    )
    return ir.VirtualHost(section="ns/gw/http", section_hostname=None, hostname="*", routes=(route,))


def test_build_sorts_each_kind_by_name() -> None:
    snap = ir.Snapshot.build(
        [_listener("b"), _listener("a")], [ir.Cluster(name="z"), ir.Cluster(name="y")], [ir.Secret(name="s")]
    )
    assert [r.name for r in snap.listeners] == ["a", "b"]
    assert [c.name for c in snap.clusters] == ["y", "z"]


def test_same_content_same_version_regardless_of_order() -> None:
    a = ir.Snapshot.build([_listener("a"), _listener("b")], [ir.Cluster(name="c")])
    b = ir.Snapshot.build([_listener("b"), _listener("a")], [ir.Cluster(name="c")])
    assert a.version == b.version
    assert a == b
    assert len(a.version) == 16


def test_empty_snapshot_has_a_stable_version() -> None:
    assert ir.Snapshot.build().version == ir.Snapshot.build().version != ""


def test_any_change_changes_the_version() -> None:
    base = ir.Snapshot.build([_listener()], [ir.Cluster(name="ns/s:80")], [ir.Secret(name="ns/t")])
    variants = [
        ir.Snapshot.build([_listener(port=81)], base.clusters, base.secrets),
        ir.Snapshot.build([_listener(detect_misdirected=False)], base.clusters, base.secrets),
        ir.Snapshot.build(base.listeners, [ir.Cluster(name="ns/s:80", connect_timeout=4.0)], base.secrets),
        ir.Snapshot.build(base.listeners, [], base.secrets),
        ir.Snapshot.build(base.listeners, base.clusters, [ir.Secret(name="ns/t", private_key="k")]),
        ir.Snapshot.build(base.listeners, base.clusters, [*base.secrets, ir.Secret(name="ns/u")]),
    ]
    versions = {v.version for v in variants}
    assert base.version not in versions
    assert len(versions) == len(variants)


def test_a_resource_moving_between_types_changes_the_version() -> None:
    # The digest includes the resource type, not only the encoded body.
    assert ir.Snapshot.build(clusters=[ir.Cluster(name="x")]).version != ir.Snapshot.build().version


def test_resources_are_keyed_by_type_and_name() -> None:
    snap = ir.Snapshot.build([_listener("l")], [ir.Cluster(name="c")], [ir.Secret(name="s")])
    assert set(snap.resources()) == {
        (ir.ResourceType.LISTENER, "l"),
        (ir.ResourceType.CLUSTER, "c"),
        (ir.ResourceType.SECRET, "s"),
    }
    assert ir.Snapshot.from_resources(snap.resources().values()) == snap


def test_consistent_snapshot_has_no_problems() -> None:
    cert = ir.TlsCertificate(hostname=None, secret="ns/t", section="ns/gw/https")
    snap = ir.Snapshot.build(
        [_listener(virtual_hosts=(_vhost("ns/s:80", None, mirror="ns/s:80"),), certificates=(cert,))],
        [ir.Cluster(name="ns/s:80")],
        [ir.Secret(name="ns/t")],
    )
    assert snap.problems() == []
    assert snap.consistent()


def test_problems_name_missing_clusters_secrets_and_duplicates() -> None:
    cert = ir.TlsCertificate(hostname=None, secret="ns/missing-secret", section="s")
    stream = ir.StreamRoute(
        name="t", route="TCPRoute/ns/t", section="s", backends=(ir.WeightedCluster(cluster="ns/x:1"),)
    )
    tls = ir.UpstreamTls(sni="a", ca_secrets=("ns/ca",), client_certificate="ns/client")
    snap = ir.Snapshot.build(
        [
            _listener("l", virtual_hosts=(_vhost("ns/gone:80", mirror="ns/mirror:80"),), certificates=(cert,)),
            _listener("l", stream_routes=(stream,)),
        ],
        [ir.Cluster(name="c", tls=tls)],
    )
    assert snap.problems() == [
        "cluster c: secret ns/ca missing",
        "cluster c: secret ns/client missing",
        "duplicate listener names",
        "listener l: cluster ns/gone:80 missing",
        "listener l: cluster ns/mirror:80 missing",
        "listener l: cluster ns/x:1 missing",
        "listener l: secret ns/missing-secret missing",
    ]
    assert not snap.consistent()


def test_invalid_backend_is_not_a_problem() -> None:
    # cluster=None means "invalid backendRef, answer 500": a status matter, not an inconsistency.
    assert ir.Snapshot.build([_listener(virtual_hosts=(_vhost(None),))]).problems() == []


def test_snapshot_is_immutable() -> None:
    snap = ir.Snapshot.build()
    try:
        snap.version = "x"  # type: ignore[misc]
    except attrs.exceptions.FrozenInstanceError:
        pass
    else:
        raise AssertionError("Snapshot is mutable")


def test_problems_name_missing_client_validation_ca_secrets() -> None:
    validation = ir.ClientValidation(ca_secrets=("ns/ca",))
    cert = ir.TlsCertificate(hostname=None, secret="ns/cert", section="ns/gw/https", client_validation=validation)
    listener = ir.Listener(
        name="ns/gw/443/HTTPS", gateway="ns/gw", address="127.0.0.2", port=443, protocol=ir.Protocol.HTTPS,
        certificates=(cert,),
    )  # fmt: skip
    snap = ir.Snapshot.build([listener], [], [ir.Secret(name="ns/cert", certificate_chain="C", private_key="K")])
    assert snap.problems() == ["listener ns/gw/443/HTTPS: secret ns/ca missing"]
    with_ca = ir.Snapshot.build([listener], [], [*snap.secrets, ir.Secret(name="ns/ca", ca_bundle="CA")])
    assert with_ca.problems() == []
