"""IR properties: exact codec round-trips, diff/apply, content versions."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nantian import ir
from nantian.ir.snapshot import encoded
from nantian.testing import strategies as nst

STRATEGIES: dict[str, tuple[st.SearchStrategy[Any], type]] = {
    "listener": (nst.ir_listeners(), ir.Listener),
    "cluster": (nst.ir_clusters(), ir.Cluster),
    "secret": (nst.ir_secrets(), ir.Secret),
    "http_route": (nst.ir_http_routes(), ir.HttpRoute),
    "virtual_host": (nst.ir_virtual_hosts(), ir.VirtualHost),
    "stream_route": (nst.ir_stream_routes(), ir.StreamRoute),
    "redirect": (nst.ir_redirects(), ir.Redirect),
    "upstream_tls": (nst.ir_upstream_tls(), ir.UpstreamTls),
    "client_validation": (nst.ir_client_validations(), ir.ClientValidation),
    "plugin_filter": (nst.ir_plugin_filters(), ir.PluginFilter),
}


@pytest.mark.parametrize("name", sorted(STRATEGIES))
@given(data=st.data())
def test_ir_values_round_trip_exactly(name: str, data: st.DataObject) -> None:
    strategy, cls = STRATEGIES[name]
    value = data.draw(strategy)
    encoded = ir.dumps(value)
    decoded: Any = ir.loads(encoded, cls)
    assert decoded == value
    assert ir.dumps(decoded) == encoded


@given(nst.ir_snapshots(max_resources=2))
def test_snapshots_round_trip_exactly(snapshot: ir.Snapshot) -> None:
    assert snapshot.problems() == [], "generated snapshots are consistent by default"
    decoded = ir.loads(ir.dumps(snapshot), ir.Snapshot)
    assert decoded == snapshot
    # The version is the content's: rebuilding in any order gives the same snapshot.
    rebuilt = ir.Snapshot.build(reversed(decoded.listeners), reversed(decoded.clusters), reversed(decoded.secrets))
    assert rebuilt == snapshot
    # The version hashes cached (listeners: spliced) encodings; they must be the codec's bytes exactly.
    for resource in snapshot.resources().values():
        assert encoded(resource) == ir.dumps(resource)


@given(nst.ir_snapshot_pairs())
def test_apply_diff_gives_the_target(pair: tuple[ir.Snapshot, ir.Snapshot]) -> None:
    a, b = pair
    delta = ir.diff(a, b)
    assert ir.apply(a, delta) == b
    assert ir.apply(b, ir.diff(b, a)) == a
    same_content = (a.listeners, a.clusters, a.secrets) == (b.listeners, b.clusters, b.secrets)
    assert delta.empty == same_content == (a.version == b.version)
    assert all(a.resources().get((ir.resource_type(r), r.name)) != r for r in delta.upserts)
