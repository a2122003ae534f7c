"""Stream listener options: the command-line flags of `nantian proxy` and `nantian standalone`, their validation, and
that the values reach the runtime (a short --stream-idle-timeout closes an idle TCPRoute connection in standalone)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml

from nantian import cli
from nantian.controlplane.standalone import StandaloneOptions, run_standalone
from nantian.dataplane import app
from nantian.proxy import RuntimeOptions
from nantian.proxy.stream_options import StreamOptions, stream_arguments, stream_options_from
from nantian.proxy.udp_proxy import UdpOptions

TIMEOUT = 10.0
ADDRESS = "127.0.0.15"
"""The Gateway's address (the address pool leaves 127.0.0.1 out)."""
FLAGS = [
    "--stream-idle-timeout", "30",
    "--tls-hello-timeout", "2.5",
    "--udp-session-timeout", "5",
    "--udp-max-sessions", "10",
]  # fmt: skip
CUSTOM = StreamOptions(idle_timeout=30.0, hello_timeout=2.5, udp=UdpOptions(session_timeout=5.0, max_sessions=10))


def test_proxy_flags_reach_proxy_options_and_the_runtime() -> None:
    options = app.options_from(app.build_parser().parse_args(["--node-id", "p1", *FLAGS]))
    assert options.stream == CUSTOM
    plane = app.DataPlane(attrs.evolve(options, admin_port=0))
    assert plane.runtime.options.stream == CUSTOM
    # what the proxy's admin API shows under /api/v1/nodes: the stream counters too
    (node,) = app._DataPlaneState(plane).nodes()
    counters = node["lastStatus"]["counters"]
    assert {"stream_connections", "stream_errors", "udp_sessions", "udp_sessions_active"} <= set(counters)


def test_defaults_are_the_documented_ones() -> None:
    assert app.options_from(app.build_parser().parse_args([])).stream == StreamOptions()
    args = cli.build_parser().parse_args(["standalone", "--config-dir", "x"])
    defaults = stream_options_from(args)
    assert defaults == StreamOptions() == RuntimeOptions().stream
    assert (defaults.idle_timeout, defaults.hello_timeout) == (3600.0, 10.0)
    assert (defaults.udp.session_timeout, defaults.udp.max_sessions) == (60.0, 4096)


def test_standalone_flags() -> None:
    args = cli.build_parser().parse_args(["standalone", "--config-dir", "x", *FLAGS])
    assert stream_options_from(args) == CUSTOM
    # other commands do not define them (and do not import nantian.proxy to do so)
    with pytest.raises(SystemExit):
        cli.build_parser(stream_flags=False).parse_args(["standalone", "--config-dir", "x", *FLAGS])


BAD = [
    ("--stream-idle-timeout", "0", "greater than 0"),
    ("--stream-idle-timeout", "-5", "greater than 0"),
    ("--stream-idle-timeout", "forever", "not a number of seconds"),
    ("--tls-hello-timeout", "inf", "finite"),
    ("--tls-hello-timeout", "nan", "finite"),
    ("--udp-session-timeout", "0.0", "greater than 0"),
    ("--udp-max-sessions", "0", "at least 1"),
    ("--udp-max-sessions", "2.5", "not a whole number"),
]


