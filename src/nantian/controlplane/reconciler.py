"""The reconcile loop: resource-set updates in, translations out.

It owns no transport and no data plane: whoever runs it passes ``publish``, called with each new
:class:`Reconciled` value (standalone: apply to the in-process proxy; controller: publish to the xDS store).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import attrs

from nantian.controlplane.status import StatusBook
from nantian.controlplane.view import kube_objects
from nantian.ir import Snapshot
from nantian.resources import ObjectRef, ResourceSet
from nantian.sources.base import ResourceSource, StatusSink
from nantian.translate import TranslateOptions, Translation, Translator

__all__ = ["Reconciled", "Reconciler"]

log = logging.getLogger(__name__)

_THREAD_THRESHOLD = 2000
"""Resource sets larger than this are translated in a worker thread so the event loop keeps serving."""


@attrs.frozen(kw_only=True)
class Reconciled:
    """One reconcile's outcome: the input, the translation, and the statuses with transition times."""

    resources: ResourceSet
    translation: Translation
    statuses: Mapping[ObjectRef, Mapping[str, Any]]
    seconds: float

    @property
    def snapshot(self) -> Snapshot:
        return self.translation.snapshot

    def objects(self) -> list[dict[str, Any]]:
        return kube_objects(self.resources, self.statuses)


Publish = Callable[[Reconciled], Awaitable[None]]


class Reconciler:
    """Translates every update of ``source`` and hands the result to ``publish`` and the status sinks.

    Translation is incremental (:class:`~nantian.translate.Translator`): work for objects that did not change
    since the last update is reused, with output identical to a from-scratch ``translate()``.
    """

    def __init__(
        self,
        source: ResourceSource,
        options: TranslateOptions,
        publish: Publish,
        *,
        sinks: Sequence[StatusSink] = (),
        book: StatusBook | None = None,
    ) -> None:
        self._source = source
        self._translator = Translator(options)
        self._publish = publish
        self._sinks = tuple(sinks)
        self._book = book or StatusBook()
        self.latest: Reconciled | None = None
        self.reconciles = 0
        self.failures = 0

    async def run(self) -> None:
        """Reconcile every update until the source ends or the task is cancelled."""
        async for resources in self._source.updates():
            await self.reconcile(resources)

    async def reconcile(self, resources: ResourceSet) -> Reconciled | None:
        started = time.perf_counter()
        try:
            if len(resources) > _THREAD_THRESHOLD:
                translation = await asyncio.to_thread(self._translator.translate, resources)
            else:
                translation = self._translator.translate(resources)
        except Exception:  # translate raises only for our own bugs: keep the last good result serving
            self.failures += 1
            log.exception("reconcile.failed objects=%s", len(resources))
            return None
        statuses = self._book.stamp(translation.statuses)
        result = Reconciled(
            resources=resources,
            translation=translation,
            statuses=statuses,
            seconds=time.perf_counter() - started,
        )
        self.latest = result
        self.reconciles += 1
        log.info(
            "reconcile.done objects=%s errors=%s version=%s seconds=%.3f",
            len(resources),
            len(resources.errors),
            translation.snapshot.version,
            result.seconds,
        )
        await self._publish(result)
        for sink in self._sinks:
            try:
                await sink.write(statuses)
            except Exception:  # a failing sink fails only its own write
                log.exception("status.sink_failed sink=%r", sink)
        return result
