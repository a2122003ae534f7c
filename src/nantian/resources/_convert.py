"""The resources codec: the only home of cattrs hooks for Kubernetes objects.

Field names are the snake_case of the Kubernetes names (``from`` is ``from_``; ``clusterIP`` is
``cluster_ip``). Unknown fields are ignored, like a lenient client; a value of the wrong type is an error
located by its field path (``expected int, got str @ spec.listeners[0].port``). Scalars are strict: YAML's
``port: "80"`` or ``name: 123`` is refused, as the API server refuses it.
"""

from __future__ import annotations

import base64
import binascii
import collections.abc
from collections.abc import Callable, Mapping
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin

import attrs
import cattrs
from cattrs.cols import homogenous_tuple_structure_factory, mapping_structure_factory
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.v import format_exception

from nantian.resources.meta import FrozenMap

__all__ = ["WrongType", "converter", "error_lines", "json_type", "make_converter", "wire_name"]

_SPECIAL_NAMES = {
    "cluster_ip": "clusterIP",
    "cluster_ips": "clusterIPs",
    "external_ips": "externalIPs",
    "load_balancer_ip": "loadBalancerIP",
    "well_known_ca_certificates": "wellKnownCACertificates",
}


class WrongType(ValueError):
    """A value of the wrong JSON type; the message says what was expected and what was found."""


