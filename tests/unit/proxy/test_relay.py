"""The sans-IO stream relay core: event sequences in, command lists out."""

from __future__ import annotations

from nantian.proxy._relay import (
    IDLE_TICKS,
    Close,
    Connected,
    ConnectFailed,
    ConnectionLost,
    DataReceived,
    EofReceived,
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

D, U = Side.DOWNSTREAM, Side.UPSTREAM


def connected(**kwargs: object) -> Relay:
    relay = Relay(**kwargs)  # type: ignore[arg-type]
    assert relay.handle(Connected()) == []
    return relay


def test_side_other() -> None:
    assert D.other is U and U.other is D


def test_bytes_before_connect_are_kept_and_sent_once_connected() -> None:
    relay = Relay()
    assert relay.handle(DataReceived(D, b"hello ")) == []
    assert relay.handle(DataReceived(D, b"world")) == []
    assert relay.pending == b"hello world" and not relay.connected
    assert relay.handle(Connected()) == [Send(U, b"hello world")]
    assert relay.pending == b"" and relay.connected
    assert relay.handle(DataReceived(D, b"more")) == [Send(U, b"more")]
    assert relay.handle(DataReceived(U, b"back")) == [Send(D, b"back")]
    assert relay.received == {D: 15, U: 4}


def test_empty_data_is_ignored() -> None:
    assert connected().handle(DataReceived(D, b"")) == []


def test_half_close_is_passed_on_and_both_eofs_close() -> None:
    relay = connected()
    assert relay.handle(EofReceived(D)) == [ShutdownWrite(U)]
    # the upstream still answers after the client's half-close
    assert relay.handle(DataReceived(U, b"answer")) == [Send(D, b"answer")]
    assert relay.handle(EofReceived(U)) == [ShutdownWrite(D), Close("done")]
    assert relay.closed and relay.close_reason == "done"
    assert relay.handle(DataReceived(U, b"late")) == []


def test_upstream_eof_first() -> None:
    relay = connected()
    assert relay.handle(EofReceived(U)) == [ShutdownWrite(D)]
    assert relay.handle(DataReceived(D, b"x")) == [Send(U, b"x")]
    assert relay.handle(EofReceived(D)) == [ShutdownWrite(U), Close("done")]


def test_data_after_eof_is_ignored() -> None:
    relay = connected()
    relay.handle(EofReceived(D))
    assert relay.handle(DataReceived(D, b"after eof")) == []
    assert relay.handle(EofReceived(D)) == []


def test_eof_before_connect_is_passed_on_after_the_pending_bytes() -> None:
    relay = Relay()
    relay.handle(DataReceived(D, b"request"))
    assert relay.handle(EofReceived(D)) == []
    assert relay.handle(Connected()) == [Send(U, b"request"), ShutdownWrite(U)]
    assert relay.handle(EofReceived(U)) == [ShutdownWrite(D), Close("done")]


def test_a_side_without_half_close_closes_instead() -> None:
    relay = connected(half_close=frozenset({U}))  # e.g. a TLS-terminated downstream
    assert relay.handle(EofReceived(U)) == [Close("upstream closed")]


def test_downstream_eof_with_a_tls_downstream_still_half_closes_upstream() -> None:
    relay = connected(half_close=frozenset({U}))
    assert relay.handle(EofReceived(D)) == [ShutdownWrite(U)]


def test_connect_failure_closes_abortively() -> None:
    relay = Relay()
    relay.handle(DataReceived(D, b"x"))
    assert relay.handle(ConnectFailed("refused")) == [Close("connect failed: refused", abort=True)]
    assert relay.pending == b"" and relay.closed


def test_connection_lost_with_error_aborts_and_clean_loss_flushes() -> None:
    assert connected().handle(ConnectionLost(U, "reset")) == [Close("upstream reset", abort=True)]
    assert connected().handle(ConnectionLost(D)) == [Close("downstream closed")]


def test_connection_lost_after_both_eofs_is_done() -> None:
    relay = connected(half_close=frozenset())
    relay._reading.clear()
    assert relay.handle(ConnectionLost(D)) == [Close("done")]


def test_flow_control_pauses_the_other_side() -> None:
    relay = connected()
    assert relay.handle(WriteBlocked(U)) == [PauseReading(D)]
    assert relay.handle(WriteBlocked(U)) == []
    assert relay.handle(WriteBlocked(D)) == [PauseReading(U)]
    assert relay.handle(WriteUnblocked(U)) == [ResumeReading(D)]
    assert relay.handle(WriteUnblocked(D)) == [ResumeReading(U)]
    assert relay.handle(WriteUnblocked(D)) == []


def test_too_many_pending_bytes_pause_the_downstream_until_connected() -> None:
    relay = Relay(max_pending=10)
    assert relay.handle(DataReceived(D, b"12345")) == []
    assert relay.handle(DataReceived(D, b"1234567")) == [PauseReading(D)]
    assert relay.handle(Connected()) == [Send(U, b"123451234567"), ResumeReading(D)]


def test_a_blocked_upstream_before_connect_does_not_pause_it() -> None:
    relay = Relay()
    assert relay.handle(WriteBlocked(D)) == []  # the upstream is not reading yet: nothing to pause
    assert relay.handle(Connected()) == [PauseReading(U)]


def test_idle_timer_closes_after_quiet_ticks_only() -> None:
    relay = Relay(idle_timeout=4.0)
    tick = StartTimer(4.0 / IDLE_TICKS)
    assert relay.start() == [tick]
    relay.handle(Connected())
    for _ in range(3):
        relay.handle(DataReceived(D, b"x"))
        assert relay.handle(TimerFired()) == [tick]
    for _ in range(IDLE_TICKS - 1):
        assert relay.handle(TimerFired()) == [tick]
    relay.handle(DataReceived(U, b"y"))  # activity resets the count
    assert relay.handle(TimerFired()) == [tick]
    for _ in range(IDLE_TICKS - 1):
        assert relay.handle(TimerFired()) == [tick]
    assert relay.handle(TimerFired()) == [Close("idle timeout", abort=True)]


def test_no_idle_timeout_no_timer() -> None:
    assert Relay(idle_timeout=None).start() == []


def test_stop_closes_and_everything_after_is_ignored() -> None:
    relay = Relay()
    assert relay.handle(Stop("no route")) == [Close("no route", abort=True)]
    assert relay.handle(Connected()) == []
    assert relay.handle(TimerFired()) == []
    assert relay.handle(Stop("again")) == []
    assert relay.close_reason == "no route"


def test_second_connected_is_ignored() -> None:
    relay = connected()
    assert relay.handle(Connected()) == []
    assert relay.handle(ConnectFailed("late")) == []
    assert not relay.closed
