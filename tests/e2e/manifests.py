"""Gateway API manifests as YAML text for the e2e tests: the GatewayClass, a Gateway ``default/gw``, HTTPRoutes and
backends (a Service with the EndpointSlice that puts its one endpoint on 127.0.0.1).

Listeners and rules are given as YAML flow mappings (``{name: http, port: 8080, protocol: HTTP}``); :func:`documents`
joins documents into one file's text.
"""

from __future__ import annotations

from pathlib import Path

GATEWAY_CLASS = """\
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: nantian}
spec: {controllerName: nantian.io/gateway-controller}
"""
"""The GatewayClass ``nantian``, managed by nantian's default controller name."""


def gateway(*listeners: str) -> str:
    """The Gateway ``default/gw`` of class ``nantian`` with ``listeners`` (YAML flow mappings)."""
    items = "".join(f"  - {listener}\n" for listener in listeners)
    return f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  gatewayClassName: nantian
  listeners:
{items}"""


def http_route(name: str, *rules: str, hostnames: tuple[str, ...] = ()) -> str:
    """The HTTPRoute ``default/NAME`` attached to ``gw`` with ``rules`` (YAML flow mappings)."""
    hosts = f"  hostnames: [{', '.join(hostnames)}]\n" if hostnames else ""
    items = "".join(f"  - {rule}\n" for rule in rules)
    return f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
{hosts}  rules:
{items}"""


def backend_rule(service: str, port: int = 80) -> str:
    """A rule sending everything to ``service:port``."""
    return f"{{backendRefs: [{{name: {service}, port: {port}}}]}}"


def backend(service: str, target_port: int) -> str:
    """The Service ``default/SERVICE`` (port 80 -> ``target_port``) and its EndpointSlice ``SERVICE-1``: one ready
    endpoint, 127.0.0.1:``target_port``."""
    return f"""\
apiVersion: v1
kind: Service
metadata: {{name: {service}, namespace: default}}
spec: {{ports: [{{port: 80, targetPort: {target_port}}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {service}-1, namespace: default, labels: {{kubernetes.io/service-name: {service}}}}}
addressType: IPv4
endpoints: [{{addresses: [127.0.0.1]}}]
ports: [{{port: {target_port}}}]
"""


def documents(*docs: str) -> str:
    """``docs`` as one multi-document YAML text."""
    return "---\n".join(docs)


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a rename, so a watching file source never reads half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.rename(path)
