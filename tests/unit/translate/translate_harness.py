"""Shared helpers of the translator tests: documents -> ResourceSet -> translate() -> case status checks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from nantian.resources import ObjectRef, ResourceSet, parse_object
from nantian.testing import Case, accepted_entries, apply_step, case_documents, check_status
from nantian.translate import FEATURES, TranslateOptions, Translation, translate

CONTROLLER = "nantian.io/gateway-controller"
CLASS = "nantian"
OPTIONS = TranslateOptions(controller_name=CONTROLLER)


def resource_set(docs: Iterable[Mapping[str, Any]]) -> ResourceSet:
    """Parse documents the way a resource source does (documents that do not parse are left out)."""
    objects = []
    raw = {}
    for doc in docs:
        obj = parse_object(doc)
        objects.append(obj)
        raw[obj.ref] = doc
    return ResourceSet.from_objects(objects, raw=raw)


def with_status(docs: Iterable[Mapping[str, Any]], translation: Translation) -> dict[ObjectRef, dict[str, Any]]:
    """Each document nantian computed a status for, with that status set (Kubernetes-shaped)."""
    out: dict[ObjectRef, dict[str, Any]] = {}
    for doc in docs:
        meta = doc.get("metadata") or {}
        ref = ObjectRef(str(doc.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name")))
        if ref in translation.statuses:
            out[ref] = {**doc, "status": translation.statuses[ref]}
    return out


def applicable(case: Case) -> str | None:
    """Why the case does not apply to nantian's claimed features (upstream skips it too), or ``None``."""
    if case.skip_if_features and set(case.skip_if_features) & FEATURES:
        return f"nantian claims {sorted(set(case.skip_if_features) & FEATURES)}"
    if case.skip_unless_features and not set(case.skip_unless_features) <= FEATURES:
        return f"nantian does not claim {sorted(set(case.skip_unless_features) - FEATURES)}"
    return None


def status_failures(case: Case) -> list[str]:
    """Every status expectation of ``case`` (accepted preconditions, status, and each step's status) checked
    through translate(); also the snapshot's own consistency."""
    docs = case_documents(case, gateway_class=CLASS, controller_name=CONTROLLER)
    translation = translate(resource_set(docs), OPTIONS)
    objects = with_status(docs, translation)
    failures = check_status([*accepted_entries(case), *case.status], objects, controller_name=CONTROLLER)
    failures += [f"snapshot: {p}" for p in translation.snapshot.problems()]
    for i, step in enumerate(case.steps):
        before = objects
        docs = apply_step(docs, step, gateway_class=CLASS, controller_name=CONTROLLER)
        translation = translate(resource_set(docs), OPTIONS)
        objects = with_status(docs, translation)
        then = (step.get("then") or {}).get("status") or ()
        failures += [f"step {i}: {f}" for f in check_status(then, objects, controller_name=CONTROLLER, before=before)]
        failures += [f"step {i}: snapshot: {p}" for p in translation.snapshot.problems()]
    return failures


def docs_from_yaml(text: str) -> list[dict[str, Any]]:
    """Documents of a multi-document YAML text, with a GatewayClass ``nantian`` of our controller added."""
    import yaml

    docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    gc = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GatewayClass",
        "metadata": {"name": CLASS},
        "spec": {"controllerName": CONTROLLER},
    }
    return [gc, *docs]


def translate_yaml(text: str, options: TranslateOptions = OPTIONS) -> Translation:
    """translate() of the documents in ``text`` (plus our GatewayClass)."""
    return translate(resource_set(docs_from_yaml(text)), options)


def cond(status: Mapping[str, Any], ctype: str) -> tuple[str, str]:
    """(status, reason) of condition ``ctype`` in a conditions holder (object status, listener, parent entry)."""
    for c in status.get("conditions") or ():
        if c["type"] == ctype:
            return (c["status"], c["reason"])
    raise AssertionError(f"no {ctype} condition in {status}")


def parent(translation: Translation, kind: str, ns: str, name: str, index: int = 0) -> Mapping[str, Any]:
    """The ``index``-th ``status.parents`` entry of a route."""
    return translation.statuses[ObjectRef(kind, ns, name)]["parents"][index]  # type: ignore[no-any-return]


def listener(translation: Translation, ns: str, gateway: str, name: str, kind: str = "Gateway") -> Mapping[str, Any]:
    """A Gateway's (or ListenerSet's) ``status.listeners`` entry."""
    for entry in translation.statuses[ObjectRef(kind, ns, gateway)]["listeners"]:
        if entry["name"] == name:
            return entry  # type: ignore[no-any-return]
    raise AssertionError(f"no listener {name}")


BASE = """
apiVersion: v1
kind: Namespace
metadata: {name: infra, labels: {team: infra}}
---
apiVersion: v1
kind: Namespace
metadata: {name: apps, labels: {team: apps, env: prod}}
---
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: infra}
spec:
  selector: {app: svc}
  ports:
  - {name: http, port: 8080, targetPort: 3000}
  - {name: h2c, port: 8081, targetPort: 3001, appProtocol: kubernetes.io/h2c}
  - {name: ws, port: 8082, targetPort: 3002, appProtocol: kubernetes.io/ws}
  - {name: dns, port: 53, targetPort: 5353, protocol: UDP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: svc-a, namespace: infra, labels: {kubernetes.io/service-name: svc}}
addressType: IPv4
ports:
- {name: http, port: 13000}
- {name: h2c, port: 13001}
- {name: ws, port: 13002}
- {name: dns, port: 15353, protocol: UDP}
endpoints:
- addresses: [10.0.0.1]
  conditions: {ready: true}
- addresses: [10.0.0.2]
  conditions: {ready: false}
- addresses: [10.0.0.3]
---
apiVersion: v1
kind: Service
metadata: {name: other, namespace: apps}
spec:
  selector: {app: other}
  ports:
  - {name: http, port: 80, targetPort: 8080}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: other-a, namespace: apps, labels: {kubernetes.io/service-name: other}}
addressType: IPv4
ports:
- {name: http, port: 18080}
endpoints:
- addresses: [10.1.0.1]
"""
"""Namespaces ``infra`` and ``apps``, Service ``infra/svc`` (ports http, h2c, ws, dns/UDP; endpoints 10.0.0.1,
10.0.0.3 ready, 10.0.0.2 not) and ``apps/other``."""
