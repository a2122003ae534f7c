"""FileSource against a real temporary directory and real watchfiles (every wait bounded)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nantian.errors import SourceError
from nantian.plugins.manager import make_plugin_manager
from nantian.resources import Namespace, ObjectRef, ResourceSet, Service, UnknownObject, YAMLSyntaxError
from nantian.sources import FileSource, ResourceSource, StatusSink

WAIT = 10.0

NS_A = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n"
SVC = "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: a\nspec:\n  ports:\n  - port: {port}\n"
DEPLOY = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n  namespace: a\n"


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    write(tmp_path / "ns.yaml", NS_A)
    write(tmp_path / "apps" / "svc.yml", SVC.format(name="s1", port=80) + "---\n" + SVC.format(name="s2", port=81))
    write(
        tmp_path / "apps" / "deploy.json",
        '{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "a"}}',
    )
    write(tmp_path / "README.md", "not a manifest: kind: Service\n")
    write(tmp_path / ".hidden" / "x.yaml", SVC.format(name="hidden", port=1))
    return tmp_path


def port_of(rs: ResourceSet, name: str) -> int:
    svc = rs.get(ObjectRef("Service", "a", name))
    assert isinstance(svc, Service)
    return svc.spec.ports[0].port


def test_load_once_reads_every_manifest_recursively(tree: Path) -> None:
    rs = FileSource.load_once(tree)
    assert rs.refs() == (
        ObjectRef("Deployment", "a", "d"),
        ObjectRef("Namespace", "", "a"),
        ObjectRef("Service", "a", "s1"),
        ObjectRef("Service", "a", "s2"),
    )
    assert isinstance(rs.get(ObjectRef("Deployment", "a", "d")), UnknownObject)
    assert isinstance(rs.namespace("a"), Namespace)
    assert port_of(rs, "s2") == 81
    assert rs.raw(ObjectRef("Service", "a", "s1"))["spec"] == {"ports": [{"port": 80}]}
    assert rs.errors == ()


def test_load_once_single_file_and_missing_path(tree: Path) -> None:
    assert FileSource.load_once(tree / "ns.yaml").refs() == (ObjectRef("Namespace", "", "a"),)
    with pytest.raises(SourceError, match="no such file"):
        FileSource.load_once(tree / "missing")


def test_bad_files_are_reported_with_file_and_line_and_the_rest_loads(
    tree: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tree / "bad-object.yaml", NS_A.replace("name: a", "name: b") + "---\n" + SVC.format(name="s3", port="abc"))
    write(tree / "bad-syntax.yaml", NS_A.replace("name: a", "name: c") + "---\nkind: [unclosed\n")
    write(tree / "bad-encoding.yaml", "")
    (tree / "bad-encoding.yaml").write_bytes(b"\xff\xfe\x00garbage")
    with caplog.at_level(logging.WARNING, logger="nantian.sources.files"):
        rs = FileSource.load_once(tree)
    # the good document of bad-object.yaml stays; a file with a syntax error contributes nothing
    assert rs.namespace("b") is not None and rs.namespace("c") is None
    assert port_of(rs, "s1") == 80
    by_source = {e.source: e for e in rs.errors}
    assert f"{tree / 'bad-object.yaml'}:6" in by_source
    assert by_source[f"{tree / 'bad-object.yaml'}:6"].errors == ["expected int, got str @ spec.ports[0].port"]
    syntax = [e for e in rs.errors if isinstance(e, YAMLSyntaxError)]
    assert [e.source.rsplit(":", 1)[0] for e in syntax if e.source] == [str(tree / "bad-syntax.yaml")]
    assert any(str(tree / "bad-encoding.yaml") in (e.source or "") for e in rs.errors)
    assert len(rs.errors) == 3
    assert sum("source.files.parse_failed" in r.getMessage() for r in caplog.records) == 3
    assert all(r.levelno == logging.WARNING for r in caplog.records if "parse_failed" in r.getMessage())


def test_duplicate_refs_across_files_last_file_wins(tree: Path, caplog: pytest.LogCaptureFixture) -> None:
    write(tree / "zz-override.yaml", SVC.format(name="s1", port=9999))
    with caplog.at_level(logging.WARNING, logger="nantian.sources.files"):
        rs = FileSource.load_once(tree)
    assert port_of(rs, "s1") == 9999
    assert any("source.files.duplicate" in r.getMessage() for r in caplog.records)


async def next_set(it: AsyncIterator[ResourceSet]) -> ResourceSet:
    return await asyncio.wait_for(anext(it), WAIT)


async def test_updates_initial_set_then_changes(tree: Path) -> None:
    source = FileSource(tree, debounce_ms=20)
    it = source.updates()
    try:
        first = await next_set(it)
        assert len(first) == 4

        write(tree / "apps" / "svc.yml", SVC.format(name="s1", port=8080) + "---\n" + SVC.format(name="s2", port=81))
        second = await next_set(it)
        assert port_of(second, "s1") == 8080 and port_of(first, "s1") == 80
        assert first.diff(second).changed == (ObjectRef("Service", "a", "s1"),)
        # the unchanged file was not parsed again: its objects are the very same instances
        assert second.get(ObjectRef("Namespace", "", "a")) is first.get(ObjectRef("Namespace", "", "a"))

        write(tree / "new" / "more.yaml", SVC.format(name="s4", port=84))
        third = await next_set(it)
        assert second.diff(third).added == (ObjectRef("Service", "a", "s4"),)

        (tree / "ns.yaml").unlink()
        fourth = await next_set(it)
        assert third.diff(fourth).removed == (ObjectRef("Namespace", "", "a"),)

        write(tree / "apps" / "svc.yml", "kind: [broken\n")
        fifth = await next_set(it)
        assert (
            fifth.get(ObjectRef("Service", "a", "s1")) is None
            and fifth.get(ObjectRef("Service", "a", "s4")) is not None
        )
        assert [(e.source or "").rsplit(":", 1)[0] for e in fifth.errors] == [str(tree / "apps" / "svc.yml")]

        write(tree / "apps" / "svc.yml", SVC.format(name="s1", port=1))
        sixth = await next_set(it)
        assert port_of(sixth, "s1") == 1 and sixth.errors == ()
    finally:
        await source.aclose()
        await it.aclose()


async def test_irrelevant_changes_do_not_yield(tree: Path) -> None:
    source = FileSource(tree, debounce_ms=20)
    it = source.updates()
    try:
        await next_set(it)
        write(tree / "notes.txt", "hello")
        write(tree / "apps" / "svc.yml", (tree / "apps" / "svc.yml").read_text())  # same content, new mtime
        write(tree / "zz.yaml", DEPLOY.replace("name: d", "name: e"))  # the first relevant change
        rs = await next_set(it)
        assert ObjectRef("Deployment", "a", "e") in rs and len(rs) == 5
    finally:
        await source.aclose()
        await it.aclose()


async def test_aclose_ends_the_updates(tree: Path) -> None:
    source = FileSource(tree, debounce_ms=20)
    it = source.updates()
    await next_set(it)
    await source.aclose()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(it), WAIT)
    await source.aclose()  # twice is fine


async def test_updates_on_missing_directory_raises(tmp_path: Path) -> None:
    it = FileSource(tmp_path / "missing").updates()
    with pytest.raises(SourceError):
        await asyncio.wait_for(anext(it), WAIT)


def test_plugin_hook_returns_a_file_source(tree: Path) -> None:
    pm = make_plugin_manager(entry_points=False)
    source = pm.hook.nantian_resource_source(url=f"files:{tree}")
    assert isinstance(source, FileSource) and source.path == tree
    assert isinstance(source, ResourceSource)
    assert isinstance(pm.hook.nantian_resource_source(url=str(tree)), FileSource)
    assert pm.hook.nantian_resource_source(url="nosuch:scheme") is None


def test_status_sink_protocol_is_structural() -> None:
    class Sink:
        async def write(self, statuses: object) -> None:
            return None

    assert isinstance(Sink(), StatusSink)
    assert not isinstance(object(), StatusSink)


async def test_configmap_mount_style_symlink_swap_is_picked_up(tmp_path: Path) -> None:
    """A mounted ConfigMap: files are symlinks through ``..data``, swapped atomically on update."""
    write(tmp_path / "..2024_1" / "svc.yaml", SVC.format(name="s1", port=80))
    (tmp_path / "..data").symlink_to("..2024_1")
    (tmp_path / "svc.yaml").symlink_to("..data/svc.yaml")
    source = FileSource(tmp_path, debounce_ms=20)
    it = source.updates()
    try:
        first = await next_set(it)
        assert first.refs() == (ObjectRef("Service", "a", "s1"),)  # read once, not again through ..data
        write(tmp_path / "..2024_2" / "svc.yaml", SVC.format(name="s1", port=8080))
        (tmp_path / "..data_tmp").symlink_to("..2024_2")
        os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
        second = await next_set(it)
        assert port_of(second, "s1") == 8080
    finally:
        await source.aclose()
        await it.aclose()


async def test_updates_can_be_iterated_again_until_closed(tree: Path) -> None:
    source = FileSource(tree, debounce_ms=20)
    first = source.updates()
    assert len(await next_set(first)) == 4
    await first.aclose()  # the consumer stopped; the source is still open
    second = source.updates()
    assert len(await next_set(second)) == 4
    await source.aclose()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(second), WAIT)
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(source.updates()), WAIT)


async def test_touching_a_bad_file_without_changing_it_does_not_yield(tree: Path) -> None:
    write(tree / "bad.yaml", SVC.format(name="s9", port="x"))
    source = FileSource(tree, debounce_ms=20)
    it = source.updates()
    try:
        first = await next_set(it)
        assert len(first.errors) == 1
        write(tree / "bad.yaml", SVC.format(name="s9", port="x"))
        write(tree / "zz.yaml", DEPLOY.replace("name: d", "name: e"))
        second = await next_set(it)
        assert ObjectRef("Deployment", "a", "e") in second and len(second.errors) == 1
    finally:
        await source.aclose()
        await it.aclose()


async def test_relative_path(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree.parent)
    source = FileSource(Path(tree.name), debounce_ms=20)
    it = source.updates()
    try:
        assert len(await next_set(it)) == 4
        write(tree / "ns.yaml", NS_A + "  labels: {x: y}\n")
        rs = await next_set(it)
        ns = rs.namespace("a")
        assert ns is not None and ns.metadata.labels == {"x": "y"}
    finally:
        await source.aclose()
        await it.aclose()


async def test_unchanged_documents_of_a_changed_file_keep_their_identity(tree: Path) -> None:
    source = FileSource(tree, debounce_ms=20)
    it = source.updates()
    try:
        first = await next_set(it)
        write(
            tree / "apps" / "svc.yml",
            "# edited\n" + SVC.format(name="s1", port=80) + "---\n" + SVC.format(name="s2", port=82),
        )
        second = await next_set(it)
        s1 = ObjectRef("Service", "a", "s1")
        assert second.get(s1) is first.get(s1)  # same content: the very same object
        assert port_of(second, "s2") == 82 and first.diff(second).changed == (ObjectRef("Service", "a", "s2"),)
    finally:
        await source.aclose()
        await it.aclose()
