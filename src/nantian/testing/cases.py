"""Gateway API behaviour cases (``tests/data/gateway-api/cases/*.yaml``, format in ``CASES.md``) as Python values.

- :func:`load_case` reads a case file into a :class:`Case`.
- :func:`case_documents` gives the Kubernetes documents a runner loads: base manifests, the case's manifests
  (placeholders substituted), generated TLS material, a GatewayClass for the class under test and
  EndpointSlices for the backend Services.
- :func:`apply_step` applies one ``steps`` entry (apply, delete, patch, create, copy, set_endpoints) to documents.
- :func:`check_status` compares objects with their status against a case's ``status`` entries and returns the
  failures as readable lines (empty: pass). :func:`accepted_entries` turns the ``accepted`` preconditions into
  status entries of the same shape.

Nothing here imports the translator: the conformance runner uses the same functions against live statuses.
"""

from __future__ import annotations

import copy
import ipaddress
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import attrs
import yaml

from nantian.testing._status_checks import check_entry
from nantian.testing.certs import CertificateFactory, MaterialSpec, generated_objects, suite_material

__all__ = [
    "DEFAULT_PLACEHOLDERS",
    "Case",
    "EndpointSpec",
    "HasRef",
    "accepted_entries",
    "apply_step",
    "case_documents",
    "check_status",
    "data_dir",
    "load_case",
]

GROUP = "gateway.networking.k8s.io"

DEFAULT_PLACEHOLDERS: Mapping[str, str] = {
    "PLACEHOLDER_USABLE_ADDRS": "127.0.200.10",
    "PLACEHOLDER_UNUSABLE_ADDRS": "198.51.100.77",
}
"""Static addresses substituted in manifests: one inside the default address pool, one outside it."""

EndpointSpec = tuple[str, int | Mapping[int | str, int]]
"""One backend endpoint: ``(ip, port)`` (every Service port goes to ``port``) or ``(ip, {target: port})`` where
``target`` is a Service port's ``targetPort`` (number or name) or port name."""


def data_dir() -> Path:
    """``tests/data/gateway-api`` of the source tree (or ``$NANTIAN_GATEWAY_API_DATA``)."""
    env = os.environ.get("NANTIAN_GATEWAY_API_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "tests" / "data" / "gateway-api"


def _tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value) if value else ()


@attrs.frozen(kw_only=True)
class Case:
    """One case file. Sections a case omits are empty."""

    path: Path
    name: str
    upstream: str = ""
    summary: str = ""
    features: tuple[str, ...] = ()
    manifests: tuple[str, ...] = ()
    generated: tuple[Mapping[str, Any], ...] = ()
    accepted: Mapping[str, Any] = attrs.field(factory=dict)
    status: tuple[Mapping[str, Any], ...] = ()
    steps: tuple[Mapping[str, Any], ...] = ()
    http: tuple[Mapping[str, Any], ...] = ()
    grpc: tuple[Mapping[str, Any], ...] = ()
    tls: tuple[Mapping[str, Any], ...] = ()
    tcp: tuple[Mapping[str, Any], ...] = ()
    udp: tuple[Mapping[str, Any], ...] = ()
    websocket: tuple[Mapping[str, Any], ...] = ()
    skip_if_features: tuple[str, ...] = ()
    skip_unless_features: tuple[str, ...] = ()
    infrastructure: Mapping[str, Any] | None = None
    notes: str = ""
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)

    @property
    def slug(self) -> str:
        """The file name without ``.yaml``, e.g. ``httproute-weight``."""
        return self.path.stem


def load_case(path: Path | str) -> Case:
    """Read a case file."""
    p = Path(path)
    doc: dict[str, Any] = yaml.safe_load(p.read_text()) or {}
    return Case(
        path=p,
        name=str(doc.get("name", p.stem)),
        upstream=str(doc.get("upstream", "")),
        summary=str(doc.get("summary", "")),
        features=_tuple(doc.get("features")),
        manifests=_tuple(doc.get("manifests")),
        generated=_tuple(doc.get("generated")),
        accepted=doc.get("accepted") or {},
        status=_tuple(doc.get("status")),
        steps=_tuple(doc.get("steps")),
        http=_tuple(doc.get("http")),
        grpc=_tuple(doc.get("grpc")),
        tls=_tuple(doc.get("tls")),
        tcp=_tuple(doc.get("tcp")),
        udp=_tuple(doc.get("udp")),
        websocket=_tuple(doc.get("websocket")),
        skip_if_features=_tuple(doc.get("skip_if_features")),
        skip_unless_features=_tuple(doc.get("skip_unless_features")),
        infrastructure=doc.get("infrastructure"),
        notes=str(doc.get("notes", "")),
        raw=doc,
    )


