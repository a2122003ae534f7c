"""HTTP/2 for the echo server (h2c with prior knowledge, or h2 over TLS): the h2 state machine on a Protocol."""

from __future__ import annotations

import asyncio
import logging
from typing import cast

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from nantian.echo._answer import EchoRequest, Reply, Reset, TlsInfo
from nantian.echo._site import Site, reset_transport
from nantian.echo._tls import tls_info

__all__ = ["Http2Connection"]

log = logging.getLogger(__name__)

_SEND_TIMEOUT = 30.0


class Http2Connection(asyncio.Protocol):
    """Serves one HTTP/2 connection; each stream is answered by its own task once its request has ended."""

    def __init__(self, site: Site) -> None:
        self._site = site
        config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8", validate_inbound_headers=False)
        self._h2 = h2.connection.H2Connection(config=config)
        self._transport: asyncio.Transport | None = None
        self._tls: TlsInfo | None = None
        self._headers: dict[int, list[tuple[str, str]]] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._window_open = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop transports do not subclass asyncio's
        self._tls = tls_info(transport.get_extra_info("ssl_object"))
        self._h2.initiate_connection()
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        for task in self._tasks.values():
            task.cancel()
        self._window_open.set()

    def data_received(self, data: bytes) -> None:
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            log.debug("echo.h2.protocol_error error=%s", exc)
            self._flush()
            if self._transport is not None:
                self._transport.close()
            return
        for event in events:
            self._on_event(event)
        self._flush()

    def _on_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self._headers[event.stream_id] = [(str(k), str(v)) for k, v in event.headers or ()]
            if event.stream_ended is not None:
                self._start(event.stream_id)
        elif isinstance(event, h2.events.DataReceived):
            self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            self._start(event.stream_id)
        elif isinstance(event, h2.events.StreamReset):
            task = self._tasks.pop(event.stream_id, None)
            if task is not None:
                task.cancel()
        elif isinstance(event, h2.events.WindowUpdated):
            self._window_open.set()
        elif isinstance(event, h2.events.ConnectionTerminated) and self._transport is not None:
            self._transport.close()

    def _start(self, stream_id: int) -> None:
        if stream_id in self._tasks or stream_id not in self._headers:
            return
        task = asyncio.get_running_loop().create_task(self._respond(stream_id))
        self._tasks[stream_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(stream_id, None))

    def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    async def _respond(self, stream_id: int) -> None:
        fields = self._headers.pop(stream_id)
        pseudo = {name: value for name, value in fields if name.startswith(":")}
        regular = tuple((name, value) for name, value in fields if not name.startswith(":"))
        host = pseudo.get(":authority") or next((v for n, v in regular if n.lower() == "host"), "")
        request = EchoRequest(
            method=pseudo.get(":method", ""),
            target=pseudo.get(":path", ""),
            host=host,
            headers=tuple((n, v) for n, v in regular if n.lower() != "host"),
            proto="HTTP/2.0",
            tls=self._tls,
        )
        answer = self._site.echo.answer(request)
        if answer.delay:
            await asyncio.sleep(answer.delay)
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if isinstance(answer, Reset):
            reset_transport(transport)
            return
        self._site.record(request, answer)
        await self._send(stream_id, answer, head=request.method == "HEAD")

    async def _send(self, stream_id: int, reply: Reply, *, head: bool) -> None:
        headers = [(":status", str(reply.status))]
        headers += [(name.lower(), value) for name, value in reply.headers]
        body = b"" if head or reply.status in (204, 304) else reply.body
        headers.append(("content-length", str(len(body))))
        try:
            self._h2.send_headers(stream_id, headers, end_stream=not body)
            self._flush()
            while body:
                window = min(self._h2.local_flow_control_window(stream_id), self._h2.max_outbound_frame_size)
                if window <= 0:
                    self._window_open.clear()
                    await asyncio.wait_for(self._window_open.wait(), _SEND_TIMEOUT)
                    continue
                chunk, body = body[:window], body[window:]
                self._h2.send_data(stream_id, chunk, end_stream=not body)
                self._flush()
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, TimeoutError) as exc:
            log.debug("echo.h2.send_failed stream=%s error=%s", stream_id, exc)
