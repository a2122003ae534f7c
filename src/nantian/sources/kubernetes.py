"""The Kubernetes source: list and watch every kind nantian reads; the status sink writing status subresources.

Each kind is followed by its own task: LIST (the first served version of ``WatchedKind.versions``),
then WATCH from the list's ``resourceVersion`` with bookmarks; ``410 Gone`` relists, a broken
connection retries with exponential backoff. A kind whose CRD is not installed counts as empty
and is listed again every ``retry_missing_s``. The first set is yielded once every kind has been
listed; later sets are built from the previous one with ``with_object``/``without`` after changes
settle for ``debounce_ms``. An object that does not parse is reported in ``ResourceSet.errors``
(``source`` is its API path) and left out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import attrs
import httpx

from nantian.errors import ParseError
from nantian.resources import KubeObject, ObjectRef, ResourceSet, parse_object
from nantian.sources.kubeapi import DEFAULT_KINDS, KubeApi, KubeApiError, WatchedKind

__all__ = ["KubernetesSource", "KubernetesStatusSink"]

log = logging.getLogger(__name__)


@attrs.frozen
class _Listed:
    kind: WatchedKind
    version: str | None
    items: tuple[Mapping[str, Any], ...]


@attrs.frozen
class _Changed:
    kind: WatchedKind
    version: str
    deleted: bool
    doc: Mapping[str, Any]


_Event = _Listed | _Changed


def _ref_of(kind: WatchedKind, doc: Mapping[str, Any]) -> ObjectRef | None:
    metadata = doc.get("metadata")
    if not isinstance(metadata, Mapping) or not isinstance(metadata.get("name"), str):
        return None
    namespace = metadata.get("namespace") if kind.namespaced else ""
    return ObjectRef(kind.kind, namespace if isinstance(namespace, str) else "", metadata["name"])


def _resource_version(doc: Mapping[str, Any]) -> str | None:
    metadata = doc.get("metadata")
    rv = metadata.get("resourceVersion") if isinstance(metadata, Mapping) else None
    return rv if isinstance(rv, str) and rv else None


def _without_version(obj: KubeObject) -> KubeObject:
    """``obj`` without its resourceVersion: a status write bumps it and nothing nantian reads changes."""
    return attrs.evolve(obj, metadata=attrs.evolve(obj.metadata, resource_version=None))  # type: ignore[misc]


class _State:
    """The objects and parse errors the source holds, and the ResourceSet built from them incrementally."""

    def __init__(self) -> None:
        self.rs = ResourceSet.from_objects([])
        self.errors: dict[ObjectRef, ParseError] = {}
        self.errors_changed = False
        self.by_kind: dict[str, set[ObjectRef]] = {}

    def upsert(self, kind: WatchedKind, version: str, doc: Mapping[str, Any]) -> None:
        ref = _ref_of(kind, doc)
        if ref is None:
            log.warning("source.kubernetes.unnamed_object kind=%s", kind.kind)
            return
        full = {"apiVersion": kind.api_version(version), "kind": kind.kind, **doc}
        try:
            obj: KubeObject = parse_object(full)
        except ParseError as exc:
            source = f"{kind.collection_path(version, ref.namespace or None)}/{ref.name}"
            log.warning("source.kubernetes.parse_failed ref=%s error=%s", ref, "; ".join(exc.errors))
            self.errors[ref] = ParseError(exc.ref, exc.errors, source=source)
            self.errors_changed = True
            self._drop(ref)
            return
        if self.errors.pop(ref, None) is not None:
            self.errors_changed = True
        self.by_kind.setdefault(kind.kind, set()).add(obj.ref)
        old = self.rs.get(obj.ref)
        if old is None or _without_version(old) != _without_version(obj):
            self.rs = self.rs.with_object(obj, full)

    def delete(self, kind: WatchedKind, doc: Mapping[str, Any]) -> None:
        ref = _ref_of(kind, doc)
        if ref is None:
            return
        if self.errors.pop(ref, None) is not None:
            self.errors_changed = True
        self._drop(ref)

    def _drop(self, ref: ObjectRef) -> None:
        self.by_kind.get(ref.kind, set()).discard(ref)
        self.rs = self.rs.without(ref)

    def replace(self, event: _Listed) -> None:
        old = set(self.by_kind.get(event.kind.kind, set()))
        old |= {ref for ref in self.errors if ref.kind == event.kind.kind}
        seen: set[ObjectRef] = set()
        for doc in event.items:
            ref = _ref_of(event.kind, doc)
            if ref is not None and event.version is not None:
                seen.add(ref)
                self.upsert(event.kind, event.version, doc)
        for ref in old - seen:
            if self.errors.pop(ref, None) is not None:
                self.errors_changed = True
            self._drop(ref)

    def apply(self, event: _Event) -> None:
        if isinstance(event, _Listed):
            self.replace(event)
        elif event.deleted:
            self.delete(event.kind, event.doc)
        else:
            self.upsert(event.kind, event.version, event.doc)

    def snapshot(self) -> ResourceSet:
        if self.errors_changed:
            self.rs = self.rs.with_errors(self.errors[ref] for ref in sorted(self.errors))
            self.errors_changed = False
        return self.rs


async def _sleep(seconds: float, stop: asyncio.Event) -> None:
    """Sleep, waking early when ``stop`` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _finish(tasks: Sequence[asyncio.Task[None]], reading: set[asyncio.Task[Any]], grace_s: float = 5.0) -> None:
    """End stopped tasks: those reading watch events are cancelled; the others end by themselves.

    A task cancelled in the middle of a TLS handshake leaks its socket (httpcore), so a request in
    flight is given ``grace_s`` to end before it is cancelled too.
    """
    for task in tasks:
        if task in reading:
            task.cancel()
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=grace_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class KubernetesSource:
    """Objects from a Kubernetes API server, listed and watched.

    :param api: The connection (see :meth:`KubeApi.from_environment`).
    :param kinds: What to watch (default :data:`~nantian.sources.kubeapi.DEFAULT_KINDS`).
    :param namespace: Watch namespaced kinds in this namespace only (cluster-scoped kinds are always watched).
    """

    def __init__(
        self,
        api: KubeApi,
        *,
        kinds: Sequence[WatchedKind] = DEFAULT_KINDS,
        namespace: str | None = None,
        debounce_ms: int = 100,
        watch_timeout_s: int = 300,
        backoff_max_s: float = 30.0,
        retry_missing_s: float = 30.0,
    ) -> None:
        self.api = api
        self.kinds = tuple(kinds)
        self.namespace = namespace
        self.debounce_ms = debounce_ms
        self.watch_timeout_s = watch_timeout_s
        self.backoff_max_s = backoff_max_s
        self.retry_missing_s = retry_missing_s
        self.versions: dict[str, str] = {}
        """The version served for each kind, as found by listing."""
        self._closed = False
        self._stops: set[asyncio.Event] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._reading: set[asyncio.Task[Any]] = set()  # tasks blocked reading watch events: safe to cancel

    @classmethod
    def from_url(cls, url: str) -> KubernetesSource | None:
        """``kubernetes`` (in-cluster or default kubeconfig), ``kubernetes:CONTEXT``; ``None`` for other URLs.

        :raises SourceError: No usable Kubernetes configuration.
        """
        if url == "kubernetes":
            return cls(KubeApi.from_environment())
        if url.startswith("kubernetes:"):
            return cls(KubeApi.from_environment(context=url.removeprefix("kubernetes:")))
        return None

    def status_sink(self) -> KubernetesStatusSink:
        """A sink writing status subresources at the versions this source found served."""
        return KubernetesStatusSink(self.api, kinds=self.kinds, versions=self.versions)

    async def _list(self, kind: WatchedKind) -> tuple[str | None, tuple[Mapping[str, Any], ...], str | None]:
        """(version, items, resourceVersion) of the first served version; (None, (), None) if none is."""
        for version in kind.versions:
            items: list[Mapping[str, Any]] = []
            params: dict[str, str] = {"limit": "500"}
            try:
                while True:
                    page = await self.api.get_json(kind.collection_path(version, self.namespace), params)
                    page_items = page.get("items") or []
                    items.extend(item for item in page_items if isinstance(item, Mapping))
                    metadata = page.get("metadata") or {}
                    token = metadata.get("continue") if isinstance(metadata, Mapping) else None
                    if not token:
                        rv = metadata.get("resourceVersion") if isinstance(metadata, Mapping) else None
                        return version, tuple(items), rv if isinstance(rv, str) else None
                    params = {"limit": "500", "continue": str(token)}
            except KubeApiError as exc:
                if exc.status != 404:
                    raise
        return None, (), None

    async def _follow(self, kind: WatchedKind, queue: asyncio.Queue[_Event], stop: asyncio.Event) -> None:
        """List then watch ``kind`` until ``stop``, putting events on ``queue``."""
        me = asyncio.current_task()
        assert me is not None
        reading = self._reading
        backoff = min(0.5, self.backoff_max_s)
        rv: str | None = None
        version: str | None = None
        while not stop.is_set():
            try:
                if rv is None or version is None:
                    version, items, rv = await self._list(kind)
                    queue.put_nowait(_Listed(kind, version, items))
                    if version is None:
                        log.warning("source.kubernetes.kind_not_served kind=%s versions=%s", kind.kind, kind.versions)
                        await _sleep(self.retry_missing_s, stop)
                        continue
                    self.versions[kind.kind] = version
                    log.info("source.kubernetes.listed kind=%s version=%s objects=%d", kind.kind, version, len(items))
                params = {
                    "allowWatchBookmarks": "true",
                    "timeoutSeconds": str(self.watch_timeout_s),
                    **({"resourceVersion": rv} if rv else {}),
                }
                path = kind.collection_path(version, self.namespace)
                started = asyncio.get_running_loop().time()
                if stop.is_set():
                    return
                async with self.api.watch(path, params, read_timeout=self.watch_timeout_s + 30) as events:
                    if stop.is_set():  # stopped while connecting: leave without being cancelled
                        return
                    reading.add(me)
                    try:
                        async for event in events:
                            backoff = min(0.5, self.backoff_max_s)
                            kind_of_event, obj = event.get("type"), event.get("object")
                            if not isinstance(obj, Mapping):
                                continue
                            if kind_of_event == "ERROR":
                                if obj.get("code") == 410:
                                    log.info("source.kubernetes.relist kind=%s reason=gone", kind.kind)
                                    rv = None
                                    break
                                raise KubeApiError(int(obj.get("code") or 500), str(obj.get("message")))
                            rv = _resource_version(obj) or rv
                            if kind_of_event in ("ADDED", "MODIFIED", "DELETED"):
                                queue.put_nowait(_Changed(kind, version, kind_of_event == "DELETED", obj))
                    finally:
                        reading.discard(me)
                if rv is not None and asyncio.get_running_loop().time() - started < 1.0:
                    await _sleep(backoff, stop)  # a server ending watches at once must not make us spin
                    backoff = min(backoff * 2, self.backoff_max_s)
            except (KubeApiError, httpx.HTTPError, ValueError) as exc:
                if stop.is_set():
                    return
                if isinstance(exc, KubeApiError) and exc.status == 410:
                    rv = None
                log.warning("source.kubernetes.watch_failed kind=%s error=%s retry_in=%.1fs", kind.kind, exc, backoff)
                await _sleep(backoff, stop)
                backoff = min(backoff * 2, self.backoff_max_s)

    async def updates(self) -> AsyncIterator[ResourceSet]:
        """The full set once every kind is listed, then a new set after each settled batch of changes."""
        queue: asyncio.Queue[_Event] = asyncio.Queue()
        stop = asyncio.Event()
        self._stops.add(stop)
        if self._closed:
            stop.set()
        tasks = [
            asyncio.create_task(self._follow(kind, queue, stop), name=f"nantian-kube-{kind.kind}")
            for kind in self.kinds
        ]
        self._tasks.update(tasks)
        closed = asyncio.create_task(stop.wait())
        state = _State()
        try:
            listed: set[str] = set()
            while len(listed) < len(self.kinds):
                event = await self._next(queue, closed)
                if event is None:
                    return
                state.apply(event)
                if isinstance(event, _Listed):
                    listed.add(event.kind.kind)
            rs = state.snapshot()
            log.info("source.kubernetes.synced objects=%d errors=%d", len(rs), len(rs.errors))
            yield rs
            while True:
                event = await self._next(queue, closed)
                if event is None:
                    return
                state.apply(event)
                await asyncio.sleep(self.debounce_ms / 1000)
                while not queue.empty():
                    state.apply(queue.get_nowait())
                new = state.snapshot()
                if new is not rs:
                    rs = new
                    yield rs
        finally:
            stop.set()
            closed.cancel()
            await _finish(tasks, self._reading)
            self._tasks.difference_update(tasks)
            self._stops.discard(stop)

    async def _next(self, queue: asyncio.Queue[_Event], closed: asyncio.Task[Any]) -> _Event | None:
        getter = asyncio.ensure_future(queue.get())
        done, _ = await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
        if getter in done:
            return getter.result()
        getter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await getter
        return None

    async def aclose(self) -> None:
        """Stop watching (the iterator of :meth:`updates` ends) and close the API connection."""
        self._closed = True
        for stop in self._stops:
            stop.set()
        await _finish(list(self._tasks), self._reading)  # no request may outlive the connection pool
        await self.api.aclose()


