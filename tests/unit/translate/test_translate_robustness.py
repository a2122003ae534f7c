"""Bad input never crashes translate(): random damage to real case documents yields statuses, not exceptions,
and the snapshot stays consistent."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from translate_harness import CLASS, CONTROLLER, OPTIONS

from nantian.errors import ParseError
from nantian.resources import ResourceSet, parse_object
from nantian.testing import case_documents, data_dir, load_case
from nantian.translate import translate

CASES = (
    "httproute-matching",
    "listenerset-hostname-conflict",
    "tlsroute-hostname-intersection",
    "backendtlspolicy",
    "grpcroute-header-matching",
    "gateway-with-invalid-clientcertificate-validation",
    "udproute-weighted-routing",
)
DOCS = {
    name: case_documents(
        load_case(data_dir() / "cases" / f"{name}.yaml"), gateway_class=CLASS, controller_name=CONTROLLER
    )
    for name in CASES
}
TARGET_KINDS = {
    "Gateway",
    "ListenerSet",
    "HTTPRoute",
    "GRPCRoute",
    "TLSRoute",
    "UDPRoute",
    "ReferenceGrant",
    "BackendTLSPolicy",
    "Service",
    "EndpointSlice",
    "Secret",
    "ConfigMap",
}
JUNK: tuple[Any, ...] = (None, -1, 0, 70000, "", "x" * 300, "(", "*", "*.*", "/..", [], {}, True, 1.5, ["a"], {"a": 1})


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path] if path else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _leaves(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _leaves(v, (*path, i))
    return out


def _damage(doc: dict[str, Any], rnd: random.Random) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    paths = [p for p in _leaves(doc) if p[0] not in ("apiVersion", "kind")]
    if not paths:
        return doc
    path = rnd.choice(paths)
    parent: Any = doc
    for key in path[:-1]:
        parent = parent[key]
    if rnd.random() < 0.3 and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = rnd.choice(JUNK)
    return doc


@settings(max_examples=60, deadline=None)
@given(case=st.sampled_from(CASES), rnd=st.randoms(use_true_random=False), hits=st.integers(min_value=1, max_value=4))
def test_damaged_documents_never_crash(case: str, rnd: random.Random, hits: int) -> None:
    docs = list(DOCS[case])
    targets = [i for i, d in enumerate(docs) if d.get("kind") in TARGET_KINDS]
    for _ in range(hits):
        i = rnd.choice(targets)
        docs[i] = _damage(docs[i], rnd)
    objects = []
    for doc in docs:
        try:
            objects.append(parse_object(doc))
        except ParseError:
            continue  # a source reports these; the rest keeps working
    translation = translate(ResourceSet.from_objects(objects), OPTIONS)
    assert translation.snapshot.problems() == []
    json.dumps({str(k): v for k, v in translation.statuses.items()})


@settings(max_examples=15, deadline=None)
@given(case=st.sampled_from(CASES), rnd=st.randoms(use_true_random=False))
def test_delivery_order_never_shows(case: str, rnd: random.Random) -> None:
    docs = list(DOCS[case])
    first = translate(ResourceSet.from_objects(parse_object(d) for d in docs), OPTIONS)
    rnd.shuffle(docs)
    again = translate(ResourceSet.from_objects(parse_object(d) for d in docs), OPTIONS)
    assert again.snapshot == first.snapshot
    assert again.snapshot.version == first.snapshot.version
    assert again.statuses == first.statuses
