"""Every upstream conformance manifest parses: typed where nantian uses the kind, with no ParseError."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from nantian.resources import KubeObject, UnknownObject, converter, parse_documents

CONFORMANCE = Path(__file__).parents[2] / "data" / "gateway-api" / "conformance"
MANIFESTS = [CONFORMANCE / "base" / "manifests.yaml", *sorted((CONFORMANCE / "tests").glob("*.yaml"))]
PLACEHOLDERS = {"{GATEWAY_CLASS_NAME}": "nantian", "{GATEWAY_CONTROLLER_NAME}": "nantian.io/gateway-controller"}

# Documents that are invalid on purpose, by "file:line". None today: the upstream "invalid" tests
# (unknown backend kinds, bad certificates, unsupported protocols...) are valid objects that must get
# a status condition, not a parse error.
INVALID_ON_PURPOSE: dict[str, str] = {}


def load(path: Path) -> tuple[list[KubeObject], list[str]]:
    text = path.read_text()
    for placeholder, value in PLACEHOLDERS.items():
        text = text.replace(placeholder, value)
    objects, errors = parse_documents(text, str(path.relative_to(CONFORMANCE)))
    return [obj for obj, _ in objects], [f"{e.source}: {e}" for e in errors if e.source not in INVALID_ON_PURPOSE]


def test_manifest_list_is_complete() -> None:
    assert len(MANIFESTS) > 100


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_parses_without_errors(path: Path) -> None:
    objects, errors = load(path)
    assert errors == []
    assert objects
    unknown = {obj.kind for obj in objects if isinstance(obj, UnknownObject)}
    assert unknown <= {"Deployment"}, f"kinds left untyped: {unknown}"


def test_every_kind_appears_and_round_trips_through_the_converter() -> None:
    kinds: Counter[str] = Counter()
    for path in MANIFESTS:
        for obj in load(path)[0]:
            kinds[type(obj).__name__] += 1
            if not isinstance(obj, UnknownObject):
                assert converter.structure(converter.unstructure(obj), type(obj)) == obj
    expected = {"GatewayClass", "Gateway", "HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute", "UDPRoute"}
    expected |= {"ReferenceGrant", "BackendTLSPolicy", "ListenerSet", "Service", "EndpointSlice", "Secret"}
    expected |= {"ConfigMap", "Namespace"}
    assert expected <= set(kinds)
