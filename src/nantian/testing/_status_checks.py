"""One status expectation of a case (an entry of ``status``) checked against one Kubernetes-shaped object."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["check_entry"]

GROUP = "gateway.networking.k8s.io"
_POLICY_KINDS = frozenset({"BackendTLSPolicy", "BackendTrafficPolicy", "XBackendTrafficPolicy"})
_LISTENER_HOLDERS = frozenset({"Gateway", "ListenerSet", "XListenerSet"})


def _generation(obj: Mapping[str, Any]) -> int:
    return int((obj.get("metadata") or {}).get("generation") or 1)


def _label(entry: Mapping[str, Any]) -> str:
    where = f"{entry.get('kind')} {entry.get('name')}"
    if entry.get("listener") is not None:
        where += f" listener {entry['listener']}"
    if entry.get("parent") is not None:
        where += f" parent {entry['parent']}"
    return where


def _check_conditions(
    where: str, wanted: Sequence[Mapping[str, Any]], conditions: Sequence[Mapping[str, Any]], generation: int
) -> list[str]:
    failures: list[str] = []
    by_type = {str(c.get("type")): c for c in conditions if isinstance(c, Mapping)}
    for want in wanted:
        ctype = str(want.get("type"))
        got = by_type.get(ctype)
        if got is None:
            failures.append(f"{where}: condition {ctype} missing (have {sorted(by_type)})")
            continue
        if str(got.get("status")) != str(want.get("status")):
            failures.append(
                f"{where}: condition {ctype} status {got.get('status')} (reason {got.get('reason')}: "
                f"{got.get('message', '')!r}), want {want.get('status')}"
            )
        if want.get("reason") is not None and got.get("reason") != want.get("reason"):
            failures.append(
                f"{where}: condition {ctype} reason {got.get('reason')} ({got.get('message', '')!r}), "
                f"want {want.get('reason')}"
            )
        if got.get("observedGeneration") is not None and int(got["observedGeneration"]) != generation:
            failures.append(
                f"{where}: condition {ctype} observedGeneration {got['observedGeneration']} != {generation}"
            )
    return failures


def _latest_generation(where: str, conditions: Sequence[Mapping[str, Any]], generation: int) -> list[str]:
    return [
        f"{where}: condition {c.get('type')} observedGeneration {c.get('observedGeneration')} != {generation}"
        for c in conditions
        if c.get("observedGeneration") != generation
    ]


def _parent_matches(ref: Mapping[str, Any], entry: Mapping[str, Any], obj_ns: str) -> bool:
    ns, _, name = str(entry["parent"]).rpartition("/")
    kind = str(entry.get("parent_kind") or "Gateway")
    if str(ref.get("name")) != name or str(ref.get("namespace") or obj_ns) != (ns or obj_ns):
        return False
    if str(ref.get("kind") or "Gateway") != kind:
        return False
    section = entry.get("parent_section")
    return section is None or ref.get("sectionName") == section


def _route_entry(entry: Mapping[str, Any], obj: Mapping[str, Any], controller_name: str | None) -> list[str]:
    where = _label(entry)
    status = obj.get("status") or {}
    generation = _generation(obj)
    obj_ns = str((obj.get("metadata") or {}).get("namespace") or "")
    key = "ancestors" if entry.get("kind") in _POLICY_KINDS else "parents"
    ref_key = "ancestorRef" if key == "ancestors" else "parentRef"
    parents = [p for p in status.get(key) or () if isinstance(p, Mapping)]
    ours = [p for p in parents if controller_name is None or p.get("controllerName") == controller_name]
    failures: list[str] = []
    if entry.get("latest_observed_generation"):
        if not ours and not entry.get("no_accepted_parents"):
            failures.append(f"{where}: no {key} entries written by the controller")
        for p in ours:
            failures.extend(_latest_generation(where, p.get("conditions") or (), generation))
    if entry.get("no_accepted_parents"):
        if len(ours) > 1:
            failures.append(f"{where}: {len(ours)} parent entries, want none or one not accepted")
        for p in ours:
            acc = [c for c in p.get("conditions") or () if c.get("type") == "Accepted"]
            if not acc or acc[0].get("status") != "False":
                failures.append(f"{where}: parent {p.get(ref_key)} is not Accepted=False")
    if entry.get("parent") is None:
        if entry.get("conditions"):
            for p in ours:
                failures.extend(_check_conditions(where, entry["conditions"], p.get("conditions") or (), generation))
        return failures
    matching = [p for p in ours if _parent_matches(p.get(ref_key) or {}, entry, obj_ns)]
    if entry.get("absent"):
        if matching:
            failures.append(f"{where}: a status entry for this parent exists, want none")
        return failures
    if not matching:
        failures.append(f"{where}: no status entry for this parent (have {[p.get(ref_key) for p in parents]})")
        return failures
    entry_conditions = entry.get("conditions") or ()
    for p in matching[:1]:
        failures.extend(_check_conditions(where, entry_conditions, p.get("conditions") or (), generation))
        if entry.get("present_conditions"):
            have = {c.get("type") for c in p.get("conditions") or ()}
            failures.extend(f"{where}: condition {t} missing" for t in entry["present_conditions"] if t not in have)
    return failures


def _supported_kinds(where: str, want: Sequence[str], listener: Mapping[str, Any]) -> list[str]:
    have = [k for k in listener.get("supportedKinds") or () if isinstance(k, Mapping)]
    if not want:
        return [f"{where}: supportedKinds {have}, want empty"] if have else []
    names = {str(k.get("kind")) for k in have if (k.get("group") or GROUP) == GROUP}
    return [f"{where}: supportedKinds lacks {k} (have {sorted(names)})" for k in want if k not in names]


def _listener_entry(entry: Mapping[str, Any], obj: Mapping[str, Any]) -> list[str]:
    where = _label(entry)
    generation = _generation(obj)
    listeners = [x for x in (obj.get("status") or {}).get("listeners") or () if isinstance(x, Mapping)]
    name = str(entry["listener"])
    selected = listeners if name == "*" else [x for x in listeners if x.get("name") == name]
    if not selected:
        return [f"{where}: no listener status (have {[x.get('name') for x in listeners]})"]
    failures: list[str] = []
    for listener in selected:
        lw = f"{where}[{listener.get('name')}]" if name == "*" else where
        failures.extend(
            _check_conditions(lw, entry.get("conditions") or (), listener.get("conditions") or (), generation)
        )
        if entry.get("attached_routes") is not None and listener.get("attachedRoutes") != entry["attached_routes"]:
            failures.append(f"{lw}: attachedRoutes {listener.get('attachedRoutes')}, want {entry['attached_routes']}")
        if entry.get("supported_kinds") is not None:
            failures.extend(_supported_kinds(lw, entry["supported_kinds"], listener))
        if entry.get("latest_observed_generation"):
            failures.extend(_latest_generation(lw, listener.get("conditions") or (), generation))
    return failures


def _addresses(where: str, want: Mapping[str, Any], have: Sequence[Mapping[str, Any]]) -> list[str]:
    failures: list[str] = []
    values = [str(a.get("value")) for a in have]
    if want.get("count") is not None and len(have) != int(want["count"]):
        failures.append(f"{where}: {len(have)} addresses {values}, want {want['count']}")
    failures.extend(
        f"{where}: address {v} missing (have {values})" for v in want.get("include") or () if v not in values
    )
    failures.extend(f"{where}: address {v} present" for v in want.get("exclude") or () if v in values)
    return failures


def _object_entry(entry: Mapping[str, Any], obj: Mapping[str, Any]) -> list[str]:
    where = _label(entry)
    status = obj.get("status") or {}
    generation = _generation(obj)
    conditions = [c for c in status.get("conditions") or () if isinstance(c, Mapping)]
    failures = _check_conditions(where, entry.get("conditions") or (), conditions, generation)
    if entry.get("latest_observed_generation"):
        if not conditions:
            failures.append(f"{where}: no conditions")
        failures.extend(_latest_generation(where, conditions, generation))
    for ctype in entry.get("present_conditions") or ():
        if not any(c.get("type") == ctype for c in conditions):
            failures.append(f"{where}: condition {ctype} missing")
    listeners = [x for x in status.get("listeners") or () if isinstance(x, Mapping)]
    if entry.get("listener_count") is not None and len(listeners) != int(entry["listener_count"]):
        failures.append(
            f"{where}: {len(listeners)} listener statuses {[x.get('name') for x in listeners]}, "
            f"want {entry['listener_count']}"
        )
    if entry.get("zero_attached_routes") and not (
        not listeners or (len(listeners) == 1 and listeners[0].get("attachedRoutes") == 0)
    ):
        failures.append(
            f"{where}: listeners {[(x.get('name'), x.get('attachedRoutes')) for x in listeners]}, want 0 routes"
        )
    if (
        entry.get("attached_listener_sets") is not None
        and status.get("attachedListenerSets") != entry["attached_listener_sets"]
    ):
        failures.append(
            f"{where}: attachedListenerSets {status.get('attachedListenerSets')}, "
            f"want {entry['attached_listener_sets']}"
        )
    addresses = [a for a in status.get("addresses") or () if isinstance(a, Mapping)]
    if entry.get("address_assigned") and not any(a.get("type") for a in addresses):
        failures.append(f"{where}: no typed address in status.addresses {addresses}")
    if entry.get("addresses") is not None:
        failures.extend(_addresses(where, entry["addresses"], addresses))
    return failures


def check_entry(
    entry: Mapping[str, Any],
    obj: Mapping[str, Any] | None,
    before: Mapping[str, Any] | None,
    *,
    controller_name: str | None = None,
) -> list[str]:
    """Failures of one ``status`` entry against ``obj`` (``None``: the object does not exist)."""
    where = _label(entry)
    if obj is None:
        return [] if entry.get("absent") else [f"{where}: object not found"]
    failures: list[str] = []
    if entry.get("generation_changed") and before is not None and _generation(before) == _generation(obj):
        failures.append(f"{where}: metadata.generation did not change ({_generation(obj)})")
    kind = str(entry.get("kind"))
    if entry.get("listener") is not None and kind in _LISTENER_HOLDERS:
        failures.extend(_listener_entry(entry, obj))
    elif kind in _LISTENER_HOLDERS or kind == "GatewayClass":
        failures.extend(_object_entry(entry, obj))
    else:
        failures.extend(_route_entry(entry, obj, controller_name))
    return failures
