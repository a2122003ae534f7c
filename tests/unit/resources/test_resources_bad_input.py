"""Bad input never raises anything but ParseError: mutated real documents, YAML bombs, deep nesting."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from nantian.errors import ParseError
from nantian.resources import KubeObject, parse_documents, parse_object

CONFORMANCE = Path(__file__).parents[2] / "data" / "gateway-api" / "conformance"
SAMPLES: list[dict[str, Any]] = [
    doc
    for name in ("base/manifests.yaml", "tests/httproute-request-mirror.yaml", "tests/grpcroute-weight.yaml")
    for doc in yaml.safe_load_all((CONFORMANCE / name).read_text().replace("{GATEWAY_CLASS_NAME}", "n"))
    if doc
] + [
    doc
    for name in (
        "tests/backendtlspolicy.yaml",
        "tests/listenerset-http-routing.yaml",
        "tests/tcproute-reference-grant.yaml",
    )
    for doc in yaml.safe_load_all((CONFORMANCE / name).read_text().replace("{GATEWAY_CLASS_NAME}", "n"))
    if doc
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)


def parse_or_parse_error(doc: Any) -> KubeObject | ParseError:
    try:
        return parse_object(doc)
    except ParseError as exc:
        assert exc.errors and all(" @ " in line for line in exc.errors)
        return exc


@given(st.data())
def test_mutated_documents_parse_or_raise_parse_error(data: st.DataObject) -> None:
    doc = copy.deepcopy(data.draw(st.sampled_from(SAMPLES)))
    parent: Any = None
    key: Any = None
    node: Any = doc
    while isinstance(node, dict | list) and node and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(node)) if isinstance(node, dict) else st.integers(0, len(node) - 1))
        parent, node = node, node[key]
    replacement = data.draw(json_values)
    if parent is None:
        doc = replacement
    else:
        parent[key] = replacement
    parse_or_parse_error(doc)


@given(st.text(max_size=200))
def test_arbitrary_text_never_crashes_parse_documents(text: str) -> None:
    _, errors = parse_documents(text, "fuzz.yaml")
    assert all(e.source is not None and e.source.startswith("fuzz.yaml:") for e in errors)


def test_billion_laughs_is_refused_and_later_documents_still_load() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    text = "\n".join(lines) + "\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n"
    objects, errors = parse_documents(text, "bomb.yaml")
    assert [obj.ref.name for obj, _ in objects] == ["ok"]
    assert len(errors) == 1 and "too large" in errors[0].errors[0] and errors[0].source == "bomb.yaml:1"


def test_recursive_alias_is_refused() -> None:
    objects, errors = parse_documents("apiVersion: v1\nkind: Namespace\nmetadata: &m {name: x, self: *m}\n", "r.yaml")
    assert objects == [] and len(errors) == 1


def test_deep_nesting_is_an_error() -> None:
    deep = "[" * 5000 + "]" * 5000
    objects, errors = parse_documents(deep, "deep.yaml")
    assert objects == [] and len(errors) == 1
    objects, errors = parse_documents(deep, "deep.json")
    assert objects == [] and len(errors) == 1
    nested: Any = {}
    for _ in range(5000):
        nested = {"a": nested}
    result = parse_or_parse_error({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": nested})
    assert isinstance(result, ParseError)
