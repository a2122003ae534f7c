"""Golden tests: ``pytest tests/golden --update-golden`` rewrites the expected outputs for review."""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/golden/**/*.out.yaml from the current output instead of comparing",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    """True with ``--update-golden`` (or ``NANTIAN_UPDATE_GOLDEN=1`` when pytest runs from the repository root,
    where this conftest's option is not registered)."""
    try:
        flag = bool(request.config.getoption("--update-golden"))
    except ValueError:
        flag = False
    return flag or os.environ.get("NANTIAN_UPDATE_GOLDEN") == "1"
