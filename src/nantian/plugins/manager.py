"""The plugin manager: nantian's hooks, the built-ins, and every plugin of the ``nantian`` entry-point group."""

from __future__ import annotations

import logging

import pluggy

from nantian.plugins import hookspecs

__all__ = ["PROJECT", "get_plugin_manager", "make_plugin_manager"]

log = logging.getLogger(__name__)

PROJECT = "nantian"
_manager: pluggy.PluginManager | None = None


def make_plugin_manager(*, entry_points: bool = True) -> pluggy.PluginManager:
    """A new manager with nantian's hook specs, the built-ins and (``entry_points``) installed plugins."""
    from nantian.plugins import builtin

    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(builtin, name="builtin")  # the entry point of the same name is then skipped
    if entry_points:
        count = pm.load_setuptools_entrypoints(PROJECT)
        log.debug("plugins.loaded count=%s", count)
    pm.check_pending()
    return pm


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide manager, made on first use."""
    global _manager
    if _manager is None:
        _manager = make_plugin_manager()
    return _manager