@pytest.mark.parametrize(("flag", "value", "message"), BAD)
def test_bad_values_are_argparse_errors(
    flag: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as proxy_exit:
        app.main([flag, value])
    proxy_err = capsys.readouterr().err
    with pytest.raises(SystemExit) as standalone_exit:
        cli.build_parser().parse_args(["standalone", "--config-dir", "x", flag, value])
    standalone_err = capsys.readouterr().err
    assert proxy_exit.value.code == standalone_exit.value.code == 2
    for err in (proxy_err, standalone_err):
        assert f"argument {flag}: {value!r}" in err and message in err


def test_library_values_are_validated_too() -> None:
    for bad in ({"idle_timeout": 0.0}, {"hello_timeout": -1.0}, {"max_connections": 0}):
        with pytest.raises(ValueError):
            StreamOptions(**bad)  # type: ignore[arg-type]
    assert StreamOptions(idle_timeout=None).idle_timeout is None


def test_workers_get_the_parents_stream_flags() -> None:
    parent = app.ProxyOptions(node_id="p", stream=CUSTOM, workers=2)
    worker = app.options_from(app.build_parser().parse_args(app.worker_arguments(parent, 1, "/tmp/channel")))
    assert worker.stream == CUSTOM and worker.node_id == "p-1"
    odd = StreamOptions(idle_timeout=0.1 + 0.2, hello_timeout=1e-3, udp=UdpOptions(session_timeout=7.25))
    assert stream_options_from(app.build_parser().parse_args(stream_arguments(odd))) == odd


# -- the flags take effect: nantian standalone, in-process, with a TCPRoute --------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind((ADDRESS, 0))
        return int(s.getsockname()[1])


def _manifests(listener_port: int, backend_port: int) -> list[dict[str, Any]]:
    gw_api = "gateway.networking.k8s.io/v1"
    return [
        {"apiVersion": gw_api, "kind": "GatewayClass", "metadata": {"name": "nantian"},
         "spec": {"controllerName": "nantian.io/gateway-controller"}},
        {"apiVersion": gw_api, "kind": "Gateway", "metadata": {"name": "gw", "namespace": "default"},
         "spec": {"gatewayClassName": "nantian", "addresses": [{"type": "IPAddress", "value": ADDRESS}],
                  "listeners": [{"name": "tcp", "protocol": "TCP", "port": listener_port}]}},
        {"apiVersion": "gateway.networking.k8s.io/v1alpha2", "kind": "TCPRoute",
         "metadata": {"name": "tcp", "namespace": "default"},
         "spec": {"parentRefs": [{"name": "gw", "sectionName": "tcp"}],
                  "rules": [{"backendRefs": [{"name": "echo", "port": 3000}]}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo", "namespace": "default"},
         "spec": {"ports": [{"name": "p", "protocol": "TCP", "port": 3000, "targetPort": backend_port}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "echo-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "echo"}},
         "addressType": "IPv4", "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
         "ports": [{"name": "p", "protocol": "TCP", "port": backend_port}]},
    ]  # fmt: skip


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def _connect_when_served(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that echoed one byte through the proxy (retried while standalone comes up)."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            try:
                reader, writer = await asyncio.open_connection(ADDRESS, port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.write(b"x")
            with contextlib.suppress(OSError):
                if await reader.read(1) == b"x":
                    return reader, writer
            writer.close()
            await asyncio.sleep(0.05)


async def test_standalone_serves_with_the_stream_idle_timeout(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="nantian.access")
    backend = await asyncio.start_server(_echo, "127.0.0.1", 0)
    listener_port = _free_port()
    (tmp_path / "all.yaml").write_text(
        yaml.safe_dump_all(_manifests(listener_port, int(backend.sockets[0].getsockname()[1])))
    )
    args = cli.build_parser().parse_args(
        ["standalone", "--config-dir", str(tmp_path), "--stream-idle-timeout", "0.3", "--admin-address", "0"]
    )
    options = StandaloneOptions(config_dir=tmp_path, admin_port=0, stream=stream_options_from(args))
    stop = asyncio.Event()
    task = asyncio.create_task(run_standalone(options, stop=stop))
    try:
        reader, writer = await _connect_when_served(listener_port)
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with asyncio.timeout(TIMEOUT):
            with contextlib.suppress(ConnectionResetError):
                assert await reader.read() == b""  # closed by the proxy: idle for 0.3 s (the default is an hour)
        assert 0.2 <= loop.time() - started < 3.0
        writer.close()
        async with asyncio.timeout(TIMEOUT):
            while not any("result=idle_timeout" in r.getMessage() for r in caplog.records):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        line = next(r.getMessage() for r in caplog.records if "result=idle_timeout" in r.getMessage())
        assert "protocol=TCP" in line and "route=TCPRoute/default/tcp" in line and "client=127.0.0.1 " in line
    finally:
        stop.set()
        async with asyncio.timeout(TIMEOUT):
            assert await task == 0
        backend.close()
