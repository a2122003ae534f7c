"""Whatever sequence of snapshots the control plane publishes, and however acks interleave with changes,
a client that applies what the server sends (decoded from the wire) ends up with the server's snapshot."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from nantian.ir import Snapshot, apply
from nantian.testing.strategies import ir_snapshots
from nantian.xds import SnapshotStore
from nantian.xds._codec import decode_delta, decode_snapshot, encode_delta, encode_snapshot, pb
from nantian.xds._session import (
    AckReceived,
    Command,
    ConfigChanged,
    HelloReceived,
    SendDelta,
    SendSnapshot,
    ServerSession,
)


def _deliver(store: SnapshotStore, state: Snapshot | None, command: Command) -> tuple[Snapshot | None, str | None]:
    """What the client holds after receiving ``command`` off the wire, and the nonce to ack."""
    if isinstance(command, SendSnapshot):
        wire = pb.Snapshot.FromString(encode_snapshot(command.snapshot, command.nonce).SerializeToString())
        return decode_snapshot(wire), wire.nonce
    if isinstance(command, SendDelta):
        assert state is not None and state.version == command.base.version
        wire_delta = pb.Delta.FromString(
            encode_delta(store.delta(command.base, command.snapshot), command.nonce, command.base).SerializeToString()
        )
        return apply(state, decode_delta(wire_delta, state)), wire_delta.nonce
    return state, None


@settings(max_examples=40)  # each example builds several whole snapshots: keep CI fast
@given(
    snapshots=st.lists(ir_snapshots(max_resources=2), min_size=1, max_size=4),
    ack_between=st.lists(st.booleans(), min_size=4, max_size=4),
    start_with_first=st.booleans(),
)
def test_client_converges_to_the_servers_snapshot(
    snapshots: list[Snapshot], ack_between: list[bool], start_with_first: bool
) -> None:
    store = SnapshotStore()
    session = ServerSession()
    client: Snapshot | None = None
    if start_with_first:  # a returning node that holds the first snapshot, which the store remembers
        store.publish(snapshots[0])
        client = snapshots[0]
    held = store.lookup(client.version) if client else None
    pending = session.handle(HelloReceived("n", frozenset(), client.version if client else "", held))
    unacked: list[str] = []

    def drain(commands: list[Command]) -> None:
        nonlocal client
        for command in commands:
            client, nonce = _deliver(store, client, command)
            if nonce is not None:
                unacked.append(nonce)

    drain(pending)
    for i, snap in enumerate(snapshots):
        store.publish(snap)
        current = store.view()
        assert current is not None
        drain(session.handle(ConfigChanged(current)))
        if ack_between[i]:
            while unacked:
                assert client is not None
                drain(session.handle(AckReceived(client.version, unacked.pop(0))))
    while unacked:
        assert client is not None
        drain(session.handle(AckReceived(client.version, unacked.pop(0))))
    assert client == store.current
    assert session.acked_version == snapshots[-1].version
