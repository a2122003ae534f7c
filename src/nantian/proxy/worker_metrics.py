"""The ``--workers`` parent's view of its workers' Prometheus metrics: every worker family, summed over live workers.

Each worker process keeps its own registry (:class:`~nantian.proxy.metrics.ProxyMetrics` and the rest) and serves it
on its own admin port. When the parent's ``/metrics`` is scraped, :class:`WorkerMetricsCollector` fetches every
connected worker's ``/metrics`` over loopback HTTP (in parallel, within one deadline) and :func:`merge_families`
adds the samples up by (sample name, labels), keeping each family's type: ``nantian_proxy_requests_total`` stays a
counter and ``nantian_proxy_request_duration_seconds`` a histogram with its buckets, ``_sum`` and ``_count``, as on
a single-process proxy. A worker that does not answer in time is left out of that scrape and counted in
``nantian_workers_scrape_errors_total``.

Why scrape at collect time rather than ``prometheus_client``'s multiprocess mode: the request counters and the
latency histogram are rendered by a custom collector from plain dicts on the hot path (multiprocess mode only
covers its own mmap-backed metric classes and would put a file write on every request), the worker code stays
as it is, and a worker that died simply drops out of the sum (Prometheus reads the drop as a counter reset).
"""

from __future__ import annotations

import concurrent.futures
import http.client
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

__all__ = [
    "ScrapeTarget",
    "WorkerMetricsCollector",
    "merge_families",
    "merge_parsed",
    "parse_exposition",
    "scrape_target",
    "scrape_targets",
    "targets_of",
]

log = logging.getLogger(__name__)

_MAX_BODY = 32 * 1024 * 1024
"""A worker's ``/metrics`` larger than this is refused (a scrape error), not buffered."""

_RESERVED_PREFIX = "nantian_worker"
"""Families the parent itself exports (``nantian_workers_*``, ``nantian_worker_*``): never taken from a worker."""


@attrs.frozen
class ScrapeTarget:
    """Where one worker serves its own ``/metrics``."""

    node: str
    """The worker's node id (the label of its scrape errors)."""
    host: str
    port: int


# --- merging (pure) --------------------------------------------------------------------------------------------
@attrs.define
class _Family:
    metric: Metric
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = attrs.field(factory=dict)


def _combine(family: str, typ: str, old: float, new: float) -> float:
    if family.endswith("_created") and typ in ("gauge", "unknown"):
        return min(old, new)  # a counter's creation time, as text format 0.0.4 renders it: the oldest one
    return old + new


def parse_exposition(text: str) -> list[Metric]:
    """The metric families of one Prometheus text exposition.

    :raises ValueError: ``text`` is not in the Prometheus text format.
    """
    return list(text_string_to_metric_families(text))


def merge_parsed(expositions: Iterable[Iterable[Metric]]) -> list[Metric]:
    """Sum parsed expositions (one per worker) into one list of metric families; see :func:`merge_families`."""
    merged: dict[str, _Family] = {}
    for exposition in expositions:
        for metric in exposition:
            if metric.name.startswith(_RESERVED_PREFIX):
                continue
            family = merged.get(metric.name)
            if family is None:
                family = merged[metric.name] = _Family(Metric(metric.name, metric.documentation, metric.type))
            elif family.metric.type != metric.type:
                log.debug(
                    "workers.metric_type_conflict name=%s types=%s,%s", metric.name, family.metric.type, metric.type
                )
                continue
            for sample in metric.samples:
                if metric.type == "summary" and "quantile" in sample.labels:
                    continue
                key = (sample.name, tuple(sorted(sample.labels.items())))
                old = family.samples.get(key)
                value = float(sample.value)
                family.samples[key] = value if old is None else _combine(metric.name, metric.type, old, value)
    out = []
    for family in merged.values():
        for (name, labels), value in family.samples.items():
            family.metric.add_sample(name, dict(labels), value)
        out.append(family.metric)
    return out


def merge_families(texts: Iterable[str]) -> list[Metric]:
    """Sum Prometheus text expositions (one per worker) into one list of metric families.

    Samples with the same name and labels are added up: counters, gauges, histogram buckets, ``_sum`` and
    ``_count`` (a 0/1 gauge, such as an info or enum metric in the text format, becomes the number of workers in
    that state). Counters' ``_created`` gauges keep the oldest time; summary quantiles (which cannot be summed)
    are dropped. A family keeps its first type, help text and
    sample order; the same name with another type in a later text is skipped. ``nantian_worker*`` families are
    the parent's own and are never taken from a worker.

    :raises ValueError: a text is not in the Prometheus text format (nothing is merged then).
    """
    return merge_parsed([parse_exposition(text) for text in texts])


