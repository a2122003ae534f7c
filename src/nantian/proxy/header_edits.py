"""Header and path edits of the proxy's per-request path (compiled with the hot path; re-exported by
:mod:`nantian.proxy.filters`, where plugin authors find them)."""

from __future__ import annotations

from nantian.ir import HeaderModifier, PathModifier, PathModifierType
from nantian.proxy.exchange import Headers

__all__ = ["RawHeaderEdit", "apply_header_modifier", "raw_header_edit", "replace_path"]


class RawHeaderEdit:
    """A :class:`~nantian.ir.HeaderModifier` as lines appended to an encoded header block (``name: value\r\n``...).

    Exact for the messages that have none of the names it sets or removes (``add`` always appends a line, which
    means the same as appending to the existing value): check with :meth:`applies_to` (decoded headers) or
    :meth:`applies_to_block` (an encoded block) first; otherwise use :func:`apply_header_modifier`. This lets the
    proxy forward the received header bytes on routes that add headers, the common case, without decoding them.
    """

    __slots__ = ("_block_names", "lines", "names")

    def __init__(self, mod: HeaderModifier) -> None:
        touched = {h.name.lower() for h in mod.set} | {n.lower() for n in mod.remove}
        self.names: tuple[str, ...] = tuple(sorted(touched))
        self._block_names = tuple(b"\n" + n.encode("latin-1") + b":" for n in self.names)
        self.lines = "".join(f"{h.name.lower()}: {h.value}\r\n" for h in (*mod.set, *mod.add)).encode("latin-1")
        """The lines to append (set, then add, as :func:`apply_header_modifier` orders them)."""

    def applies_to(self, headers: Headers) -> bool:
        """Whether appending :attr:`lines` is exact for ``headers`` (lower-case names)."""
        names = self.names
        if names:
            for k, _ in headers:
                if k in names:
                    return False
        return True

    def applies_to_block(self, block: bytes) -> bool:
        """Whether appending :attr:`lines` is exact for the encoded header ``block``."""
        if self._block_names:
            low = b"\n" + block.lower()
            for n in self._block_names:
                if n in low:
                    return False
        return True


def raw_header_edit(mod: HeaderModifier | None) -> RawHeaderEdit | None:
    """``mod`` as a :class:`RawHeaderEdit`, or ``None`` (no modifier, or values that are not latin-1)."""
    if mod is None:
        return None
    try:
        return RawHeaderEdit(mod)
    except UnicodeEncodeError:
        return None


def apply_header_modifier(headers: Headers, mod: HeaderModifier) -> None:
    """Apply ``mod`` to ``headers`` in place: remove, then set (replace every value), then add (append)."""
    if mod.remove:
        drop = {n.lower() for n in mod.remove}
        headers[:] = [h for h in headers if h[0] not in drop]
    for h in mod.set:
        name = h.name.lower()
        idx = [i for i, (k, _) in enumerate(headers) if k == name]
        if idx:
            headers[idx[0]] = (name, h.value)
            for i in reversed(idx[1:]):
                del headers[i]
        else:
            headers.append((name, h.value))
    for h in mod.add:
        headers.append((h.name.lower(), h.value))


def replace_path(path: str, modifier: PathModifier, matched_prefix: str | None) -> str:
    """The new path (no query) for a rewrite or redirect ``modifier``.

    ``PREFIX`` replaces ``matched_prefix`` (whole segments, trailing slash ignored) with the value:
    ``/foo/bar`` with ``/foo`` -> ``/x`` is ``/x/bar``; with ``/foo`` -> ``/`` it is ``/bar``.
    """
    if modifier.type is PathModifierType.FULL or matched_prefix is None:
        return modifier.value
    prefix = matched_prefix.rstrip("/")
    rest = path[len(prefix) :] if path.startswith(prefix) else path
    replacement = modifier.value.rstrip("/")
    new = replacement + rest if rest.startswith("/") or not rest else f"{replacement}/{rest}"
    return new or "/"
