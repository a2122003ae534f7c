"""The seams of a resource source: :class:`ResourceSource` (objects in) and :class:`StatusSink` (statuses out)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol, runtime_checkable

from nantian.resources import ObjectRef, ResourceSet

__all__ = ["ResourceSource", "StatusSink"]


@runtime_checkable
class ResourceSource(Protocol):
    """Where objects come from (a directory, the Kubernetes API, a plugin's own store)."""

    def updates(self) -> AsyncIterator[ResourceSet]:
        """Every state of the resources: the full initial set first, then a new set after each change.

        A set is complete, never a delta. Documents that failed to parse are in ``ResourceSet.errors``.
        The iterator ends after :meth:`aclose`.
        """
        ...

    async def aclose(self) -> None:
        """Stop watching; the iterator of :meth:`updates` ends. Safe to call more than once."""
        ...


@runtime_checkable
class StatusSink(Protocol):
    """Where computed statuses go (Kubernetes status subresources, the admin API, a file)."""

    async def write(self, statuses: Mapping[ObjectRef, Mapping[str, Any]]) -> None:
        """Record ``statuses`` (each the object's whole ``status`` stanza, Kubernetes-shaped) by ref."""
        ...
