"""Hypothesis strategies for IR values (:mod:`nantian.ir`). Re-exported by :mod:`nantian.testing.strategies`."""

from __future__ import annotations

import functools
import json
import zlib
from collections.abc import Callable, Sequence
from typing import ParamSpec, TypeVar

import attrs
from hypothesis import strategies as st

from nantian import ir

__all__ = [
    "ir_client_validations",
    "ir_clusters",
    "ir_cors",
    "ir_deltas",
    "ir_endpoints",
    "ir_header_modifiers",
    "ir_http_matches",
    "ir_http_routes",
    "ir_listeners",
    "ir_mirrors",
    "ir_path_modifiers",
    "ir_plugin_filters",
    "ir_redirects",
    "ir_retries",
    "ir_rewrites",
    "ir_secrets",
    "ir_snapshot_pairs",
    "ir_snapshots",
    "ir_stream_routes",
    "ir_timeouts",
    "ir_tls_certificates",
    "ir_upstream_tls",
    "ir_virtual_hosts",
    "ir_weighted_clusters",
]

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R", ir.Listener, ir.Cluster, ir.Secret)

_LABEL = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=8)
_NAMES = st.text("abcdefghijklmnopqrstuvwxyz0123456789-./:", min_size=1, max_size=24)
_TEXT = st.text(max_size=16)  # any Unicode (lone surrogates included): the codec must carry it all
_SECONDS = st.floats(min_value=0.001, max_value=3600.0, allow_nan=False, allow_infinity=False)
_PORTS = st.integers(min_value=1, max_value=65535)
_HOSTNAMES = st.one_of(
    st.just("*"),
    st.builds(lambda labels: ".".join(labels), st.lists(_LABEL, min_size=1, max_size=3)),
    st.builds(lambda labels: "*." + ".".join(labels), st.lists(_LABEL, min_size=1, max_size=3)),
)
_HEADER_NAMES = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12)
_PATHS = st.builds(lambda segs: "/" + "/".join(segs), st.lists(_LABEL, max_size=3))


def _cached(fn: Callable[P, st.SearchStrategy[T]]) -> Callable[P, st.SearchStrategy[T]]:
    """Build each strategy once per distinct arguments (hypothesis validates every new strategy object)."""
    cached: Callable[..., st.SearchStrategy[T]] = functools.cache(fn)

    def frozen(value: object) -> object:
        return tuple(value) if isinstance(value, list) else value

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> st.SearchStrategy[T]:
        return cached(*map(frozen, args), **{k: frozen(v) for k, v in kwargs.items()})

    return wrapper


def _tuples(elements: st.SearchStrategy[T], max_size: int = 3) -> st.SearchStrategy[tuple[T, ...]]:
    return st.lists(elements, max_size=max_size).map(tuple)


def _optional(strategy: st.SearchStrategy[T]) -> st.SearchStrategy[T | None]:
    return st.none() | strategy


def _names_from(pool: Sequence[str] | None) -> st.SearchStrategy[str]:
    return st.sampled_from(list(pool)) if pool else _NAMES


# --- routes ------------------------------------------------------------------------------------------------


@_cached
def ir_header_modifiers() -> st.SearchStrategy[ir.HeaderModifier]:
    """:class:`~nantian.ir.HeaderModifier` values with a few set/add/remove entries."""
    headers = st.builds(ir.Header, name=_HEADER_NAMES, value=_TEXT)
    return st.builds(ir.HeaderModifier, set=_tuples(headers), add=_tuples(headers), remove=_tuples(_HEADER_NAMES))


@_cached
def ir_path_modifiers() -> st.SearchStrategy[ir.PathModifier]:
    """Full-path or prefix replacements."""
    return st.builds(ir.PathModifier, type=st.sampled_from(ir.PathModifierType), value=_PATHS)


@_cached
def ir_redirects() -> st.SearchStrategy[ir.Redirect]:
    """Redirects with every optional part present or not, and each allowed status code."""
    return st.builds(
        ir.Redirect,
        scheme=_optional(st.sampled_from(["http", "https"])),
        hostname=_optional(_HOSTNAMES.filter(lambda h: "*" not in h)),
        port=_optional(_PORTS),
        path=_optional(ir_path_modifiers()),
        status_code=st.sampled_from([301, 302, 303, 307, 308]),
    )


@_cached
def ir_rewrites() -> st.SearchStrategy[ir.Rewrite]:
    """URL rewrites: hostname and/or path."""
    return st.builds(ir.Rewrite, hostname=_optional(_HOSTNAMES), path=_optional(ir_path_modifiers()))


