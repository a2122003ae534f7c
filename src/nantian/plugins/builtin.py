"""nantian's built-in plugins, registered through the same hooks as anyone's.

Each implementation imports its module lazily, so importing the plugin manager stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nantian.plugins.hookspecs import hookimpl

if TYPE_CHECKING:
    from nantian.sources.base import ResourceSource

__all__ = ["nantian_resource_source"]


@hookimpl(trylast=True)
def nantian_resource_source(url: str) -> ResourceSource | None:
    """``files:DIR`` (or a bare directory path): the file source."""
    from pathlib import Path

    from nantian.sources.files import FileSource

    if url.startswith("files:"):
        return FileSource(Path(url.removeprefix("files:")))
    if "://" not in url and ":" not in url and Path(url).is_dir():
        return FileSource(Path(url))
    return None


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
