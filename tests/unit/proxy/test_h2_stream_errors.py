"""Stream errors stay on their stream (RFC 9113 section 5.4.2): the sans-IO core fed by a real h2 peer that breaks
one stream, and the other streams of the connection carrying on."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.errors
import h2.events
import hyperframe.frame
import pytest
from h2_harness import connected_core
from hypothesis import given
from hypothesis import strategies as st

from nantian.errors import RemoteProtocolError
from nantian.proxy import _h2

PROTOCOL_ERROR = h2.errors.ErrorCodes.PROTOCOL_ERROR


def _req(path: str = "/", method: str = "POST", *extra: tuple[str, str]) -> list[tuple[str, str]]:
    return [(":method", method), (":scheme", "http"), (":authority", "a.example"), (":path", path), *extra]


def _to_client(core: _h2.H2Core, client: h2.connection.H2Connection) -> list[h2.events.Event]:
    """Deliver the core's output to the client; GOAWAY is an error here (the client would close)."""
    items = _h2.FrameScanner().feed(core.data_to_send())
    assert not [i for i in items if isinstance(i, _h2.ConnectionEnded)], "the core sent GOAWAY"
    events: list[h2.events.Event] = []
    for item in items:
        assert isinstance(item, bytes)
        events.extend(client.receive_data(item))
    return events


def _answer(core: _h2.H2Core, stream_id: int, body: bytes) -> None:
    core.send_headers(stream_id, [(b":status", b"200")])
    core.send_data(stream_id, body)
    core.end_stream(stream_id)


def _status(events: list[h2.events.Event], stream_id: int) -> str | None:
    for ev in events:
        if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == stream_id and ev.headers:
            return dict((str(n), str(v)) for n, v in ev.headers).get(":status")
    return None


def _resets(events: list[h2.events.Event]) -> dict[int, int]:
    return {
        ev.stream_id: int(ev.error_code or 0)
        for ev in events
        if isinstance(ev, h2.events.StreamReset) and ev.stream_id is not None
    }


def _errors(events: list[_h2.Event]) -> list[_h2.StreamError]:
    return [e for e in events if isinstance(e, _h2.StreamError)]


# --- request bodies whose length does not match content-length ---------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "sent", "via_trailers"),
    [(10, 20, False), (10, 5, False), (10, 5, True), (0, 1, False)],
    ids=["longer", "shorter", "shorter-ended-by-trailers", "body-despite-zero"],
)
def test_a_body_that_does_not_match_content_length_resets_only_its_stream(
    declared: int, sent: int, via_trailers: bool
) -> None:
    core, client = connected_core(validate=False)
    client.send_headers(1, _req("/bad", "POST", ("content-length", str(declared))))
    client.send_headers(3, _req("/good", "POST", ("content-length", "4")))
    client.send_data(3, b"go")
    client.send_data(1, b"x" * sent, end_stream=not via_trailers)
    if via_trailers:
        client.send_headers(1, [("x-sum", "1")], end_stream=True)
    client.send_data(3, b"od", end_stream=True)
    events = core.receive(client.data_to_send())

    (error,) = _errors(events)
    assert error.stream_id == 1 and error.error_code == PROTOCOL_ERROR and error.answered is None
    # Stream 1 never looks complete to its reader.
    assert not [e for e in events if isinstance(e, _h2.StreamEnded | _h2.TrailersReceived) and e.stream_id == 1]
    body3 = b"".join(e.data for e in events if isinstance(e, _h2.DataReceived) and e.stream_id == 3)
    assert body3 == b"good" and _h2.StreamEnded(3) in events
    assert not core.closed
    _answer(core, 3, b"fine")
    out = _to_client(core, client)
    assert _resets(out) == {1: PROTOCOL_ERROR}
    assert _status(out, 3) == "200"


