"""Properties of the relay core under arbitrary event sequences (hypothesis)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from nantian.proxy._relay import (
    Close,
    Command,
    Connected,
    ConnectFailed,
    ConnectionLost,
    DataReceived,
    EofReceived,
    Event,
    PauseReading,
    Relay,
    ResumeReading,
    Send,
    ShutdownWrite,
    Side,
    StartTimer,
    Stop,
    TimerFired,
    WriteBlocked,
    WriteUnblocked,
)

sides = st.sampled_from(list(Side))
events: st.SearchStrategy[Event] = st.one_of(
    st.builds(DataReceived, sides, st.binary(max_size=8)),
    st.builds(EofReceived, sides),
    st.just(Connected()),
    st.builds(ConnectFailed, st.just("refused")),
    st.builds(ConnectionLost, sides, st.none() | st.just("reset")),
    st.builds(WriteBlocked, sides),
    st.builds(WriteUnblocked, sides),
    st.just(TimerFired()),
    st.builds(Stop, st.just("stop"), st.booleans()),
)


def run(relay: Relay, sequence: list[Event]) -> list[Command]:
    commands = relay.start()
    for event in sequence:
        commands.extend(relay.handle(event))
    return commands


@given(
    st.lists(events, max_size=40),
    st.frozensets(sides),
    st.integers(min_value=1, max_value=32),
    st.none() | st.just(4.0),
)
def test_command_stream_invariants(
    sequence: list[Event], half_close: frozenset[Side], max_pending: int, idle: float | None
) -> None:
    relay = Relay(idle_timeout=idle, half_close=half_close, max_pending=max_pending)
    commands = run(relay, sequence)
    closes = [i for i, c in enumerate(commands) if isinstance(c, Close)]
    # at most one Close, and it is the last command
    assert len(closes) <= 1
    if closes:
        assert closes[0] == len(commands) - 1 and relay.closed
    for side in Side:
        shutdowns = [i for i, c in enumerate(commands) if c == ShutdownWrite(side)]
        sends = [i for i, c in enumerate(commands) if isinstance(c, Send) and c.side is side]
        # a side is half-closed at most once, only if it can be, and gets no bytes after that
        assert len(shutdowns) <= 1
        assert not shutdowns or side in half_close
        assert not shutdowns or all(i < shutdowns[0] for i in sends)
        # pause and resume alternate, starting with a pause
        flow = [c for c in commands if isinstance(c, PauseReading | ResumeReading) and c.side is side]
        assert all(isinstance(c, PauseReading if i % 2 == 0 else ResumeReading) for i, c in enumerate(flow))
    if idle is None:
        assert not any(isinstance(c, StartTimer) for c in commands)


@given(st.lists(st.binary(min_size=1, max_size=8), max_size=20), st.integers(min_value=0, max_value=20))
def test_downstream_bytes_reach_the_upstream_in_order_around_the_connect(chunks: list[bytes], connect_at: int) -> None:
    relay = Relay()
    sequence: list[Event] = [DataReceived(Side.DOWNSTREAM, c) for c in chunks]
    sequence.insert(min(connect_at, len(sequence)), Connected())
    sequence.append(EofReceived(Side.DOWNSTREAM))
    commands = run(relay, sequence)
    sent = b"".join(c.data for c in commands if isinstance(c, Send))
    assert all(c.side is Side.UPSTREAM for c in commands if isinstance(c, Send))
    assert sent == b"".join(chunks)
    assert commands[-1] == ShutdownWrite(Side.UPSTREAM) and not relay.closed