def _substitute(text: str, placeholders: Mapping[str, str]) -> str:
    for key, value in placeholders.items():
        text = text.replace(key, value)
    return text


def _load_manifest(path: Path, placeholders: Mapping[str, str]) -> list[dict[str, Any]]:
    text = _substitute(path.read_text(), placeholders)
    return [d for d in yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) if isinstance(d, dict)]


def _placeholders(gateway_class: str, controller_name: str, extra: Mapping[str, str] | None) -> dict[str, str]:
    out = {"{GATEWAY_CLASS_NAME}": gateway_class, "{GATEWAY_CONTROLLER_NAME}": controller_name}
    out.update(DEFAULT_PLACEHOLDERS)
    out.update(extra or {})
    return out


def _key(doc: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = doc.get("metadata") or {}
    return (str(doc.get("kind", "")), str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def _split_name(name: str) -> tuple[str, str]:
    ns, _, n = name.rpartition("/")
    return ns, n


def _service_ports(service: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [p for p in (service.get("spec") or {}).get("ports") or () if isinstance(p, Mapping)]


def _resolve_port(port: Mapping[str, Any], target: int | Mapping[int | str, int]) -> int:
    if isinstance(target, int):
        return target
    for k in (port.get("targetPort"), port.get("name"), port.get("port")):
        if k is not None and k in target:
            return target[k]
    tp = port.get("targetPort", port.get("port"))
    return int(tp) if isinstance(tp, int) else int(port.get("port", 1))


def _slices_for(
    service: Mapping[str, Any], endpoints: Sequence[EndpointSpec], *, name_prefix: str | None = None
) -> list[dict[str, Any]]:
    """EndpointSlices publishing ``endpoints`` for ``service``: one slice per address family and port mapping."""
    _, ns, name = _key(service)
    ports = _service_ports(service)
    groups: dict[tuple[str, tuple[tuple[str, int, str], ...]], list[str]] = {}
    for ip, target in endpoints:
        family = "IPv6" if ipaddress.ip_address(ip).version == 6 else "IPv4"
        mapped = tuple(
            (str(p.get("name") or ""), _resolve_port(p, target), str(p.get("protocol") or "TCP")) for p in ports
        )
        groups.setdefault((family, mapped), []).append(ip)
    out: list[dict[str, Any]] = []
    for i, ((family, mapped), ips) in enumerate(sorted(groups.items())):
        slice_ports: list[dict[str, Any]] = []
        for (pname, pnum, proto), src in zip(mapped, ports, strict=True):
            entry: dict[str, Any] = {"name": pname, "port": pnum, "protocol": proto}
            if src.get("appProtocol"):
                entry["appProtocol"] = src["appProtocol"]
            slice_ports.append(entry)
        out.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{name_prefix or name}-nantian-{i}",
                    "namespace": ns,
                    "labels": {"kubernetes.io/service-name": name},
                },
                "addressType": family,
                "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
                "ports": slice_ports,
            }
        )
    return out


def _default_endpoints(service: Mapping[str, Any]) -> list[EndpointSpec]:
    targets: dict[int | str, int] = {}
    for p in _service_ports(service):
        tp = p.get("targetPort", p.get("port"))
        port = int(p.get("port", 1))
        targets[tp if tp is not None else port] = tp if isinstance(tp, int) else port
    return [("127.0.0.1", targets)]


def _backend_slices(
    docs: Sequence[Mapping[str, Any]], endpoints: Mapping[tuple[str, str], Sequence[EndpointSpec]] | None
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for doc in docs:
        if doc.get("kind") != "Service" or doc.get("apiVersion") != "v1":
            continue
        spec = doc.get("spec") or {}
        if not spec.get("selector") or spec.get("type") == "ExternalName":
            continue  # no selector: its EndpointSlices are written by hand (manifest or set_endpoints)
        _, ns, name = _key(doc)
        eps = endpoints.get((ns, name)) if endpoints is not None else None
        if eps is None:
            eps = _default_endpoints(doc)
        out.extend(_slices_for(doc, eps))
    return out


def case_documents(
    case: Case,
    *,
    gateway_class: str,
    controller_name: str,
    endpoints: Mapping[tuple[str, str], Sequence[EndpointSpec]] | None = None,
    placeholders: Mapping[str, str] | None = None,
    factory: CertificateFactory | None = None,
    root: Path | None = None,
) -> list[dict[str, Any]]:
    """Every document a runner loads for ``case``, in load order.

    :param gateway_class: Name of the GatewayClass under test; a GatewayClass with ``controller_name`` is added.
    :param endpoints: ``(namespace, service) -> endpoints`` of each backend Service with a selector. ``None``
        (or a Service missing from the mapping) invents ``127.0.0.1`` endpoints on the Service's target ports,
        enough for status-level checks.
    :param placeholders: Extra or overriding text substitutions (e.g. the static address tokens).
    """
    base = root or data_dir()
    subs = _placeholders(gateway_class, controller_name, placeholders)
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": f"{GROUP}/v1",
            "kind": "GatewayClass",
            "metadata": {"name": gateway_class},
            "spec": {"controllerName": controller_name},
        }
    ]
    docs.extend(_load_manifest(base / "conformance" / "base" / "manifests.yaml", subs))
    for rel in case.manifests:
        docs.extend(_load_manifest(base / "conformance" / rel, subs))
    material = [*suite_material(base / "generated.yaml")]
    material.extend(MaterialSpec.from_entry(e) for e in case.generated)
    docs.extend(generated_objects(material, factory=factory))
    docs.extend(_backend_slices(docs, endpoints))
    return _dedupe(docs)