def test_a_request_head_ending_the_stream_with_a_positive_content_length_is_answered_400() -> None:
    core, client = connected_core(validate=False)
    client.send_headers(1, _req("/", "POST", ("content-length", "5")), end_stream=True)
    client.send_headers(3, _req("/", "GET"), end_stream=True)
    events = core.receive(client.data_to_send())
    assert _errors(events) == [_h2.StreamError(1, PROTOCOL_ERROR, _errors(events)[0].reason, 400)]
    assert [e.stream_id for e in events if isinstance(e, _h2.HeadersReceived)] == [3]
    _answer(core, 3, b"")
    out = _to_client(core, client)
    assert _status(out, 1) == "400"
    assert _status(out, 3) == "200"


def test_the_connection_window_of_a_dropped_body_is_given_back() -> None:
    # Small windows: without the give-back, two rejected bodies would use up the connection window for good.
    core, client = connected_core(validate=False, window=65535)
    for sid in (1, 3):
        client.send_headers(sid, _req("/", "POST", ("content-length", "1")))
        for _ in range(4):
            client.send_data(sid, b"y" * 10_000)
        events = core.receive(client.data_to_send())
        assert [e.stream_id for e in _errors(events)] == [sid]
        _to_client(core, client)
    assert client.outbound_flow_control_window >= 65535 - 40_000
    client.send_headers(5, _req("/", "POST", ("content-length", "50000")))
    for i in range(5):
        client.send_data(5, b"z" * 10_000, end_stream=i == 4)
    events = core.receive(client.data_to_send())
    assert sum(len(e.data) for e in events if isinstance(e, _h2.DataReceived)) == 50_000


# --- malformed request heads ----------------------------------------------------------------------------------------


MALFORMED_HEADS = {
    "upper-case-name": _req("/", "GET", ("X-Upper", "1")),
    "connection-header": _req("/", "GET", ("connection", "keep-alive")),
    "transfer-encoding": _req("/", "GET", ("transfer-encoding", "chunked")),
    "te-not-trailers": _req("/", "GET", ("te", "gzip")),
    "missing-path": [(":method", "GET"), (":scheme", "http"), (":authority", "a.example")],
    "duplicate-method": [(":method", "GET"), *_req("/", "GET")],
    "pseudo-after-regular": [("x-a", "1"), *_req("/", "GET")],
    "unknown-pseudo": _req("/", "GET", (":bogus", "1")),
    "response-pseudo": _req("/", "GET", (":status", "200")),
    "no-authority-or-host": [(":method", "GET"), (":scheme", "http"), (":path", "/")],
    "bad-content-length": _req("/", "GET", ("content-length", "1x")),
}


@pytest.mark.parametrize("headers", MALFORMED_HEADS.values(), ids=MALFORMED_HEADS.keys())
def test_a_malformed_request_head_is_answered_400_and_neighbours_carry_on(headers: list[tuple[str, str]]) -> None:
    core, client = connected_core(validate=False)
    client.send_headers(1, _req("/slow", "GET"), end_stream=True)
    core.receive(client.data_to_send())
    client.send_headers(3, headers, end_stream=True)
    client.send_headers(5, _req("/after", "GET"), end_stream=True)
    events = core.receive(client.data_to_send())

    (error,) = _errors(events)
    assert (error.stream_id, error.error_code, error.answered) == (3, PROTOCOL_ERROR, 400)
    assert [e.stream_id for e in events if isinstance(e, _h2.HeadersReceived)] == [5]  # 3 never reaches anyone
    assert not core.closed
    _answer(core, 1, b"one")
    _answer(core, 5, b"five")
    out = _to_client(core, client)
    assert (_status(out, 1), _status(out, 3), _status(out, 5)) == ("200", "400", "200")


def test_a_malformed_head_with_a_body_to_follow_is_answered_then_stopped() -> None:
    core, client = connected_core(validate=False)
    client.send_headers(1, _req("/", "POST", ("Bad-Name", "1")))
    client.send_data(1, b"body of a bad request")
    events = core.receive(client.data_to_send())
    assert [(e.stream_id, e.answered) for e in _errors(events)] == [(1, 400)]
    assert not [e for e in events if isinstance(e, _h2.DataReceived)]
    out = _to_client(core, client)
    assert _status(out, 1) == "400"
    assert _resets(out) == {1: h2.errors.ErrorCodes.NO_ERROR}  # RFC 9113 section 8.1: answered, stop sending
    client.send_headers(3, _req("/", "GET"), end_stream=True)
    assert core.receive(client.data_to_send()) == [_h2.HeadersReceived(3, _req("/", "GET"), True), _h2.StreamEnded(3)]


