#!/usr/bin/env bash
# Benchmark the nantian proxy against Envoy with the shared kit (not part of this repository).
#
#   benchmarks/proxy.sh [full|passthrough] [kit options, e.g. -c 256 -r 3]
#
# full: the measured route has header match + request/response header modifiers + timeouts;
# passthrough: the same without header rewrites (the fast path). See benchmarks/proxy_bench_config.py.
# PROXY_WORKERS=N (default 1): N proxy processes sharing the port (SO_REUSEPORT, --workers N); N > 1 adds the
# kit's --no-pin (one-core pinning would defeat it).
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH="${PROXY_BENCH:-../shared/bench/proxy-bench.sh}"
VARIANT="${1:-full}"
[ $# -gt 0 ] && shift
if [ ! -x "$BENCH" ]; then
  echo "proxy bench kit not found at $BENCH (set PROXY_BENCH=/path/to/proxy-bench.sh)" >&2
  exit 2
fi
WORKERS="${PROXY_WORKERS:-1}"
PIN=()
[ "$WORKERS" -gt 1 ] && PIN=(--no-pin)
exec "$BENCH" "${PIN[@]}" "$@" -- "$PWD/.venv/bin/python" "$PWD/benchmarks/proxy_bench_config.py" \
  --variant "$VARIANT" --workers "$WORKERS"
