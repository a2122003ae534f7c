"""The exceptions nantian raises, as one tree.

::

    NantianError
    ├── InvalidResource        a Gateway API / core object cannot be used (reported in its status)
    │   └── ParseError         a document is not a valid object of its kind (field path in the message)
    ├── ProtocolError          bytes on a connection break the protocol; ``status_hint`` says what to answer
    │   ├── LocalProtocolError   we were about to break the protocol: a bug of ours
    │   └── RemoteProtocolError  the peer broke it: that connection closes
    ├── ConfigRejected         a snapshot or delta cannot be applied; the last good config keeps serving
    ├── SourceError            a resource source cannot read its input (file, API server)
    └── PluginError            a plugin hook failed; only that request or reconcile fails

Bad input never stops a process: a bad resource becomes a condition, bad bytes close one connection, a
bad snapshot is refused, a bad plugin fails one call.
"""

from __future__ import annotations

__all__ = [
    "ConfigRejected",
    "InvalidResource",
    "LocalProtocolError",
    "NantianError",
    "ParseError",
    "PluginError",
    "ProtocolError",
    "RemoteProtocolError",
    "SourceError",
]


class NantianError(Exception):
    """Base class of every exception nantian raises on purpose."""


class InvalidResource(NantianError):
    """A Gateway API object cannot be used. It is reported in that object's status; the process carries on."""

    def __init__(self, ref: str, reason: str, message: str) -> None:
        super().__init__(f"{ref}: {message}")
        self.ref = ref  #: ``Kind namespace/name``
        self.reason = reason  #: Gateway API condition reason, e.g. ``"InvalidKind"``
        self.message = message


class ParseError(InvalidResource):
    """A document does not parse as its kind. ``errors`` lists every problem as ``message @ field.path``."""

    def __init__(self, ref: str, errors: list[str], *, source: str | None = None) -> None:
        self.errors = errors
        self.source = source  #: ``file:line`` where the document starts, when known
        where = f" ({source})" if source else ""
        super().__init__(ref, "Invalid", "; ".join(errors) + where)


class ProtocolError(NantianError):
    """Bytes on a connection break HTTP (or another protocol). ``status_hint`` is the status to answer."""

    def __init__(self, message: str, *, status_hint: int = 400) -> None:
        super().__init__(message)
        self.status_hint = status_hint


class LocalProtocolError(ProtocolError):
    """We were about to break the protocol: a bug in nantian."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol; the connection is answered (``status_hint``) if possible and closed."""


class ConfigRejected(NantianError):
    """A configuration snapshot or delta cannot be applied. The data plane keeps the last good one."""


class SourceError(NantianError):
    """A resource source cannot read its input."""


class PluginError(NantianError):
    """A plugin hook raised. Only the request or reconcile that called it fails."""

    def __init__(self, plugin: str, hook: str, cause: BaseException) -> None:
        super().__init__(f"plugin {plugin!r} failed in {hook}: {cause!r}")
        self.plugin = plugin
        self.hook = hook
        self.cause = cause
