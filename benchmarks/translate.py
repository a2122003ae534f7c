"""Translate benchmark: N Gateways, M HTTPRoutes over 100 namespaces, with their Services and EndpointSlices.

Reports, for each M: the time to parse the documents into a ResourceSet, translate time (best of
``--repeat``), peak traced memory of one translate (tracemalloc) and the process RSS growth across it,
and the time to re-translate after one HTTPRoute changes (``ResourceSet.with_object``, then
``Translator.translate``, incremental), with the memory a Translator holds after one translation.
Compares with the previous results file, if any, and writes the new one.

    .venv/bin/python benchmarks/translate.py                 # M = 1,000 and 10,000
    .venv/bin/python benchmarks/translate.py --routes 500 --profile

Targets: 10,000 routes translate in < 1 s and < 300 MB; a one-route change re-translates in < 50 ms.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from nantian.errors import ParseError
from nantian.resources import ResourceSet, parse_object
from nantian.translate import TranslateOptions, Translator, translate

Doc = dict[str, Any]
GATEWAY_API = "gateway.networking.k8s.io"
CONTROLLER = "nantian.io/gateway-controller"
SERVICES_PER_NAMESPACE = 20
RESULTS = Path(__file__).parent / "results" / "translate.json"
TARGETS = {"translate_s": 1.0, "peak_mb": 300.0, "change_s": 0.050}


def _ns(i: int) -> str:
    return f"ns-{i:03d}"


def generate(gateways: int, routes: int, namespaces: int = 100) -> list[Doc]:
    """The benchmark's documents: Namespaces, a GatewayClass, Gateways, Services, EndpointSlices, HTTPRoutes."""
    docs: list[Doc] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": _ns(n), "labels": {"bench": "true"}}}
        for n in range(namespaces)
    ]
    docs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gateways"}})
    docs.append(
        {
            "apiVersion": f"{GATEWAY_API}/v1",
            "kind": "GatewayClass",
            "metadata": {"name": "nantian"},
            "spec": {"controllerName": CONTROLLER},
        }
    )
    for g in range(gateways):
        docs.append(
            {
                "apiVersion": f"{GATEWAY_API}/v1",
                "kind": "Gateway",
                "metadata": {"name": f"gw-{g}", "namespace": "gateways"},
                "spec": {
                    "gatewayClassName": "nantian",
                    "listeners": [
                        {
                            "name": "http",
                            "port": 80,
                            "protocol": "HTTP",
                            "allowedRoutes": {"namespaces": {"from": "All"}},
                        }
                    ],
                },
            }
        )
    for n in range(namespaces):
        for s in range(SERVICES_PER_NAMESPACE):
            name = f"svc-{s}"
            docs.append(
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": name, "namespace": _ns(n)},
                    "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
                }
            )
            docs.append(
                {
                    "apiVersion": "discovery.k8s.io/v1",
                    "kind": "EndpointSlice",
                    "metadata": {
                        "name": f"{name}-x1",
                        "namespace": _ns(n),
                        "labels": {"kubernetes.io/service-name": name},
                    },
                    "addressType": "IPv4",
                    "endpoints": [
                        {"addresses": [f"10.{n}.{s}.{e}"], "conditions": {"ready": True}} for e in range(1, 4)
                    ],
                    "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                }
            )
    docs += [http_route(i, gateways, namespaces) for i in range(routes)]
    return docs


def http_route(i: int, gateways: int, namespaces: int, version: str = "v1") -> Doc:
    """Route ``i``: 2 rules (path + header matches), each with 2 weighted backends in its own namespace."""

    def backends(k: int) -> list[Doc]:
        return [
            {"name": f"svc-{(i + k) % SERVICES_PER_NAMESPACE}", "port": 80, "weight": 80},
            {"name": f"svc-{(i + k + 1) % SERVICES_PER_NAMESPACE}", "port": 80, "weight": 20},
        ]

    return {
        "apiVersion": f"{GATEWAY_API}/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": f"route-{i}", "namespace": _ns(i % namespaces), "generation": 1},
        "spec": {
            "parentRefs": [{"name": f"gw-{i % gateways}", "namespace": "gateways"}],
            "hostnames": [f"r{i}.example.com"],
            "rules": [
                {
                    "matches": [
                        {
                            "path": {"type": "PathPrefix", "value": f"/api/{i}"},
                            "headers": [{"name": "x-version", "value": version}],
                        }
                    ],
                    "backendRefs": backends(0),
                },
                {
                    "matches": [
                        {"path": {"type": "Exact", "value": f"/r/{i}"}, "headers": [{"name": "x-team", "value": "a"}]}
                    ],
                    "backendRefs": backends(2),
                },
            ],
        },
    }


