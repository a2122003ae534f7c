"""Extension points: pluggy hook specifications and the plugin manager."""

from nantian.plugins.hookspecs import hookimpl, hookspec
from nantian.plugins.manager import get_plugin_manager, make_plugin_manager

__all__ = ["get_plugin_manager", "hookimpl", "hookspec", "make_plugin_manager"]
