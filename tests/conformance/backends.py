"""Echo pods for the Deployments of case manifests, and the EndpointSlice endpoints that publish them.

Every echo-basic Deployment becomes one or two pods (replicas, at most 2), each with its own loopback IP and
the container's real ports (3000, 3001, 8443, 8080), all served by one ``nantian echo`` process. A Deployment
is identified by its content (template and mounted TLS files), so cases that define the same Deployment
differently get different pods.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import socket
import string
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

ECHO_IMAGE = "gateway-api/conformance/echo-basic"
MAX_REPLICAS = 2

Document = Mapping[str, Any]
Key = tuple[str, str, str]


def doc_key(doc: Document) -> Key:
    """``(kind, namespace, name)`` of a document."""
    meta = doc.get("metadata") or {}
    return str(doc.get("kind", "")), str(meta.get("namespace") or ""), str(meta.get("name") or "")


@attrs.frozen(kw_only=True)
class PodPlan:
    """One echo pod: who it is, where it listens, what its Services select it by."""

    namespace: str
    deployment: str
    fingerprint: str
    pod: str
    ip: str
    labels: Mapping[str, str]
    port_names: Mapping[str, int]
    spec: Mapping[str, str]
    """The ``nantian echo --serve`` JSON object for this pod."""
    ipv6: str | None = None
    """``::1`` when this pod also serves over IPv6 (for cases that publish IPv6 endpoints)."""

    def serve_arguments(self) -> list[str]:
        """The ``--serve`` values: the pod on its IPv4 address, and on :attr:`ipv6` when set."""
        out = [json.dumps(dict(self.spec), sort_keys=True)]
        if self.ipv6:
            out.append(json.dumps(_on_host(self.spec, f"[{self.ipv6}]"), sort_keys=True))
        return out


def _on_host(spec: Mapping[str, str], host: str) -> dict[str, str]:
    """``spec`` with every listener address moved to ``host`` (same ports)."""
    listeners = ("http", "h2c", "https", "grpc", "grpcs", "tcp", "tcps", "udp")
    return {k: f"{host}:{v.rsplit(':', 1)[1]}" if k in listeners else v for k, v in spec.items()}


def _ipv6_loopback_free(spec: Mapping[str, str]) -> bool:
    """Whether every port of ``spec`` can be bound on ``::1`` right now."""
    for key, value in _on_host(spec, "[::1]").items():
        if key not in ("http", "h2c", "https", "grpc", "grpcs", "tcp", "tcps", "udp"):
            continue
        kind = socket.SOCK_DGRAM if key == "udp" else socket.SOCK_STREAM
        try:
            with socket.socket(socket.AF_INET6, kind) as probe:
                probe.bind(("::1", int(value.rsplit(":", 1)[1])))
        except OSError:
            return False
    return True


def _random_name(length: int) -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


class _Volumes:
    """Resolves container file paths (env values) to the Secret/ConfigMap data mounted there."""

    def __init__(
        self, namespace: str, pod_spec: Mapping[str, Any], container: Mapping[str, Any], docs: Mapping[Key, Document]
    ):
        self._namespace = namespace
        self._docs = docs
        volumes = {str(v.get("name")): v for v in pod_spec.get("volumes") or () if isinstance(v, Mapping)}
        self._mounts = [
            (str(m.get("mountPath", "")).rstrip("/"), volumes.get(str(m.get("name"))))
            for m in container.get("volumeMounts") or ()
            if isinstance(m, Mapping)
        ]

    def read(self, path: str) -> bytes | None:
        for mount_path, volume in self._mounts:
            if volume is None or not path.startswith(mount_path + "/"):
                continue
            relative = path[len(mount_path) + 1 :]
            if "secret" in volume:
                source = volume["secret"] or {}
                kind, name = "Secret", str(source.get("secretName", ""))
            elif "configMap" in volume:
                source = volume["configMap"] or {}
                kind, name = "ConfigMap", str(source.get("name", ""))
            else:
                continue
            items = {str(i.get("path")): str(i.get("key")) for i in source.get("items") or () if isinstance(i, Mapping)}
            key = items.get(relative, relative if not items else "")
            doc = self._docs.get((kind, self._namespace, name))
            if doc is None or not key:
                return None
            if kind == "Secret":
                if key in (doc.get("stringData") or {}):
                    return str(doc["stringData"][key]).encode()
                value = (doc.get("data") or {}).get(key)
                return base64.b64decode(value) if value is not None else None
            value = (doc.get("data") or {}).get(key)
            return str(value).encode() if value is not None else None
        return None


def _echo_container(deployment: Document) -> tuple[Mapping[str, Any], Mapping[str, Any]] | None:
    pod_spec = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    for container in pod_spec.get("containers") or ():
        if isinstance(container, Mapping) and ECHO_IMAGE in str(container.get("image", "")):
            return pod_spec, container
    return None


class PodPlanner:
    """Plans echo pods for many cases' documents; loopback IPs come from ``127.<octet>.0.0/16``."""

    def __init__(self, files_dir: Path, *, octet: int) -> None:
        self._files_dir = files_dir
        self._octet = octet
        self._next_ip = 1
        self.pods: list[PodPlan] = []
        self.want_ipv6: set[tuple[str, str]] = set()
        """``(namespace, deployment)`` whose first pod should also serve on ``::1`` (one Deployment at most)."""
        self._ipv6_given = False
        self._by_fingerprint: dict[str, list[PodPlan]] = {}

    def _ip(self) -> str:
        index = self._next_ip
        self._next_ip += 1
        return f"127.{self._octet}.{index // 250}.{index % 250 + 1}"

    def fingerprints(self, docs: Sequence[Document]) -> dict[tuple[str, str], str]:
        """``(namespace, deployment) -> fingerprint`` for the echo Deployments in ``docs``."""
        index = {doc_key(d): d for d in docs}
        out: dict[tuple[str, str], str] = {}
        for doc in docs:
            if doc.get("kind") != "Deployment":
                continue
            found = _echo_container(doc)
            if found is None:
                continue
            _, ns, name = doc_key(doc)
            env, files = self._environment(ns, found[0], found[1], index)
            material = json.dumps(
                [ns, name, doc.get("spec"), env, {k: v.hex() for k, v in files.items()}], sort_keys=True
            )
            out[(ns, name)] = hashlib.sha256(material.encode()).hexdigest()[:16]
        return out

    @staticmethod
    def _environment(
        namespace: str, pod_spec: Mapping[str, Any], container: Mapping[str, Any], index: Mapping[Key, Document]
    ) -> tuple[dict[str, str], dict[str, bytes]]:
        env = {
            str(e["name"]): str(e["value"])
            for e in container.get("env") or ()
            if isinstance(e, Mapping) and "value" in e
        }
        volumes = _Volumes(namespace, pod_spec, container, index)
        files: dict[str, bytes] = {}
        for value in env.values():
            if value.startswith("/"):
                data = volumes.read(value)
                if data is not None:
                    files[value] = data
        return env, files

    def plan(self, docs: Sequence[Document]) -> None:
        """Add pods for every echo Deployment of ``docs`` not planned yet."""
        index = {doc_key(d): d for d in docs}
        fingerprints = self.fingerprints(docs)
        for doc in docs:
            _, ns, name = doc_key(doc)
            fingerprint = fingerprints.get((ns, name)) if doc.get("kind") == "Deployment" else None
            if fingerprint is None or fingerprint in self._by_fingerprint:
                continue
            pod_spec, container = _echo_container(doc) or ({}, {})
            env, files = self._environment(ns, pod_spec, container, index)
            written = self._write_files(fingerprint, files)
            replicas = int((doc.get("spec") or {}).get("replicas") or 1)
            labels = ((doc.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}
            port_names = {
                str(p["name"]): int(p["containerPort"])
                for p in container.get("ports") or ()
                if isinstance(p, Mapping) and p.get("name") and p.get("containerPort")
            }
            template = f"{name}-{_random_name(10)}"
            pods = []
            for _ in range(max(1, min(replicas, MAX_REPLICAS))):
                pod_name = f"{template}-{_random_name(5)}"
                ip = self._ip()
                spec = _listeners(env, written, ip)
                spec.update(
                    namespace=ns, pod=pod_name, service=env.get("SERVICE_NAME", ""), ingress=env.get("INGRESS_NAME", "")
                )
                ipv6 = None
                if (ns, name) in self.want_ipv6 and not self._ipv6_given and _ipv6_loopback_free(spec):
                    ipv6, self._ipv6_given = "::1", True
                pods.append(
                    PodPlan(
                        namespace=ns,
                        deployment=name,
                        fingerprint=fingerprint,
                        pod=pod_name,
                        ip=ip,
                        labels={str(k): str(v) for k, v in labels.items()},
                        port_names=port_names,
                        spec=spec,
                        ipv6=ipv6,
                    )
                )
            self._by_fingerprint[fingerprint] = pods
            self.pods.extend(pods)

    def _write_files(self, fingerprint: str, files: Mapping[str, bytes]) -> dict[str, str]:
        out: dict[str, str] = {}
        for i, (container_path, data) in enumerate(sorted(files.items())):
            target = self._files_dir / fingerprint / f"{i}-{Path(container_path).name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            out[container_path] = str(target)
        return out

    def endpoints(
        self, docs: Sequence[Document], *, ipv6: bool = False
    ) -> dict[tuple[str, str], list[tuple[str, Mapping[int | str, int]]]]:
        """``(namespace, service) -> [(ip, {port name: port})]`` for every selector Service of ``docs``.

        A Service whose selector matches no planned echo pod gets no endpoints (not invented ones). IPv6
        addresses of pods are included only with ``ipv6`` (for steps that fill IPv6 EndpointSlices).
        """
        fingerprints = self.fingerprints(docs)
        current = [pod for pod in self.pods if fingerprints.get((pod.namespace, pod.deployment)) == pod.fingerprint]
        out: dict[tuple[str, str], list[tuple[str, Mapping[int | str, int]]]] = {}
        for doc in docs:
            if doc.get("kind") != "Service":
                continue
            selector = (doc.get("spec") or {}).get("selector") or {}
            if not selector:
                continue
            _, ns, name = doc_key(doc)
            matched = [
                pod
                for pod in current
                if pod.namespace == ns and all(pod.labels.get(k) == str(v) for k, v in selector.items())
            ]
            out[(ns, name)] = [(pod.ip, _targets(pod)) for pod in matched]
            if ipv6:
                out[(ns, name)] += [(pod.ipv6, _targets(pod)) for pod in matched if pod.ipv6]
        return out


def _targets(pod: PodPlan) -> Mapping[int | str, int]:
    targets: dict[int | str, int] = {}
    targets.update(pod.port_names)
    return targets


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name, "")
    return int(value) if value.isdigit() else default


