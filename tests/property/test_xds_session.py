"""The stream session under any interleaving of configuration changes, acks, nacks and stale replies:
at most one message in flight, deltas always start from what the node holds, a refused version is never sent
again, and once the node acks everything it ends on the newest version it did not refuse."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from nantian.testing.transport import sample_snapshot
from nantian.xds._session import (
    Accepted,
    AckReceived,
    Close,
    Command,
    ConfigChanged,
    HelloReceived,
    NackReceived,
    Rejected,
    SendDelta,
    SendSnapshot,
    ServerSession,
    Stale,
)

POOL = [sample_snapshot(i + 1, tag="s") for i in range(4)]

events = st.lists(
    st.one_of(
        st.tuples(st.just("change"), st.integers(0, len(POOL) - 1)),
        st.tuples(st.just("ack"), st.booleans()),
        st.tuples(st.just("nack"), st.booleans()),
        st.tuples(st.just("stale"), st.booleans()),
    ),
    max_size=30,
)


@given(events, st.one_of(st.none(), st.integers(0, len(POOL) - 1)))
def test_session_invariants(script: list[tuple[str, object]], held_index: int | None) -> None:
    held = POOL[held_index] if held_index is not None else None
    session = ServerSession()
    node = held  # what the data plane really serves
    believed = held  # what the session thinks it serves (unknown after a resync request)
    in_flight: SendSnapshot | SendDelta | None = None
    refused: set[str] = set()
    latest = None

    def run(commands: list[Command]) -> None:
        nonlocal in_flight
        assert believed is None or believed == node
        for command in commands:
            assert not isinstance(command, Close)
            if isinstance(command, SendSnapshot | SendDelta):
                assert in_flight is None, "two messages in flight"
                assert command.snapshot.version not in refused, "a refused version was sent again"
                if isinstance(command, SendDelta):
                    assert node is not None and believed is not None
                    assert command.base.version == node.version == believed.version
                in_flight = command

    run(session.handle(HelloReceived("n", frozenset(), held.version if held else "", held)))
    for kind, arg in script:
        if kind == "change":
            latest = POOL[int(arg)]  # type: ignore[call-overload]
            run(session.handle(ConfigChanged(latest)))
        elif kind == "stale":
            assert session.handle(AckReceived("v", "stale-nonce")) == [Stale("stale-nonce")]
        elif in_flight is not None:
            sent, in_flight = in_flight, None
            if kind == "ack":
                node = believed = sent.snapshot
                commands = session.handle(AckReceived(sent.snapshot.version, sent.nonce))
                assert commands[0] == Accepted(sent.snapshot.version)
                run(commands[1:])
            else:
                resync = bool(arg) and isinstance(sent, SendDelta)
                commands = session.handle(NackReceived(sent.snapshot.version, sent.nonce, "no", resync=bool(arg)))
                if resync:
                    believed = None
                else:
                    assert commands[0] == Rejected(sent.snapshot.version, "no", session.acked_version)
                    refused.add(sent.snapshot.version)
                    commands = commands[1:]
                run(commands)
        assert session.acked_version == (believed.version if believed else None)

    # The node now acks everything it is sent.
    while in_flight is not None:
        sent, in_flight = in_flight, None
        node = believed = sent.snapshot
        run(session.handle(AckReceived(sent.snapshot.version, sent.nonce))[1:])
    if latest is not None and latest.version not in refused:
        assert node == latest