def build(docs: list[Doc]) -> ResourceSet:
    objects, raw, errors = [], {}, []
    for doc in docs:
        try:
            obj = parse_object(doc)
        except ParseError as exc:
            errors.append(exc)
            continue
        objects.append(obj)
        raw[obj.ref] = doc
    if errors:
        raise SystemExit(f"benchmark documents failed to parse: {errors[0]}")
    return ResourceSet.from_objects(objects, raw=raw)


def best_of(repeat: int, fn: Callable[[], object]) -> tuple[float, float]:
    """Best wall-clock and best CPU (process) time of ``repeat`` runs; CPU time is steadier on a busy machine."""
    walls, cpus = [], []
    for _ in range(repeat):
        gc.collect()
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - start_cpu)
    return min(walls), min(cpus)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(gateways: int, routes: int, repeat: int, options: TranslateOptions) -> dict[str, float]:
    docs = generate(gateways, routes)
    start = time.perf_counter()
    rs = build(docs)
    parse_s = time.perf_counter() - start

    gc.collect()
    rss_before, maxrss_before = _rss_mb(), _maxrss_mb()
    result = translate(rs, options)
    rss_after, maxrss_after = _rss_mb(), _maxrss_mb()
    served = sum(len(vh.routes) for lst in result.snapshot.listeners for vh in lst.virtual_hosts)
    del result

    translate_s, translate_cpu_s = best_of(repeat, lambda: translate(rs, options))

    gc.collect()
    tracemalloc.start()
    translate(rs, options)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    changed = http_route(routes // 2, gateways, 100, version="v2")
    changed["metadata"]["generation"] = 2
    obj = parse_object(changed)
    rs2 = rs.with_object(obj, raw=changed)
    with_object_s, _ = best_of(repeat, lambda: rs.with_object(obj, raw=changed))

    # One-route change through a Translator (what the reconciler runs): each timed call translates the set
    # that differs by one HTTPRoute from the one translated before it.
    gc.collect()
    tracemalloc.start()
    translator = Translator(options)
    translator.translate(rs)
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    sets = [rs, rs2]

    def flip() -> object:
        sets.reverse()  # rs2, then rs again, then rs2...: one route differs from the previous call each time
        return translator.translate(sets[0])

    change_s, change_cpu_s = best_of(repeat, flip)
    incremental = translator.translate(rs2)
    scratch = translate(rs2, options)
    assert incremental.snapshot.version == scratch.snapshot.version != translate(rs, options).snapshot.version
    assert incremental.statuses == scratch.statuses

    return {
        "objects": len(rs),
        "ir_routes": served,
        "parse_s": parse_s,
        "translate_s": translate_s,
        "translate_cpu_s": translate_cpu_s,
        "peak_mb": peak / 2**20,
        "rss_delta_mb": rss_after - rss_before,
        "maxrss_delta_mb": maxrss_after - maxrss_before,
        "with_object_s": with_object_s,
        "change_s": change_s,
        "change_cpu_s": change_cpu_s,
        "translator_mb": held / 2**20,
    }


COLUMNS = [
    ("objects", "objects", "{:.0f}"),
    ("ir_routes", "IR routes", "{:.0f}"),
    ("parse_s", "parse s", "{:.3f}"),
    ("translate_s", "translate s", "{:.3f}"),
    ("translate_cpu_s", "(cpu s)", "{:.3f}"),
    ("peak_mb", "peak MB", "{:.1f}"),
    ("rss_delta_mb", "RSS +MB", "{:.1f}"),
    ("maxrss_delta_mb", "maxRSS +MB", "{:.1f}"),
    ("with_object_s", "with_object ms", "{:.2f}"),
    ("change_s", "change ms", "{:.1f}"),
    ("change_cpu_s", "(cpu ms)", "{:.1f}"),
    ("translator_mb", "Translator MB", "{:.1f}"),
]


def _cell(key: str, value: float, fmt: str) -> str:
    if key in ("with_object_s", "change_s", "change_cpu_s"):
        value *= 1000
    return fmt.format(value)


def table(results: Mapping[str, Mapping[str, float]], previous: Mapping[str, Mapping[str, float]] | None) -> str:
    header = ["routes", *(title for _, title, _ in COLUMNS)]
    rows = [header]
    for m, row in results.items():
        rows.append([m, *(_cell(k, row[k], fmt) for k, _, fmt in COLUMNS)])
        old = (previous or {}).get(m)
        if old:
            rows.append(
                ["  vs prev", *(f"{(row[k] / old[k] - 1) * 100:+.0f}%" if old.get(k) else "-" for k, _, _ in COLUMNS)]
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def verdicts(results: Mapping[str, Mapping[str, float]]) -> list[str]:
    """One line per target: met or missed, judged on wall time (CPU time shown for busy machines)."""
    out = []
    for m, row in results.items():
        for key, limit in TARGETS.items():
            if int(m) >= 10_000 or key == "change_s":
                cpu_key = key.replace("_s", "_cpu_s")
                cpu = f" cpu={row[cpu_key]:.3f}" if cpu_key != key and cpu_key in row else ""
                ok = row[key] < limit
                out.append(f"{'ok  ' if ok else 'MISS'} M={m} {key}={row[key]:.3f}{cpu} (target < {limit})")
    return out


def _stats(profiler: cProfile.Profile, top: int, title: str) -> str:
    out = io.StringIO()
    out.write(f"\n=== {title} ===\n")
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def profile(gateways: int, routes: int, options: TranslateOptions, top: int) -> str:
    """cProfile of one full translate, then of one incremental re-translate after a route changed."""
    rs = build(generate(gateways, routes))
    translator = Translator(options)
    profiler = cProfile.Profile()
    profiler.enable()
    translator.translate(rs)
    profiler.disable()
    report = _stats(profiler, top, f"full translate, M={routes}")
    changed = http_route(routes // 2, gateways, 100, version="v3")
    changed["metadata"]["generation"] = 3
    rs2 = rs.with_object(parse_object(changed), raw=changed)
    profiler = cProfile.Profile()
    profiler.enable()
    translator.translate(rs2)
    profiler.disable()
    return report + _stats(profiler, top, f"Translator re-translate after one route changed, M={routes}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateways", type=int, default=10, help="number of Gateways (N)")
    parser.add_argument("--routes", type=int, nargs="+", default=[1_000, 10_000], help="numbers of HTTPRoutes (M)")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    parser.add_argument("--results", type=Path, default=RESULTS, help="results file to compare with and write")
    parser.add_argument("--no-write", action="store_true", help="compare, but do not write the results file")
    parser.add_argument("--profile", action="store_true", help="cProfile one translate at the largest M")
    parser.add_argument("--top", type=int, default=25, help="profile lines to print")
    args = parser.parse_args(argv)

    options = TranslateOptions(controller_name=CONTROLLER, address_pool="127.0.0.0/8")
    previous = None
    if args.results.exists():
        previous = json.loads(args.results.read_text()).get("results")
    results = {str(m): measure(args.gateways, m, args.repeat, options) for m in args.routes}
    load = os.getloadavg()[0]
    print(f"translate benchmark: {args.gateways} gateways, 100 namespaces, best of {args.repeat}, load {load:.1f}")
    print(table(results, previous))
    print("\n".join(verdicts(results)))
    if not args.no_write:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "gateways": args.gateways,
            "loadavg_1m": load,
            "cpus": os.cpu_count(),
            "results": results,
        }
        args.results.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        print(f"wrote {args.results}")
    if args.profile:
        print(profile(args.gateways, max(args.routes), options, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