class KubernetesStatusSink:
    """Writes each object's ``status`` with a JSON merge patch of its status subresource.

    Kinds not in ``kinds`` (core kinds, unknown kinds) are skipped. A failed write is logged (WARNING)
    and does not stop the others; an object deleted meanwhile (404) is skipped quietly.

    :param versions: The version each kind is served at, when known (a source's :attr:`KubernetesSource.versions`).
        For a kind not in it, the versions of its :class:`WatchedKind` are tried in order and the first that
        takes the write is remembered.
    """

    def __init__(
        self,
        api: KubeApi,
        *,
        kinds: Sequence[WatchedKind] = DEFAULT_KINDS,
        versions: Mapping[str, str] | None = None,
    ) -> None:
        self.api = api
        self._kinds = {kind.kind: kind for kind in kinds if kind.group == "gateway.networking.k8s.io"}
        self._versions = versions if versions is not None else {}
        self._learned: dict[str, str] = {}

    async def write(self, statuses: Mapping[ObjectRef, Mapping[str, Any]]) -> None:
        """Patch the status of every object in ``statuses`` (in ref order)."""
        for ref in sorted(statuses):
            kind = self._kinds.get(ref.kind)
            if kind is None:
                continue
            known = self._versions.get(ref.kind) or self._learned.get(ref.kind)
            for version in (known,) if known else kind.versions:
                try:
                    await self.api.merge_patch(
                        kind.status_path(version, ref.namespace, ref.name), {"status": dict(statuses[ref])}
                    )
                except KubeApiError as exc:
                    if exc.status == 404:
                        continue  # deleted meanwhile, or this version is not served: try the next
                    log.warning("sink.kubernetes.write_failed ref=%s error=%s", ref, exc)
                except httpx.HTTPError as exc:
                    log.warning("sink.kubernetes.write_failed ref=%s error=%r", ref, exc)
                else:
                    self._learned[ref.kind] = version
                break
            else:
                log.debug("sink.kubernetes.gone ref=%s", ref)
