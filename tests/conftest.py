"""Shared pytest configuration: hypothesis profiles and asyncio tests without a plugin."""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Generator

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests on a fresh event loop (no plugin needed; ``@pytest.mark.anyio`` tests go to anyio)."""
    if inspect.iscoroutinefunction(pyfuncitem.obj) and pyfuncitem.get_closest_marker("anyio") is None:
        funcargs = pyfuncitem.funcargs
        kwargs = {name: funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
        with asyncio.Runner() as runner:
            runner.run(pyfuncitem.obj(**kwargs))
        return True
    return None


@pytest.fixture
def anyio_backend() -> Generator[str, None, None]:
    yield "asyncio"
