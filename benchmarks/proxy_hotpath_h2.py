"""The proxy's own CPU cost per HTTP/2 request, without the kernel: :mod:`proxy_hotpath`'s setup with an HTTP/2
client downstream.

The route table of ``benchmarks/proxy.sh`` in a real :class:`~nantian.proxy.ProxyRuntime`; a downstream
:class:`~nantian.proxy.asyncio_h2.H2ServerProtocol` on an in-memory transport, fed requests that a real ``h2`` client
connection encoded (HEADERS with END_STREAM, ``--streams`` of them per received chunk, as a client multiplexing that
many streams sends them); upstream HTTP/1.1 keep-alive connections on in-memory transports that answer every request
they are written with what the kit's nginx sends, on the next event-loop turn.

Only the proxy's work is timed: the client encodes a batch of 100 requests before the clock starts, and decodes and
checks every response after it stops (200, body ``ok\\n``, stream ended). The event loop (uvloop if installed) runs
the proxy's tasks and callbacks, so its cost per request counts too.

    .venv/bin/python benchmarks/proxy_hotpath_h2.py [--variant full|passthrough|both] [--streams 1,10] [-n 20000]

Prints microseconds of CPU per request and requests per CPU second, and the ratio to the previous run kept in
``benchmarks/results/proxy_hotpath_h2.json`` (``--save`` records this run there).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import h2.config
import h2.connection
import h2.events
from proxy_bench_config import hotpath_runner, hotpath_runtime  # type: ignore[import-not-found,unused-ignore]

from nantian.proxy.asyncio_h2 import H2ServerProtocol
from nantian.proxy.upstream_http1 import Http1Connection
from nantian.testing.memory_transport import MemoryTransport

RESULTS = Path(__file__).parent / "results" / "proxy_hotpath_h2.json"
REQUEST = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"127.0.0.1:8080"), (b":path", b"/")]
"""What h2load sends (less its user-agent)."""
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Thu, 26 Nov 2026 20:00:00 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n"
)
"""What the kit's nginx backend answers."""
BATCH = 100
"""Requests the client encodes (and then checks the answers of) at a time: the server's stream limit."""


class _Upstream(MemoryTransport):
    """An upstream connection's transport: every write is a request, answered on the next loop turn."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 9))
        self.conn: Http1Connection | None = None
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes) -> None:
        assert self.conn is not None
        self._loop.call_soon(self.conn.data_received, RESPONSE)


class _Downstream(MemoryTransport):
    """The client's transport; wakes the benchmark when every stream it waits for was answered."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 40000))
        self.server: H2ServerProtocol | None = None
        self.done: asyncio.Future[None] | None = None

    def write(self, data: bytes) -> None:
        self.written.append(data)
        assert self.server is not None
        if self.done is not None and not self.server.streams:
            self.done.set_result(None)
            self.done = None


