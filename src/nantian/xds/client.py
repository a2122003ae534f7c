"""The data plane's gateway.control.v1 client: stream configuration into a :class:`ConfigConsumer`.

It says Hello with the version it holds, applies each Snapshot or Delta atomically through the consumer,
Acks it, or Nacks it with the reason and keeps serving the last good configuration. It reports status after
each change and periodically, and when the control plane goes away it keeps serving and reconnects with
jittered exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
import grpc

from nantian import __version__ as _nantian_version
from nantian.errors import ConfigRejected
from nantian.ir import Snapshot
from nantian.xds._codec import BaseMismatch, encode_status, pb, pb_grpc
from nantian.xds._held import HeldConfig
from nantian.xds.consumer import ConfigConsumer, status_of
from nantian.xds.server import GRPC_OPTIONS
from nantian.xds.status import STATUS_POLL, StatusReport
from nantian.xds.tls import ClientTls

__all__ = ["DEFAULT_BUILD", "Backoff", "XdsClient"]

log = logging.getLogger(__name__)

DEFAULT_BUILD = f"nantian/{_nantian_version}"


@attrs.frozen(kw_only=True)
class Backoff:
    """Delay before reconnect attempt ``n`` (from 0): ``min(maximum, initial * multiplier**n)``, minus up to
    ``jitter`` of it at random so that many data planes do not come back in step."""

    initial: float = 0.25
    maximum: float = 15.0
    multiplier: float = 2.0
    jitter: float = 0.5

    def delay(self, attempt: int, rand: random.Random) -> float:
        base = min(self.maximum, self.initial * self.multiplier ** min(attempt, 64))
        return base * (1.0 - self.jitter * rand.random())


class XdsClient:
    """Streams configuration from the control plane at ``target`` (``host:port``) into ``consumer``.

    Run :meth:`run` as a task; :meth:`close` ends it. ``snapshot`` seeds the last good configuration (the
    consumer already serves it), so the first Hello asks only for a delta.
    """

    def __init__(
        self,
        target: str,
        consumer: ConfigConsumer,
        *,
        node_id: str,
        gateways: Iterable[str] = (),
        build: str = DEFAULT_BUILD,
        tls: ClientTls | None = None,
        backoff: Backoff = Backoff(),
        status_interval: float = 30.0,
        status_poll: float = STATUS_POLL,
        counters_interval: float = 5.0,
        snapshot: Snapshot | None = None,
        rand: random.Random | None = None,
    ) -> None:
        self.target = target
        self.consumer = consumer
        self.node_id = node_id
        self.gateways = tuple(sorted(set(gateways)))
        self.build = build
        self.tls = tls
        self.backoff = backoff
        self.status_interval = status_interval
        self.status_poll = status_poll
        self.counters_interval = counters_interval
        """A report whose only news is its counters (requests served...) is sent at most this often: the control
        plane's /api/v1/nodes stays this fresh under load, and an idle proxy stays quiet."""
        self._held = HeldConfig.of(snapshot) if snapshot is not None else None
        self.connected = False
        self.last_error: str | None = None
        """Why the last refused configuration was refused."""
        self.applied = 0
        self.rejected = 0
        self.connects = 0
        self._rand = rand or random.Random()
        self._changed = asyncio.Condition()
        self._write_lock = asyncio.Lock()
        self._closed = asyncio.Event()
        self._last_report: tuple[object, ...] | None = None
        self._last_report_at = 0.0
        self._last_counters: Mapping[str, int] = {}

    @property
    def snapshot(self) -> Snapshot | None:
        """The last good configuration: applied and acknowledged."""
        return None if self._held is None else self._held.snapshot

    @property
    def version(self) -> str | None:
        """The version of the last good configuration."""
        return None if self._held is None else self._held.version

    async def run(self) -> None:
        """Connect, stream, reconnect with backoff; returns soon after :meth:`close`."""
        attempt = 0
        while not self._closed.is_set():
            started = time.monotonic()
            reason = await self._stream_until_closed()
            if self._closed.is_set():
                break
            if time.monotonic() - started > 5.0:
                attempt = 0
            delay = self.backoff.delay(attempt, self._rand)
            attempt += 1
            log.info(
                "xds.reconnecting target=%s in=%.2fs reason=%s version=%s", self.target, delay, reason, self.version
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), delay)
        log.info("xds.closed target=%s version=%s", self.target, self.version)

    async def _stream_until_closed(self) -> str:
        """Run one stream until it ends or :meth:`close` is called; returns why it ended."""
        stream = asyncio.create_task(self._stream(), name=f"xds-stream {self.target}")
        closed = asyncio.create_task(self._closed.wait())
        try:
            await asyncio.wait({stream, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            if not stream.done():
                stream.cancel()
            await asyncio.wait({stream})
            await self._set_connected(False)
        if stream.cancelled():
            return "closed"
        exc = stream.exception()
        if exc is None:
            return "stream ended"
        if isinstance(exc, grpc.aio.AioRpcError | asyncio.InvalidStateError | OSError):
            return _describe(exc)
        # anything else ends this stream only: keep serving, reconnect
        log.error("xds.stream_failed target=%s", self.target, exc_info=exc)
        return repr(exc)

    async def close(self) -> None:
        """End the current stream and stop reconnecting; :meth:`run` returns. The last good config stays."""
        self._closed.set()
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        """Return once ``condition()`` holds, checked whenever the client's state changes (bound it with
        ``asyncio.timeout``)."""
        async with self._changed:
            await self._changed.wait_for(condition)

    def status(self) -> StatusReport:
        """What this data plane would report now."""
        return status_of(self.consumer, self.version)

    # --- one stream -------------------------------------------------------------------------------
    def _channel(self) -> grpc.aio.Channel:
        options = list(GRPC_OPTIONS)
        if self.tls is None:
            return grpc.aio.insecure_channel(self.target, options=options)
        if self.tls.server_name:
            options.append(("grpc.ssl_target_name_override", self.tls.server_name))
        return grpc.aio.secure_channel(self.target, self.tls.credentials(), options=options)

    async def _stream(self) -> None:
        async with self._channel() as channel:
            call = pb_grpc.ConfigurationDiscoveryServiceStub(channel).StreamConfiguration()
            reporter: asyncio.Task[None] | None = None
            try:
                hello = pb.Hello(node_id=self.node_id, build=self.build, version=self.version or "")
                hello.gateways.extend(self.gateways)
                await call.write(pb.DataPlaneMessage(hello=hello))
                self.connects += 1
                await self._set_connected(True)
                log.info("xds.connected target=%s node=%s holds=%s", self.target, self.node_id, self.version or "-")
                self._last_report = None
                reporter = asyncio.create_task(self._report_forever(call), name="xds-status")
                while True:
                    message = await call.read()
                    if message is grpc.aio.EOF:
                        return
                    reply = await self._handle(message)
                    if reply is None:
                        continue
                    async with self._write_lock:
                        await call.write(reply)
                    await self._report(call, force=True)
            finally:
                if reporter is not None:
                    reporter.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await reporter
                call.cancel()

    async def _handle(self, message: Any) -> Any:
        """Apply one control-plane message; returns the Ack or Nack to send (``None``: nothing to answer)."""
        kind = message.WhichOneof("message")
        if kind == "snapshot":
            nonce, version = message.snapshot.nonce, message.snapshot.version
            try:
                held = HeldConfig.from_message(message.snapshot, self._held)
            except ConfigRejected as exc:
                return await self._nack(version, nonce, str(exc))
        elif kind == "delta":
            d = message.delta
            nonce, version = d.nonce, d.version
            if self._held is None:
                return await self._nack(version, nonce, f"delta from {d.base_version}; I hold nothing", True)
            try:
                held = self._held.apply_delta(d)
            except ConfigRejected as exc:
                return await self._nack(version, nonce, str(exc), isinstance(exc, BaseMismatch))
        else:
            log.debug("xds.empty_message target=%s", self.target)
            return None
        if self._held is not None and held.version == self._held.version:
            return pb.DataPlaneMessage(ack=pb.Ack(version=version, nonce=nonce))
        try:
            result = await self.consumer.apply(held.snapshot)
        except ConfigRejected as exc:
            return await self._nack(version, nonce, str(exc))
        except Exception as exc:  # a consumer bug must not end the stream; the config is refused
            log.exception("xds.apply_failed version=%s", version)
            return await self._nack(version, nonce, f"internal error applying the configuration: {exc!r}")
        failed = getattr(result, "failed", None)
        if failed:
            log.warning("xds.applied_partially version=%s failed=%s", version, failed)
        log.info("xds.applied version=%s kind=%s", version, kind)
        self._held = held
        self.applied += 1
        async with self._changed:
            self._changed.notify_all()
        return pb.DataPlaneMessage(ack=pb.Ack(version=version, nonce=nonce))

    async def _nack(self, version: str, nonce: str, detail: str, resync: bool = False) -> Any:
        log.warning("xds.rejected version=%s serving=%s resync=%s detail=%s", version, self.version, resync, detail)
        self.last_error = detail
        self.rejected += 1
        async with self._changed:
            self._changed.notify_all()
        nack = pb.Nack(version=version, nonce=nonce, error_detail=detail, resync=resync)
        return pb.DataPlaneMessage(nack=nack)

    async def _report_forever(self, call: Any) -> None:
        try:
            while True:
                await asyncio.sleep(self.status_poll)
                await self._report(call, force=False)
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as exc:  # the stream's reader sees it too
            log.debug("xds.report_failed error=%s", _describe(exc))

    async def _report(self, call: Any, *, force: bool) -> None:
        """Send a status report if ``force``, if what it says changed, if only its counters changed and
        ``counters_interval`` passed, or if ``status_interval`` passed."""
        report = self.status()
        key = (report.version, report.health, report.listeners)
        now = time.monotonic()
        if not force and key == self._last_report:
            elapsed = now - self._last_report_at
            if elapsed < self.status_interval and (
                elapsed < self.counters_interval or report.counters == self._last_counters
            ):
                return
        async with self._write_lock:
            await call.write(pb.DataPlaneMessage(status=encode_status(report)))
        self._last_report, self._last_report_at, self._last_counters = key, now, dict(report.counters)

    async def _set_connected(self, value: bool) -> None:
        self.connected = value
        async with self._changed:
            self._changed.notify_all()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return repr(exc)
