"""From YAML/JSON documents to typed objects: :func:`parse_object`, :func:`parse_documents`.

Parsing applies what the API server would: CRD defaults (as attrs defaults of the classes), ``null``
fields dropped, ``stringData`` merged into a Secret's ``data``, and ``default`` as the namespace of a
namespaced object that names none (as ``kubectl apply`` does). Bad data raises
:class:`~nantian.errors.ParseError` and nothing else.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import attrs
import cattrs
import yaml

from nantian.errors import ParseError
from nantian.resources._convert import WrongType, converter, error_lines, json_type
from nantian.resources.core import Secret
from nantian.resources.kinds import KubeObject, UnknownObject, class_for
from nantian.resources.meta import ObjectMeta, ObjectRef

__all__ = ["YAMLSyntaxError", "parse_documents", "parse_object"]

MAX_DOCUMENT_NODES = 1_000_000
"""Most values a document may hold once YAML aliases are expanded."""

_STRUCTURE_ERRORS = (cattrs.BaseValidationError, WrongType, ValueError, TypeError, KeyError)


@attrs.frozen
class _MetadataOnly:
    metadata: ObjectMeta


class YAMLSyntaxError(ParseError):
    """The text is not YAML (or JSON) at all; documents after the error could not be read."""


class _Loader(yaml.CSafeLoader):
    """CSafeLoader without the timestamp resolver: ``creationTimestamp`` stays the string written."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.CSafeLoader.yaml_implicit_resolvers.items()
}


def _drop_nulls(value: Any) -> Any:
    """Remove ``null`` map values everywhere, as the API server prunes them before defaulting."""
    if isinstance(value, Mapping):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _describe(doc: Mapping[str, Any], cls: type[Any] | None) -> str:
    kind = doc.get("kind") if isinstance(doc.get("kind"), str) else "<unknown kind>"
    metadata = doc.get("metadata")
    name, namespace = "<unnamed>", ""
    if isinstance(metadata, Mapping):
        if isinstance(metadata.get("name"), str):
            name = metadata["name"]
        if isinstance(metadata.get("namespace"), str):
            namespace = metadata["namespace"]
    if cls is not None:
        namespace = (namespace or "default") if cls.NAMESPACED else ""
    return str(ObjectRef(str(kind), namespace, name))


def _prepare(cls: type[Any], doc: dict[str, Any]) -> dict[str, Any]:
    metadata = doc.get("metadata")
    if isinstance(metadata, Mapping):
        metadata = dict(metadata)
        if cls.NAMESPACED:
            metadata.setdefault("namespace", "default")
            if metadata["namespace"] == "":
                metadata["namespace"] = "default"
        else:
            metadata.pop("namespace", None)
        doc["metadata"] = metadata
    if cls is Secret and isinstance(doc.get("stringData"), Mapping):
        data = dict(doc["data"]) if isinstance(doc.get("data"), Mapping) else {}
        for key, value in doc["stringData"].items():
            data[key] = base64.b64encode(value.encode()).decode("ascii") if isinstance(value, str) else value
        doc["data"] = data
    return doc


def parse_object(doc: Mapping[str, Any]) -> KubeObject:
    """Parse one Kubernetes object.

    Kinds (or ``apiVersion`` versions) nantian does not use become :class:`UnknownObject`.

    :raises ParseError: ``errors`` holds one ``message @ field.path`` line per problem.
    """
    if not isinstance(doc, Mapping):
        raise ParseError("<document>", [f"expected object, got {json_type(doc)} @ <root>"])
    ref = _describe(doc, None)
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    problems = [
        f"expected non-empty string @ {field}"
        for field, value in (("apiVersion", api_version), ("kind", kind))
        if not isinstance(value, str) or not value
    ]
    if problems:
        raise ParseError(ref, problems)
    assert isinstance(api_version, str) and isinstance(kind, str)
    cls = class_for(api_version, kind)
    ref = _describe(doc, cls)
    try:
        clean = _drop_nulls(doc)
        if cls is None:
            meta = converter.structure(clean, _MetadataOnly).metadata
            return UnknownObject(api_version=api_version, kind=kind, metadata=meta, body=doc)
        obj: KubeObject = converter.structure(_prepare(cls, clean), cls)
    except cattrs.BaseValidationError as exc:
        raise ParseError(ref, error_lines(exc)) from None
    except RecursionError:
        raise ParseError(ref, ["document nested too deeply @ <root>"]) from None
    except _STRUCTURE_ERRORS as exc:
        raise ParseError(ref, [f"{exc} @ <root>"]) from None
    return obj