class _Client:
    """A real h2 client connection: encodes requests, decodes and checks the answers."""

    def __init__(self) -> None:
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.conn.initiate_connection()
        # a client that never needs to give window back during the run (the answers are 3 bytes each)
        self.conn.increment_flow_control_window((1 << 31) - 1 - 65535)
        self.answered = 0

    def requests(self, streams: int) -> list[bytes]:
        """``BATCH`` requests, ``streams`` per chunk."""
        chunks = []
        for _ in range(BATCH // streams):
            for _ in range(streams):
                self.conn.send_headers(self.conn.get_next_available_stream_id(), REQUEST, end_stream=True)
            chunks.append(self.conn.data_to_send())
        return chunks

    def check(self, written: list[bytes]) -> None:
        """Decode what the proxy wrote; every answer must be 200 with body ``ok\\n``."""
        bodies: dict[int, bytes] = {}
        for event in self.conn.receive_data(b"".join(written)):
            if isinstance(event, h2.events.ResponseReceived):
                status = dict(event.headers or [])[b":status"]
                if status != b"200":
                    raise SystemExit(f"unexpected status through the proxy: {status!r}")
                bodies[event.stream_id] = b""
            elif isinstance(event, h2.events.DataReceived):
                bodies[event.stream_id] += event.data or b""
            elif isinstance(event, h2.events.StreamEnded):
                if bodies.pop(event.stream_id) != b"ok\n":
                    raise SystemExit("unexpected body through the proxy")
                self.answered += 1
            elif isinstance(event, h2.events.StreamReset | h2.events.ConnectionTerminated):
                raise SystemExit(f"unexpected event through the proxy: {event}")
        written.clear()


async def _measure(variant: str, streams: int, n: int, profile: bool, access_log: str) -> float:
    rt, ref, pool = await hotpath_runtime(variant, access_log, http2_cleartext=True)
    try:
        # the measured route's one upstream pool, with a warm keep-alive connection per concurrent stream
        for _ in range(streams):
            up = _Upstream()
            up.conn = Http1Connection(pool)
            up.conn.connection_made(cast(Any, up))
            pool._release(up.conn)

        down = _Downstream()
        server = H2ServerProtocol(ref, options=rt.options.h2, connections=set())
        down.server = server
        client = _Client()
        server.connection_made(cast(Any, down))
        server.data_received(client.conn.data_to_send())
        await asyncio.sleep(0)
        client.check(down.written)  # the server's SETTINGS
        server.data_received(client.conn.data_to_send())  # their ACK
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()

        async def run(batches: int, prof: cProfile.Profile | None = None) -> float:
            spent = 0.0
            for _ in range(batches):
                chunks = client.requests(streams)
                if prof is not None:
                    prof.enable()
                start = time.process_time()
                for chunk in chunks:
                    down.done = loop.create_future()
                    server.data_received(chunk)
                    await down.done
                spent += time.process_time() - start
                if prof is not None:
                    prof.disable()
                client.check(down.written)
                data = client.conn.data_to_send()
                if data:
                    server.data_received(data)
            return spent

        await run(20)
        answered = client.answered
        prof = cProfile.Profile() if profile else None
        batches = max(n // BATCH, 1)
        spent = await run(batches, prof)
        if prof is not None:  # the proxy's work only: the client's is not profiled
            pstats.Stats(prof).sort_stats(os.environ.get("SORT", "tottime")).print_stats(
                int(os.environ.get("TOP", "30"))
            )
        if client.answered - answered != batches * BATCH:
            raise SystemExit(f"{client.answered - answered} answers to {batches * BATCH} requests")
        server.close()
        return spent / (batches * BATCH) * 1e6
    finally:
        await rt.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=("full", "passthrough", "both"), default="both")
    parser.add_argument(
        "--streams", default="1,10", help="concurrent streams per received chunk, comma-separated (divisors of 100)"
    )
    parser.add_argument("-n", type=int, default=20_000, help="requests per variant")
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant (the best is kept)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="print a cProfile table (slows every call; SORT=cumulative TOP=60 in the environment change it)",
    )
    parser.add_argument("--save", action="store_true", help=f"record the figures in {RESULTS}")
    args = parser.parse_args()
    counts = [int(s) for s in args.streams.split(",")]
    if any(BATCH % s for s in counts):
        parser.error(f"--streams must divide {BATCH}")
    runner = hotpath_runner()
    previous: dict[str, float] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    figures: dict[str, float] = {}
    variants = ("passthrough", "full") if args.variant == "both" else (args.variant,)
    with runner, tempfile.TemporaryDirectory() as tmp:
        for variant in variants:
            for streams in counts:
                key = f"{variant}/{streams}"
                access_log = os.path.join(tmp, "access.log")
                best = min(
                    runner.run(_measure(variant, streams, args.n, args.profile, access_log)) for _ in range(args.repeat)
                )
                figures[key] = round(best, 2)
                line = f"{key:15} {best:7.2f} us/request  {1e6 / best:9.0f} requests per CPU second"
                if key in previous:
                    line += f"  (previous run {previous[key]:.2f} us: {best / previous[key]:.2f}x the cost)"
                print(line, flush=True)
    if args.save:
        RESULTS.write_text(json.dumps({**previous, **figures}, indent=2) + "\n")


if __name__ == "__main__":
    main()