def wire_name(name: str) -> str:
    """The Kubernetes (camelCase) name of an attribute: ``section_name`` -> ``sectionName``, ``from_`` -> ``from``."""
    if name in _SPECIAL_NAMES:
        return _SPECIAL_NAMES[name]
    head, *rest = name.rstrip("_").split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def json_type(value: object) -> str:
    """The JSON name of ``value``'s type, for messages: ``null``, ``bool``, ``object``, ``list``, ``int``..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "list"
    return type(value).__name__


def _structure_int(value: Any, _: type) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise WrongType(f"expected int, got {json_type(value)}")


def _structure_str(value: Any, _: type) -> str:
    if isinstance(value, str):
        return value
    raise WrongType(f"expected string, got {json_type(value)}")


def _structure_bool(value: Any, _: type) -> bool:
    if isinstance(value, bool):
        return value
    raise WrongType(f"expected bool, got {json_type(value)}")


def _structure_bytes(value: Any, _: type) -> bytes:
    if not isinstance(value, str):
        raise WrongType(f"expected base64 string, got {json_type(value)}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise WrongType("expected base64 string, got invalid base64") from None


def _structure_int_or_str(value: Any, _: Any) -> int | str:
    if isinstance(value, str):
        return value
    return _structure_int(value, int)


def _structure_int_or_str_or_none(value: Any, _: Any) -> int | str | None:
    return None if value is None else _structure_int_or_str(value, int)


def _is_tuple(t: Any) -> bool:
    return get_origin(t) is tuple


def _is_mapping(t: Any) -> bool:
    return get_origin(t) in (collections.abc.Mapping, dict)


def _is_optional_union(t: Any) -> bool:
    return get_origin(t) in (Union, UnionType) and NoneType in get_args(t)


def configure(conv: cattrs.Converter) -> None:
    """Install the resources hooks on ``conv``."""

    def attrs_structure(cls: type) -> Callable[[Any, Any], Any]:
        overrides: dict[str, Any] = {a.name: override(rename=wire_name(a.name)) for a in attrs.fields(cls)}
        inner: Callable[[Any, Any], Any] = make_dict_structure_fn(cls, conv, **overrides)

        def structure(value: Any, t: Any) -> Any:
            if not isinstance(value, Mapping):
                raise WrongType(f"expected object, got {json_type(value)}")
            return inner(value, t)

        return structure

    def attrs_unstructure(cls: type) -> Callable[[Any], Any]:
        overrides: dict[str, Any] = {
            a.name: override(rename=wire_name(a.name), omit_if_default=a.default is None) for a in attrs.fields(cls)
        }
        return make_dict_unstructure_fn(cls, conv, **overrides)

    def tuple_structure(t: Any) -> Callable[[Any, Any], Any]:
        inner = homogenous_tuple_structure_factory(t, conv)

        def structure(value: Any, tt: Any) -> Any:
            if not isinstance(value, list | tuple):
                raise WrongType(f"expected list, got {json_type(value)}")
            return inner(value, tt)

        return structure

    def mapping_structure(t: Any) -> Callable[[Any, Any], Any]:
        inner = mapping_structure_factory(t, conv, structure_to=dict)

        def structure(value: Any, tt: Any) -> Any:
            if not isinstance(value, Mapping):
                raise WrongType(f"expected object, got {json_type(value)}")
            return FrozenMap(inner(value, tt))

        return structure

    def optional_structure(t: Any) -> Callable[[Any, Any], Any]:
        members = [a for a in get_args(t) if a is not NoneType]
        inner_t: Any = members[0] if len(members) == 1 else Union[tuple(members)]  # noqa: UP007
        handler = conv.get_structure_hook(inner_t)

        def structure(value: Any, _: Any) -> Any:
            return None if value is None else handler(value, inner_t)

        return structure

    conv.register_structure_hook_factory(attrs.has, attrs_structure)
    conv.register_unstructure_hook_factory(attrs.has, attrs_unstructure)
    conv.register_structure_hook_factory(_is_tuple, tuple_structure)
    conv.register_structure_hook_factory(_is_mapping, mapping_structure)
    conv.register_structure_hook_factory(_is_optional_union, optional_structure)
    conv.register_structure_hook(int, _structure_int)
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook(bool, _structure_bool)
    conv.register_structure_hook(bytes, _structure_bytes)
    conv.register_structure_hook(int | str, _structure_int_or_str)
    conv.register_structure_hook(int | str | None, _structure_int_or_str_or_none)
    conv.register_unstructure_hook(bytes, lambda b: base64.b64encode(b).decode("ascii"))
    conv.register_unstructure_hook(FrozenMap, lambda m: {k: conv.unstructure(v) for k, v in m.items()})


def make_converter() -> cattrs.Converter:
    """A converter with the resources hooks (detailed validation on, extra keys ignored)."""
    conv = cattrs.Converter(detailed_validation=True)
    configure(conv)
    return conv


converter = make_converter()
"""The shared resources converter."""


def _error_lines(exc: BaseException, path: str) -> list[str]:
    if isinstance(exc, cattrs.IterableValidationError):
        items, without = exc.group_exceptions()
        lines: list[str] = []
        for sub, note in items:
            index = note.index
            lines.extend(
                _error_lines(sub, f"{path}[{index}]") if _is_group(sub) else [_line(sub, note.type, f"{path}[{index}]")]
            )
        lines.extend(_line(sub, None, path) for sub in without)
        return lines
    if isinstance(exc, cattrs.ClassValidationError):
        attrs_errors, without_notes = exc.group_exceptions()
        lines = []
        for sub, attr_note in attrs_errors:
            sub_path = f"{path}.{wire_name(attr_note.name)}" if path else wire_name(attr_note.name)
            lines.extend(_error_lines(sub, sub_path) if _is_group(sub) else [_line(sub, attr_note.type, sub_path)])
        lines.extend(_line(sub, None, path) for sub in without_notes)
        return lines
    return [_line(exc, None, path)]


def _is_group(exc: BaseException) -> bool:
    return isinstance(exc, cattrs.IterableValidationError | cattrs.ClassValidationError)


def _line(exc: BaseException, type_: Any, path: str) -> str:
    message = str(exc) if isinstance(exc, WrongType) else format_exception(exc, type_)
    return f"{message} @ {path or '<root>'}"


def error_lines(exc: BaseException) -> list[str]:
    """``message @ field.path`` lines for a structuring failure, with Kubernetes field names.

    Paths are relative to the document root: ``spec.listeners[0].port``, ``data[tls.crt]``.
    """
    return _error_lines(exc, "")
