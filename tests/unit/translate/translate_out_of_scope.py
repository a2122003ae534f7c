"""Gateway API cases whose status expectations nantian's translator does not meet, each with the reason.

This is the only such list. ``test_translate_cases.py`` asserts that each case here still fails (so the list
shrinks as soon as one starts passing) and that every other case passes.
"""

from __future__ import annotations

OUT_OF_SCOPE: dict[str, str] = {}