class _Oversized(Exception):
    pass


def _oversized(node: yaml.Node | None) -> str | None:
    """Why a document must not be constructed (aliases that expand past :data:`MAX_DOCUMENT_NODES`, or
    refer to themselves), or ``None``. Kubernetes objects never need either; a "billion laughs" would."""
    if node is None:
        return None
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(n: yaml.Node) -> int:
        key = id(n)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise _Oversized("document refers to itself (recursive YAML alias)")
        open_nodes.add(key)
        total = 1
        if isinstance(n, yaml.SequenceNode):
            total += sum(size(child) for child in n.value)
        elif isinstance(n, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in n.value)
        if total > MAX_DOCUMENT_NODES:
            raise _Oversized(f"document too large: more than {MAX_DOCUMENT_NODES} values once aliases are expanded")
        open_nodes.discard(key)
        sizes[key] = total
        return total

    try:
        size(node)
    except _Oversized as exc:
        return str(exc)
    return None


def _items_lines(node: yaml.Node | None, count: int, default: int) -> list[int]:
    lines = [default] * count
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if getattr(key, "value", None) == "items" and isinstance(value, yaml.SequenceNode):
                for i, item in enumerate(value.value[:count]):
                    lines[i] = item.start_mark.line + 1
    return lines


def _add(
    data: Any,
    node: yaml.Node | None,
    line: int,
    source: str,
    objects: list[tuple[KubeObject, Mapping[str, Any]]],
    errors: list[ParseError],
) -> None:
    if data is None:
        return
    if isinstance(data, Mapping) and isinstance(data.get("kind"), str) and data["kind"].endswith("List"):
        items = data.get("items")
        if isinstance(items, list) and class_for(str(data.get("apiVersion", "")), data["kind"]) is None:
            for item, item_line in zip(items, _items_lines(node, len(items), line), strict=True):
                _add(item, None, item_line, source, objects, errors)
            return
    try:
        objects.append((parse_object(data), data))
    except ParseError as exc:
        errors.append(ParseError(exc.ref, exc.errors, source=f"{source}:{line}"))


def parse_documents(text: str, source: str) -> tuple[list[tuple[KubeObject, Mapping[str, Any]]], list[ParseError]]:
    """Parse a multi-document YAML stream (or a JSON document), ``kind: List`` documents expanded.

    ``*.json`` sources, and text that starts with ``{`` and is valid JSON, are read as JSON (tabs and all).

    Each :class:`ParseError` carries ``source`` = ``file:line`` of its document. A YAML syntax error
    (:class:`YAMLSyntaxError`) ends the stream: documents before it are returned, none after.

    :param source: Name of the input in messages (a file path, ``-`` for stdin).
    """
    objects: list[tuple[KubeObject, Mapping[str, Any]]] = []
    errors: list[ParseError] = []
    is_json_file = source.endswith(".json")
    if is_json_file or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except RecursionError:
            errors.append(YAMLSyntaxError(source, ["document nested too deeply"], source=f"{source}:1"))
            return objects, errors
        except ValueError as exc:
            if is_json_file:
                line = getattr(exc, "lineno", 1)
                errors.append(YAMLSyntaxError(source, [f"invalid JSON: {exc}"], source=f"{source}:{line}"))
                return objects, errors
            # not JSON after all (YAML flow style, several documents): read it as YAML below
        else:
            _add(data, None, 1, source, objects, errors)
            return objects, errors
    loader = _Loader(text)
    line = 1
    may_alias = "&" in text  # no anchor, no alias: nothing can expand or refer to itself
    try:
        while loader.check_node():
            node = loader.get_node()
            line = node.start_mark.line + 1 if node is not None else line
            problem = _oversized(node) if may_alias else None
            if problem is not None:
                errors.append(ParseError(f"document at {source}:{line}", [problem], source=f"{source}:{line}"))
                continue
            _add(loader.construct_document(node), node, line, source, objects, errors)
    except RecursionError:
        errors.append(YAMLSyntaxError(source, ["document nested too deeply"], source=f"{source}:{line}"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        err_line = mark.line + 1 if mark is not None else line
        problem = getattr(exc, "problem", None) or str(exc)
        errors.append(YAMLSyntaxError(source, [f"invalid YAML: {problem}"], source=f"{source}:{err_line}"))
    finally:
        loader.dispose()
    return objects, errors
