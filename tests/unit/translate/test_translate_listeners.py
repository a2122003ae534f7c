"""Listener validation: protocols, route kinds, certificates, frontend client validation, conflicts, ListenerSets."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml
from translate_harness import BASE, OPTIONS, cond, docs_from_yaml, listener, resource_set

from nantian.ir import ClientValidationMode, Protocol, TlsMode
from nantian.resources import ObjectRef
from nantian.testing import MaterialSpec, generated_objects
from nantian.translate import Translation, translate


def _material() -> list[dict[str, Any]]:
    return generated_objects(
        [
            MaterialSpec(kind="Secret", namespace="infra", name="cert", type="self-signed", hosts=("*.example.com",)),
            MaterialSpec(kind="ConfigMap", namespace="infra", name="ca", type="ca"),
        ]
    )


def _translate(text: str, *, extra: list[dict[str, Any]] | None = None) -> Translation:
    docs = [*docs_from_yaml(BASE + text), *_material(), *(extra or [])]
    return translate(resource_set(docs), OPTIONS)


def _gateway(listeners: str, tls: str = "") -> str:
    return f"""
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: infra}}
spec:
  gatewayClassName: nantian
  {tls}
  listeners: {listeners}
"""


HTTPS = "{name: %s, port: 443, protocol: HTTPS, hostname: %s, tls: {certificateRefs: [{name: %s}]}}"


def test_https_sections_share_one_bind_with_a_certificate_each() -> None:
    t = _translate(_gateway(f"[{HTTPS % ('a', 'a.example.com', 'cert')}, {HTTPS % ('b', 'b.example.com', 'cert')}]"))
    (lst,) = t.snapshot.listeners
    assert lst.name == "infra/gw/443/HTTPS"
    assert (lst.protocol, lst.tls_mode, lst.port) == (Protocol.HTTPS, TlsMode.TERMINATE, 443)
    assert [(c.hostname, c.secret, c.section) for c in lst.certificates] == [
        ("a.example.com", "infra/cert", "infra/gw/a"),
        ("b.example.com", "infra/cert", "infra/gw/b"),
    ]
    (secret,) = t.snapshot.secrets
    assert secret.name == "infra/cert"
    assert secret.certificate_chain and "BEGIN CERTIFICATE" in secret.certificate_chain
    assert secret.private_key and "PRIVATE KEY" in secret.private_key
    assert t.snapshot.problems() == []


def test_bad_certificate_secret_is_invalid_certificate_ref() -> None:
    bad = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "bad", "namespace": "infra"},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": base64.b64encode(b"not pem").decode(), "tls.key": base64.b64encode(b"nope").decode()},
    }
    t = _translate(
        _gateway(f"[{HTTPS % ('a', 'a.example.com', 'bad')}, {HTTPS % ('m', 'm.example.com', 'missing')}]"), extra=[bad]
    )
    for name in ("a", "m"):
        entry = listener(t, "infra", "gw", name)
        assert cond(entry, "ResolvedRefs") == ("False", "InvalidCertificateRef")
        assert cond(entry, "Programmed")[0] == "False"
    assert t.snapshot.listeners == ()


@pytest.mark.parametrize(
    ("listeners", "reasons"),
    [
        (
            "[{name: a, port: 80, protocol: HTTP}, {name: b, port: 80, protocol: TCP}]",
            {"a": "ProtocolConflict", "b": "ProtocolConflict"},
        ),
        (
            "[{name: a, port: 80, protocol: HTTP, hostname: x.com},"
            " {name: b, port: 80, protocol: HTTP, hostname: x.com}, {name: c, port: 80, protocol: HTTP}]",
            {"a": "HostnameConflict", "b": "HostnameConflict", "c": None},
        ),
        (
            "[{name: a, port: 53, protocol: UDP}, {name: b, port: 53, protocol: TCP}]",
            {"a": None, "b": None},
        ),
    ],
)
def test_conflicts(listeners: str, reasons: dict[str, str | None]) -> None:
    t = _translate(_gateway(listeners))
    for name, reason in reasons.items():
        entry = listener(t, "infra", "gw", name)
        if reason is None:
            assert cond(entry, "Conflicted") == ("False", "NoConflicts")
            assert cond(entry, "Accepted") == ("True", "Accepted")
        else:
            assert cond(entry, "Conflicted") == ("True", reason)
            assert cond(entry, "Accepted") == ("False", reason)
            assert entry["supportedKinds"] == []


def test_unsupported_protocol_and_route_kinds() -> None:
    t = _translate(
        _gateway(
            "[{name: a, port: 80, protocol: example.com/proto},"
            " {name: b, port: 81, protocol: HTTP, allowedRoutes: {kinds: [{kind: TCPRoute}, {kind: HTTPRoute}]}}]"
        )
    )
    assert cond(listener(t, "infra", "gw", "a"), "Accepted") == ("False", "UnsupportedProtocol")
    b = listener(t, "infra", "gw", "b")
    assert cond(b, "ResolvedRefs") == ("False", "InvalidRouteKinds")
    assert [k["kind"] for k in b["supportedKinds"]] == ["HTTPRoute"]
    assert [lst.port for lst in t.snapshot.listeners] == [81]


def test_frontend_client_validation_default_and_per_port() -> None:
    tls = (
        "tls: {frontend: {default: {validation: {caCertificateRefs: [{group: '', kind: ConfigMap, name: ca}]}},"
        " perPort: [{port: 8443, tls: {validation: {mode: AllowInsecureFallback,"
        " caCertificateRefs: [{group: '', kind: ConfigMap, name: ca}]}}},"
        " {port: 9443, tls: {validation: {caCertificateRefs: [{group: '', kind: ConfigMap, name: nope}]}}}]}}"
    )
    listeners = (
        f"[{HTTPS % ('a', 'a.example.com', 'cert')},"
        " {name: b, port: 8443, protocol: HTTPS, tls: {certificateRefs: [{name: cert}]}},"
        " {name: c, port: 9443, protocol: HTTPS, tls: {certificateRefs: [{name: cert}]}}]"
    )
    t = _translate(_gateway(listeners, tls))
    by_port = {lst.port: lst for lst in t.snapshot.listeners}
    assert set(by_port) == {443, 8443}
    (a,) = by_port[443].certificates
    assert a.client_validation is not None
    assert a.client_validation.ca_secrets == ("infra/ca",)
    assert a.client_validation.mode == ClientValidationMode.ALLOW_VALID_ONLY
    (b,) = by_port[8443].certificates
    assert b.client_validation is not None and b.client_validation.mode == ClientValidationMode.ALLOW_INSECURE_FALLBACK
    c = listener(t, "infra", "gw", "c")
    assert cond(c, "ResolvedRefs") == ("False", "InvalidCACertificateRef")
    assert cond(c, "Accepted") == ("False", "NoValidCACertificate")
    gw_status = t.statuses[ObjectRef("Gateway", "infra", "gw")]
    assert cond(gw_status, "InsecureFrontendValidationMode") == ("True", "ConfigurationChanged")
    assert "infra/ca" in {s.name for s in t.snapshot.secrets}
    assert t.snapshot.problems() == []


def test_listener_set_listeners_join_the_gateway_bind() -> None:
    text = (
        _gateway(
            "[{name: http, port: 80, protocol: HTTP, hostname: gw.com}]", "allowedListeners: {namespaces: {from: All}}"
        )
        + """
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: ls, namespace: apps}
spec:
  parentRef: {name: gw, namespace: infra}
  listeners:
  - {name: extra, port: 80, protocol: HTTP, hostname: ls.com}
  - {name: clash, port: 80, protocol: HTTP, hostname: gw.com}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: apps}