def _listeners(env: Mapping[str, str], files: Mapping[str, str], ip: str) -> dict[str, str]:
    """The echo listeners one pod runs, from its environment as upstream echo-basic reads it."""
    spec: dict[str, str] = {}

    def file(variable: str) -> str | None:
        return files.get(env.get(variable, ""))

    if env.get("GRPC_ECHO_SERVER"):
        spec["grpc"] = f"{ip}:{_port(env, 'HTTP_PORT', 3000)}"
        cert, key = file("TLS_SERVER_CERT"), file("TLS_SERVER_PRIV_KEY")
        if cert and key:
            spec.update(grpcs=f"{ip}:{_port(env, 'HTTPS_PORT', 8443)}", cert=cert, key=key)
    elif env.get("TCP_ECHO_SERVER"):
        spec["tcp"] = f"{ip}:{_port(env, 'TCP_PORT', 3000)}"
        cert, key = file("TLS_SERVER_CERT"), file("TLS_SERVER_PRIV_KEY")
        if cert and key:
            spec.update(tcps=f"{ip}:{_port(env, 'TLS_PORT', 8443)}", cert=cert, key=key)
    elif env.get("UDP_ECHO_SERVER"):
        spec["udp"] = f"{ip}:{_port(env, 'UDP_PORT', 8080)}"
    else:
        spec["http"] = f"{ip}:{_port(env, 'HTTP_PORT', 3000)}"
        spec["h2c"] = f"{ip}:{_port(env, 'H2C_PORT', 3001)}"
        cert, key = file("TLS_SERVER_CERT"), file("TLS_SERVER_PRIVKEY")
        if cert and key:
            spec.update(https=f"{ip}:{_port(env, 'HTTPS_PORT', 8443)}", cert=cert, key=key)
            client_ca = file("TLS_CLIENT_CACERTS")
            if client_ca:
                spec["client_ca"] = client_ca
    return spec


def backend_of(pod: str) -> str:
    """The Deployment of a pod name: the name without its last two dash-separated parts."""
    parts = pod.split("-")
    return "-".join(parts[:-2]) if len(parts) > 2 else pod


def all_deployments(docs: Iterable[Document]) -> list[Key]:
    """Keys of the echo Deployments in ``docs`` (for reports)."""
    return [doc_key(d) for d in docs if d.get("kind") == "Deployment" and _echo_container(d) is not None]
