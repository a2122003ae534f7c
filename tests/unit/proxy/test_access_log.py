"""The batched access log file: what it writes, when, and a runtime writing one line per request to it."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest
from http1_harness import Upstream, cluster, free_port, listener, route, running, snapshot

from nantian.proxy.access_log import AccessLogFile

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (.*)$")


async def test_lines_are_kept_until_flush_then_written_with_a_utc_timestamp(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    out = AccessLogFile(str(path), buffer_bytes=1 << 20, flush_interval=3600)
    out.write("access one")
    out.write("access two")
    assert path.read_text() == ""
    out.flush()
    lines = path.read_text().splitlines()
    assert [LINE.fullmatch(line).group(1) for line in lines] == ["access one", "access two"]  # type: ignore[union-attr]
    out.close()
    out.write("after close")  # ignored, no error
    assert len(path.read_text().splitlines()) == 2


async def test_a_full_buffer_is_written_at_once_and_appends_to_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_text("earlier\n")
    out = AccessLogFile(str(path), buffer_bytes=200, flush_interval=3600)
    for i in range(10):
        out.write(f"access line={i:02d} padding=xxxxxxxxxxxxxxxxxxxxxxxx")
    written = path.read_text().splitlines()
    assert written[0] == "earlier"
    assert 1 < len(written) < 11  # some batches written, the tail still in memory
    out.close()
    assert [LINE.fullmatch(x).group(1)[12:14] for x in path.read_text().splitlines()[1:]] == [  # type: ignore[union-attr]
        f"{i:02d}" for i in range(10)
    ]


async def test_a_line_waits_at_most_the_flush_interval(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    out = AccessLogFile(str(path), flush_interval=0.05)
    out.write("access soon")
    assert path.read_text() == ""
    async with asyncio.timeout(5):
        while not path.read_text():  # noqa: ASYNC110 (a file has no event to wait on)
            await asyncio.sleep(0.01)
    assert path.read_text().endswith(" access soon\n")
    out.close()


async def test_runtime_writes_one_line_per_request_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    async with Upstream() as up:
        port = free_port()
        snap = snapshot([listener(port, [route("r", "c")])], [cluster("c", up.port)])
        async with running(snap, access_log=True, access_log_path=str(path)), httpx.AsyncClient() as c:
            for i in range(3):
                assert (await c.get(f"http://127.0.0.1:{port}/logged/{i}")).status_code == 200
            other = await c.get(f"http://127.0.0.1:{port}/x", headers={"host": "unknown.test"})
            assert other.status_code == 200  # the harness route has no hostname: any host is served
        # closing the runtime flushed the file
    lines = [LINE.fullmatch(x).group(1) for x in path.read_text().splitlines()]  # type: ignore[union-attr]
    assert len(lines) == 4
    for i in range(3):
        assert f"route=r backend=c method=GET authority=127.0.0.1:{port} path=/logged/{i} status=200" in lines[i]
        assert "duration_ms=" in lines[i] and "bytes_out=" in lines[i] and "client=127.0.0.1" in lines[i]


def test_without_an_event_loop_lines_are_written_at_once(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    out = AccessLogFile(str(path))
    out.write("access now")
    assert path.read_text().endswith(" access now\n")
    out.close()


async def test_access_log_off_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    async with Upstream() as up:
        port = free_port()
        snap = snapshot([listener(port, [route("r", "c")])], [cluster("c", up.port)])
        async with running(snap, access_log=False, access_log_path=str(path)), httpx.AsyncClient() as c:
            assert (await c.get(f"http://127.0.0.1:{port}/")).status_code == 200
    assert not path.exists()


def test_proxy_workers_get_the_parents_access_log_flag(tmp_path: Path) -> None:
    from nantian.dataplane import app

    path = str(tmp_path / "access.log")
    parent = app.ProxyOptions(node_id="p", workers=2, access_log=path)
    worker = app.options_from(app.build_parser().parse_args(app.worker_arguments(parent, 0, "/tmp/channel")))
    assert worker.access_log == path
    plain = app.options_from(app.build_parser().parse_args(app.worker_arguments(app.ProxyOptions(), 0, "/tmp/c")))
    assert plain.access_log is None


def test_an_unwritable_access_log_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nantian import cli
    from nantian.dataplane import app

    missing_dir = tmp_path / "no" / "such" / "dir" / "access.log"
    for parser, argv in (
        (app.build_parser(), ["--access-log", str(missing_dir)]),
        (cli.build_parser(), ["standalone", "--config-dir", str(tmp_path), "--access-log", str(missing_dir)]),
    ):
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args(argv)
        assert exit_info.value.code == 2
        assert "cannot write the access log" in capsys.readouterr().err
    ok = tmp_path / "access.log"
    assert app.options_from(app.build_parser().parse_args(["--access-log", str(ok)])).access_log == str(ok)
    assert ok.exists()
