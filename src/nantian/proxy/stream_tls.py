"""Sans-IO server-side TLS for stream connections that terminate TLS (TLSRoute on a ``Terminate`` listener).

A TLS listener reads the ClientHello first (to pick the route by SNI, :mod:`nantian.proxy.stream_listeners`), so the
handshake cannot be left to the transport: :class:`TlsTermination` runs it over memory BIOs, starting from the bytes
already read. It holds no socket: bytes from the client go in through :meth:`TlsTermination.receive`, which returns
the plaintext and the TLS records to send back; plaintext for the client goes out through
:meth:`TlsTermination.send`. A half-close is a TLS ``close_notify`` either way (:meth:`TlsTermination.close_write`).
"""

from __future__ import annotations

import ssl

import attrs

from nantian.errors import RemoteProtocolError

__all__ = ["TlsReceived", "TlsTermination"]

_READ_SIZE = 1 << 16


@attrs.frozen
class TlsReceived:
    """What one call of :meth:`TlsTermination.receive` produced."""

    plaintext: bytes = b""
    to_send: bytes = b""
    """TLS records to write to the client (handshake messages, alerts, session tickets)."""
    handshake_completed: bool = False
    """The handshake finished during this call."""
    eof: bool = False
    """The client sent ``close_notify``: it will send no more plaintext."""


class TlsTermination:
    """Server-side TLS over memory BIOs for one connection.

    :param context: The server context (its SNI callback may switch the certificate during the handshake).
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self.ssl_object = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self.handshake_done = False
        self.eof = False

    def receive(self, data: bytes) -> TlsReceived:
        """Feed bytes from the client.

        :raises RemoteProtocolError: the handshake failed or the client sent something that is not TLS.
        """
        if data:
            self._incoming.write(data)
        completed = False
        if not self.handshake_done:
            try:
                self.ssl_object.do_handshake()
            except ssl.SSLWantReadError:
                return TlsReceived(to_send=self._outgoing.read())
            except (ssl.SSLError, ssl.CertificateError) as exc:
                raise RemoteProtocolError(f"TLS handshake failed: {exc}") from exc
            self.handshake_done = completed = True
        chunks: list[bytes] = []
        while not self.eof:
            try:
                chunk = self.ssl_object.read(_READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self.eof = True
                break
            except ssl.SSLError as exc:
                raise RemoteProtocolError(f"TLS error: {exc}") from exc
            if not chunk:
                self.eof = True
                break
            chunks.append(chunk)
        return TlsReceived(
            plaintext=b"".join(chunks),
            to_send=self._outgoing.read(),
            handshake_completed=completed,
            eof=self.eof,
        )

    def send(self, plaintext: bytes) -> bytes:
        """Encrypt ``plaintext`` for the client; returns the TLS records to write. Only after the handshake."""
        if not self.handshake_done:
            raise RuntimeError("TLS: data to send before the handshake finished")
        self.ssl_object.write(plaintext)
        return self._outgoing.read()

    def close_write(self) -> bytes:
        """Send ``close_notify`` (no more plaintext for the client; its data may still arrive)."""
        if not self.handshake_done:
            return b""
        try:
            self.ssl_object.unwrap()
        except ssl.SSLWantReadError:
            pass  # our close_notify is out; the client's comes later, or not at all
        except ssl.SSLError:
            pass  # the session is already broken: nothing more to say
        return self._outgoing.read()
