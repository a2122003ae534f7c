"""The IR codec: the only home of cattrs hooks for IR types.

Every IR value unstructures to plain JSON-able data with camelCase keys and structures back exactly;
unknown keys are refused, so a data plane never half-reads a snapshot from a newer schema.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

__all__ = ["SCHEMA_VERSION", "configure", "converter", "dumps", "loads", "make_converter"]

SCHEMA_VERSION = "nantian.ir/v1"
"""Tag carried by every encoded IR resource; bumped on an incompatible change of the IR types."""

T = TypeVar("T")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _overrides(cls: type) -> dict[str, Any]:
    return {a.name: override(rename=_camel(a.name), omit_if_default=False) for a in attrs.fields(cls)}


def configure(conv: cattrs.Converter) -> None:
    """Install nantian's IR hooks on ``conv``: camelCase wire names for every attrs class."""

    def structure_factory(cls: type) -> Callable[[Any, Any], Any]:
        return make_dict_structure_fn(cls, conv, _cattrs_forbid_extra_keys=True, **_overrides(cls))

    def unstructure_factory(cls: type) -> Callable[[Any], Any]:
        return make_dict_unstructure_fn(cls, conv, **_overrides(cls))

    conv.register_structure_hook_factory(attrs.has, structure_factory)
    conv.register_unstructure_hook_factory(attrs.has, unstructure_factory)


def make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)
    configure(conv)
    return conv


converter = make_converter()
"""The shared IR converter. Use :func:`dumps`/:func:`loads` for bytes."""


def _not_json(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_CANONICAL: Callable[[Any, int], Any] | None = (
    json.encoder.c_make_encoder(  # type: ignore[attr-defined]
        None, _not_json, json.encoder.encode_basestring_ascii, None, ":", ",", True, False, True
    )
    if json.encoder.c_make_encoder is not None  # type: ignore[attr-defined]
    else None
)
"""One C encoder for every call, producing ``json.dumps(value, sort_keys=True, separators=(",", ":"))``:
``json.dumps`` with options builds an encoder per call, which dominates for small values. Unstructured IR
has no cycles, so it runs without the circular-reference check."""


def dumps(value: object) -> bytes:
    """Canonical JSON bytes of an IR value: sorted keys, no spaces. Equal values give equal bytes."""
    data = converter.unstructure(value)
    if _CANONICAL is None:
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return "".join(_CANONICAL(data, 0)).encode()


def loads(data: bytes | str, cls: type[T]) -> T:
    """Structure JSON bytes into ``cls``. Raises :class:`cattrs.BaseValidationError` on a bad document."""
    return converter.structure(json.loads(data), cls)
