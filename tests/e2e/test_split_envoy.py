"""A real Envoy as the data plane: ``nantian controller --transport envoy`` serves it over ADS (mTLS).

Envoy gets the translated listeners and clusters, routes traffic (HTTP, and HTTPS with the Gateway's certificate
chosen by SNI) to the echo backend, picks up a manifest
change, and shows up (acked) in the controller's node registry; a listener it cannot bind is a Nack there.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx
import manifests
import pytest
import trustme
from pki import write_pki
from processes import eventually, free_port, stop_async

from nantian import ir
from nantian.controlplane.controller import Controller, ControllerOptions
from nantian.echo import EchoServer, PodContext, ServeSpec
from nantian.plugins import make_plugin_manager
from nantian.xds.envoy import bootstrap

pytestmark = pytest.mark.e2e

ENVOY = shutil.which("envoy") or str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "envoy")
WAIT = 30.0
PORT = 8080


def snapshot_address(controller: Controller) -> str:
    snapshot = controller.store.current
    assert snapshot is not None
    return snapshot.listeners[0].address


TLS_PORT = 8443
SERVING = trustme.CA()
SERVING_CERT = SERVING.issue_cert("secure.example.com")


def _write(directory: Path, echo_port: int, rule: str, extra_port: int | None = None) -> None:
    listeners = [
        f"{{name: http, port: {PORT}, protocol: HTTP}}",
        f"{{name: https, port: {TLS_PORT}, protocol: HTTPS, hostname: secure.example.com, "
        "tls: {certificateRefs: [{name: tls-cert}]}}",
    ]
    if extra_port:
        listeners.append(f"{{name: extra, port: {extra_port}, protocol: HTTP}}")
    app_rule = (
        "{matches: [{path: {type: PathPrefix, value: /app}}], filters: [{type: RequestHeaderModifier, "
        f"requestHeaderModifier: {{set: [{{name: x-rule, value: {rule}}}]}}}}], "
        "backendRefs: [{name: echo, port: 80}]}"
    )
    tls_crt = base64.b64encode(SERVING_CERT.cert_chain_pems[0].bytes()).decode()
    tls_key = base64.b64encode(SERVING_CERT.private_key_pem.bytes()).decode()
    secret = f"""\
