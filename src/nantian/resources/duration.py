"""Gateway API durations (GEP-2257): ``"10s"``, ``"1h2m3.5s"``, ``"500ms"``."""

from __future__ import annotations

import re

__all__ = ["parse_duration"]

_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:h|ms|m|s))+")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(text: str) -> float:
    """Seconds in a Gateway API duration.

    :raises ValueError: ``text`` is not a duration (empty, a unit missing or unknown, a sign).
    """
    if not isinstance(text, str) or not _WHOLE.fullmatch(text):
        raise ValueError(f"invalid duration {text!r}: expected e.g. '1h2m3.5s' or '500ms'")
    return sum(float(num) * _UNIT_SECONDS[unit] for num, unit in _PART.findall(text))
