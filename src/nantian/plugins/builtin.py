"""nantian's built-in plugins, registered through the same hooks as anyone's.

Each implementation imports its module lazily, so importing the plugin manager stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nantian.plugins.hookspecs import hookimpl

if TYPE_CHECKING:
    from collections.abc import Sequence

    from nantian.sources.base import ResourceSource, StatusSink
    from nantian.sources.kubernetes import KubernetesSource

__all__ = ["nantian_resource_source", "nantian_status_sinks", "nantian_transport"]

_kubernetes_sources: dict[str, KubernetesSource] = {}
"""Kubernetes sources made here, by URL, so their status sink writes at the versions the source found served."""


@hookimpl(trylast=True)
def nantian_resource_source(url: str) -> ResourceSource | None:
    """``files:DIR`` (or a bare directory path): the file source. ``kubernetes[:CONTEXT]``: list/watch an API server.

    :raises SourceError: ``kubernetes`` was asked for but no kubeconfig or in-cluster configuration is usable.
    """
    from pathlib import Path

    if url == "kubernetes" or url.startswith("kubernetes:"):
        from nantian.sources.kubernetes import KubernetesSource

        source = KubernetesSource.from_url(url)
        if source is not None:
            _kubernetes_sources[url] = source
        return source

    from nantian.sources.files import FileSource

    if url.startswith("files:"):
        return FileSource(Path(url.removeprefix("files:")))
    if "://" not in url and ":" not in url and Path(url).is_dir():
        return FileSource(Path(url))
    return None


@hookimpl
def nantian_status_sinks(url: str) -> Sequence[StatusSink] | None:
    """The Kubernetes status subresource writer, for a ``kubernetes`` source made by this plugin."""
    source = _kubernetes_sources.get(url)
    return None if source is None else [source.status_sink()]


if TYPE_CHECKING:
    from nantian.xds.transport import Transport


@hookimpl(trylast=True)
def nantian_transport(name: str) -> Transport | None:
    """``inprocess`` (the store feeds the proxy runtime directly), ``grpc`` (gateway.control.v1) and ``envoy``
    (Envoy v3 ADS, for Envoy data planes)."""
    from nantian.xds.transport import EnvoyTransport, GrpcTransport, InProcessTransport

    if name == "inprocess":
        return InProcessTransport()
    if name == "grpc":
        return GrpcTransport()
    if name == "envoy":
        return EnvoyTransport()
    return None
