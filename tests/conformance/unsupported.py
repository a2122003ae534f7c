"""Cases nantian does not pass yet, each with the reason. The ONE place that lists them.

A listed case still runs (with shorter timeouts); if it passes, its test fails until it is removed from
here, so this list stays honest.
"""

from __future__ import annotations

UNSUPPORTED: dict[str, str] = {}
"""Case slug (file name without ``.yaml``) -> why nantian does not pass it."""
