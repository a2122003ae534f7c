"""The proxy's own CPU cost per HTTP/1.1 request, without the kernel: the benchmark route table of
``benchmarks/proxy.sh``, a real :class:`~nantian.proxy.ProxyRuntime`, and in-memory transports.

A downstream :class:`~nantian.proxy.asyncio_http1.Http1Server` and an upstream
:class:`~nantian.proxy.upstream_http1.Http1Connection` get transports that only collect what is written; each
iteration feeds one request (what wrk sends) to the server and one response (what the kit's nginx sends) to the
upstream connection, and checks the response that reached the client. This is the userland half of what
``benchmarks/proxy.sh`` measures (the other half is the four socket system calls), steady to a few percent on a
busy machine because it never waits for another process.

    .venv/bin/python benchmarks/proxy_hotpath.py [--variant full|passthrough|both] [-n 100000] [--profile]

Prints microseconds of CPU per request and requests per CPU second, and the ratio to the previous run kept in
``benchmarks/results/proxy_hotpath.json`` (``--save`` records this run there).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any, cast

from proxy_bench_config import hotpath_runner, hotpath_runtime  # type: ignore[import-not-found,unused-ignore]

from nantian.proxy.asyncio_http1 import Http1Server
from nantian.proxy.upstream_http1 import Http1Connection
from nantian.testing.memory_transport import MemoryTransport

RESULTS = Path(__file__).parent / "results" / "proxy_hotpath.json"
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
"""What wrk sends."""
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Thu, 26 Nov 2026 20:00:00 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n"
)
"""What the kit's nginx backend answers."""


async def _measure(variant: str, n: int, profile: bool, access_log: str) -> float:
    # as benchmarks/proxy.sh: the full variant writes the access log (batched, to a file), passthrough does not
    rt, ref, pool = await hotpath_runtime(variant, access_log, http2_cleartext=False)
    try:
        listener = ref.current
        down = MemoryTransport(("127.0.0.1", 40000))
        server = Http1Server(ref, connections=set())
        server.connection_made(cast(Any, down))
        # the measured route's one upstream pool, with one idle keep-alive connection on an in-memory transport
        conn = Http1Connection(pool)
        up = MemoryTransport(("127.0.0.1", 9))
        conn.connection_made(cast(Any, up))
        pool._release(conn)

        def one() -> None:
            server.data_received(REQUEST)
            conn.data_received(RESPONSE)

        one()
        answer = b"".join(down.written)
        if not answer.startswith(b"HTTP/1.1 200") or not answer.endswith(b"ok\n"):
            raise SystemExit(f"unexpected response through the proxy: {answer!r}")
        if listener.metrics.fast_path != 1:
            raise SystemExit("the request did not take the fast path")
        for _ in range(2000):
            one()
        down.written.clear()
        up.written.clear()
        prof = cProfile.Profile() if profile else None
        if prof is not None:
            prof.enable()
        start = time.process_time()
        for i in range(n):
            one()
            if i & 1023 == 0:
                down.written.clear()
                up.written.clear()
        elapsed = time.process_time() - start
        if prof is not None:
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return elapsed / n * 1e6
    finally:
        await rt.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=("full", "passthrough", "both"), default="both")
    parser.add_argument("-n", type=int, default=100_000, help="requests per variant")
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant (the best is kept)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile table (slows every call)")
    parser.add_argument("--save", action="store_true", help=f"record the figures in {RESULTS}")
    args = parser.parse_args()
    runner = hotpath_runner()
    previous: dict[str, float] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    figures: dict[str, float] = {}
    variants = ("passthrough", "full") if args.variant == "both" else (args.variant,)
    with runner, tempfile.TemporaryDirectory() as tmp:
        for variant in variants:
            access_log = os.path.join(tmp, "access.log")
            best = min(runner.run(_measure(variant, args.n, args.profile, access_log)) for _ in range(args.repeat))
            figures[variant] = round(best, 2)
            line = f"{variant:12} {best:7.2f} us/request  {1e6 / best:9.0f} requests per CPU second"
            if variant in previous:
                line += f"  (previous run {previous[variant]:.2f} us: {best / previous[variant]:.2f}x the cost)"
            print(line)
    if args.save:
        RESULTS.write_text(json.dumps({**previous, **figures}, indent=2) + "\n")


if __name__ == "__main__":
    main()
