"""Status conditions as Kubernetes writes them (without ``lastTransitionTime``: the status writer stamps it)."""

from __future__ import annotations

from typing import Any

__all__ = ["Condition", "condition", "status_bool"]

Condition = dict[str, Any]


def status_bool(value: bool) -> str:
    """``"True"`` or ``"False"``, as condition statuses are written."""
    return "True" if value else "False"


def condition(ctype: str, ok: bool, reason: str, message: str, generation: int) -> Condition:
    """One condition: ``{type, status, reason, message, observedGeneration}``."""
    return {
        "type": ctype,
        "status": status_bool(ok),
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }
