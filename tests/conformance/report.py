"""Per-case results collected during a session, for the terminal summary."""

from __future__ import annotations

import pytest

from .runner import CaseResult

RESULTS = pytest.StashKey[dict[str, CaseResult]]()


def record_result(config: pytest.Config, slug: str, result: CaseResult) -> None:
    """Remember ``result`` for the summary printed at the end of the session."""
    config.stash.setdefault(RESULTS, {})[slug] = result
