"""A sans-IO WebSocket (RFC 6455) echo: feed it the client's bytes, send back what it returns."""

from __future__ import annotations

import base64
import hashlib
import struct

from nantian.errors import RemoteProtocolError

__all__ = ["WebSocketEcho", "accept_key", "encode_frame"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_MESSAGE = 16 * 1024 * 1024
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value answering ``Sec-WebSocket-Key: key``."""
    return base64.b64encode(hashlib.sha1(key.strip().encode() + _GUID).digest()).decode()


def encode_frame(opcode: int, payload: bytes, *, mask: bytes | None = None) -> bytes:
    """One final frame; servers send unmasked frames, clients pass a 4-byte ``mask``."""
    head = bytes([0x80 | opcode])
    mask_bit = 0x80 if mask else 0
    size = len(payload)
    if size < 126:
        head += bytes([mask_bit | size])
    elif size < 1 << 16:
        head += bytes([mask_bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", size)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


class WebSocketEcho:
    """Echoes every text and binary message with its own opcode, answers pings, and completes the close handshake."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self._message_opcode = 0
        self.closed = False
        """True once a close frame was received and answered: the connection should be closed."""

    def receive(self, data: bytes) -> list[bytes]:
        """Feed bytes from the client; returns the frames to send back.

        :raises RemoteProtocolError: on an unmasked or oversized frame, or a bad fragment sequence.
        """
        self._buffer += data
        out: list[bytes] = []
        while not self.closed:
            frame = self._next_frame()
            if frame is None:
                break
            out.extend(self._handle(*frame))
        return out

    def _next_frame(self) -> tuple[bool, int, bytes] | None:
        buf = self._buffer
        if len(buf) < 2:
            return None
        fin, opcode, masked, size = bool(buf[0] & 0x80), buf[0] & 0x0F, bool(buf[1] & 0x80), buf[1] & 0x7F
        pos = 2
        if size == 126:
            if len(buf) < 4:
                return None
            size, pos = struct.unpack("!H", buf[2:4])[0], 4
        elif size == 127:
            if len(buf) < 10:
                return None
            size, pos = struct.unpack("!Q", buf[2:10])[0], 10
        if not masked:
            raise RemoteProtocolError("websocket: client frames must be masked")
        if size > _MAX_MESSAGE:
            raise RemoteProtocolError(f"websocket: frame of {size} bytes is too large")
        if len(buf) < pos + 4 + size:
            return None
        mask = bytes(buf[pos : pos + 4])
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(buf[pos + 4 : pos + 4 + size]))
        del buf[: pos + 4 + size]
        return fin, opcode, payload

    def _handle(self, fin: bool, opcode: int, payload: bytes) -> list[bytes]:
        if opcode == OP_PING:
            return [encode_frame(OP_PONG, payload)]
        if opcode == OP_PONG:
            return []
        if opcode == OP_CLOSE:
            self.closed = True
            return [encode_frame(OP_CLOSE, payload[:2])]
        if opcode in (OP_TEXT, OP_BINARY):
            if self._fragments:
                raise RemoteProtocolError("websocket: new message before the previous one ended")
            self._message_opcode = opcode
        elif opcode != OP_CONTINUATION or not self._fragments:
            raise RemoteProtocolError(f"websocket: unexpected opcode {opcode:#x}")
        self._fragments.append(payload)
        if sum(len(f) for f in self._fragments) > _MAX_MESSAGE:
            raise RemoteProtocolError("websocket: message too large")
        if not fin:
            return []
        message, self._fragments = b"".join(self._fragments), []
        return [encode_frame(self._message_opcode, message)]
