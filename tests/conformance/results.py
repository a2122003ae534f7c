"""What a case run found: every check with its failures, and the per-session collection for the summary."""

from __future__ import annotations

import attrs
import pytest


class StopCase(Exception):
    """Raised by :meth:`CaseResult.add` in fail-fast mode once a check failed."""


@attrs.define
class CaseResult:
    """Every check of a case with its failures (empty: passed).

    With ``fail_fast`` the first failing check ends the case (enough to show an unsupported case still fails).
    """

    checks: list[tuple[str, list[str]]] = attrs.field(factory=list)
    notes: list[str] = attrs.field(factory=list)
    fail_fast: bool = False

    def add(self, label: str, failures: list[str]) -> None:
        self.checks.append((label, failures))
        if failures and self.fail_fast:
            raise StopCase(label)

    @property
    def passed(self) -> int:
        return sum(1 for _, failures in self.checks if not failures)

    @property
    def failures(self) -> list[str]:
        return [f"{label}: {line}" for label, failures in self.checks for line in failures]


RESULTS = pytest.StashKey[dict[str, CaseResult]]()


def record_result(config: pytest.Config, slug: str, result: CaseResult) -> None:
    """Remember ``result`` for the summary printed at the end of the session."""
    config.stash.setdefault(RESULTS, {})[slug] = result