apiVersion: v1
kind: Secret
metadata: {{name: tls-cert, namespace: default}}
type: kubernetes.io/tls
data: {{tls.crt: {tls_crt}, tls.key: {tls_key}}}
"""
    text = manifests.documents(
        manifests.GATEWAY_CLASS,
        manifests.gateway(*listeners),
        manifests.http_route("web", app_rule),
        secret,
        manifests.backend("echo", echo_port),
    )
    manifests.write_atomically(directory / "app.yaml", text)


async def _https_get(address: str, port: int, path: str) -> tuple[int, dict[str, object]]:
    """GET over TLS with SNI secure.example.com, verified against the test CA; (status, JSON body)."""
    context = ssl.create_default_context()
    SERVING.configure_trust(context)
    reader, writer = await asyncio.open_connection(address, port, ssl=context, server_hostname="secure.example.com")
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: secure.example.com\r\nConnection: close\r\n\r\n".encode())
        raw = await reader.read()
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"chunked" in head.lower():
        chunks, rest = [], body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                break
            chunks.append(rest[:size])
            rest = rest[size + 2 :]
        body = b"".join(chunks)
    return status, json.loads(body) if status == 200 else {}


async def _eventually(condition: Callable[[], bool], what: str) -> None:
    await eventually(condition, what, within=WAIT, interval=0.1)


async def _rule_seen(url: str) -> str | None:
    try:
        async with httpx.AsyncClient(trust_env=False, timeout=2.0) as http:
            response = await http.get(url)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    value: object = response.json()["headers"].get("X-Rule")
    if isinstance(value, list):
        value = value[0]
    return None if value is None else str(value)


async def test_envoy_is_a_data_plane(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    async with EchoServer([ServeSpec(context=PodContext(pod="echo-1"), http=("127.0.0.1", 0))]) as echo:
        echo_port = echo.bound[0].port
        _write(config, echo_port, "one")
        files = write_pki(tmp_path, "envoy-1")
        controller = Controller(
            ControllerOptions(
                config_dir=config,
                xds_address="127.0.0.1:0",
                admin_port=0,
                transport="envoy",
                xds_tls_cert=files["cert"],
                xds_tls_key=files["key"],
                xds_tls_ca=files["ca"],
            ),
            plugin_manager=make_plugin_manager(entry_points=False),
        )
        await controller.start()
        offset = free_port() - PORT
        boot = tmp_path / "envoy.json"
        boot.write_text(
            json.dumps(
                bootstrap(
                    "envoy-1",
                    controller.xds_address,
                    port_offset=offset,
                    tls_ca=str(files["ca"]),
                    tls_cert=str(files["client_cert"]),
                    tls_key=str(files["client_key"]),
                )
            )
        )
        log = (tmp_path / "envoy.log").open("w")
        envoy = await asyncio.create_subprocess_exec(
            ENVOY, "-c", str(boot), "--use-dynamic-base-id", "--log-level", "warn", stdout=log, stderr=log
        )
        try:
            await _eventually(lambda: controller.store.current is not None, "translation")
            snapshot = controller.store.current
            assert snapshot is not None
            url = f"http://{snapshot.listeners[0].address}:{PORT + offset}/app/x"
            seen: list[str | None] = [None]

            async def poll(rule: str) -> None:
                async with asyncio.timeout(WAIT):
                    while seen[0] != rule:
                        seen[0] = await _rule_seen(url)
                        await asyncio.sleep(0.1)

            await poll("one")
            status, body = await _https_get(snapshot_address(controller), TLS_PORT + offset, "/app/tls")
            assert status == 200 and body["path"] == "/app/tls"
            record = controller.registry.get("envoy-1")
            assert record is not None and record.transport == "envoy" and record.connected
            await _eventually(lambda: record.version_acked == controller.store.version, "envoy acks")

            _write(config, echo_port, "two")
            await poll("two")
            await _eventually(lambda: record.version_acked == controller.store.version, "envoy acks the change")
            assert record.last_nack is None

            # A port Envoy cannot bind: a Nack in the registry. Envoy's LDS is per listener, so unlike nantian's
            # proxy it still applies the other listeners' changes; the one it could not bind is simply absent.
            acked = record.version_acked
            with socket.socket() as squatter:
                squatter.bind((snapshot.listeners[0].address, 9090 + offset))
                squatter.listen()
                _write(config, echo_port, "three", extra_port=9090)
                await _eventually(lambda: record.last_nack is not None, "envoy nacks the unbindable listener")
                assert record.last_nack is not None and "Listener" in record.last_nack.detail
                assert record.version_acked == acked
                assert await _rule_seen(url) in ("two", "three")
        finally:
            await stop_async(envoy, within=10)
            log.close()
            await controller.stop()


VALIDATED_CASES = (
    "httproute-matching",
    "httproute-query-param-matching",
    "httproute-redirect-port-and-scheme",
    "httproute-rewrite-path",
    "httproute-request-header-modifier-backend-weights",
    "httproute-request-multiple-mirrors",
    "httproute-retry-with-timeouts",
    "httproute-backend-protocol-h2c",
    "httproute-https-listener-detect-misdirected-requests",
    "backendtlspolicy",
    "gateway-tls-backend-client-certificate",
    "gateway-with-clientcertificate-validation",
    "gateway-with-clientcertificate-validation-insecure-fallback",
    "httproute-cors",
    "grpcroute-header-matching",
    "tlsroute-mixed-termination-same-namespace",
    "tcproute-parentref-attach-all",
    "udproute-weighted-routing",
)


def _case_snapshot(name: str) -> ir.Snapshot:
    from nantian.resources import ResourceSet, parse_object
    from nantian.testing import case_documents, data_dir, load_case
    from nantian.translate import TranslateOptions, translate

    case = load_case(data_dir() / "cases" / f"{name}.yaml")
    docs = case_documents(case, gateway_class="nantian", controller_name="nantian.io/gateway-controller")
    objects = [parse_object(d) for d in docs]
    resource_set = ResourceSet.from_objects(objects, raw={o.ref: d for o, d in zip(objects, docs, strict=True)})
    return translate(resource_set, TranslateOptions(controller_name="nantian.io/gateway-controller")).snapshot


async def test_envoy_accepts_the_translation_of_conformance_cases(tmp_path: Path) -> None:
    """Envoy's own validation (``--mode validate``) of every translated resource, case by case."""
    from google.protobuf import json_format

    from nantian.xds.envoy import clusters, listeners

    limit = asyncio.Semaphore(4)

    async def validate(i: int, name: str) -> int:
        snapshot = _case_snapshot(name)
        static = {
            "listeners": [json_format.MessageToDict(x) for x in listeners(snapshot, port_offset=0)],
            "clusters": [json_format.MessageToDict(c) for c in clusters(snapshot)],
        }
        for j, lst in enumerate(static["listeners"]):  # validation does not bind, but addresses must be unique
            lst["address"]["socketAddress"]["portValue"] = 20000 + j
        config = tmp_path / f"{i}.json"
        config.write_text(json.dumps({"static_resources": static}))
        async with limit:
            proc = await asyncio.create_subprocess_exec(
                ENVOY,
                "--mode",
                "validate",
                "-c",
                str(config),
                "--log-level",
                "error",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            async with asyncio.timeout(WAIT):
                output, _ = await proc.communicate()
        assert proc.returncode == 0, f"{name}: Envoy rejects the translation:\n{output.decode()[-3000:]}"
        return len(static["listeners"]) + len(static["clusters"])

    counts = await asyncio.gather(*(validate(i, name) for i, name in enumerate(VALIDATED_CASES)))
    assert all(counts) and sum(counts) > 40