def test_hpack_state_survives_a_malformed_head() -> None:
    """The malformed block adds fields to the peer's dynamic table; the next request refers to them by index."""
    core, client = connected_core(validate=False)
    shared = [("x-token", "t" * 40), ("x-tenant", "blue")]
    client.send_headers(1, _req("/", "GET", *shared, ("connection", "close")), end_stream=True)
    core.receive(client.data_to_send())
    client.send_headers(3, _req("/", "GET", *shared), end_stream=True)
    frame = client.data_to_send()
    assert len(frame) < 40  # the fields went as dynamic-table indexes
    events = core.receive(frame)
    assert events == [_h2.HeadersReceived(3, _req("/", "GET", *shared), True), _h2.StreamEnded(3)]


def test_malformed_trailers_reset_the_stream_without_an_answer() -> None:
    core, client = connected_core(validate=False)
    client.send_headers(1, _req("/", "POST"))
    client.send_data(1, b"abc")
    client.send_headers(1, [(":path", "/again")], end_stream=True)
    events = core.receive(client.data_to_send())
    assert events[:2] == [_h2.HeadersReceived(1, _req("/", "POST"), False), _h2.DataReceived(1, b"abc", 3)]
    (error,) = _errors(events)
    assert (error.stream_id, error.error_code, error.answered) == (1, PROTOCOL_ERROR, None)
    assert _resets(_to_client(core, client)) == {1: PROTOCOL_ERROR}


def test_data_after_the_peer_ended_the_stream_is_a_stream_error() -> None:
    core, client = connected_core(validate=False)
    client.send_headers(1, _req("/", "GET"), end_stream=True)
    core.receive(client.data_to_send())
    data = hyperframe.frame.DataFrame(1, data=b"late").serialize()
    client.send_headers(3, _req("/", "GET"), end_stream=True)
    events = core.receive(data + client.data_to_send())
    assert _errors(events) == [_h2.StreamError(1, h2.errors.ErrorCodes.STREAM_CLOSED, _errors(events)[0].reason)]
    assert _h2.HeadersReceived(3, _req("/", "GET"), True) in events
    assert not core.closed


# --- what still ends the connection ----------------------------------------------------------------------------------


def _connection_error(core: _h2.H2Core, data: bytes) -> int:
    with pytest.raises(RemoteProtocolError):
        core.receive(data)
    assert core.closed
    goaways = [i for i in _h2.FrameScanner().feed(core.data_to_send()) if isinstance(i, _h2.ConnectionEnded)]
    assert len(goaways) == 1
    return goaways[0].error_code


def test_an_hpack_error_still_ends_the_connection() -> None:
    core, _ = connected_core(validate=False)
    block = b"\xbf\x7f"  # indexed field far beyond both tables
    frame = hyperframe.frame.HeadersFrame(1, data=block, flags=["END_HEADERS", "END_STREAM"]).serialize()
    assert _connection_error(core, frame) != 0


def test_an_even_stream_id_from_a_client_still_ends_the_connection() -> None:
    core, client = connected_core(validate=False)
    client.send_headers(1, _req("/", "GET"), end_stream=True)
    raw = client.data_to_send()
    even = raw[:5] + (2).to_bytes(4, "big") + raw[9:]  # the same header block on stream 2
    assert _connection_error(core, even) == PROTOCOL_ERROR


def test_overrunning_the_connection_window_still_ends_the_connection() -> None:
    core, client = connected_core(validate=False, window=65535)
    client.send_headers(1, _req("/", "POST"))
    core.receive(client.data_to_send())
    frames = b"".join(hyperframe.frame.DataFrame(1, data=b"w" * 16_384).serialize() for _ in range(5))
    assert _connection_error(core, frames) == h2.errors.ErrorCodes.FLOW_CONTROL_ERROR


