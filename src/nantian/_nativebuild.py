"""Compile the proxy's hot-path modules with mypyc, in place, and record what was built.

    python -m nantian._nativebuild [--clean]

``make`` runs this after installing (mypy, which carries mypyc, is a test dependency; a C compiler is needed). The
extension modules land next to their sources (``*.so``, not committed) with one shared library,
``nantian/_hotpath__mypyc*.so``; ``nantian/_native.json`` records the sources' hashes so that
:func:`nantian._native.guard` can refuse a build that no longer matches. ``--clean`` removes all of it (pure Python
again). Why mypyc: the modules are already strictly typed, and compiled they cost about two thirds of the CPU per
request (``benchmarks/proxy_hotpath.py``); nothing else changes for the code or its readers.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.machinery
import json
import os
import sys
import time
from pathlib import Path

from nantian._native import MANIFEST, MODULES, SOURCE_ROOT, extension_modules, source_hashes, source_of

__all__ = ["build", "clean"]

GROUP = "nantian._hotpath"


def _artifacts() -> list[Path]:
    """Every extension file of the compiled packages (also of modules no longer in the list) and the shared library."""
    found = [source_of(m).with_name(source_of(m).stem) for m in extension_modules()]
    paths = [
        stem.with_name(stem.name + suffix)
        for stem in found
        for suffix in importlib.machinery.EXTENSION_SUFFIXES
        if stem.with_name(stem.name + suffix).exists()
    ]
    paths.extend(SOURCE_ROOT.joinpath("nantian").glob("_hotpath__mypyc*"))
    return paths


def clean() -> None:
    """Remove the compiled modules and the manifest."""
    for path in [*_artifacts(), MANIFEST]:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def build(jobs: int = 2) -> None:
    """Compile :data:`~nantian._native.MODULES` in place and write the manifest."""
    from mypyc.build import mypycify  # build-time dependency (mypy)
    from setuptools import setup

    clean()
    hashes = source_hashes()
    build_dir = SOURCE_ROOT.parent / "build" / "mypyc"
    cwd = os.getcwd()
    os.chdir(SOURCE_ROOT)  # mypyc names modules by their paths from here
    try:
        paths = [str(source_of(m).relative_to(SOURCE_ROOT)) for m in MODULES]
        extensions = mypycify(paths, opt_level="3", group_name=GROUP, target_dir=str(build_dir))
        setup(
            name="nantian-hotpath",
            ext_modules=extensions,
            script_args=[
                "-q",
                "build_ext",
                "--inplace",
                f"--build-temp={build_dir / 'temp'}",
                f"--build-lib={build_dir / 'lib'}",
                f"-j{jobs}",
            ],
        )
    finally:
        os.chdir(cwd)
    if source_hashes() != hashes:
        clean()
        raise SystemExit("sources changed during the build: nothing kept, run it again")
    MANIFEST.write_text(json.dumps({"modules": hashes, "built": time.strftime("%Y-%m-%dT%H:%M:%SZ")}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", action="store_true", help="remove the compiled modules (pure Python again)")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="parallel C compilations")
    args = parser.parse_args()
    if args.clean:
        clean()
        return
    started = time.monotonic()
    build(args.jobs)
    print(f"nantian: compiled {len(MODULES)} hot-path modules in {time.monotonic() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
