"""Who an echo server says it is (:class:`PodContext`) and what it serves (:class:`ServeSpec`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["PodContext", "ServeSpec", "SpecError", "parse_address", "parse_serve_spec"]

_LISTENER_KEYS = ("http", "h2c", "https", "grpc", "grpcs", "tcp", "tcps", "udp")
_CONTEXT_KEYS = ("namespace", "ingress", "service", "pod")
_FILE_KEYS = ("cert", "key", "client_ca")
_FLAG_KEYS = ("require_client_cert",)


class SpecError(ValueError):
    """A ``--serve`` value cannot be used; the message says which part and why."""


@attrs.frozen(kw_only=True)
class PodContext:
    """The identity an echo server reports in every answer (upstream: the pod's environment)."""

    namespace: str = ""
    ingress: str = ""
    service: str = ""
    pod: str = ""


def parse_address(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) as ``(host, port)``; port 0 asks the OS for a free one.

    :raises SpecError: when the value has no port or the port is not a number in 0..65535.
    """
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise SpecError(f"address {value!r}: expected HOST:PORT with PORT in 0..65535")
    return host.strip("[]") or "127.0.0.1", int(port_text)


@attrs.frozen(kw_only=True)
class ServeSpec:
    """One identity and the listeners it serves, as one upstream echo-basic pod would.

    Every listener is optional; ``cert``/``key`` are PEM files needed by ``https``, ``grpcs`` and ``tcps``;
    ``client_ca`` makes ``https`` ask for client certificates and verify those given (upstream:
    ``VerifyClientCertIfGiven``); ``require_client_cert`` also refuses clients without one.
    """

    context: PodContext = PodContext()
    http: tuple[str, int] | None = None
    """HTTP/1.1 (upstream port 3000), with WebSocket echo on ``/ws``."""
    h2c: tuple[str, int] | None = None
    """HTTP/2 with prior knowledge (upstream port 3001)."""
    https: tuple[str, int] | None = None
    """HTTPS with ALPN h2 and http/1.1 (upstream port 8443)."""
    grpc: tuple[str, int] | None = None
    """The GrpcEcho service in plaintext (upstream: port 3000 when ``GRPC_ECHO_SERVER`` is set)."""
    grpcs: tuple[str, int] | None = None
    """The GrpcEcho service over TLS (upstream port 8443)."""
    tcp: tuple[str, int] | None = None
    """The TCP line echo (upstream: port 3000 when ``TCP_ECHO_SERVER`` is set)."""
    tcps: tuple[str, int] | None = None
    """The TCP line echo over TLS (upstream port 8443)."""
    udp: tuple[str, int] | None = None
    """The UDP JSON echo (upstream: port 8080 when ``UDP_ECHO_SERVER`` is set)."""
    cert: str | None = None
    key: str | None = None
    client_ca: str | None = None
    require_client_cert: bool = False

    def __attrs_post_init__(self) -> None:
        if self.require_client_cert and not self.client_ca:
            raise SpecError("require_client_cert needs client_ca= (the CA that signs client certificates)")
        needs_tls = [name for name in ("https", "grpcs", "tcps") if getattr(self, name) is not None]
        if needs_tls and not (self.cert and self.key):
            raise SpecError(f"{', '.join(needs_tls)} needs cert= and key= (PEM files)")
        if not any(getattr(self, name) is not None for name in _LISTENER_KEYS):
            raise SpecError(f"no listener: give at least one of {', '.join(_LISTENER_KEYS)}")

    def listeners(self) -> list[tuple[str, tuple[str, int]]]:
        """``(kind, (host, port))`` for every listener this spec asks for, in a fixed order."""
        out: list[tuple[str, tuple[str, int]]] = []
        for name in _LISTENER_KEYS:
            address: tuple[str, int] | None = getattr(self, name)
            if address is not None:
                out.append((name, address))
        return out


def _from_mapping(values: Mapping[str, Any]) -> ServeSpec:
    unknown = sorted(set(values) - set(_LISTENER_KEYS) - set(_CONTEXT_KEYS) - set(_FILE_KEYS) - set(_FLAG_KEYS))
    if unknown:
        raise SpecError(f"unknown key(s) {', '.join(unknown)}")
    context = PodContext(**{k: str(values[k]) for k in _CONTEXT_KEYS if k in values})
    fields: dict[str, Any] = {k: parse_address(str(values[k])) for k in _LISTENER_KEYS if k in values}
    fields.update({k: str(values[k]) for k in _FILE_KEYS if k in values})
    fields.update({k: str(values[k]).lower() in ("1", "true", "yes") for k in _FLAG_KEYS if k in values})
    return ServeSpec(context=context, **fields)


def parse_serve_spec(text: str) -> ServeSpec:
    """Parse a ``--serve`` value: ``key=value,...`` or a JSON object with the same keys.

    Keys: listeners ``http h2c https grpc grpcs tcp tcps udp`` (each ``HOST:PORT``), identity
    ``namespace ingress service pod``, TLS files ``cert key client_ca``, flag ``require_client_cert``. Example:
    ``http=127.0.0.1:0,namespace=ns,service=web,pod=web-6d4f-abcde``.

    :raises SpecError: on unknown keys, bad addresses or TLS listeners without a certificate.
    """
    text = text.strip()
    if text.startswith("{"):
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"serve spec is not valid JSON: {exc}") from exc
        if not isinstance(values, dict):
            raise SpecError("serve spec JSON must be an object")
        return _from_mapping(values)
    pairs: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise SpecError(f"serve spec part {part!r}: expected key=value")
        pairs[key.strip()] = value.strip()
    return _from_mapping(pairs)
