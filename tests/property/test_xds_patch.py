"""Structural patches: applying make_patch(old, new) to old always gives new, for any JSON values."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from nantian.xds._patch import apply_patch, make_patch

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=3), children, max_size=4),
    max_leaves=20,
)


@given(json_values, json_values)
def test_patch_turns_old_into_new(old: Any, new: Any) -> None:
    assert apply_patch(old, make_patch(old, new)) == new


@given(st.lists(json_values, min_size=1, max_size=8), st.data())
def test_one_element_change_keeps_the_rest(items: list[Any], data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(items) - 1))
    changed = [*items[:i], {"changed": items[i]}, *items[i + 1 :]]
    patch = make_patch(items, changed)
    assert apply_patch(items, patch) == changed