def test_data_on_an_idle_stream_still_ends_the_connection() -> None:
    core, _ = connected_core(validate=False)
    assert _connection_error(core, hyperframe.frame.DataFrame(7, data=b"x").serialize()) != 0


# --- the client side (upstream connections) -------------------------------------------------------------------------


def _upstream_pair() -> tuple[_h2.H2Core, h2.connection.H2Connection]:
    """Our client core and a backend (h2 server) that sends what it is told to."""
    core = _h2.H2Core(client_side=True)
    core.initiate()
    config = h2.config.H2Configuration(
        client_side=False, header_encoding="latin-1", validate_outbound_headers=False, normalize_outbound_headers=False
    )
    server = h2.connection.H2Connection(config)
    server.initiate_connection()
    server.receive_data(core.data_to_send())
    core.receive(server.data_to_send())
    server.receive_data(core.data_to_send())
    return core, server


def test_a_malformed_response_resets_only_its_stream() -> None:
    core, server = _upstream_pair()
    for sid in (1, 3):
        core.send_headers(
            sid, [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"b"), (b":path", b"/")], end_stream=True
        )
    server.receive_data(core.data_to_send())
    server.send_headers(1, [(":status", "200"), ("Transfer-Encoding", "chunked")])
    server.send_headers(3, [(":status", "200"), ("content-length", "2")])
    server.send_data(3, b"ok", end_stream=True)
    events = core.receive(server.data_to_send())
    (error,) = _errors(events)
    assert (error.stream_id, error.error_code, error.answered) == (1, PROTOCOL_ERROR, None)
    assert _h2.HeadersReceived(3, [(":status", "200"), ("content-length", "2")], False) in events
    assert _h2.DataReceived(3, b"ok", 2) in events and _h2.StreamEnded(3) in events
    resets = [e for e in server.receive_data(core.data_to_send()) if isinstance(e, h2.events.StreamReset)]
    assert [(e.stream_id, e.error_code) for e in resets] == [(1, PROTOCOL_ERROR)]


def test_a_response_body_longer_than_its_content_length_resets_only_its_stream() -> None:
    core, server = _upstream_pair()
    core.send_headers(
        1, [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"b"), (b":path", b"/")], end_stream=True
    )
    server.receive_data(core.data_to_send())
    server.send_headers(1, [(":status", "200"), ("content-length", "2")])
    server.send_data(1, b"too long", end_stream=True)
    events = core.receive(server.data_to_send())
    assert [(e.stream_id, e.error_code) for e in _errors(events)] == [(1, PROTOCOL_ERROR)]
    assert not core.closed


def _raw_resets(data: bytes) -> list[tuple[int, int]]:
    """RST_STREAM frames in ``data`` (frames a client's h2 would drop for streams it never opened)."""
    out: list[tuple[int, int]] = []
    while data:
        frame, length = hyperframe.frame.Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9 : 9 + length]))
        if isinstance(frame, hyperframe.frame.RstStreamFrame):
            out.append((frame.stream_id, frame.error_code))
        data = data[9 + length :]
    return out


def test_a_head_h2_cannot_even_take_as_a_request_is_reset_and_its_late_frames_ignored() -> None:
    """An informational ``:status`` in a request sends h2's stream state machine to CLOSED without an answer: the
    core still owes, and sends, RST_STREAM; frames that were in flight for the stream do not end the connection."""
    core, client = connected_core(validate=False)
    block = client.encoder.encode(_req("/", "POST", (":status", "100")))  # the client's h2 would refuse to send it
    raw = hyperframe.frame.HeadersFrame(1, data=block, flags=["END_HEADERS"]).serialize()
    raw += hyperframe.frame.DataFrame(1, data=b"in flight").serialize()
    client.send_headers(3, _req("/", "GET"), end_stream=True)
    events = core.receive(raw + client.data_to_send())
    assert [(e.stream_id, e.error_code, e.answered) for e in _errors(events)] == [(1, PROTOCOL_ERROR, None)]
    assert _h2.HeadersReceived(3, _req("/", "GET"), True) in events
    assert not core.closed
    _answer(core, 3, b"")
    out = core.data_to_send()
    # Ours for the head, then h2's usual STREAM_CLOSED for the DATA that was in flight.
    assert _raw_resets(out) == [(1, PROTOCOL_ERROR), (1, h2.errors.ErrorCodes.STREAM_CLOSED)]
    assert _status(client.receive_data(out), 3) == "200"


