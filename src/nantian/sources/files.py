"""The file source: every ``*.yaml``/``*.yml``/``*.json`` under a directory, watched with watchfiles.

A file that fails is reported (``ResourceSet.errors``, with ``file:line``, and a WARNING log) and the
rest keeps working:

- a document that is not a valid object is dropped; the other documents of the file are kept;
- a file that is not YAML at all (syntax error) or cannot be read contributes no objects, even those
  before the error, until it is fixed: half a file is more surprising than none of it.

Only changed files are parsed again. Paths under a directory whose name starts with ``.`` are skipped
(``..data`` of a mounted ConfigMap holds the same files as their symlinks).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import watchfiles

from nantian.errors import ParseError, SourceError
from nantian.resources import KubeObject, ObjectRef, ResourceSet, YAMLSyntaxError, parse_documents

__all__ = ["SUFFIXES", "FileSource"]

log = logging.getLogger(__name__)

SUFFIXES = frozenset({".yaml", ".yml", ".json"})
"""File name endings the source reads."""

_Signature = tuple[int, int, int]


@attrs.frozen
class _FileState:
    signature: _Signature
    objects: tuple[tuple[KubeObject, Mapping[str, Any]], ...]
    errors: tuple[ParseError, ...]

    def content_key(self) -> tuple[object, ...]:
        """What the file contributes, comparable (ParseErrors compare by identity, their text does not)."""
        return (self.objects, tuple((e.ref, tuple(e.errors), e.source) for e in self.errors))


def _signature(path: Path) -> _Signature | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _manifest_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(
            Path(dirpath, name)
            for name in sorted(filenames)
            if not name.startswith(".") and Path(name).suffix in SUFFIXES
        )
    return found


def _parse_file(path: Path, signature: _Signature, previous: _FileState | None) -> _FileState:
    """Parse ``path``; objects equal to ones ``previous`` held are kept as those very instances.

    Keeping identity lets consumers that memoize by object identity (the incremental translator)
    skip every unchanged document of a changed file.
    """
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        error = ParseError(source, [f"cannot read file: {exc}"], source=f"{source}:1")
        log.warning("source.files.parse_failed source=%s ref=%s error=%s", error.source, error.ref, error.errors[0])
        return _FileState(signature, (), (error,))
    objects, errors = parse_documents(text, source)
    if any(isinstance(e, YAMLSyntaxError) for e in errors):
        objects = []
    if previous is not None and previous.objects:
        known = {obj.ref: obj for obj, _ in previous.objects}
        objects = [(_same(known.get(obj.ref), obj), doc) for obj, doc in objects]
    for error in errors:
        log.warning(
            "source.files.parse_failed source=%s ref=%s error=%s", error.source, error.ref, "; ".join(error.errors)
        )
    return _FileState(signature, tuple(objects), tuple(errors))


def _same(old: KubeObject | None, new: KubeObject) -> KubeObject:
    return old if old is not None and old == new else new


class FileSource:
    """Objects from the manifest files under ``path`` (a directory, or one file), re-read on change.

    :param path: The directory (searched recursively) or a single file.
    :param debounce_ms: Changes closer together than this are handled as one update.
    """

    def __init__(self, path: Path, *, debounce_ms: int = 100) -> None:
        self.path = Path(path)
        self.debounce_ms = debounce_ms
        self._files: dict[Path, _FileState] = {}
        self._stops: set[asyncio.Event] = set()
        self._closed = False

    @staticmethod
    def load_once(path: Path) -> ResourceSet:
        """Read every manifest under ``path`` once (for ``nantian translate``).

        :raises SourceError: ``path`` does not exist or is not readable.
        """
        source = FileSource(path)
        source._refresh(())
        return source._resource_set()

    def _refresh(self, touched: Iterable[Path]) -> list[Path]:
        """Re-read new, changed and ``touched`` files; forget deleted ones. Returns the paths that changed."""
        if not self.path.exists():
            raise SourceError(f"{self.path}: no such file or directory")
        forced = {os.path.abspath(p) for p in touched}
        try:
            present = _manifest_files(self.path)
        except OSError as exc:
            raise SourceError(f"{self.path}: cannot list: {exc}") from exc
        present_set = set(present)
        changed: list[Path] = [p for p in self._files if p not in present_set]
        for p in changed:
            del self._files[p]
        for p in present:
            signature = _signature(p)
            if signature is None:
                continue
            old = self._files.get(p)
            if old is None or old.signature != signature or os.path.abspath(p) in forced:
                state = _parse_file(p, signature, old)
                if old is None or old.content_key() != state.content_key():
                    changed.append(p)
                self._files[p] = state
        return changed

    def _resource_set(self) -> ResourceSet:
        objects: list[KubeObject] = []
        raw: dict[ObjectRef, Mapping[str, Any]] = {}
        errors: list[ParseError] = []
        seen: dict[ObjectRef, Path] = {}
        for path in sorted(self._files):
            state = self._files[path]
            errors.extend(state.errors)
            for obj, doc in state.objects:
                ref = obj.ref
                if ref in seen:
                    log.warning("source.files.duplicate ref=%s first=%s again=%s", ref, seen[ref], path)
                seen[ref] = path
                objects.append(obj)
                raw[ref] = doc
        return ResourceSet.from_objects(objects, raw=raw, errors=errors)

    async def updates(self) -> AsyncIterator[ResourceSet]:
        """The full set now, then a new set whenever a manifest file changes, until :meth:`aclose`.

        The watch starts before the first read, so a change made at any time after this call is seen.

        :raises SourceError: ``path`` does not exist (at start).
        """
        if self._closed:
            return
        if not self.path.exists():
            raise SourceError(f"{self.path}: no such file or directory")
        stop = asyncio.Event()
        self._stops.add(stop)
        queue: asyncio.Queue[set[tuple[watchfiles.Change, str]] | None] = asyncio.Queue()
        task = asyncio.create_task(self._watch(queue, stop), name=f"nantian-files-watch:{self.path}")
        await asyncio.sleep(0)  # let the watch task register its inotify watches before the first read
        try:
            await asyncio.to_thread(self._refresh, ())
            rs = self._resource_set()
            log.info("source.files.loaded path=%s objects=%d errors=%d", self.path, len(rs), len(rs.errors))
            yield rs
            while (changes := await queue.get()) is not None:
                touched = {Path(p) for _, p in changes}
                while not queue.empty():  # batches that piled up while the consumer was busy
                    more = queue.get_nowait()
                    if more is None:
                        queue.put_nowait(None)
                        break
                    touched.update(Path(p) for _, p in more)
                try:
                    changed = await asyncio.to_thread(self._refresh, touched)
                except SourceError as exc:
                    log.warning("source.files.unreadable path=%s error=%s", self.path, exc)
                    continue
                if not changed:
                    continue
                rs = self._resource_set()
                log.info(
                    "source.files.changed files=%s objects=%d errors=%d",
                    ",".join(str(p) for p in changed),
                    len(rs),
                    len(rs.errors),
                )
                yield rs
        finally:
            stop.set()
            self._stops.discard(stop)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _watch(
        self, queue: asyncio.Queue[set[tuple[watchfiles.Change, str]] | None], stop: asyncio.Event
    ) -> None:
        watch_root = self.path if self.path.is_dir() else self.path.parent
        step = max(1, min(50, self.debounce_ms))
        try:
            async for changes in watchfiles.awatch(watch_root, debounce=self.debounce_ms, step=step, stop_event=stop):
                queue.put_nowait(changes)
        except Exception:  # the boundary of the watch task: log and end the updates
            log.error("source.files.watch_failed path=%s", self.path, exc_info=True)
        finally:
            queue.put_nowait(None)

    async def aclose(self) -> None:
        """Stop watching for good: every :meth:`updates` iterator ends after its current step, later ones at once."""
        self._closed = True
        for stop in self._stops:
            stop.set()
