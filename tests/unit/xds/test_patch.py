"""Structural patches: forms, sizes, and patches that do not fit."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nantian.errors import ConfigRejected
from nantian.ir import apply, diff
from nantian.testing.transport import sample_snapshot
from nantian.xds._codec import BaseMismatch, decode_delta, encode_delta
from nantian.xds._patch import PatchError, apply_patch, make_patch


def test_forms() -> None:
    assert make_patch(1, 2) == {"=": 2}
    assert make_patch({"a": 1, "b": 2}, {"a": 1, "c": 3}) == {"d": {"c": {"=": 3}}, "x": ["b"]}
    assert make_patch([1, 2, 3], [1, 3]) == {"l": [["k", 0, 1], ["k", 2, 3]]}
    assert make_patch([{"a": 1}], [{"a": 2}]) == {"l": [["p", 0, {"d": {"a": {"=": 2}}}]]}


def test_one_change_in_a_long_list_is_small() -> None:
    old = [{"name": f"route-{i}", "path": f"/p{i}", "weight": 1} for i in range(1000)]
    new = [dict(x) for x in old]
    new[500]["weight"] = 2
    patch = make_patch(old, new)
    assert len(json.dumps(patch)) < 200
    assert apply_patch(old, patch) == new


@pytest.mark.parametrize(
    ("old", "patch"),
    [
        (1, []),
        (1, {"d": {}}),
        ([1], {"l": [["k", 0, 5]]}),
        ([1], {"l": [["p", 3, {"=": 1}]]}),
        ([1], {"l": [["z"]]}),
        ({"a": 1}, {"d": {"b": {"d": {}}}}),
        ({}, {"l": []}),
        ({}, {"?": 1}),
    ],
)
def test_patches_that_do_not_fit_raise(old: Any, patch: Any) -> None:
    with pytest.raises(PatchError):
        apply_patch(old, patch)


def test_delta_of_a_big_listener_travels_as_a_patch() -> None:
    base, new = sample_snapshot(200, tag="p"), sample_snapshot(201, tag="p")
    message = encode_delta(diff(base, new), "1", base)
    patched = [u for u in message.upserts if u.patch]
    assert [u.type for u in patched] == ["listener"] and patched[0].body == b""
    assert message.ByteSize() < 2000 < 50 * 1000
    assert decode_delta(message, base) == diff(base, new)


def test_patch_without_its_base_asks_for_a_resync() -> None:
    base, new = sample_snapshot(20, tag="p"), sample_snapshot(21, tag="p")
    message = encode_delta(diff(base, new), "1", base)
    (patched,) = [u for u in message.upserts if u.patch]
    with pytest.raises(BaseMismatch, match="base holds no such resource"):
        decode_delta(message, None)
    # Applied to the wrong base, the result does not hash to the promised version.
    wrong = sample_snapshot(20, tag="q")
    with pytest.raises(ConfigRejected, match="version"):
        apply(wrong, decode_delta(message, wrong))
    patched.patch = b'{"l": 1}'
    with pytest.raises(BaseMismatch, match="does not apply"):
        decode_delta(message, base)
