"""Gateway addresses: honour ``spec.addresses`` (IPAddress), otherwise a stable pick from the address pool."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable

import attrs

from nantian.resources import Gateway

__all__ = ["AddressPlan", "plan_addresses"]

_NEVER = {ipaddress.ip_address("127.0.0.1")}


@attrs.frozen(kw_only=True)
class AddressPlan:
    """What one Gateway gets: its address (``None``: none usable) and the problem, if any."""

    address: str | None
    status_addresses: tuple[str, ...] = ()
    unsupported: str | None = None
    """Message for Accepted=False/UnsupportedAddress."""
    unusable: str | None = None
    """Message for Programmed=False/AddressNotUsable."""


def _usable(
    pool: ipaddress.IPv4Network | ipaddress.IPv6Network, addr: ipaddress.IPv4Address | ipaddress.IPv6Address
) -> bool:
    if addr in _NEVER or addr not in pool:
        return False
    return pool.num_addresses <= 2 or addr not in (pool.network_address, pool.broadcast_address)


def _nice(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Picked addresses avoid a last octet of 0 or 255 (some tools read them as network/broadcast)."""
    return addr.version == 6 or int(addr) & 0xFF not in (0, 255)


def _candidates(
    pool: ipaddress.IPv4Network | ipaddress.IPv6Network, key: str
) -> Iterable[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    size = pool.num_addresses
    start = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % size
    base = int(pool.network_address)
    for i in range(min(size, 1 << 16)):
        yield ipaddress.ip_address(base + (start + i) % size)


def plan_addresses(gateways: Iterable[Gateway], pool_cidr: str) -> dict[tuple[str, str], AddressPlan]:
    """Addresses of ``gateways`` keyed by (namespace, name).

    Static IPAddress values are taken first (they must lie in the pool and be free); the others get the
    address their namespace/name hashes to, probing on collision, oldest Gateways first so an existing
    Gateway keeps its address when a new one arrives.
    """
    try:
        pool = ipaddress.ip_network(pool_cidr, strict=False)
    except ValueError:
        pool = ipaddress.ip_network("127.0.0.0/8")
    ordered = sorted(
        gateways, key=lambda g: (g.metadata.creation_timestamp or "", g.metadata.namespace, g.metadata.name)
    )
    taken: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    plans: dict[tuple[str, str], AddressPlan] = {}
    dynamic: list[Gateway] = []
    for gw in ordered:
        key = (gw.metadata.namespace, gw.metadata.name)
        if not gw.spec.addresses:
            dynamic.append(gw)
            continue
        unsupported = [a for a in gw.spec.addresses if a.type != "IPAddress"]
        if unsupported:
            kinds = ", ".join(sorted({a.type for a in unsupported}))
            plans[key] = AddressPlan(
                address=None, unsupported=f"address type {kinds} is not supported (IPAddress only)"
            )
            continue
        values = [a.value for a in gw.spec.addresses if a.value]
        if not values:
            dynamic.append(gw)  # IPAddress without a value: the implementation picks one
            continue
        usable: list[str] = []
        bad: list[str] = []
        for value in values:
            try:
                addr = ipaddress.ip_address(value)
            except ValueError:
                bad.append(value)
                continue
            if _usable(pool, addr) and addr not in taken:
                usable.append(str(addr))
            else:
                bad.append(value)
        for u in usable:
            taken.add(ipaddress.ip_address(u))
        if bad:
            plans[key] = AddressPlan(
                address=usable[0] if usable else None,
                status_addresses=tuple(usable),
                unusable=f"addresses {', '.join(bad)} cannot be used (pool {pool}, not 127.0.0.1, not taken)",
            )
        else:
            plans[key] = AddressPlan(address=usable[0], status_addresses=tuple(usable))
    for gw in dynamic:
        key = (gw.metadata.namespace, gw.metadata.name)
        chosen = None
        fallback = None
        for addr in _candidates(pool, f"{key[0]}/{key[1]}"):
            if _usable(pool, addr) and addr not in taken:
                if _nice(addr):
                    chosen = addr
                    break
                fallback = fallback or addr
        chosen = chosen or fallback
        if chosen is None:
            plans[key] = AddressPlan(address=None, unusable=f"address pool {pool} is exhausted")
        else:
            taken.add(chosen)
            plans[key] = AddressPlan(address=str(chosen), status_addresses=(str(chosen),))
    return plans
