"""Small protobuf helpers shared by the Envoy translation modules."""

from __future__ import annotations

from google.protobuf import any_pb2, duration_pb2

__all__ = ["pack", "seconds"]


def pack(message: object) -> any_pb2.Any:
    """``message`` in an ``Any``."""
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def seconds(value: float) -> duration_pb2.Duration:
    """A ``Duration`` of ``value`` seconds."""
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(value * 1e9))
    return d
