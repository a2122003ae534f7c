"""Sans-IO HTTP/2 test pieces: an h2 client and a server core past the connection preface."""

from __future__ import annotations

import h2.config
import h2.connection

from nantian.proxy import _h2


def h2_client(*, validate: bool = True) -> h2.connection.H2Connection:
    """An h2 client connection (preface queued). ``validate=False``: it sends what it is told to, malformed or not."""
    config = h2.config.H2Configuration(
        client_side=True,
        header_encoding="latin-1",
        validate_outbound_headers=validate,
        normalize_outbound_headers=validate,
    )
    conn = h2.connection.H2Connection(config)
    conn.initiate_connection()
    return conn


def connected_core(
    *, window: int | None = None, validate: bool = True
) -> tuple[_h2.H2Core, h2.connection.H2Connection]:
    """A server core and an h2 client past the preface and the SETTINGS exchange; ``window`` sets both receive
    windows of the core; ``validate`` is the client's (see :func:`h2_client`)."""
    if window is None:
        core = _h2.H2Core(client_side=False)
    else:
        core = _h2.H2Core(client_side=False, initial_window_size=window, connection_window_size=window)
    core.initiate()
    client = h2_client(validate=validate)
    assert core.receive(client.data_to_send()) == []
    client.receive_data(core.data_to_send())
    core.receive(client.data_to_send())  # SETTINGS ack
    return core, client