spec:
  parentRefs: [{kind: ListenerSet, name: ls, sectionName: extra}]
  rules: [{backendRefs: [{name: other, port: 80}]}]
"""
    )
    t = _translate(text)
    ls_status = t.statuses[ObjectRef("ListenerSet", "apps", "ls")]
    assert cond(ls_status, "Accepted") == ("True", "Accepted")
    assert cond(listener(t, "apps", "ls", "clash", kind="ListenerSet"), "Conflicted") == ("True", "HostnameConflict")
    assert listener(t, "apps", "ls", "extra", kind="ListenerSet")["attachedRoutes"] == 1
    assert t.statuses[ObjectRef("Gateway", "infra", "gw")]["attachedListenerSets"] == 1
    (lst,) = t.snapshot.listeners
    assert [(vh.section, vh.hostname) for vh in lst.virtual_hosts] == [("apps/ls/extra", "ls.com")]


def test_listener_set_not_allowed_by_default() -> None:
    text = (
        _gateway("[{name: http, port: 80, protocol: HTTP}]")
        + """
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: ls, namespace: infra}
spec:
  parentRef: {name: gw}
  listeners: [{name: extra, port: 81, protocol: HTTP}]
"""
    )
    t = _translate(text)
    assert cond(t.statuses[ObjectRef("ListenerSet", "infra", "ls")], "Accepted") == ("False", "NotAllowed")
    assert [lst.port for lst in t.snapshot.listeners] == [80]


def test_documents_are_yaml_serialisable() -> None:
    t = _translate(_gateway("[{name: http, port: 80, protocol: HTTP}]"))
    assert yaml.safe_dump({str(k): v for k, v in t.statuses.items()})
