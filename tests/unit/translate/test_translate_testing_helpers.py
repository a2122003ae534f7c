"""nantian.testing: generated TLS material, case documents, steps and the status checker itself."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from nantian.testing import (
    CertificateFactory,
    MaterialSpec,
    apply_step,
    case_documents,
    check_status,
    data_dir,
    load_case,
)

FACTORY = CertificateFactory(key_size=1024)


def _cert(obj: dict[str, Any]) -> x509.Certificate:
    if obj["kind"] == "ConfigMap":
        return x509.load_pem_x509_certificate(obj["data"]["ca.crt"].encode())
    return x509.load_pem_x509_certificate(base64.b64decode(obj["data"]["tls.crt"]))


def test_sans_and_signing() -> None:
    ca_obj, leaf_obj, client_obj = FACTORY.objects(
        [
            MaterialSpec(
                kind="Secret",
                namespace="infra",
                name="leaf",
                type="ca-signed-server",
                ca="ca",
                hosts=("abc.example.com", "*.x.org", "spiffe://abc/id", "10.0.0.1", "*"),
            ),
            MaterialSpec(kind="ConfigMap", namespace="gateway-conformance-infra", name="ca", type="ca"),
            MaterialSpec(kind="Secret", namespace="infra", name="client", type="ca-signed-client", ca="ca"),
        ]
    )
    assert (ca_obj["kind"], leaf_obj["metadata"]["name"], client_obj["metadata"]["name"]) == (
        "ConfigMap",
        "leaf",
        "client",
    )
    ca, leaf, client = _cert(ca_obj), _cert(leaf_obj), _cert(client_obj)
    leaf.verify_directly_issued_by(ca)
    client.verify_directly_issued_by(ca)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["abc.example.com", "*.x.org"]
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://abc/id", "*"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.1"]
    eku = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert b"RSA PRIVATE KEY" in base64.b64decode(leaf_obj["data"]["tls.key"])
    assert leaf_obj["type"] == "kubernetes.io/tls"


def test_case_documents_have_class_material_and_endpoints() -> None:
    case = load_case(data_dir() / "cases" / "httproute-simple-same-namespace.yaml")
    docs = case_documents(
        case,
        gateway_class="cls",
        controller_name="ctl",
        endpoints={("gateway-conformance-infra", "infra-backend-v1"): [("10.9.9.9", {3000: 40000, 3001: 40001})]},
        factory=FACTORY,
    )
    kinds = [d["kind"] for d in docs]
    assert kinds[0] == "GatewayClass" and docs[0]["spec"]["controllerName"] == "ctl"
    assert all(d["spec"]["gatewayClassName"] == "cls" for d in docs if d["kind"] == "Gateway")
    assert {"Secret", "ConfigMap", "EndpointSlice", "HTTPRoute"} <= set(kinds)
    slices = [
        d
        for d in docs
        if d["kind"] == "EndpointSlice" and d["metadata"]["labels"]["kubernetes.io/service-name"] == "infra-backend-v1"
    ]
    (sl,) = slices
    assert sl["endpoints"][0]["addresses"] == ["10.9.9.9"]
    assert {p["name"]: p["port"] for p in sl["ports"]} == {
        "first-port": 40000,
        "second-port": 40001,
        "third-port": 40000,
    }
    assert not any("{GATEWAY_CLASS_NAME}" in str(d) for d in docs)


def test_steps() -> None:
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "ns"}, "data": {"k": "v"}},
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "g", "namespace": "ns"},
            "spec": {"listeners": [{"name": "x"}], "addresses": [{"value": "1.1.1.1"}]},
        },
    ]
    patched = apply_step(
        docs,
        {
            "patch": {
                "kind": "Gateway",
                "name": "ns/g",
                "merge": {"spec": {"listeners": [{"name": "y"}], "addresses": None}},
            }
        },
    )
    assert patched[1]["spec"] == {"listeners": [{"name": "y"}]}
    assert patched[1]["metadata"]["generation"] == 2
    assert "generation" not in docs[1]["metadata"]  # the input is left alone
    copied = apply_step(patched, {"copy": {"kind": "ConfigMap", "from": "ns/a", "to": "ns/b"}})
    assert copied[-1]["metadata"] == {"name": "b", "namespace": "ns"} and copied[-1]["data"] == {"k": "v"}
    deleted = apply_step(copied, {"delete": {"kind": "ConfigMap", "name": "ns/a"}})
    assert [d["metadata"]["name"] for d in deleted] == ["g", "b"]
    created = apply_step(deleted, {"create": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n2"}}})
    assert created[-1]["kind"] == "Namespace"


def _obj(kind: str, status: dict[str, Any], generation: int = 1) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": "o", "namespace": "ns", "generation": generation}, "status": status}


def _c(ctype: str, status: str, reason: str, generation: int = 1) -> dict[str, Any]:
    return {"type": ctype, "status": status, "reason": reason, "observedGeneration": generation}


@pytest.mark.parametrize(
    ("entry", "failures"),
    [
        ({"conditions": [{"type": "Accepted", "status": "True"}]}, 0),
        ({"conditions": [{"type": "Accepted", "status": "False"}]}, 1),
        ({"conditions": [{"type": "Accepted", "status": "True", "reason": "Other"}]}, 1),
        ({"conditions": [{"type": "Missing", "status": "True"}]}, 1),
        ({"listener": "l", "attached_routes": 2, "supported_kinds": ["HTTPRoute"]}, 0),
        ({"listener": "l", "attached_routes": 3}, 1),
        ({"listener": "l", "supported_kinds": []}, 1),
        ({"listener": "*", "conditions": [{"type": "Accepted", "status": "True"}]}, 1),
        ({"listener_count": 2, "attached_listener_sets": 1, "address_assigned": True}, 0),
        ({"listener_count": 1}, 1),
        ({"addresses": {"count": 1, "include": ["1.2.3.4"], "exclude": ["5.6.7.8"]}}, 0),
        ({"addresses": {"include": ["5.6.7.8"]}}, 1),
        ({"latest_observed_generation": True}, 0),
        ({"present_conditions": ["Programmed"]}, 1),
    ],
)
def test_check_status_gateway_entries(entry: dict[str, Any], failures: int) -> None:
    gw = _obj(
        "Gateway",
        {
            "addresses": [{"type": "IPAddress", "value": "1.2.3.4"}],
            "attachedListenerSets": 1,
            "conditions": [_c("Accepted", "True", "Accepted")],
            "listeners": [
                {
                    "name": "l",
                    "attachedRoutes": 2,
                    "supportedKinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}],
                    "conditions": [_c("Accepted", "True", "Accepted")],
                },
                {"name": "m", "attachedRoutes": 0, "supportedKinds": [], "conditions": [_c("Accepted", "False", "X")]},
            ],
        },
    )
    got = check_status([{"kind": "Gateway", "name": "ns/o", **entry}], {("Gateway", "ns", "o"): gw})
    assert len(got) == failures, got


def test_check_status_routes_generation_and_absence() -> None:
    route = _obj(
        "HTTPRoute",
        {
            "parents": [
                {
                    "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"},
                    "controllerName": "me",
                    "conditions": [_c("Accepted", "True", "Accepted", generation=1)],
                }
            ]
        },
        generation=2,
    )
    objs = {("HTTPRoute", "ns", "o"): route}
    ok = {
        "kind": "HTTPRoute",
        "name": "ns/o",
        "parent": "ns/gw",
        "conditions": [{"type": "Accepted", "status": "True"}],
    }
    # observedGeneration 1 on a generation-2 object does not count.
    assert check_status([ok], objs, controller_name="me")
    route["status"]["parents"][0]["conditions"][0]["observedGeneration"] = 2
    assert check_status([ok], objs, controller_name="me") == []
    assert check_status([ok], objs, controller_name="someone-else")
    assert check_status([{**ok, "parent": "ns/other", "conditions": [], "absent": True}], objs) == []
    assert check_status([{**ok, "absent": True}], objs)
    assert check_status([{"kind": "HTTPRoute", "name": "ns/o", "no_accepted_parents": True}], objs)
    assert check_status([ok], {}) == ["HTTPRoute ns/o parent ns/gw: object not found"]
    before = {("HTTPRoute", "ns", "o"): _obj("HTTPRoute", {}, generation=2)}
    assert check_status([{"kind": "HTTPRoute", "name": "ns/o", "generation_changed": True}], objs, before=before)
