"""Listeners: one per bound socket (address, port, protocol), with the virtual hosts or stream routes it serves."""

from __future__ import annotations

import enum

import attrs
from attrs import validators as v

from nantian.ir.route import HttpRoute, WeightedCluster

__all__ = [
    "ClientValidation",
    "ClientValidationMode",
    "Listener",
    "Protocol",
    "StreamRoute",
    "TlsCertificate",
    "TlsMode",
    "VirtualHost",
]


class Protocol(enum.Enum):
    HTTP = "HTTP"
    HTTPS = "HTTPS"
    TLS = "TLS"
    TCP = "TCP"
    UDP = "UDP"


class TlsMode(enum.Enum):
    TERMINATE = "Terminate"
    PASSTHROUGH = "Passthrough"


class ClientValidationMode(enum.Enum):
    ALLOW_VALID_ONLY = "AllowValidOnly"
    ALLOW_INSECURE_FALLBACK = "AllowInsecureFallback"


@attrs.frozen(kw_only=True)
class ClientValidation:
    """Ask TLS clients for a certificate signed by one of ``ca_secrets`` (frontend mTLS)."""

    ca_secrets: tuple[str, ...]
    mode: ClientValidationMode = ClientValidationMode.ALLOW_VALID_ONLY


@attrs.frozen(kw_only=True)
class TlsCertificate:
    """A certificate served to clients whose SNI matches ``hostname`` (``None``: any SNI, the fallback)."""

    hostname: str | None
    secret: str
    """Name of a :class:`~nantian.ir.secret.Secret` in the same snapshot."""
    section: str
    """The Gateway listener (``namespace/gateway/listener``) this certificate belongs to."""
    client_validation: ClientValidation | None = None


@attrs.frozen(kw_only=True)
class VirtualHost:
    """Routes served for requests whose Host matches ``hostname``, on one Gateway listener (``section``).

    A request first picks the section whose ``section_hostname`` matches its Host most specifically
    (exact, then the longest wildcard, then none), then the most specific ``hostname`` in that section,
    then the first route in ``routes`` that matches: they are in Gateway API precedence order.
    """

    section: str
    section_hostname: str | None
    hostname: str
    """An exact name, ``*.suffix`` (any number of labels before the suffix), or ``*`` for any."""
    routes: tuple[HttpRoute, ...] = ()


@attrs.frozen(kw_only=True)
class StreamRoute:
    """A TCP, UDP or TLS route: connections (TLS: whose SNI matches ``hostnames``) go to ``backends``."""

    name: str
    route: str
    section: str
    hostnames: tuple[str, ...] = ()
    backends: tuple[WeightedCluster, ...] = ()


@attrs.frozen(kw_only=True)
class Listener:
    """A socket the data plane binds, and what it serves.

    ``name`` is ``namespace/gateway/PORT/PROTOCOL`` (one bind per Gateway address and port). ``port`` is the
    Gateway's port; a data plane may add an offset when it binds.
    """

    name: str
    gateway: str
    """``namespace/name`` of the Gateway, for data planes that serve only some Gateways."""
    address: str
    port: int = attrs.field(validator=[v.ge(1), v.le(65535)])
    protocol: Protocol
    tls_mode: TlsMode | None = None
    certificates: tuple[TlsCertificate, ...] = ()
    virtual_hosts: tuple[VirtualHost, ...] = ()
    stream_routes: tuple[StreamRoute, ...] = ()
    detect_misdirected: bool = True
    """HTTPS: answer 421 when the Host belongs to a different Gateway listener than the TLS SNI chose."""
