"""How the stream front end (TCP, UDP, TLS listeners) serves, and the command-line flags that set it.

:class:`StreamOptions` is held by :attr:`nantian.proxy.RuntimeOptions.stream`. The apps (``nantian proxy``,
``nantian standalone``) add the flags with :func:`add_stream_arguments`, read them back with
:func:`stream_options_from`, and pass them on to worker processes with :func:`stream_arguments`.
"""

from __future__ import annotations

import argparse
import math

import attrs

from nantian.proxy.udp_proxy import UdpOptions

__all__ = ["StreamOptions", "add_stream_arguments", "stream_arguments", "stream_options_from"]


@attrs.frozen(kw_only=True)
class StreamOptions:
    """How stream listeners serve.

    :param idle_timeout: Seconds without a byte either way before a TCP/TLS connection closes (``None``: never).
    :param hello_timeout: Seconds a TLS client has to send its whole ClientHello.
    :param max_connections: Open TCP/TLS connections over all stream listeners; more are closed on accept.
    :param backlog: ``listen()`` backlog.
    :param access_log: One ``nantian.access`` INFO line per connection (UDP: per session). A
        :class:`~nantian.proxy.ProxyRuntime` writes them only when :attr:`RuntimeOptions.access_log
        <nantian.proxy.RuntimeOptions.access_log>` is on too.
    :param udp: UDP session limits.
    """

    idle_timeout: float | None = attrs.field(default=3600.0)
    hello_timeout: float = attrs.field(default=10.0, validator=attrs.validators.gt(0.0))
    max_connections: int = attrs.field(default=10000, validator=attrs.validators.ge(1))
    backlog: int = attrs.field(default=1024, validator=attrs.validators.ge(1))
    access_log: bool = True
    udp: UdpOptions = attrs.field(factory=UdpOptions)

    @idle_timeout.validator
    def _check_idle_timeout(self, attribute: attrs.Attribute[float | None], value: float | None) -> None:
        if value is not None and not value > 0:
            raise ValueError(f"idle_timeout must be > 0 or None, got {value!r}")


def _seconds(text: str) -> float:
    """An argparse type: a finite number of seconds greater than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: seconds must be a finite number greater than 0")
    return value


def _count(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at least 1")
    return value


def add_stream_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--stream-idle-timeout``, ``--tls-hello-timeout``, ``--udp-session-timeout`` and ``--udp-max-sessions``.

    Defaults are those of :class:`StreamOptions`; a value that is not positive is an argparse error (exit 2).
    """
    defaults = StreamOptions()
    group = parser.add_argument_group("stream listeners (TCPRoute, UDPRoute, TLSRoute)")
    group.add_argument(
        "--stream-idle-timeout",
        type=_seconds,
        default=defaults.idle_timeout,
        metavar="SECONDS",
        help="close a TCP/TLS connection after this long without a byte either way (default: %(default)s)",
    )
    group.add_argument(
        "--tls-hello-timeout",
        type=_seconds,
        default=defaults.hello_timeout,
        metavar="SECONDS",
        help="close a TLS connection whose ClientHello has not arrived within this long (default: %(default)s)",
    )
    group.add_argument(
        "--udp-session-timeout",
        type=_seconds,
        default=defaults.udp.session_timeout,
        metavar="SECONDS",
        help="end a UDP session this long after its last datagram either way (default: %(default)s)",
    )
    group.add_argument(
        "--udp-max-sessions",
        type=_count,
        default=defaults.udp.max_sessions,
        metavar="N",
        help="UDP sessions per listener; datagrams from further clients are dropped (default: %(default)s)",
    )


def stream_options_from(args: argparse.Namespace) -> StreamOptions:
    """:class:`StreamOptions` from arguments added by :func:`add_stream_arguments`."""
    return StreamOptions(
        idle_timeout=args.stream_idle_timeout,
        hello_timeout=args.tls_hello_timeout,
        udp=UdpOptions(session_timeout=args.udp_session_timeout, max_sessions=args.udp_max_sessions),
    )


def stream_arguments(options: StreamOptions) -> list[str]:
    """The flags of :func:`add_stream_arguments` that reproduce ``options`` (for worker processes).

    ``idle_timeout=None`` (no idle timeout, library use only) has no flag and is left out.
    """
    args = ["--tls-hello-timeout", repr(options.hello_timeout)]
    if options.idle_timeout is not None:
        args += ["--stream-idle-timeout", repr(options.idle_timeout)]
    args += [
        "--udp-session-timeout", repr(options.udp.session_timeout),
        "--udp-max-sessions", str(options.udp.max_sessions),
    ]  # fmt: skip
    return args
