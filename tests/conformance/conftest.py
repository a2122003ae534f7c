"""Fixtures of the live conformance runner: one echo process and one nantian deployment per session."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import pytest

from nantian.testing import CertificateFactory, load_case

from .backends import PodPlanner
from .harness import EchoProcess, Gateway
from .results import RESULTS
from .runner import Session, Timing, case_path
from .unsupported import UNSUPPORTED


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nantian conformance")
    group.addoption(
        "--conformance-mode",
        choices=("standalone", "split"),
        default=os.environ.get("NANTIAN_CONFORMANCE_MODE", "standalone"),
        help="run cases against `nantian standalone` or `nantian controller` + `nantian proxy`",
    )
    group.addoption(
        "--conformance-timeout-scale",
        type=float,
        default=float(os.environ.get("NANTIAN_CONFORMANCE_TIMEOUT_SCALE", "1")),
        help="multiply every conformance wait by this factor",
    )


def _option(config: pytest.Config, name: str, env: str, default: str) -> str:
    try:
        return str(config.getoption(name))
    except ValueError:  # this conftest was not an initial one: its options are unknown
        return os.environ.get(env, default)


@pytest.fixture(scope="session")
def conformance_session(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    """Plans echo pods for the selected cases, starts the echo process and nantian, stops both at the end."""
    config = request.config
    mode = _option(config, "conformance_mode", "NANTIAN_CONFORMANCE_MODE", "standalone")
    slugs = sorted(
        {
            item.callspec.params["slug"]
            for item in request.session.items
            if hasattr(item, "callspec") and "slug" in item.callspec.params
        }
    )
    work_dir = tmp_path_factory.mktemp("conformance")
    octet = random.randrange(40, 238, 2)
    factory = CertificateFactory()
    planner = PodPlanner(work_dir / "echo-files", octet=octet + 1)
    placeholders = {"PLACEHOLDER_USABLE_ADDRS": f"127.{octet}.200.10", "PLACEHOLDER_UNUSABLE_ADDRS": "198.51.100.77"}
    gateway = Gateway(mode, work_dir, address_pool=f"127.{octet}.0.0/16")
    echo = EchoProcess([], work_dir)
    session = Session(
        gateway=gateway,
        planner=planner,
        factory=factory,
        request_log=echo.request_log,
        work_dir=work_dir,
        placeholders=placeholders,
    )
    session.prepare([load_case(case_path(slug)) for slug in slugs])
    echo = EchoProcess(planner.pods, work_dir)
    try:
        echo.start()
        gateway.start([])
        yield session
    finally:
        gateway.stop()
        echo.stop()


@pytest.fixture
def conformance_timing(request: pytest.FixtureRequest) -> Timing:
    scale = float(_option(request.config, "conformance_timeout_scale", "NANTIAN_CONFORMANCE_TIMEOUT_SCALE", "1"))
    return Timing().scaled(scale)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    results = config.stash.get(RESULTS, {})
    if not results:
        return
    terminalreporter.section("conformance: checks passed per case")
    passed_cases = 0
    for slug, result in sorted(results.items()):
        total = len(result.checks)
        ok = total > 0 and result.passed == total
        passed_cases += ok
        mark = "PASS" if ok else ("unsupported" if slug in UNSUPPORTED else "FAIL")
        terminalreporter.write_line(f"{mark:11} {result.passed:3}/{total:<3} {slug}")
    terminalreporter.write_line(f"{passed_cases} of {len(results)} cases pass every check")
