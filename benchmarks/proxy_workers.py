"""``--workers N`` scaling: the same snapshot served by 1 and by 2 proxy processes sharing the port.

On this 2-core machine the kit's comparison (benchmarks/proxy.sh) cannot show scaling: wrk and the nginx backend
need most of a core themselves. Here the measured route is answered by the proxy itself
(``proxy_bench_config.py --variant local``: route matching, metrics, a local 200), so only wrk competes with the
proxy processes. For each worker count: start the proxy (``--workers N``: a supervisor and N workers with
``SO_REUSEPORT``), warm up, then ``wrk -c50`` for a bounded time, and read the CPU time all proxy processes used
(/proc). Prints req/s, cores used and the ratio of 2 workers to 1.

What it shows depends on the machine: with 2 cores, one worker already serves about as fast as one wrk thread can
ask (~50k req/s here), and a second worker can only take CPU from wrk: expect no gain (measured 0.8-1.1x). On a
machine with cores to spare for the load generator the ratio is the scaling.

    .venv/bin/python benchmarks/proxy_workers.py [--rounds 3] [--seconds 8] [--connections 50]
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TICKS = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    out = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return out
    for child in children:
        out += _tree(int(child))
    return out


def _cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / TICKS


def _wait_serving(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the proxy did not answer on port {port} within {timeout} s")


def _wrk(port: int, seconds: int, connections: int, threads: int) -> float:
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", f"http://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None or "Non-2xx" in out:
        raise SystemExit(f"unexpected wrk output:\n{out}")
    return float(found.group(1))


def measure(workers: int, seconds: int, connections: int, threads: int) -> tuple[float, float]:
    """(req/s, cores used by the proxy processes) for one run with ``workers`` processes."""
    port = _free_port()
    env = {**os.environ, "PROXY_PORT": str(port), "BACKEND_HOST": "127.0.0.1", "BACKEND_PORT": str(_free_port())}
    cmd = [sys.executable, str(HERE / "proxy_bench_config.py"), "--variant", "local", "--workers", str(workers)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_serving(port)
        time.sleep(1.0 if workers == 1 else 2.0)  # every worker bound
        _wrk(port, 2, connections, threads)  # warm-up
        pids = _tree(proc.pid)
        cpu0, t0 = _cpu_seconds(pids), time.monotonic()
        rps = _wrk(port, seconds, connections, threads)
        cores = (_cpu_seconds(pids) - cpu0) / (time.monotonic() - t0)
        return rps, cores
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    args = parser.parse_args()
    results: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
    for r in range(args.rounds):
        for workers in (1, 2):
            rps, cores = measure(workers, args.seconds, args.connections, args.threads)
            results[workers].append((rps, cores))
            print(f"round {r + 1} workers {workers}: {rps:9.0f} req/s  {cores:4.2f} cores", flush=True)
    print(
        f"medians over {args.rounds} rounds (wrk -t{args.threads} -c{args.connections} -d{args.seconds}s, no pinning)"
    )
    med = {w: (statistics.median(x for x, _ in v), statistics.median(c for _, c in v)) for w, v in results.items()}
    for workers, (rps, cores) in med.items():
        print(f"workers {workers}: {rps:9.0f} req/s  {cores:4.2f} cores  {rps / cores:9.0f} req/s per core")
    print(f"ratio 2 workers / 1: req/s {med[2][0] / med[1][0]:.2f}, cores {med[2][1] / med[1][1]:.2f}")


if __name__ == "__main__":
    main()
