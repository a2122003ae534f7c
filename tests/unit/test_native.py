"""The compiled hot-path modules: used only when they match their sources, never mixed with stale ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nantian.proxy  # noqa: F401  (runs the guard as every user of the proxy does)
from nantian import _native

PROBE = """
import json, sys
{setup}
import nantian.proxy
from nantian.proxy import router
from nantian.proxy.router import RouteTable
from nantian import ir, _native
table = RouteTable([(ir.HttpMatch(path=ir.PathMatch(type=ir.PathMatchType.PREFIX, value="/a")), "a")])
found = table.match("GET", "/a/b", "", [])
print(json.dumps({{"file": router.__file__, "compiled": _native.compiled(), "match": found}}))
"""


def _probe(setup: str = "", **env: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(setup=setup)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout.splitlines()[-1])
    return result


def test_this_process_uses_the_compiled_modules_exactly_when_a_matching_build_exists() -> None:
    built = _native.MANIFEST.exists() and json.loads(_native.MANIFEST.read_text())["modules"] == _native.source_hashes()
    assert _native.compiled() == (built and os.environ.get("NANTIAN_PURE_PYTHON") != "1")


def test_pure_python_on_request() -> None:
    result = _probe(NANTIAN_PURE_PYTHON="1")
    assert str(result["file"]).endswith("router.py") and result["compiled"] is False
    assert result["match"] == "a"


def test_a_build_that_does_not_match_the_sources_is_not_used(tmp_path: Path) -> None:
    manifest = tmp_path / "_native.json"
    hashes = {m: "0" * 64 for m in _native.MODULES}  # as if every source had changed since the build
    manifest.write_text(json.dumps({"modules": hashes}))
    setup = f"import pathlib, nantian._native as n; n.MANIFEST = pathlib.Path({str(manifest)!r})"
    result = _probe(setup)
    assert str(result["file"]).endswith("router.py") and result["compiled"] is False
    assert result["match"] == "a"


def test_hashes_cover_every_compiled_module(tmp_path: Path) -> None:
    hashes = _native.source_hashes()
    assert set(hashes) == set(_native.MODULES) and all(len(h) == 64 for h in hashes.values())
    assert all(_native.source_of(m).is_file() for m in _native.MODULES)


def test_plugin_facing_interfaces_can_be_subclassed_whether_compiled_or_not() -> None:
    """mypyc makes a Protocol class a trait no interpreted class may inherit from: the interfaces users implement
    must stay in modules that are not compiled."""
    from nantian.proxy import exchange, filters, interfaces

    protocols = [
        filters.HttpFilter,
        exchange.ExchangeHandler,
        exchange.ResponseSink,
        exchange.BodySource,
        exchange.ByteStream,
        exchange.EndpointPool,
        exchange.UpstreamResponse,
    ]
    for interface in protocols:
        subclass = type(f"My{interface.__name__}", (interface,), {})  # a TypeError if the interface were a trait
        assert interface in subclass.__mro__
    for module in (exchange, filters, interfaces):
        assert module.__name__ not in _native.MODULES and str(module.__file__).endswith(".py")


def test_a_plugin_filter_subclassing_the_protocol_is_served() -> None:
    from nantian.proxy.filters import FilterRequest, FilterResponse, HttpFilter, LocalResponse

    class Deny(HttpFilter):
        async def on_request(self, request: FilterRequest) -> LocalResponse | None:
            return LocalResponse(403, body=b"no")

        async def on_response(self, request: FilterRequest, response: FilterResponse) -> None:
            return None

    import asyncio

    request = FilterRequest("GET", "/", "a", "http", [], None, "r")
    answer = asyncio.run(Deny().on_request(request))
    assert answer is not None and answer.status == 403


def test_extensions_the_build_did_not_make_are_not_used(tmp_path: Path) -> None:
    """A module dropped from the compiled set keeps a stale extension file until the next build: not loaded."""
    manifest = tmp_path / "_native.json"
    hashes = _native.source_hashes()
    del hashes["nantian.proxy.router"]  # as if the build had not made this one
    manifest.write_text(json.dumps({"modules": hashes}))
    setup = f"import pathlib, nantian._native as n; n.MANIFEST = pathlib.Path({str(manifest)!r})"
    result = _probe(setup)
    assert str(result["file"]).endswith("router.py") and result["compiled"] is False
