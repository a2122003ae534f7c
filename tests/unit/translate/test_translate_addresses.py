"""Gateway addresses from the pool: stable, never 127.0.0.1, static addresses honoured or reported."""

from __future__ import annotations

import ipaddress

from translate_harness import cond, translate_yaml

from nantian.resources import Gateway, GatewaySpec, GatewaySpecAddress, Listener, ObjectMeta, ObjectRef
from nantian.translate import TranslateOptions
from nantian.translate.addresses import plan_addresses


def _gw(name: str, *addresses: GatewaySpecAddress, ts: str | None = None) -> Gateway:
    return Gateway(
        metadata=ObjectMeta(name=name, namespace="ns", creation_timestamp=ts),
        spec=GatewaySpec(
            gateway_class_name="c",
            listeners=(Listener(name="http", port=80, protocol="HTTP"),),
            addresses=addresses,
        ),
    )


def test_stable_unique_and_never_loopback_one() -> None:
    gateways = [_gw(f"g{i}") for i in range(50)]
    plans = plan_addresses(gateways, "127.0.0.0/8")
    addresses = [plans[("ns", f"g{i}")].address for i in range(50)]
    assert len(set(addresses)) == 50
    assert "127.0.0.1" not in addresses
    assert all(a is not None and ipaddress.ip_address(a) in ipaddress.ip_network("127.0.0.0/8") for a in addresses)
    # Same Gateway, same address, whatever else exists.
    assert plan_addresses(gateways[:3], "127.0.0.0/8")[("ns", "g1")] == plans[("ns", "g1")]


def test_collisions_probe_and_oldest_keeps_its_address() -> None:
    # A /30 pool has two usable addresses (.1 is never handed out): the third Gateway gets none.
    gws = [
        _gw("a", ts="2024-01-01T00:00:00Z"),
        _gw("b", ts="2024-01-02T00:00:00Z"),
        _gw("c", ts="2024-01-03T00:00:00Z"),
    ]
    plans = plan_addresses(gws, "127.0.0.0/29")
    got = [plans[("ns", n)].address for n in "abc"]
    assert None not in got and len(set(got)) == 3 and "127.0.0.1" not in got
    tiny = plan_addresses(gws, "127.0.0.0/30")
    assert [tiny[("ns", n)].address is None for n in "abc"] == [False, True, True]
    assert tiny[("ns", "c")].unusable


def test_static_addresses() -> None:
    ok = plan_addresses([_gw("s", GatewaySpecAddress(value="127.9.9.9"))], "127.0.0.0/8")[("ns", "s")]
    assert (ok.address, ok.status_addresses, ok.unusable) == ("127.9.9.9", ("127.9.9.9",), None)
    bad = plan_addresses(
        [_gw("s", GatewaySpecAddress(value="10.0.0.1"), GatewaySpecAddress(value="127.9.9.9"))], "127.0.0.0/8"
    )[("ns", "s")]
    assert bad.unusable and bad.status_addresses == ("127.9.9.9",)
    weird = plan_addresses([_gw("s", GatewaySpecAddress(type="Hostname", value="x.com"))], "127.0.0.0/8")[("ns", "s")]
    assert weird.unsupported


def test_status_addresses_and_conditions() -> None:
    text = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: ns}
spec:
  gatewayClassName: nantian
  listeners: [{name: http, port: 80, protocol: HTTP}]
"""
    t = translate_yaml(text, TranslateOptions(address_pool="127.20.0.0/16"))
    status = t.statuses[ObjectRef("Gateway", "ns", "gw")]
    (addr,) = status["addresses"]
    assert addr["type"] == "IPAddress" and addr["value"].startswith("127.20.")
    assert cond(status, "Programmed") == ("True", "Programmed")
    (lst,) = t.snapshot.listeners
    assert lst.address == addr["value"]
    t = translate_yaml(text.replace("  listeners:", "  addresses: [{value: 10.1.1.1}]\n  listeners:"))
    status = t.statuses[ObjectRef("Gateway", "ns", "gw")]
    assert cond(status, "Accepted") == ("True", "Accepted")
    assert cond(status, "Programmed") == ("False", "AddressNotUsable")
    assert t.snapshot.listeners == ()
