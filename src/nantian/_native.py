"""Compiled hot-path modules: which they are, and loading them only while they match their sources.

The proxy's per-request modules (:data:`MODULES`) are plain, fully typed Python. ``python -m nantian._nativebuild``
(run by ``make``) compiles them with mypyc into C extensions next to the sources, which Python then imports instead
of the ``.py`` files (about 1.5x less CPU per proxied request), and records each source's hash in ``_native.json``.

An extension built from an older source must never run: :func:`guard` (called by :mod:`nantian.proxy` before any
of them is imported) compares the hashes and, if any source changed since the build, or ``NANTIAN_PURE_PYTHON=1`` is
set, makes all of them load from source (they call each other natively: compiled and interpreted ones cannot be
mixed). Without a build there is nothing to guard: everything is Python.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

__all__ = ["MANIFEST", "MODULES", "SOURCE_ROOT", "compiled", "extension_modules", "guard", "source_hashes"]

log = logging.getLogger(__name__)

MODULES = (
    "nantian.proxy._http1",
    "nantian.proxy.access_log",
    "nantian.proxy.asyncio_http1",
    "nantian.proxy.balancer",
    "nantian.proxy.bodies",
    "nantian.proxy.clusters",
    "nantian.proxy.deadlines",
    "nantian.proxy.fastpath",
    "nantian.proxy.header_edits",
    "nantian.proxy.handler",
    "nantian.proxy.http1_response",
    "nantian.proxy.messages",
    "nantian.proxy.metrics",
    "nantian.proxy.route_plan",
    "nantian.proxy.router",
    "nantian.proxy.upstream_http1",
)
"""The modules compiled by ``python -m nantian._nativebuild`` (one mypyc group: they call each other natively).

Not here on purpose: modules whose classes users subclass. mypyc makes a ``typing.Protocol`` class a "trait" that
interpreted classes cannot inherit from, so the plugin-facing interfaces (:mod:`nantian.proxy.exchange`,
:mod:`nantian.proxy.filters`) stay interpreted; the values and helpers they re-export live in compiled modules
(:mod:`nantian.proxy.messages`, :mod:`nantian.proxy.header_edits`)."""

SOURCE_ROOT = Path(__file__).resolve().parent.parent
"""The directory holding the ``nantian`` package (``src/`` in a checkout)."""
MANIFEST = Path(__file__).resolve().with_name("_native.json")
"""``{"modules": {name: sha256 of its source}}`` as of the last build."""


def source_of(module: str) -> Path:
    return SOURCE_ROOT.joinpath(*module.split(".")).with_suffix(".py")


def source_hashes(modules: Sequence[str] = MODULES) -> dict[str, str]:
    """The sha256 of each module's ``.py`` source."""
    return {m: hashlib.sha256(source_of(m).read_bytes()).hexdigest() for m in modules}


def _built() -> dict[str, str] | None:
    try:
        data = json.loads(MANIFEST.read_text())
        modules = data["modules"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return modules if isinstance(modules, dict) else None


def extension_modules() -> set[str]:
    """Every module of the compiled packages that has an extension file next to its source (built, or stale)."""
    found: set[str] = set()
    for package in {m.rpartition(".")[0] for m in MODULES}:
        directory = SOURCE_ROOT.joinpath(*package.split("."))
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            for path in directory.glob("*" + suffix):
                stem = path.name[: -len(suffix)]
                if path.with_name(stem + ".py").exists():
                    found.add(f"{package}.{stem}")
    return found


class _SourceOnly(importlib.abc.MetaPathFinder):
    """Finds the listed modules as ``.py`` files, ahead of the extension modules next to them."""

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return None
        source = source_of(fullname)
        return importlib.util.spec_from_file_location(fullname, source) if source.exists() else None


_installed: _SourceOnly | None = None


def guard() -> bool:
    """Let the compiled modules load only if they match their sources; returns whether they will be used."""
    global _installed
    if _installed is not None:
        return False
    built = _built()
    extensions = extension_modules()
    if os.environ.get("NANTIAN_PURE_PYTHON") == "1":
        reason = "NANTIAN_PURE_PYTHON=1"
    elif built is None:
        if not extensions:
            return False
        reason = f"extension modules without {MANIFEST.name}"
    else:
        try:
            current = source_hashes()
        except OSError:  # an installed copy without sources: the build is what there is
            return True
        if built == current and extensions <= set(built):
            return True
        changed = sorted(m for m in {*MODULES, *built} if built.get(m) != current.get(m))
        extra = sorted(extensions - set(built))
        what = f"sources changed since the build ({', '.join(changed)})" if changed else f"stale extensions ({extra})"
        reason = f"{what}: run make (or python -m nantian._nativebuild)"
        log.warning("native.stale %s; using the pure-Python modules", reason)
    _installed = _SourceOnly(frozenset({*MODULES, *extensions}))
    sys.meta_path.insert(0, _installed)
    log.debug("native.disabled reason=%s", reason)
    return False


def compiled() -> bool:
    """Whether the hot-path modules in use are the compiled ones."""
    module = sys.modules.get("nantian.proxy.router")
    return module is not None and not (module.__file__ or "").endswith(".py")
