"""The few Kubernetes API calls nantian makes (list, watch, status merge-patch), over one httpx client.

Configuration (in-cluster service account, or a kubeconfig with its token, client certificate or
exec plugin) is loaded by the official ``kubernetes`` client; requests go through ``httpx`` so that
watches are plain asyncio streams (no thread per watch).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import attrs
import httpx

from nantian.errors import SourceError

__all__ = ["DEFAULT_KINDS", "KubeApi", "KubeApiError", "WatchedKind"]

log = logging.getLogger(__name__)


class KubeApiError(SourceError):
    """The API server answered with an error status (``status``: 404, 403, 410 Gone ...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


@attrs.frozen
class WatchedKind:
    """A kind to list and watch: its group, the versions to try in order, its plural, its scope."""

    kind: str
    group: str
    versions: tuple[str, ...]
    plural: str
    namespaced: bool = True

    def api_version(self, version: str) -> str:
        """``apiVersion`` of objects of this kind at ``version``."""
        return f"{self.group}/{version}" if self.group else version

    def collection_path(self, version: str, namespace: str | None = None) -> str:
        """``/apis/<group>/<version>[/namespaces/<ns>]/<plural>`` (``/api/v1/...`` for the core group)."""
        base = f"/apis/{self.group}/{version}" if self.group else f"/api/{version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        return f"{base}/{self.plural}"

    def status_path(self, version: str, namespace: str, name: str) -> str:
        """The status subresource of one object."""
        return f"{self.collection_path(version, namespace or None)}/{name}/status"


_GW = "gateway.networking.k8s.io"
DEFAULT_KINDS: tuple[WatchedKind, ...] = (
    WatchedKind("GatewayClass", _GW, ("v1", "v1beta1"), "gatewayclasses", namespaced=False),
    WatchedKind("Gateway", _GW, ("v1", "v1beta1"), "gateways"),
    WatchedKind("ListenerSet", _GW, ("v1",), "listenersets"),
    WatchedKind("HTTPRoute", _GW, ("v1", "v1beta1"), "httproutes"),
    WatchedKind("GRPCRoute", _GW, ("v1",), "grpcroutes"),
    WatchedKind("TLSRoute", _GW, ("v1", "v1alpha3", "v1alpha2"), "tlsroutes"),
    WatchedKind("TCPRoute", _GW, ("v1", "v1alpha2"), "tcproutes"),
    WatchedKind("UDPRoute", _GW, ("v1", "v1alpha2"), "udproutes"),
    WatchedKind("ReferenceGrant", _GW, ("v1", "v1beta1"), "referencegrants"),
    WatchedKind("BackendTLSPolicy", _GW, ("v1", "v1alpha3"), "backendtlspolicies"),
    WatchedKind("Namespace", "", ("v1",), "namespaces", namespaced=False),
    WatchedKind("Service", "", ("v1",), "services"),
    WatchedKind("EndpointSlice", "discovery.k8s.io", ("v1",), "endpointslices"),
    WatchedKind("Secret", "", ("v1",), "secrets"),
    WatchedKind("ConfigMap", "", ("v1",), "configmaps"),
)
"""What the Kubernetes source watches by default: every kind the translator reads."""


def _error_message(body: bytes) -> str:
    try:
        status = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", "replace")
    message = status.get("message") if isinstance(status, dict) else None
    if isinstance(message, str):
        return message
    return body[:200].decode("utf-8", "replace")


async def _events(response: httpx.Response, path: str) -> AsyncIterator[dict[str, Any]]:
    async for line in response.aiter_lines():
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            log.warning("kubeapi.watch_bad_event path=%s line=%.200s", path, line)
            continue
        if isinstance(event, dict):
            yield event


class KubeApi:
    """An API server connection: ``base_url``, auth headers (fetched per request, so tokens can rotate), TLS.

    :param headers: Called before each request for the auth headers (e.g. ``Authorization``).
    :param verify: An SSL context (CA, client certificate) or ``False`` for no verification.
    """

    def __init__(
        self,
        base_url: str,
        *,
        headers: Callable[[], Mapping[str, str]] | None = None,
        verify: ssl.SSLContext | bool = True,
        request_timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = headers or dict
        self._request_timeout = request_timeout
        self._client = httpx.AsyncClient(base_url=self.base_url, verify=verify, timeout=request_timeout)

    @classmethod
    def from_environment(cls, *, kubeconfig: str | None = None, context: str | None = None) -> KubeApi:
        """In-cluster configuration when running in a Pod, else the kubeconfig (``$KUBECONFIG``, ``~/.kube/config``).

        :param kubeconfig: A kubeconfig file to use instead. :param context: A context of the kubeconfig.

        :raises SourceError: No usable configuration.
        """
        from kubernetes import client, config

        load_incluster: Any = config.load_incluster_config
        load_kubeconfig: Any = config.load_kube_config
        cfg = client.Configuration()
        config_file = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
        try:
            if kubeconfig is None and context is None:
                try:
                    load_incluster(client_configuration=cfg)
                except config.ConfigException:
                    load_kubeconfig(config_file=config_file, client_configuration=cfg)
            else:
                load_kubeconfig(config_file=config_file, context=context, client_configuration=cfg)
        except (config.ConfigException, OSError, ValueError, TypeError) as exc:
            raise SourceError(f"no Kubernetes configuration: {exc}") from exc
        return cls.from_configuration(cfg)

    @classmethod
    def from_configuration(cls, cfg: Any) -> KubeApi:
        """From a ``kubernetes.client.Configuration``: host, bearer token (refreshed), CA, client certificate."""
        if cfg.verify_ssl:
            context = (
                ssl.create_default_context(cafile=cfg.ssl_ca_cert) if cfg.ssl_ca_cert else ssl.create_default_context()
            )
        else:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if cfg.cert_file:
            context.load_cert_chain(cfg.cert_file, cfg.key_file)

        def headers() -> dict[str, str]:
            if cfg.refresh_api_key_hook is not None:
                cfg.refresh_api_key_hook(cfg)
            auth = cfg.auth_settings().get("BearerToken")
            return {"Authorization": auth["value"]} if auth and auth.get("value") else {}

        return cls(cfg.host, headers=headers, verify=context)

    async def get_json(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """GET ``path`` as JSON.

        :raises KubeApiError: A non-2xx answer. :raises httpx.HTTPError: The connection failed.
        """
        response = await self._client.get(path, params=params, headers=self._headers())
        if response.status_code // 100 != 2:
            raise KubeApiError(response.status_code, _error_message(response.content))
        data = response.json()
        if not isinstance(data, dict):
            raise KubeApiError(response.status_code, "expected a JSON object")
        return data

    @contextlib.asynccontextmanager
    async def watch(
        self, path: str, params: Mapping[str, str], *, read_timeout: float
    ) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """A watch on ``path``: entered once the server accepted it; yields its events until the server ends it.

        Events are ``{"type": ..., "object": ...}`` dicts. Cancelling while reading events is safe.

        :raises KubeApiError: The watch was refused. :raises httpx.HTTPError: The connection failed.
        """
        timeout = httpx.Timeout(self._request_timeout, read=read_timeout)
        async with self._client.stream(
            "GET", path, params={**params, "watch": "true"}, headers=self._headers(), timeout=timeout
        ) as response:
            if response.status_code // 100 != 2:
                raise KubeApiError(response.status_code, _error_message(await response.aread()))
            yield _events(response, path)

    async def merge_patch(self, path: str, body: Mapping[str, Any]) -> None:
        """PATCH ``path`` with a JSON merge patch.

        :raises KubeApiError: A non-2xx answer. :raises httpx.HTTPError: The connection failed.
        """
        headers = {**self._headers(), "Content-Type": "application/merge-patch+json"}
        response = await self._client.patch(path, content=json.dumps(body).encode(), headers=headers)
        if response.status_code // 100 != 2:
            raise KubeApiError(response.status_code, _error_message(response.content))

    async def aclose(self) -> None:
        """Close the connections."""
        await self._client.aclose()