@_cached
def ir_mirrors(clusters: Sequence[str] | None = None) -> st.SearchStrategy[ir.Mirror]:
    """Request mirrors; ``clusters`` restricts the target names (for consistent snapshots)."""
    percent = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)
    return st.builds(ir.Mirror, cluster=_names_from(clusters), percent=percent)


@_cached
def ir_cors() -> st.SearchStrategy[ir.Cors]:
    """CORS filters."""
    return st.builds(
        ir.Cors,
        allow_origins=_tuples(st.sampled_from(["*", "https://a.example", "http://*.example.com"])),
        allow_methods=_tuples(st.sampled_from(["GET", "POST", "PUT", "*"])),
        allow_headers=_tuples(_HEADER_NAMES),
        expose_headers=_tuples(_HEADER_NAMES),
        max_age=_optional(st.integers(min_value=0, max_value=86400)),
        allow_credentials=st.booleans(),
    )


@_cached
def ir_timeouts() -> st.SearchStrategy[ir.Timeouts]:
    """Request and backend-request timeouts (seconds)."""
    return st.builds(ir.Timeouts, request=_optional(_SECONDS), backend_request=_optional(_SECONDS))


@_cached
def ir_retries() -> st.SearchStrategy[ir.Retry]:
    """Retry policies."""
    return st.builds(
        ir.Retry,
        codes=_tuples(st.integers(min_value=500, max_value=599)),
        attempts=st.integers(min_value=0, max_value=10),
        backoff=_optional(_SECONDS),
        connection_errors=st.booleans(),
    )


@_cached
def ir_weighted_clusters(clusters: Sequence[str] | None = None) -> st.SearchStrategy[ir.WeightedCluster]:
    """One backend of a rule; ``cluster`` is sometimes ``None`` (an invalid backendRef)."""
    return st.builds(
        ir.WeightedCluster,
        cluster=_optional(_names_from(clusters)),
        weight=st.integers(min_value=0, max_value=1000),
        request_headers=_optional(ir_header_modifiers()),
        response_headers=_optional(ir_header_modifiers()),
    )


@_cached
def ir_http_matches() -> st.SearchStrategy[ir.HttpMatch]:
    """Path, header, query and method matches."""
    path = st.builds(ir.PathMatch, type=st.sampled_from(ir.PathMatchType), value=_PATHS)
    header = st.builds(ir.HeaderMatch, name=_HEADER_NAMES, value=_TEXT, type=st.sampled_from(ir.StringMatchType))
    query = st.builds(ir.QueryMatch, name=_HEADER_NAMES, value=_TEXT, type=st.sampled_from(ir.StringMatchType))
    method = _optional(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]))
    return st.builds(ir.HttpMatch, path=path, headers=_tuples(header), query=_tuples(query), method=method)


@_cached
def ir_plugin_filters() -> st.SearchStrategy[ir.PluginFilter]:
    """ExtensionRef filters: a target name and its spec as canonical JSON."""
    config = st.dictionaries(_LABEL, st.integers() | _LABEL, max_size=2)
    return st.builds(ir.PluginFilter, name=_NAMES, config=config.map(lambda c: json.dumps(c, sort_keys=True)))


@_cached
def ir_http_routes(clusters: Sequence[str] | None = None) -> st.SearchStrategy[ir.HttpRoute]:
    """HTTP routes with every filter the IR has (each present or absent)."""
    return st.builds(
        ir.HttpRoute,
        name=_NAMES,
        route=_NAMES,
        rule_name=_optional(_LABEL),
        match=ir_http_matches(),
        request_headers=_optional(ir_header_modifiers()),
        response_headers=_optional(ir_header_modifiers()),
        redirect=_optional(ir_redirects()),
        rewrite=_optional(ir_rewrites()),
        mirrors=_tuples(ir_mirrors(clusters), max_size=2),
        cors=_optional(ir_cors()),
        plugin_filters=_tuples(ir_plugin_filters(), max_size=2),
        backends=_tuples(ir_weighted_clusters(clusters)),
        direct_status=_optional(st.sampled_from([404, 500, 503])),
        timeouts=_optional(ir_timeouts()),
        retry=_optional(ir_retries()),
        grpc=st.booleans(),
    )


# --- listeners ---------------------------------------------------------------------------------------------


@_cached
def ir_virtual_hosts(clusters: Sequence[str] | None = None) -> st.SearchStrategy[ir.VirtualHost]:
    """Virtual hosts with a few routes."""
    return st.builds(
        ir.VirtualHost,
        section=_NAMES,
        section_hostname=_optional(_HOSTNAMES),
        hostname=_HOSTNAMES,
        routes=_tuples(ir_http_routes(clusters), max_size=2),
    )


