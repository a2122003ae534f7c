"""Every nantian hook, one documented function each. Plugins implement them with :data:`hookimpl`.

Plugins are found through the ``nantian`` entry-point group; nantian's own built-ins register the same way
(:mod:`nantian.plugins.builtin`). A hook grows by gaining arguments; an incompatible change gets a ``_v2``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from nantian.ir import HttpRoute, PluginFilter
    from nantian.proxy.filters import HttpFilter
    from nantian.sources.base import ResourceSource, StatusSink
    from nantian.xds.transport import Transport

__all__ = [
    "hookimpl",
    "hookspec",
    "nantian_http_filters",
    "nantian_resource_source",
    "nantian_status_sinks",
    "nantian_transport",
]

hookspec = pluggy.HookspecMarker("nantian")
hookimpl = pluggy.HookimplMarker("nantian")


# --- Resource source: where Gateway API objects come from (one wins) ------------------------------
@hookspec(firstresult=True)
def nantian_resource_source(url: str) -> ResourceSource | None:
    """Return a source serving ``url``, or ``None`` to pass. Stops at the first non-``None`` result.

    :param url: The ``--source`` value: ``files:DIR``, ``kubernetes``, or a scheme of the plugin's own.
    """


# --- Transport: how snapshots reach data planes (one wins) ----------------------------------------
@hookspec(firstresult=True)
def nantian_transport(name: str) -> Transport | None:
    """Return the transport called ``name`` (``inprocess``, ``grpc``, ``envoy``, ...), or ``None`` to pass."""


# --- Proxy HTTP filters (every plugin contributes) ------------------------------------------------
@hookspec
def nantian_http_filters(route: HttpRoute, filter: PluginFilter) -> Sequence[HttpFilter] | None:
    """Return filters for requests that ``route`` matches, for the ExtensionRef ``filter``; or ``None``.

    Called when the proxy compiles a snapshot, once per (route, plugin filter). A filter that raises
    answers 500 for that request and is counted; it never takes the proxy down.

    :param route: The IR route. It is read-only.
    :param filter: The route's plugin filter entry (``filter.name`` says which ExtensionRef target).
    """


# --- Status sinks: where computed statuses go (every plugin contributes) --------------------------
@hookspec
def nantian_status_sinks(url: str) -> Sequence[StatusSink] | None:
    """Return sinks that should receive the statuses computed for the source at ``url``, or ``None``."""