def _dedupe(docs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Later documents with the same kind/namespace/name replace earlier ones (as ``kubectl apply`` would)."""
    index: dict[tuple[str, str, str], int] = {}
    out: list[dict[str, Any]] = []
    for d in docs:
        k = _key(d)
        if k in index:
            out[index[k]] = d
        else:
            index[k] = len(out)
            out.append(d)
    return out


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge, ``null`` deletes, everything else (lists too) replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = _merge_patch(result.get(k), v)
    return result


def _find(docs: Sequence[Mapping[str, Any]], kind: str, name: str) -> int | None:
    ns, n = _split_name(name)
    for i, d in enumerate(docs):
        k, dns, dn = _key(d)
        if k == kind and dn == n and dns == ns:
            return i
    return None


def _bump_generation(old: Mapping[str, Any], new: dict[str, Any]) -> None:
    if old.get("spec") == new.get("spec"):
        return
    meta = dict(new.get("metadata") or {})
    meta["generation"] = int((old.get("metadata") or {}).get("generation") or 1) + 1
    new["metadata"] = meta


def apply_step(
    documents: Sequence[Mapping[str, Any]],
    step: Mapping[str, Any],
    *,
    gateway_class: str = "nantian",
    controller_name: str = "nantian.io/gateway-controller",
    endpoints: Mapping[tuple[str, str], Sequence[EndpointSpec]] | None = None,
    placeholders: Mapping[str, str] | None = None,
    root: Path | None = None,
) -> list[dict[str, Any]]:
    """``documents`` after one step's change (a new list; the input is not modified).

    Supports ``apply`` (manifest file relative to ``conformance/``), ``delete``, ``patch`` (JSON merge patch;
    bumps ``metadata.generation`` when ``spec`` changes, as an API server would), ``create`` (inline object),
    ``copy`` (data of one ConfigMap/Secret into another, created if missing) and ``set_endpoints`` (fill a manual
    EndpointSlice with the endpoints of ``from_backend``). ``delay_seconds`` and ``then`` are the runner's.
    """
    docs = [copy.deepcopy(dict(d)) for d in documents]
    subs = _placeholders(gateway_class, controller_name, placeholders)
    if "apply" in step:
        docs = _dedupe([*docs, *_load_manifest((root or data_dir()) / "conformance" / str(step["apply"]), subs)])
    if "create" in step:
        obj = yaml.safe_load(_substitute(yaml.safe_dump(step["create"]), subs))
        docs = _dedupe([*docs, obj])
    if "delete" in step:
        i = _find(docs, str(step["delete"]["kind"]), str(step["delete"]["name"]))
        if i is not None:
            del docs[i]
    if "patch" in step:
        p = step["patch"]
        i = _find(docs, str(p["kind"]), str(p["name"]))
        if i is not None:
            merge = yaml.safe_load(_substitute(yaml.safe_dump(p.get("merge") or {}), subs))
            new = _merge_patch(docs[i], merge)
            _bump_generation(docs[i], new)
            docs[i] = new
    if "copy" in step:
        c = step["copy"]
        src = _find(docs, str(c["kind"]), str(c["from"]))
        if src is not None:
            dst = _find(docs, str(c["kind"]), str(c["to"]))
            if dst is None:
                ns, n = _split_name(str(c["to"]))
                new_obj = {k: copy.deepcopy(v) for k, v in docs[src].items() if k in ("apiVersion", "kind", "type")}
                new_obj["metadata"] = {"name": n, "namespace": ns}
                docs.append(new_obj)
                dst = len(docs) - 1
            for field in ("data", "binaryData"):
                if field in docs[src]:
                    docs[dst][field] = copy.deepcopy(docs[src][field])
    if "set_endpoints" in step:
        docs = _set_endpoints(docs, step["set_endpoints"], endpoints)
    return docs


def _set_endpoints(
    docs: list[dict[str, Any]],
    spec: Mapping[str, Any],
    endpoints: Mapping[tuple[str, str], Sequence[EndpointSpec]] | None,
) -> list[dict[str, Any]]:
    i = _find(docs, "EndpointSlice", str(spec["name"]))
    if i is None:
        return docs
    ns = _key(docs[i])[1]
    backend = str(spec["from_backend"])
    svc_i = _find(docs, "Service", f"{ns}/{backend}")
    eps: Sequence[EndpointSpec]
    if endpoints is not None and (ns, backend) in endpoints:
        eps = endpoints[(ns, backend)]
    elif svc_i is not None:
        eps = _default_endpoints(docs[svc_i])
    else:
        return docs
    family = str(spec.get("address_type") or docs[i].get("addressType") or "IPv4")
    want = 6 if family == "IPv6" else 4
    ips = [ip for ip, _ in eps if ipaddress.ip_address(ip).version == want]
    if not ips:
        ips = ["::1" if want == 6 else "127.0.0.1"]
    sl = docs[i]
    sl["addressType"] = family
    sl["endpoints"] = [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips]
    if svc_i is not None and eps:
        target = eps[0][1]
        ports = []
        for p in sl.get("ports") or ():
            q = dict(p)
            if not isinstance(target, int):
                name = p.get("name")
                match = [sp for sp in _service_ports(docs[svc_i]) if sp.get("name") == name]
                q["port"] = _resolve_port(match[0], target) if match else p.get("port")
            else:
                q["port"] = target
            ports.append(q)
        sl["ports"] = ports
    return docs


class HasRef(Protocol):
    """Anything with ``kind``, ``namespace`` and ``name`` (``nantian.resources.ObjectRef`` is one)."""

    @property
    def kind(self) -> str: ...

    @property
    def namespace(self) -> str: ...

    @property
    def name(self) -> str: ...


def accepted_entries(case: Case) -> list[dict[str, Any]]:
    """The ``accepted`` preconditions as status entries: Gateways Accepted and Programmed, routes Accepted by
    each named parent."""
    out: list[dict[str, Any]] = []
    acc = case.accepted or {}
    for gw in acc.get("gateways") or ():
        out.append(
            {
                "kind": "Gateway",
                "name": gw,
                "conditions": [{"type": "Accepted", "status": "True"}, {"type": "Programmed", "status": "True"}],
            }
        )
    for route in acc.get("routes") or ():
        for parent in route.get("parents") or ():
            entry: dict[str, Any] = {
                "kind": route["kind"],
                "name": route["name"],
                "parent": parent,
                "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted"}],
            }
            if route.get("parent_kind"):
                entry["parent_kind"] = route["parent_kind"]
            out.append(entry)
    return out


def check_status(
    entries: Iterable[Mapping[str, Any]],
    objects_with_status: Mapping[Any, Mapping[str, Any]],
    *,
    controller_name: str | None = None,
    before: Mapping[Any, Mapping[str, Any]] | None = None,
    placeholders: Mapping[str, str] | None = None,
) -> list[str]:
    """Failures of ``entries`` (a case's ``status`` list) against the objects; empty means every entry holds.

    :param objects_with_status: Kubernetes-shaped objects (``metadata`` with ``generation``, ``status``) keyed by
        their ref (anything with ``kind``/``namespace``/``name``, or a ``(kind, namespace, name)`` tuple).
    :param controller_name: When given, route/policy parent entries must carry it as ``controllerName``.
    :param before: The same objects before the last step, for ``generation_changed``.
    :param placeholders: Substitutions for tokens in expected values (default: :data:`DEFAULT_PLACEHOLDERS`, the
        same as :func:`case_documents` uses).
    """
    subs = dict(DEFAULT_PLACEHOLDERS if placeholders is None else placeholders)
    index = _index(objects_with_status)
    before_index = _index(before or {})
    failures: list[str] = []
    for raw_entry in entries:
        entry = yaml.safe_load(_substitute(yaml.safe_dump(dict(raw_entry)), subs)) if subs else raw_entry
        kind = str(entry.get("kind", ""))
        ns, name = _split_name(str(entry.get("name", "")))
        obj = index.get((kind, ns, name))
        failures.extend(check_entry(entry, obj, before_index.get((kind, ns, name)), controller_name=controller_name))
    return failures


def _index(objects: Mapping[Any, Mapping[str, Any]]) -> dict[tuple[str, str, str], Mapping[str, Any]]:
    out: dict[tuple[str, str, str], Mapping[str, Any]] = {}
    for ref, obj in objects.items():
        if isinstance(ref, tuple):
            k, ns, n = (str(x) for x in ref)
        else:
            k, ns, n = str(ref.kind), str(ref.namespace or ""), str(ref.name)
        out[(k, ns, n)] = obj
    return out
