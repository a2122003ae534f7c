"""A route translated once, independent of the listeners it attaches to: IR routes with precedence keys,
plus what its status must say about references and unsupported values."""

from __future__ import annotations

import attrs

from nantian.ir import HttpRoute, WeightedCluster
from nantian.translate.filters import Problem
from nantian.translate.precedence import MatchKey

__all__ = ["CompiledHttp", "CompiledStream", "Problems"]


@attrs.define
class Problems:
    """The first ``Accepted`` and the first ``ResolvedRefs`` problem of a route, and the Services it uses."""

    accepted: Problem | None = None
    resolved: Problem | None = None
    services: set[tuple[str, str]] = attrs.field(factory=set)

    def add(self, problem: Problem) -> None:
        """Keep ``problem`` if it is the first of its condition."""
        if problem.condition == "Accepted":
            if self.accepted is None:
                self.accepted = problem
        elif self.resolved is None:
            self.resolved = problem


@attrs.frozen
class CompiledHttp:
    """IR HTTP routes of one HTTPRoute/GRPCRoute, each with its precedence key."""

    entries: tuple[tuple[MatchKey, HttpRoute], ...]
    problems: Problems


@attrs.frozen
class CompiledStream:
    """Backends of one TCP/UDP/TLS route (all rules' backends together)."""

    backends: tuple[WeightedCluster, ...]
    problems: Problems
