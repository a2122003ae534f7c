"""One test per Gateway API case (tests/data/gateway-api/cases), run live against nantian."""

from __future__ import annotations

import pytest

from nantian.testing import data_dir, load_case

from .results import record_result
from .runner import CaseRunner, Session, Timing, case_path
from .unsupported import UNSUPPORTED

SLUGS = sorted(p.stem for p in (data_dir() / "cases").glob("*.yaml"))


@pytest.mark.conformance
@pytest.mark.parametrize("slug", SLUGS)
async def test_case(
    slug: str, conformance_session: Session, conformance_timing: Timing, request: pytest.FixtureRequest
) -> None:
    case = load_case(case_path(slug))
    unsupported = slug in UNSUPPORTED
    timing = conformance_timing.scaled(0.3) if unsupported else conformance_timing
    result = await CaseRunner(conformance_session, case, timing, fail_fast=unsupported).run()
    record_result(request.config, slug, result)
    failures = result.failures
    if slug in UNSUPPORTED:
        assert failures, f"{slug} passes now: remove it from tests/conformance/unsupported.py ({UNSUPPORTED[slug]})"
        return
    if failures:
        logs = conformance_session.gateway.log_tail()
        pytest.fail(
            f"{case.name}: {result.passed}/{len(result.checks)} checks pass\n" + "\n".join(failures[:40]) + "\n" + logs
        )
