"""The sans-IO HTTP/2 core, fed bytes from a real h2 peer (no sockets)."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
import hyperframe.frame
import pytest
from h2_harness import connected_core, h2_client
from hypothesis import given
from hypothesis import strategies as st

from nantian.errors import RemoteProtocolError
from nantian.proxy import _h2

REQUEST = [(":method", "POST"), (":scheme", "http"), (":authority", "a.example"), (":path", "/p?q=1"), ("x-a", "1")]


def test_request_head_and_body_events() -> None:
    core, client = connected_core()
    client.send_headers(1, REQUEST)
    client.send_data(1, b"hello")
    client.send_headers(1, [("x-checksum", "5")], end_stream=True)
    events = core.receive(client.data_to_send())
    assert events == [
        _h2.HeadersReceived(1, REQUEST, False),
        _h2.DataReceived(1, b"hello", 5),
        _h2.TrailersReceived(1, [("x-checksum", "5")]),
        _h2.StreamEnded(1),
    ]


def test_output_waits_for_window_and_trailers_wait_for_output() -> None:
    core, client = connected_core()
    client.send_headers(1, REQUEST, end_stream=True)
    core.receive(client.data_to_send())
    core.send_headers(1, [(b":status", b"200")])
    body = b"x" * 100_000  # more than the client's default 65,535-byte window
    assert core.send_data(1, body) == 100_000  # framed when the output is collected
    core.end_stream(1, [(b"grpc-status", b"0")])
    out = core.data_to_send()
    assert core.buffered(1) == 100_000 - 65_535
    received = b""
    trailers = None
    for ev in client.receive_data(out):
        if isinstance(ev, h2.events.DataReceived):
            received += ev.data or b""
        assert not isinstance(ev, h2.events.TrailersReceived)  # still behind the buffered data
    assert len(received) == 65_535
    client.acknowledge_received_data(65_535, 1)
    events = core.receive(client.data_to_send())
    assert _h2.SendWindowOpened(1, 0) in events
    for ev in client.receive_data(core.data_to_send()):
        if isinstance(ev, h2.events.DataReceived):
            received += ev.data or b""
        if isinstance(ev, h2.events.TrailersReceived):
            trailers = ev.headers
    assert received == body
    assert trailers is not None and [tuple(map(str, t)) for t in trailers] == [("grpc-status", "0")]
    assert core.buffered(1) == 0


def test_settings_carry_our_limits() -> None:
    core = _h2.H2Core(client_side=False, max_concurrent_streams=7, initial_window_size=1 << 18)
    core.initiate()
    client = h2_client()
    core.receive(client.data_to_send())
    events = client.receive_data(core.data_to_send())
    changed = next(e for e in events if isinstance(e, h2.events.RemoteSettingsChanged)).changed_settings
    assert changed[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS].new_value == 7
    assert changed[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE].new_value == 1 << 18
    assert changed[h2.settings.SettingCodes.ENABLE_PUSH].new_value == 0


def test_garbage_raises_and_queues_goaway() -> None:
    core = _h2.H2Core(client_side=False)
    core.initiate()
    core.data_to_send()
    with pytest.raises(RemoteProtocolError):
        core.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert core.closed


def test_graceful_goaway_lets_open_streams_finish() -> None:
    core, client = connected_core()
    client.send_headers(1, REQUEST, end_stream=True)
    core.receive(client.data_to_send())
    core.goaway()
    core.send_headers(1, [(b":status", b"200")])
    core.send_data(1, b"after goaway")
    core.end_stream(1)
    scanner = _h2.FrameScanner()
    items = scanner.feed(core.data_to_send())
    assert _h2.ConnectionEnded(0, 1) in items
    data = b""
    for item in items:
        if isinstance(item, bytes):
            for ev in client.receive_data(item):
                if isinstance(ev, h2.events.DataReceived):
                    data += ev.data or b""
    assert data == b"after goaway"


def test_reset_drops_buffered_output() -> None:
    core, client = connected_core()
    client.send_headers(1, REQUEST, end_stream=True)
    core.receive(client.data_to_send())
    core.send_headers(1, [(b":status", b"200")])
    core.send_data(1, b"y" * 70_000)
    assert core.buffered(1) > 0
    core.reset(1)
    assert core.buffered(1) == 0
    events = client.receive_data(core.data_to_send())
    assert any(isinstance(e, h2.events.StreamReset) for e in events)
    core.reset(1)  # twice is harmless


def test_outbound_headers_drop_connection_specific_fields() -> None:
    out = _h2.outbound_headers(
        [("Connection", "close"), ("te", "gzip"), ("TE", "trailers"), ("X-Ok", " v "), ("host", "h"), (":path", "/")]
    )
    assert out == [(b"te", b"trailers"), (b"x-ok", b"v")]
    assert _h2.outbound_headers([("x-split", "a\r\nb"), ("x-nul", "a\x00"), ("", "v"), ("x-fine", "a b")]) == [
        (b"x-fine", b"a b")
    ]


def _frames() -> bytes:
    out = b""
    for frame in (
        hyperframe.frame.SettingsFrame(0),
        hyperframe.frame.DataFrame(1, data=b"abc" * 10),
        hyperframe.frame.GoAwayFrame(0, last_stream_id=3, error_code=0),
        hyperframe.frame.PingFrame(0, opaque_data=b"12345678"),
        hyperframe.frame.GoAwayFrame(0, last_stream_id=1, error_code=2, additional_data=b"bye"),
    ):
        out += frame.serialize()
    return out


@given(st.lists(st.integers(min_value=1, max_value=40), max_size=30))
def test_frame_scanner_ignores_how_bytes_are_split(cuts: list[int]) -> None:
    stream = _h2.PREFACE + _frames()
    scanner = _h2.FrameScanner(preface=len(_h2.PREFACE))
    items: list[bytes | _h2.ConnectionEnded] = []
    pos = 0
    for cut in [*cuts, len(stream)]:
        items.extend(scanner.feed(stream[pos : pos + cut]))
        pos += cut
        if pos >= len(stream):
            break
    passed = b"".join(i for i in items if isinstance(i, bytes))
    goaways = [i for i in items if isinstance(i, _h2.ConnectionEnded)]
    assert goaways == [_h2.ConnectionEnded(0, 3), _h2.ConnectionEnded(2, 1)]
    frames = _frames()
    ping = hyperframe.frame.PingFrame(0, opaque_data=b"12345678").serialize()
    expected = _h2.PREFACE + frames[: 9 + 0 + 9 + 30] + ping
    assert passed == expected


def test_stateless_encoder_round_trips_through_a_real_decoder() -> None:
    encoder = _h2.StatelessEncoder()
    decoder = hpack.Decoder()
    blocks: list[list[tuple[bytes | str, bytes | str]]] = [
        [(b":status", b"200"), (b"content-type", b"text/plain"), (b"x-custom", b"v" * 300)],
        [(b":status", b"404"), (b"set-cookie", b"secret=1"), (b"x-custom", b"v" * 300), (b"x-empty", b"")],
        [(b":method", b"GET"), (b":path", b"/a?b"), (":authority", "h.example"), ("x-latin", "caf\xe9")],
    ]
    first = encoder.encode(blocks[0])
    assert first.startswith(b"\x20")  # dynamic table size update to 0, once
    assert not encoder.encode(blocks[0]).startswith(b"\x20")
    for block in blocks:
        decoded = [(bytes(n), bytes(v)) for n, v in decoder.decode(encoder.encode(block), raw=True)]
        expected = [
            (n.encode("latin-1") if isinstance(n, str) else n, v.encode("latin-1") if isinstance(v, str) else v)
            for n, v in block
        ]
        assert decoded == expected
    assert len(decoder.header_table.dynamic_entries) == 0  # nothing went into the peer's dynamic table


def _frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream_id.to_bytes(4, "big") + payload


_frames_strategy = st.lists(
    st.builds(
        _frame,
        st.integers(min_value=0, max_value=10),  # DATA .. CONTINUATION, and an unknown type
        st.integers(min_value=0, max_value=255),
        st.sampled_from([0, 1, 2, 3, 5, 0x7FFFFFFF]),
        st.binary(max_size=40),
    ),
    max_size=8,
)


@given(_frames_strategy, st.integers(min_value=1, max_value=64))
def test_core_survives_arbitrary_frames(frames: list[bytes], chunk: int) -> None:
    """Whatever frames a client sends, the core returns events or raises RemoteProtocolError, fed in any chunks."""
    core, client = connected_core()
    client.send_headers(1, REQUEST)
    data = client.data_to_send() + b"".join(frames)
    try:
        for i in range(0, len(data), chunk):
            core.receive(data[i : i + chunk])
            core.data_to_send()
    except RemoteProtocolError:
        assert core.closed
