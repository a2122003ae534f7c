"""Every public package says what it exports, and every exported name exists."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = [
    "nantian",
    "nantian.admin",
    "nantian.errors",
    "nantian.ir",
    "nantian.plugins",
    "nantian.proxy",
    "nantian.resources",
    "nantian.testing",
    "nantian.translate",
    "nantian.xds",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_exist_once(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert len(exported) == len(set(exported)), f"{name}.__all__ repeats a name"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what it does not define: {missing}"


def test_translate_and_ir_import_nothing_that_does_io() -> None:
    import subprocess
    import sys

    code = (
        "import sys, nantian.translate, nantian.ir\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'grpc', 'httpx', 'kubernetes', 'watchfiles', 'asyncio', 'socket', 'nantian'} "
        "and (m.startswith(('grpc', 'httpx', 'kubernetes', 'watchfiles')) or m.startswith(('nantian.proxy', "
        "'nantian.xds', 'nantian.sources', 'nantian.controlplane', 'nantian.admin'))))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "", f"translate/ir pulled in I/O modules: {out.stdout.strip()}"


@pytest.mark.parametrize("package", ["nantian.proxy", "nantian.xds", "nantian.resources", "nantian.ir"])
def test_dependencies_point_one_way(package: str) -> None:
    """xds and proxy know the IR, never the translator; resources and ir know nothing of each other."""
    import subprocess
    import sys

    forbidden = {
        "nantian.proxy": ("nantian.translate", "nantian.resources"),
        "nantian.xds": ("nantian.translate", "nantian.resources"),
        "nantian.resources": ("nantian.ir", "nantian.translate"),
        "nantian.ir": ("nantian.resources", "nantian.translate"),
    }[package]
    code = f"import sys, {package}\nprint(','.join(sorted(m for m in sys.modules if m.startswith({forbidden!r}))))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "", f"{package} imports {out.stdout.strip()}"
