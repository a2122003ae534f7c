"""The proxy as a real process: benchmarks/proxy_bench_config.py serving its generated route table under uvloop."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import httpx
import pytest
from processes import ROOT, free_port, stop_async

pytestmark = pytest.mark.e2e


async def _backend() -> tuple[asyncio.Server, int, list[bytes], list[asyncio.StreamWriter]]:
    heads: list[bytes] = []
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                heads.append(head)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n\r\nok\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, int(server.sockets[0].getsockname()[1]), heads, writers


@pytest.mark.parametrize("variant", ["full", "passthrough"])
async def test_bench_config_serves_the_measured_route(variant: str) -> None:
    server, backend_port, heads, writers = await _backend()
    proxy_port = free_port()
    env = {**os.environ, "BACKEND_HOST": "127.0.0.1", "BACKEND_PORT": str(backend_port), "PROXY_PORT": str(proxy_port)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "benchmarks" / "proxy_bench_config.py"),
        "--variant",
        variant,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            async with asyncio.timeout(20):
                while True:
                    try:
                        r = await client.get(f"http://127.0.0.1:{proxy_port}/")
                        break
                    except httpx.TransportError:
                        assert proc.returncode is None, "the proxy exited"
                        await asyncio.sleep(0.1)
            assert r.status_code == 200 and r.text == "ok\n"
            for _ in range(20):
                assert (await client.get(f"http://127.0.0.1:{proxy_port}/x")).text == "ok\n"
            other = await client.get(f"http://127.0.0.1:{proxy_port}/", headers={"host": "nowhere.example.com"})
            assert other.status_code == 404  # the measured route's header match wants a 127.0.0.1 host
        head = heads[-1].lower()
        assert b"x-forwarded-for: 127.0.0.1" in head
        assert (b"x-gateway: nantian" in head) == (variant == "full")
        assert (r.headers.get("x-served-by") == "nantian") == (variant == "full")
    finally:
        await stop_async(proc, within=10)
        for w in writers:
            w.close()
        server.close()
        await server.wait_closed()
