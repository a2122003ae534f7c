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
