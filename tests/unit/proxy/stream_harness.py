"""Backends for the stream-listener tests: a TCP (optionally TLS) echo server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
from collections.abc import AsyncIterator


@contextlib.asynccontextmanager
async def echo_server(
    *, greeting: bytes = b"", reset: bool = False, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[int]:
    """An echo server on 127.0.0.1 until the client's EOF; yields its port.

    :param greeting: Sent first on every connection (tells the tests which backend answered).
    :param reset: Reset the connection (TCP RST) after the first chunk instead of echoing.
    :param ssl_context: Serve TLS with this context.
    """
    writers: set[asyncio.StreamWriter] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)
        try:
            if greeting:
                writer.write(greeting)
            while chunk := await reader.read(65536):
                if reset:  # SO_LINGER 0: close() sends an RST
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                writer.write(chunk)
                await writer.drain()
        except (OSError, ssl.SSLError):
            pass
        finally:
            writer.close()
            writers.discard(writer)

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=ssl_context)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for writer in list(writers):
            writer.transport.abort()