# --- scraping --------------------------------------------------------------------------------------------------
def scrape_target(target: ScrapeTarget, timeout: float) -> str:
    """``GET /metrics`` from ``target`` (blocking, each socket operation within ``timeout`` seconds).

    :raises OSError: no connection, a timeout, or an answer other than 200 with a body up to 32 MiB.
    :raises http.client.HTTPException: a malformed answer.
    """
    conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
    try:
        conn.request("GET", "/metrics", headers={"Accept": "text/plain"})
        response = conn.getresponse()
        body = response.read(_MAX_BODY + 1)
        if response.status != 200:
            raise OSError(f"status {response.status}")
        if len(body) > _MAX_BODY:
            raise OSError("more than 32 MiB of metrics")
        return body.decode("utf-8")
    finally:
        conn.close()


def scrape_targets(
    targets: Sequence[ScrapeTarget],
    timeout: float,
    fetch: Callable[[ScrapeTarget, float], str] = scrape_target,
) -> tuple[dict[ScrapeTarget, str], dict[ScrapeTarget, str]]:
    """Scrape every target in parallel threads; return within about ``timeout`` seconds.

    :returns: (the text of each target that answered in time, the error of each other target).
    """
    if not targets:
        return {}, {}
    texts: dict[ScrapeTarget, str] = {}
    errors: dict[ScrapeTarget, str] = {}
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=min(len(targets), 16), thread_name_prefix="scrape")
    try:
        futures = {pool.submit(fetch, t, timeout): t for t in targets}
        done, pending = concurrent.futures.wait(futures, timeout=timeout)
        for future in done:
            target = futures[future]
            exc = future.exception()
            if exc is None:
                texts[target] = future.result()
            else:
                errors[target] = f"{type(exc).__name__}: {exc}"
        for future in pending:
            future.cancel()
            errors[futures[future]] = f"no answer within {timeout}s"
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # a straggler ends at its own socket timeout
    return texts, errors


def _loopback(host: str | None) -> str:
    """The address to reach a server bound to ``host`` from this machine."""
    host = (host or "").strip("[]")
    if host in ("", "0.0.0.0", "localhost"):  # a wildcard bind is reached on loopback
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def targets_of(reports: Iterable[Mapping[str, Any]], admin_host: str | None) -> list[ScrapeTarget]:
    """The scrape target of every worker status report that names an admin port."""
    host = _loopback(admin_host)
    out = []
    for report in reports:
        port = report.get("adminPort")
        if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536:
            out.append(ScrapeTarget(str(report.get("nodeId", "")), host, port))
    return out


class WorkerMetricsCollector:
    """A Prometheus collector: the sum of every live worker's metric families, scraped when it is collected.

    Collecting blocks the calling thread (the parent's admin handler calls it on its event loop) for at most about
    ``timeout`` seconds, however many workers there are: workers are scraped in parallel threads.

    :param reports: The status reports of the connected workers (``nodeId``, ``adminPort``).
    :param admin_host: The host the workers' admin servers bind (wildcards are reached on loopback).
    :param timeout: The scrape deadline, in seconds.
    """

    def __init__(
        self,
        reports: Callable[[], Iterable[Mapping[str, Any]]],
        admin_host: str | None = None,
        timeout: float = 1.0,
    ) -> None:
        self._reports = reports
        self._admin_host = admin_host
        self._timeout = timeout
        self._errors: dict[str, int] = {}

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        started = time.monotonic()
        targets = targets_of(self._reports(), self._admin_host)
        texts, errors = scrape_targets(targets, self._timeout)
        good: list[list[Metric]] = []
        for target in targets:  # in report order (by node id): the merge keeps the first worker's sample order
            text = texts.get(target)
            if text is None:
                continue
            try:
                good.append(parse_exposition(text))
            except ValueError as exc:
                errors[target] = f"unparsable metrics: {exc}"
        merged = merge_parsed(good)
        for target, error in errors.items():
            self._errors[target.node] = self._errors.get(target.node, 0) + 1
            log.warning("workers.scrape_failed node=%s port=%s error=%s", target.node, target.port, error)
        log.debug("workers.scraped workers=%s ms=%.1f", len(good), (time.monotonic() - started) * 1000)
        yield GaugeMetricFamily(
            "nantian_workers_scraped", "Workers whose metrics are in this scrape's sums", value=len(good)
        )
        failures = CounterMetricFamily(
            "nantian_workers_scrape_errors",
            "Scrapes of a worker's own /metrics that failed or timed out (its metrics were left out), by node",
            labels=["node"],
        )
        for node, count in sorted(self._errors.items()):
            failures.add_metric([node], count)
        yield failures
        yield from merged
