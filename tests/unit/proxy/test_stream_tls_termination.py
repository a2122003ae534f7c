"""The sans-IO TLS termination layer against a memory-BIO client: handshake, data, half-close both ways."""

from __future__ import annotations

import contextlib
import ssl

import pytest
import trustme

from nantian.errors import RemoteProtocolError
from nantian.proxy.stream_tls import TlsTermination


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


class Client:
    def __init__(self, ca: trustme.CA, sni: str = "t.example") -> None:
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname=sni)

    def step(self, data: bytes = b"") -> bytes:
        if data:
            self.incoming.write(data)
        with contextlib.suppress(ssl.SSLWantReadError):
            self.obj.do_handshake()
        return self.outgoing.read()


def server(ca: trustme.CA) -> TlsTermination:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("t.example").configure_cert(ctx)
    return TlsTermination(ctx)


def handshake(client: Client, tls: TlsTermination, to_server: bytes | None = None) -> None:
    if to_server is None:
        to_server = client.step()
    for _ in range(5):
        got = tls.receive(to_server)
        to_server = client.step(got.to_send)
        if tls.handshake_done and not to_server:
            break
    assert tls.handshake_done


def test_handshake_then_data_both_ways_and_half_closes(ca: trustme.CA) -> None:
    client, tls = Client(ca), server(ca)
    first = client.step()
    got = tls.receive(first[:10])  # a ClientHello split anywhere
    assert not got.handshake_completed and not got.plaintext
    got = tls.receive(first[10:])
    assert got.to_send and not tls.handshake_done
    handshake(client, tls, client.step(got.to_send))
    client.obj.write(b"hello")
    got = tls.receive(client.outgoing.read())
    assert got.plaintext == b"hello" and not got.eof
    client.incoming.write(tls.send(b"world"))
    assert client.obj.read(100) == b"world"
    # the server half-closes; the client still sends, and the server still reads
    client.incoming.write(tls.close_write())
    assert client.obj.read(100) == b""
    client.obj.write(b"more")
    assert tls.receive(client.outgoing.read()).plaintext == b"more"
    # the client's close_notify is an EOF (its shutdown completes: it already has ours)
    client.obj.unwrap()
    got = tls.receive(client.outgoing.read())
    assert got.eof and tls.eof


def test_client_close_notify_then_server_still_answers(ca: trustme.CA) -> None:
    client, tls = Client(ca), server(ca)
    handshake(client, tls)
    client.obj.write(b"request")
    with pytest.raises(ssl.SSLWantReadError):
        client.obj.unwrap()
    got = tls.receive(client.outgoing.read())
    assert got.plaintext == b"request" and got.eof
    client.incoming.write(tls.send(b"answer"))
    assert client.obj.read(100) == b"answer"


def test_not_tls_is_a_remote_protocol_error(ca: trustme.CA) -> None:
    with pytest.raises(RemoteProtocolError, match="handshake"):
        server(ca).receive(b"GET / HTTP/1.1\r\nHost: t.example\r\n\r\n")


def test_send_before_the_handshake_is_a_bug_and_close_write_is_empty(ca: trustme.CA) -> None:
    tls = server(ca)
    assert tls.close_write() == b""
    with pytest.raises(RuntimeError):
        tls.send(b"early")
