"""Parsers either parse or raise ParseError, never anything else, whatever JSON-ish data they are given."""

from __future__ import annotations

import json
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from nantian.errors import ParseError
from nantian.resources import ObjectRef, ResourceSet, UnknownObject, parse_documents, parse_object
from nantian.testing import strategies as nst

KINDS = [
    "Gateway",
    "GatewayClass",
    "HTTPRoute",
    "GRPCRoute",
    "TCPRoute",
    "TLSRoute",
    "UDPRoute",
    "ReferenceGrant",
    "BackendTLSPolicy",
    "ListenerSet",
    "Service",
    "EndpointSlice",
    "Secret",
    "ConfigMap",
    "Namespace",
]
API_VERSIONS = [
    "gateway.networking.k8s.io/v1",
    "gateway.networking.k8s.io/v1beta1",
    "gateway.networking.k8s.io/v1alpha2",
    "gateway.networking.k8s.io/v9",
    "v1",
    "discovery.k8s.io/v1",
    "",
]


def _parses_or_parse_error(doc: Any) -> None:
    try:
        obj = parse_object(doc)
    except ParseError as exc:
        assert exc.errors, "a ParseError lists what is wrong"
        assert all(isinstance(line, str) and line for line in exc.errors)
    else:
        assert isinstance(obj.ref, ObjectRef)


@given(nst.json_values())
def test_arbitrary_json_values(doc: Any) -> None:
    if isinstance(doc, dict):
        _parses_or_parse_error(doc)


@given(
    st.sampled_from(API_VERSIONS),
    st.sampled_from(KINDS),
    st.dictionaries(st.sampled_from(["metadata", "spec", "data", "type", "endpoints", "ports"]), nst.json_values()),
)
def test_known_kinds_with_arbitrary_bodies(api_version: str, kind: str, body: dict[str, Any]) -> None:
    _parses_or_parse_error({"apiVersion": api_version, "kind": kind, **body})


@given(nst.malformed_documents())
def test_generated_documents_with_one_thing_broken(doc: dict[str, Any]) -> None:
    _parses_or_parse_error(doc)


@given(st.lists(nst.json_values(max_leaves=6), max_size=4))
def test_parse_documents_reports_instead_of_raising(values: list[Any]) -> None:
    text = "\n---\n".join(yaml.safe_dump(v) if isinstance(v, dict) else json.dumps(v) for v in values)
    objects, errors = parse_documents(text, "generated.yaml")
    assert all(isinstance(e, ParseError) for e in errors)
    assert all(e.source is not None and e.source.startswith("generated.yaml:") for e in errors)
    assert len(objects) + len(errors) <= len(values)


@given(nst.resource_sets(valid=False, max_gateways=1, max_routes=2))
def test_resource_sets_keep_what_failed_to_parse(resources: ResourceSet) -> None:
    assert all(isinstance(e, ParseError) for e in resources.errors)
    for obj in resources:
        assert resources.get(obj.ref) == obj
        assert resources.raw(obj.ref)["kind"] == obj.ref.kind or isinstance(obj, UnknownObject)