_stream_plans = st.lists(
    st.tuples(
        st.sampled_from([None, *MALFORMED_HEADS]),  # the head: valid, or one of the malformed ones
        st.integers(min_value=0, max_value=3000),  # body bytes sent
        st.sampled_from([None, -1, 0, 1]),  # content-length: absent, or sent + this
        st.booleans(),  # end with trailers instead of END_STREAM on the last DATA
    ),
    min_size=1,
    max_size=6,
)


@given(_stream_plans, st.integers(min_value=1, max_value=500))
def test_each_stream_gets_its_own_verdict(plans: list[tuple[str | None, int, int | None, bool]], chunk: int) -> None:
    """Streams with every mix of malformed heads and lying content-lengths, interleaved on one connection and fed
    in any chunks: the connection survives, each bad stream gets its stream error, each good one its body."""
    core, client = connected_core(validate=False)
    expected: dict[int, str] = {}
    for i, (malformed, sent, delta, _) in enumerate(plans):
        sid = 2 * i + 1
        extra = [] if delta is None else [("content-length", str(max(sent + delta, 0)))]
        head = MALFORMED_HEADS[malformed] if malformed is not None else _req(f"/{sid}", "POST")
        client.send_headers(sid, [*head, *extra])
        if malformed is not None:
            expected[sid] = "400"
        elif delta is not None and max(sent + delta, 0) != sent:
            expected[sid] = "reset"
        else:
            expected[sid] = "ok"
    for i, (_, sent, _, trailers) in enumerate(plans):  # bodies after all heads: the streams interleave
        sid = 2 * i + 1
        for start in range(0, sent, 1000):
            client.send_data(sid, b"b" * min(1000, sent - start))
        if trailers:
            client.send_headers(sid, [("x-sum", str(sent))], end_stream=True)
        else:
            client.send_data(sid, b"", end_stream=True)
    data = client.data_to_send()
    events: list[_h2.Event] = []
    for start in range(0, len(data), chunk):
        events.extend(core.receive(data[start : start + chunk]))  # raises on a connection error: a failure here
        core.data_to_send()
    for sid, verdict in expected.items():
        errors = [e for e in _errors(events) if e.stream_id == sid]
        ended = _h2.StreamEnded(sid) in events
        body = sum(len(e.data) for e in events if isinstance(e, _h2.DataReceived) and e.stream_id == sid)
        if verdict == "ok":
            assert not errors and ended and body == plans[sid // 2][1]
        else:
            assert len(errors) == 1 and not ended
            assert errors[0].answered == (400 if verdict == "400" else None)
    assert not core.closed


def test_a_request_depending_on_itself_is_a_stream_error() -> None:
    core, client = connected_core(validate=False)
    block = client.encoder.encode(_req("/", "GET"))
    flags = ["END_HEADERS", "END_STREAM", "PRIORITY"]
    raw = hyperframe.frame.HeadersFrame(1, data=block, flags=flags, depends_on=1, stream_weight=15).serialize()
    client.send_headers(3, _req("/", "GET"), end_stream=True)  # its block refers to table entries of the first
    events = core.receive(raw + client.data_to_send())
    assert [(e.stream_id, e.error_code) for e in _errors(events)] == [(1, PROTOCOL_ERROR)]
    assert events[-2:] == [_h2.HeadersReceived(3, _req("/", "GET"), True), _h2.StreamEnded(3)]
    assert not core.closed
