"""KubernetesSource and KubernetesStatusSink against a small API server speaking the real HTTP protocol.

No kube-apiserver can run here, so ``FakeApiServer`` implements the parts nantian uses (paginated
LIST, WATCH with resourceVersion and 410 Gone, status merge-patch, bearer tokens) over real TLS
sockets; the client side is the real code: the official client's kubeconfig loading and httpx.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
import ssl
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from nantian.errors import SourceError
from nantian.resources import Gateway, HTTPRoute, ObjectRef, ResourceSet, Service, TCPRoute
from nantian.sources.kubeapi import KubeApi, WatchedKind
from nantian.sources.kubernetes import KubernetesSource, KubernetesStatusSink

WAIT = 10.0
GW = "gateway.networking.k8s.io"
TOKEN = "s3cret"
Key = tuple[str, str, str]  # group, version, plural


class FakeApiServer:
    """Enough of a Kubernetes API server for list, watch and status writes."""

    def __init__(self, served: dict[Key, tuple[str, bool]]) -> None:
        self.served = served  # (group, version, plural) -> (kind, namespaced)
        self.store: dict[Key, dict[tuple[str, str], dict[str, Any]]] = {key: {} for key in served}
        self.history: list[tuple[int, Key, str, dict[str, Any]]] = []
        self.rv = 100
        self.changed = asyncio.Event()
        self.patches: list[tuple[str, str, dict[str, Any]]] = []
        self.gone: set[Key] = set()  # the next watch of these answers 410 Gone
        self.kicks = 0
        self.watches = 0
        self.page_size = 2
        self._server: asyncio.Server | None = None

    # --- the objects ---------------------------------------------------------------------------
    def put(self, key: Key, obj: dict[str, Any]) -> None:
        self.rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        ident = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        kind = "MODIFIED" if ident in self.store[key] else "ADDED"
        self.store[key][ident] = obj
        self._event(key, kind, obj)

    def end_watches(self) -> None:
        """End every open watch, as the API server does when its watch timeout expires."""
        self.kicks += 1
        self.changed.set()
        self.changed = asyncio.Event()

    def delete(self, key: Key, namespace: str, name: str) -> None:
        self.rv += 1
        obj = self.store[key].pop((namespace, name))
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self._event(key, "DELETED", obj)

    def _event(self, key: Key, kind: str, obj: dict[str, Any]) -> None:
        group, version, _ = key
        full = {"apiVersion": f"{group}/{version}" if group else version, "kind": self.served[key][0], **obj}
        self.history.append((self.rv, key, kind, full))
        self.changed.set()
        self.changed = asyncio.Event()

    # --- HTTP ----------------------------------------------------------------------------------
    async def start(self, context: ssl.SSLContext) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=context)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        self.changed.set()
        await asyncio.wait_for(self._server.wait_closed(), WAIT)

    def _route(self, path: str) -> tuple[Key, str | None, str | None, bool] | None:
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["api"] and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces" and (group, version, rest[2]) in self.served:
            namespace, rest = rest[1], rest[2:]
        if not rest or (group, version, rest[0]) not in self.served:
            return None
        name = rest[1] if len(rest) > 1 else None
        return (group, version, rest[0]), namespace, name, rest[2:] == ["status"]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = (await reader.readline()).decode().split()
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            method, target = request[0], request[1]
            url = urllib.parse.urlsplit(target)
            query = dict(urllib.parse.parse_qsl(url.query))
            if headers.get("authorization") != f"Bearer {TOKEN}":
                await self._reply(writer, 401, {"kind": "Status", "code": 401, "message": "Unauthorized"})
                return
            route = self._route(url.path)
            if route is None:
                await self._reply(writer, 404, {"kind": "Status", "code": 404, "message": f"no {url.path}"})
                return
            key, namespace, name, status = route
            if method == "GET" and name is None and query.get("watch") == "true":
                await self._watch(writer, key, namespace, int(query.get("resourceVersion") or 0), query)
            elif method == "GET" and name is None:
                await self._list(writer, key, namespace, query)
            elif method == "PATCH" and name is not None and status:
                obj = self.store[key].get((namespace or "", name))
                if obj is None:
                    await self._reply(writer, 404, {"kind": "Status", "code": 404, "message": "not found"})
                    return
                self.patches.append((url.path, headers.get("content-type", ""), json.loads(body)))
                await self._reply(writer, 200, obj)
            else:
                await self._reply(writer, 405, {"kind": "Status", "code": 405, "message": "no"})
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    async def _reply(self, writer: asyncio.StreamWriter, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        writer.write(head.encode() + b"Connection: close\r\n\r\n" + data)
        await writer.drain()

    async def _list(self, writer: asyncio.StreamWriter, key: Key, namespace: str | None, query: dict[str, str]) -> None:
        items = [
            {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}  # list items carry neither
            for (ns, _), obj in sorted(self.store[key].items())
            if namespace is None or ns == namespace
        ]
        start = int(query.get("continue") or 0)
        page = items[start : start + self.page_size]
        metadata: dict[str, Any] = {"resourceVersion": str(self.rv)}
        if start + self.page_size < len(items):
            metadata["continue"] = str(start + self.page_size)
        await self._reply(writer, 200, {"kind": f"{self.served[key][0]}List", "metadata": metadata, "items": page})

    async def _watch(
        self, writer: asyncio.StreamWriter, key: Key, namespace: str | None, since: int, query: dict[str, str]
    ) -> None:
        self.watches += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")

        async def send(event: dict[str, Any]) -> None:
            data = json.dumps(event).encode() + b"\n"
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await writer.drain()

        if key in self.gone:
            self.gone.discard(key)
            await send({"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}})
        else:
            deadline = asyncio.get_running_loop().time() + float(query.get("timeoutSeconds", "30"))
            sent, kicks = since, self.kicks
            while self._server is not None and self._server.is_serving() and self.kicks == kicks:
                for rv, event_key, kind, obj in self.history:
                    in_ns = namespace is None or obj["metadata"].get("namespace") == namespace
                    if rv > sent and event_key == key and in_ns:
                        await send({"type": kind, "object": obj})
                sent = max(sent, self.rv)
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(self.changed.wait(), remaining)
                except TimeoutError:
                    break
        writer.write(b"0\r\n\r\n")
        await writer.drain()


# --- fixtures ----------------------------------------------------------------------------------
GATEWAYS: Key = (GW, "v1", "gateways")
ROUTES: Key = (GW, "v1", "httproutes")
TCP_ALPHA: Key = (GW, "v1alpha2", "tcproutes")
SERVICES: Key = ("", "v1", "services")
NAMESPACES: Key = ("", "v1", "namespaces")
KINDS = (
    WatchedKind("Namespace", "", ("v1",), "namespaces", namespaced=False),
    WatchedKind("Gateway", GW, ("v1",), "gateways"),
    WatchedKind("HTTPRoute", GW, ("v1",), "httproutes"),
    WatchedKind("TCPRoute", GW, ("v1", "v1alpha2"), "tcproutes"),
    WatchedKind("ListenerSet", GW, ("v1",), "listenersets"),  # CRD not installed
    WatchedKind("Service", "", ("v1",), "services"),
)


def gateway(name: str, ns: str = "infra", port: Any = 80) -> dict[str, Any]:
    listeners = [{"name": "http", "port": port, "protocol": "HTTP"}]
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"gatewayClassName": "n", "listeners": listeners}}


def route(name: str, ns: str = "app", host: str = "a.example") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"parentRefs": [{"name": "gw"}], "hostnames": [host]}}


def service(name: str, ns: str = "app") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"ports": [{"port": 8080}]}}


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def kubeconfig(tmp_path: Path, ca: trustme.CA) -> Path:
    return tmp_path / "kubeconfig"


async def started(ca: trustme.CA, kubeconfig: Path) -> tuple[FakeApiServer, KubeApi]:
    server = FakeApiServer(
        {
            NAMESPACES: ("Namespace", False),
            GATEWAYS: ("Gateway", True),
            ROUTES: ("HTTPRoute", True),
            TCP_ALPHA: ("TCPRoute", True),
            SERVICES: ("Service", True),
        }
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    port = await server.start(context)
    write_kubeconfig(kubeconfig, port, ca, TOKEN)
    return server, KubeApi.from_environment(kubeconfig=str(kubeconfig))


def write_kubeconfig(path: Path, port: int, ca: trustme.CA, token: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "fake",
                "cluster": {
                    "server": f"https://127.0.0.1:{port}",
                    "certificate-authority-data": base64.b64encode(ca.cert_pem.bytes()).decode(),
                },
            }
        ],
        "users": [{"name": "me", "user": {"token": token}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "me"}}],
        "current-context": "fake",
    }
    path.write_text(yaml.safe_dump(config))


async def next_set(it: AsyncIterator[ResourceSet]) -> ResourceSet:
    return await asyncio.wait_for(anext(it), WAIT)


def source_for(api: KubeApi) -> KubernetesSource:
    return KubernetesSource(api, kinds=KINDS, debounce_ms=20, backoff_max_s=0.2, retry_missing_s=0.2)


# --- tests -------------------------------------------------------------------------------------
async def test_initial_list_then_watch(ca: trustme.CA, kubeconfig: Path) -> None:
    server, api = await started(ca, kubeconfig)
    server.put(NAMESPACES, {"metadata": {"name": "app", "labels": {"team": "a"}}})
    server.put(GATEWAYS, gateway("gw"))
    for i in range(5):  # more than one page
        server.put(ROUTES, route(f"r{i}"))
    server.put(
        TCP_ALPHA,
        {
            "metadata": {"name": "t", "namespace": "app"},
            "spec": {"rules": [{"backendRefs": [{"name": "s", "port": 1}]}]},
        },
    )
    server.put(SERVICES, service("s"))
    source = source_for(api)
    it = source.updates()
    try:
        first = await next_set(it)
        assert len(first.of_kind(HTTPRoute)) == 5 and len(first) == 9 and first.errors == ()
        assert isinstance(first.get(ObjectRef("TCPRoute", "app", "t")), TCPRoute)
        assert isinstance(first.get(ObjectRef("Gateway", "infra", "gw")), Gateway)
        ns = first.namespace("app")
        assert ns is not None and ns.metadata.labels == {"team": "a"}
        assert source.versions["TCPRoute"] == "v1alpha2" and "ListenerSet" not in source.versions
        assert first.raw(ObjectRef("Service", "app", "s"))["apiVersion"] == "v1"

        server.put(ROUTES, route("r0", host="b.example"))
        server.put(SERVICES, service("s2"))
        server.delete(ROUTES, "app", "r4")
        second = await next_set(it)
        while len(first.diff(second).refs) < 3:  # the three changes may arrive in two batches
            second = await next_set(it)
        diff = first.diff(second)
        assert diff.changed == (ObjectRef("HTTPRoute", "app", "r0"),)
        assert diff.added == (ObjectRef("Service", "app", "s2"),)
        assert diff.removed == (ObjectRef("HTTPRoute", "app", "r4"),)
        r0 = second.get(ObjectRef("HTTPRoute", "app", "r0"))
        assert isinstance(r0, HTTPRoute) and r0.spec.hostnames == ("b.example",)
    finally:
        await source.aclose()
        await it.aclose()
        await server.stop()


async def test_bad_object_is_reported_then_cleared(ca: trustme.CA, kubeconfig: Path) -> None:
    server, api = await started(ca, kubeconfig)
    server.put(GATEWAYS, gateway("gw"))
    source = source_for(api)
    it = source.updates()
    try:
        first = await next_set(it)
        assert first.errors == ()
        server.put(GATEWAYS, gateway("gw", port="abc"))
        second = await next_set(it)
        [error] = second.errors
        assert error.errors == ["expected int, got str @ spec.listeners[0].port"]
        assert error.source == "/apis/gateway.networking.k8s.io/v1/namespaces/infra/gateways/gw"
        assert second.get(ObjectRef("Gateway", "infra", "gw")) is None
        server.put(GATEWAYS, gateway("gw", port=81))
        third = await next_set(it)
        gw = third.get(ObjectRef("Gateway", "infra", "gw"))
        assert third.errors == () and isinstance(gw, Gateway) and gw.spec.listeners[0].port == 81
    finally:
        await source.aclose()
        await it.aclose()
        await server.stop()


async def test_gone_watch_relists(ca: trustme.CA, kubeconfig: Path) -> None:
    server, api = await started(ca, kubeconfig)
    server.put(SERVICES, service("a"))
    server.put(SERVICES, service("b"))
    source = source_for(api)
    it = source.updates()
    try:
        first = await next_set(it)
        assert len(first.of_kind(Service)) == 2
        server.put(SERVICES, service("c"))
        server.history.clear()  # events so far are compacted away: only a relist can see them
        server.store[SERVICES].pop(("app", "a"))
        server.gone.add(SERVICES)
        server.end_watches()
        rs = await next_set(it)
        assert [s.metadata.name for s in rs.of_kind(Service)] == ["b", "c"]
        assert first.diff(rs).refs == (ObjectRef("Service", "app", "a"), ObjectRef("Service", "app", "c"))
    finally:
        await source.aclose()
        await it.aclose()
        await server.stop()


async def test_status_sink_patches_status_subresources(ca: trustme.CA, kubeconfig: Path) -> None:
    server, api = await started(ca, kubeconfig)
    server.put(GATEWAYS, gateway("gw"))
    server.put(TCP_ALPHA, {"metadata": {"name": "t", "namespace": "app"}, "spec": {"rules": []}})
    server.put(SERVICES, service("s"))
    source = source_for(api)
    it = source.updates()
    try:
        await next_set(it)
        status = {"conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted"}]}
        await source.status_sink().write(
            {
                ObjectRef("Gateway", "infra", "gw"): status,
                ObjectRef("TCPRoute", "app", "t"): {"parents": []},
                ObjectRef("Service", "app", "s"): {"ignored": True},  # core kinds get no status from nantian
                ObjectRef("Gateway", "infra", "deleted-meanwhile"): status,  # 404: skipped quietly
            }
        )
        assert server.patches == [
            (
                "/apis/gateway.networking.k8s.io/v1/namespaces/infra/gateways/gw/status",
                "application/merge-patch+json",
                {"status": status},
            ),
            (
                "/apis/gateway.networking.k8s.io/v1alpha2/namespaces/app/tcproutes/t/status",
                "application/merge-patch+json",
                {"status": {"parents": []}},
            ),
        ]
    finally:
        await source.aclose()
        await it.aclose()
        await server.stop()


async def test_wrong_token_is_retried_until_closed(ca: trustme.CA, kubeconfig: Path) -> None:
    server, _ = await started(ca, kubeconfig)
    assert server._server is not None
    write_kubeconfig(kubeconfig, server._server.sockets[0].getsockname()[1], ca, "wrong")
    source = source_for(KubeApi.from_environment(kubeconfig=str(kubeconfig)))
    it = source.updates()
    pending = asyncio.ensure_future(anext(it))
    await asyncio.sleep(0.3)
    assert not pending.done()
    await source.aclose()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(pending, WAIT)
    await server.stop()


async def test_standalone_status_sink_finds_the_served_version(ca: trustme.CA, kubeconfig: Path) -> None:
    server, api = await started(ca, kubeconfig)
    server.put(TCP_ALPHA, {"metadata": {"name": "t", "namespace": "app"}, "spec": {"rules": []}})
    sink = KubernetesStatusSink(api)  # knows nothing of what is served: TCPRoute v1 is tried first
    try:
        await sink.write({ObjectRef("TCPRoute", "app", "t"): {"parents": []}})
        await sink.write({ObjectRef("TCPRoute", "app", "t"): {"parents": [{"controllerName": "x"}]}})
        assert [path for path, _, _ in server.patches] == [
            "/apis/gateway.networking.k8s.io/v1alpha2/namespaces/app/tcproutes/t/status"
        ] * 2
    finally:
        await api.aclose()
        await server.stop()


async def test_status_sink_survives_a_dead_server(ca: trustme.CA, kubeconfig: Path) -> None:
    server, api = await started(ca, kubeconfig)
    await server.stop()
    sink = KubernetesStatusSink(api)
    await asyncio.wait_for(sink.write({ObjectRef("Gateway", "a", "g"): {"conditions": []}}), WAIT)
    await api.aclose()
    assert server.patches == []


async def test_watches_ending_at_once_do_not_spin(ca: trustme.CA, kubeconfig: Path) -> None:
    server, api = await started(ca, kubeconfig)
    source = KubernetesSource(api, kinds=KINDS[-1:], watch_timeout_s=0, backoff_max_s=0.2)
    it = source.updates()
    try:
        await next_set(it)
        await asyncio.sleep(0.5)
        assert 1 <= server.watches <= 6  # one every 0.2 s (the backoff cap), not hundreds
    finally:
        await source.aclose()
        await it.aclose()
        await server.stop()


async def test_from_url(ca: trustme.CA, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert KubernetesSource.from_url("files:/x") is None
    server, api = await started(ca, kubeconfig)
    await api.aclose()
    server.put(NAMESPACES, {"metadata": {"name": "app"}})
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    with pytest.raises(SourceError):
        KubernetesSource.from_url("kubernetes:no-such-context")
    source = KubernetesSource.from_url("kubernetes:fake")
    assert source is not None
    source.kinds = KINDS[:1]
    it = source.updates()
    try:
        assert (await next_set(it)).refs() == (ObjectRef("Namespace", "", "app"),)
    finally:
        await source.aclose()
        await it.aclose()
        await server.stop()
