"""Host-name patterns for TLS: SNI matching and its precedence (exact, then the longest wildcard, then ``*``)."""

from __future__ import annotations

__all__ = ["hostname_matches", "normalize", "specificity"]


def normalize(name: str) -> str:
    return name.strip().rstrip(".").lower()


def hostname_matches(pattern: str, name: str) -> bool:
    """Whether ``name`` matches ``pattern``: exact, ``*`` (any), or ``*.suffix`` (one or more labels before it)."""
    pattern, name = normalize(pattern), normalize(name)
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        suffix = pattern[1:]
        return name.endswith(suffix) and len(name) > len(suffix)
    return pattern == name


def specificity(pattern: str) -> tuple[int, int]:
    """Sort key: exact names beat wildcards, longer wildcards beat shorter ones."""
    p = normalize(pattern)
    return (0 if p.startswith("*") else 1, len(p))
