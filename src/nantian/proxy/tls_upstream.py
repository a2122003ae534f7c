"""Client-side TLS to upstreams (BackendTLSPolicy): a context per cluster and the subjectAltNames check.

:func:`build_upstream_tls` makes a client context for a cluster's IR :class:`~nantian.ir.UpstreamTls` (CA bundle or
system roots, SNI, optional client certificate); :meth:`UpstreamTlsConfig.verify_peer` checks ``subjectAltNames``
after the handshake.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Mapping, Sequence

import attrs

from nantian.errors import ConfigRejected
from nantian.ir import Secret, UpstreamTls
from nantian.proxy.sni import normalize
from nantian.proxy.tls import SslConnection, load_ca, load_certificate

__all__ = ["UpstreamTlsConfig", "build_upstream_tls"]


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
        v, w = normalize(value), normalize(wanted)
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
        load_ca(ctx, tls.ca_secrets, secrets, where)
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