@_cached
def ir_stream_routes(clusters: Sequence[str] | None = None) -> st.SearchStrategy[ir.StreamRoute]:
    """TCP/UDP/TLS routes."""
    return st.builds(
        ir.StreamRoute,
        name=_NAMES,
        route=_NAMES,
        section=_NAMES,
        hostnames=_tuples(_HOSTNAMES),
        backends=_tuples(ir_weighted_clusters(clusters)),
    )


@_cached
def ir_client_validations(secrets: Sequence[str] | None = None) -> st.SearchStrategy[ir.ClientValidation]:
    """Frontend mTLS settings: CA secrets and mode."""
    return st.builds(
        ir.ClientValidation,
        ca_secrets=_tuples(_names_from(secrets), max_size=2),
        mode=st.sampled_from(ir.ClientValidationMode),
    )


@_cached
def ir_tls_certificates(secrets: Sequence[str] | None = None) -> st.SearchStrategy[ir.TlsCertificate]:
    """Served certificates, some with client validation (frontend mTLS)."""
    return st.builds(
        ir.TlsCertificate,
        hostname=_optional(_HOSTNAMES),
        secret=_names_from(secrets),
        section=_NAMES,
        client_validation=_optional(ir_client_validations(secrets)),
    )


@_cached
def ir_listeners(
    clusters: Sequence[str] | None = None,
    secrets: Sequence[str] | None = None,
    *,
    name: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[ir.Listener]:
    """Listeners of every protocol, with virtual hosts, stream routes and certificates.

    :param clusters: if given, every cluster reference is one of these names.
    :param secrets: if given, every secret reference is one of these names.
    :param name: strategy for the listener name (default: arbitrary text).
    """
    return st.builds(
        ir.Listener,
        name=name if name is not None else _NAMES,
        gateway=_NAMES,
        address=st.ip_addresses(v=4).map(str),
        port=_PORTS,
        protocol=st.sampled_from(ir.Protocol),
        tls_mode=_optional(st.sampled_from(ir.TlsMode)),
        certificates=_tuples(ir_tls_certificates(secrets), max_size=2),
        virtual_hosts=_tuples(ir_virtual_hosts(clusters), max_size=2),
        stream_routes=_tuples(ir_stream_routes(clusters), max_size=2),
        detect_misdirected=st.booleans(),
    )


# --- clusters and secrets ----------------------------------------------------------------------------------


@_cached
def ir_endpoints() -> st.SearchStrategy[ir.Endpoint]:
    """Endpoints (IPv4 or IPv6 addresses)."""
    return st.builds(
        ir.Endpoint,
        address=st.ip_addresses().map(str),
        port=_PORTS,
        weight=st.integers(min_value=0, max_value=100),
    )


@_cached
def ir_upstream_tls(secrets: Sequence[str] | None = None) -> st.SearchStrategy[ir.UpstreamTls]:
    """Backend TLS settings."""
    return st.builds(
        ir.UpstreamTls,
        sni=_HOSTNAMES.filter(lambda h: "*" not in h),
        ca_secrets=_tuples(_names_from(secrets), max_size=2),
        system_roots=st.booleans(),
        subject_alt_names=_tuples(_HOSTNAMES, max_size=2),
        client_certificate=_optional(_names_from(secrets)),
    )


@_cached
def ir_clusters(
    secrets: Sequence[str] | None = None, *, name: st.SearchStrategy[str] | None = None
) -> st.SearchStrategy[ir.Cluster]:
    """Clusters, named ``namespace/service:port`` unless ``name`` says otherwise."""
    default_name = st.builds(lambda ns, svc, port: f"{ns}/{svc}:{port}", _LABEL, _LABEL, _PORTS)
    return st.builds(
        ir.Cluster,
        name=name if name is not None else default_name,
        protocol=st.sampled_from(ir.AppProtocol),
        endpoints=_tuples(ir_endpoints()),
        tls=_optional(ir_upstream_tls(secrets)),
        load_balancer=st.sampled_from(ir.LoadBalancer),
        connect_timeout=_SECONDS,
    )


@_cached
def ir_secrets(*, name: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[ir.Secret]:
    """Secrets: any mix of certificate chain, private key and CA bundle (the text need not be real PEM)."""
    pem = _optional(st.text("ABCDEFabcdef0123456789+/=\n-", max_size=40))
    default_name = st.builds(lambda ns, n: f"{ns}/{n}", _LABEL, _LABEL)
    return st.builds(
        ir.Secret,
        name=name if name is not None else default_name,
        certificate_chain=pem,
        private_key=pem,
        ca_bundle=pem,
    )


# --- snapshots ---------------------------------------------------------------------------------------------


def _named(draw: st.DrawFn, strategy: st.SearchStrategy[R], names: list[str]) -> list[R]:
    return [attrs.evolve(draw(strategy), name=n) for n in names]


@st.composite
def ir_snapshots(draw: st.DrawFn, *, consistent: bool = True, max_resources: int = 3) -> ir.Snapshot:
    """Whole snapshots built with :meth:`~nantian.ir.Snapshot.build` (so they carry a content version).

    Resource names are unique per type. With ``consistent`` (the default), every cluster and secret that a
    listener or cluster refers to is in the snapshot, so :meth:`~nantian.ir.Snapshot.problems` is empty.
    """
    unique_names = st.lists(_NAMES, max_size=max_resources, unique=True)
    secret_names, cluster_names, listener_names = draw(unique_names), draw(unique_names), draw(unique_names)
    secrets = _named(draw, ir_secrets(), secret_names)
    clusters = _named(draw, ir_clusters(), cluster_names)
    listeners = _named(draw, ir_listeners(), listener_names)
    if consistent:
        remap = _Remap(tuple(cluster_names), tuple(secret_names))
        clusters = [remap.cluster(c) for c in clusters]
        listeners = [remap.listener(lst) for lst in listeners]
    return ir.Snapshot.build(listeners, clusters, secrets)


def _pick(pool: tuple[str, ...], name: str) -> str | None:
    """A name of ``pool`` chosen by ``name`` (deterministic), or ``None`` if the pool is empty."""
    return pool[zlib.crc32(name.encode("utf-8", "surrogatepass")) % len(pool)] if pool else None


@attrs.frozen
class _Remap:
    """Points every cluster and secret reference at a resource of the snapshot (or drops it)."""

    clusters: tuple[str, ...]
    secrets: tuple[str, ...]

    def cluster(self, cluster: ir.Cluster) -> ir.Cluster:
        if cluster.tls is None:
            return cluster
        client = cluster.tls.client_certificate
        tls = attrs.evolve(
            cluster.tls,
            ca_secrets=self._secrets(cluster.tls.ca_secrets),
            client_certificate=None if client is None else _pick(self.secrets, client),
        )
        return attrs.evolve(cluster, tls=tls)

    def _secrets(self, names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(p for n in names if (p := _pick(self.secrets, n)) is not None)

    def _backends(self, backends: tuple[ir.WeightedCluster, ...]) -> tuple[ir.WeightedCluster, ...]:
        return tuple(
            b if b.cluster is None else attrs.evolve(b, cluster=_pick(self.clusters, b.cluster)) for b in backends
        )

    def _route(self, route: ir.HttpRoute) -> ir.HttpRoute:
        mirrors = tuple(
            attrs.evolve(m, cluster=p) for m in route.mirrors if (p := _pick(self.clusters, m.cluster)) is not None
        )
        return attrs.evolve(route, mirrors=mirrors, backends=self._backends(route.backends))

    def listener(self, listener: ir.Listener) -> ir.Listener:
        certificates = []
        for cert in listener.certificates:
            secret = _pick(self.secrets, cert.secret)
            if secret is None:
                continue
            validation = cert.client_validation
            if validation is not None:
                validation = attrs.evolve(validation, ca_secrets=self._secrets(validation.ca_secrets))
            certificates.append(attrs.evolve(cert, secret=secret, client_validation=validation))
        vhosts = tuple(
            attrs.evolve(vh, routes=tuple(self._route(r) for r in vh.routes)) for vh in listener.virtual_hosts
        )
        streams = tuple(attrs.evolve(s, backends=self._backends(s.backends)) for s in listener.stream_routes)
        return attrs.evolve(listener, certificates=tuple(certificates), virtual_hosts=vhosts, stream_routes=streams)


@st.composite
def ir_snapshot_pairs(draw: st.DrawFn, *, max_resources: int = 2) -> tuple[ir.Snapshot, ir.Snapshot]:
    """Two consistent snapshots sharing some resources: the second keeps part of the first, replaces or
    drops the rest, and adds new ones (what a reconcile after a few changes looks like)."""
    a = draw(ir_snapshots(max_resources=max_resources))
    fresh = draw(ir_snapshots(max_resources=max_resources))
    kept = {k: r for k, r in a.resources().items() if draw(st.booleans())}
    added = {k: r for k, r in fresh.resources().items() if draw(st.booleans())}
    b = ir.Snapshot.from_resources({**kept, **added}.values())
    return a, b


def ir_deltas() -> st.SearchStrategy[ir.Delta]:
    """Deltas between the snapshots of :func:`ir_snapshot_pairs` (``diff(a, b)``)."""
    return ir_snapshot_pairs().map(lambda pair: ir.diff(*pair))
