"""Host lookup and route matching precedence."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nantian import ir
from nantian.proxy.router import HostMap, RouteTable, host_of, split_target


def test_host_of_strips_port_case_and_trailing_dot() -> None:
    assert host_of("Example.COM:8080") == "example.com"
    assert host_of("example.com.") == "example.com"
    assert host_of("[::1]:80") == "[::1]"
    assert host_of("") == ""


def test_split_target() -> None:
    assert split_target("/a/b?x=1&y") == ("/a/b", "x=1&y")
    assert split_target("/a") == ("/a", "")
    assert split_target("?q") == ("/", "q")


def test_host_map_exact_then_longest_wildcard_then_catch_all() -> None:
    m = HostMap([("*", "any"), ("*.example.com", "wild"), ("*.a.example.com", "wild-a"), ("foo.example.com", "exact")])
    assert m.lookup("foo.example.com") == "exact"
    assert m.lookup("bar.example.com") == "wild"
    assert m.lookup("x.y.example.com") == "wild"  # any number of labels
    assert m.lookup("b.a.example.com") == "wild-a"
    assert m.lookup("example.com") == "any"  # a wildcard needs one more label
    assert m.lookup("other.org") == "any"
    assert HostMap([("a.com", 1)]).lookup("b.com") is None


def test_host_map_first_value_wins_and_none_is_catch_all() -> None:
    m = HostMap([(None, 1), ("*", 2), ("A.com", 3), ("a.com", 4)])
    assert m.lookup("zzz") == 1
    assert m.lookup("a.com") == 3


def _m(path: str = "/", kind: ir.PathMatchType = ir.PathMatchType.PREFIX, **kw: object) -> ir.HttpMatch:
    return ir.HttpMatch(path=ir.PathMatch(type=kind, value=path), **kw)  # type: ignore[arg-type]


def test_prefix_matches_whole_segments_and_ignores_trailing_slash() -> None:
    t = RouteTable([(_m("/v2"), "v2"), (_m("/foo/"), "foo"), (_m("/"), "root")])
    assert t.match("GET", "/v2", "", []) == "v2"
    assert t.match("GET", "/v2/x", "", []) == "v2"
    assert t.match("GET", "/v2x", "", []) == "root"
    assert t.match("GET", "/foo", "", []) == "foo"
    assert t.match("GET", "/foo/", "", []) == "foo"
    assert t.match("GET", "/foo/bar/baz", "", []) == "foo"
    assert t.match("GET", "/foobar", "", []) == "root"


def test_first_match_in_ir_order_wins_across_index_groups() -> None:
    t = RouteTable(
        [
            (_m("/a/b", ir.PathMatchType.EXACT), "exact"),
            (_m("/a/b"), "long-prefix"),
            (_m("/a", headers=(ir.HeaderMatch(name="x-v", value="2"),)), "prefix-header"),
            (_m("/a"), "prefix"),
            (_m("/a/[0-9]+", ir.PathMatchType.REGEX), "regex"),
            (_m("/"), "root"),
        ]
    )
    assert t.match("GET", "/a/b", "", []) == "exact"
    assert t.match("GET", "/a/b/c", "", []) == "long-prefix"
    assert t.match("GET", "/a/1", "", [("x-v", "2")]) == "prefix-header"
    assert t.match("GET", "/a/1", "", []) == "prefix"
    assert t.match("GET", "/z", "", []) == "root"


def test_regex_is_a_full_match_and_orders_with_the_others() -> None:
    t = RouteTable([(_m("/r/[0-9]+", ir.PathMatchType.REGEX), "regex"), (_m("/r"), "prefix")])
    assert t.match("GET", "/r/12", "", []) == "regex"
    assert t.match("GET", "/r/12x", "", []) == "prefix"


def test_method_headers_and_query() -> None:
    t = RouteTable(
        [
            (
                _m(
                    "/",
                    method="POST",
                    headers=(
                        ir.HeaderMatch(name="x-env", value="prod"),
                        ir.HeaderMatch(name="x-ver", value="v[0-9]", type=ir.StringMatchType.REGEX),
                    ),
                    query=(ir.QueryMatch(name="debug", value="1"),),
                ),
                "all",
            ),
            (_m("/", query=(ir.QueryMatch(name="k", value="a.*", type=ir.StringMatchType.REGEX),)), "query-regex"),
            (_m("/", method="GET"), "get"),
        ]
    )
    good = [("x-env", "prod"), ("x-ver", "v1")]
    assert t.match("POST", "/", "debug=1", good) == "all"
    assert t.match("POST", "/", "debug=2", good) is None
    assert t.match("POST", "/", "debug=1", [("x-env", "prod"), ("x-ver", "v10")]) is None
    assert t.match("POST", "/", "debug=1", [("x-env", "dev"), ("x-ver", "v1")]) is None
    assert t.match("POST", "/", "k=abc", []) == "query-regex"
    assert t.match("GET", "/x", "", []) == "get"
    assert t.match("DELETE", "/x", "", []) is None


def test_repeated_headers_are_joined_with_commas() -> None:
    t = RouteTable([(_m("/", headers=(ir.HeaderMatch(name="x-a", value="1,2"),)), "joined")])
    assert t.match("GET", "/", "", [("x-a", "1"), ("x-a", "2")]) == "joined"


def test_bad_regex_raises_when_compiled() -> None:
    with pytest.raises(re.error):
        RouteTable([(_m("(", ir.PathMatchType.REGEX), "x")])


def _naive(
    entries: list[tuple[ir.HttpMatch, int]], method: str, path: str, headers: list[tuple[str, str]]
) -> int | None:
    """The reference: check every route in order."""
    for match, value in entries:
        p = match.path
        if p.type is ir.PathMatchType.EXACT and path != p.value:
            continue
        if p.type is ir.PathMatchType.PREFIX:
            pre = p.value.rstrip("/")
            if not (path == pre or path.startswith(pre + "/") or pre == ""):
                continue
        if p.type is ir.PathMatchType.REGEX and re.fullmatch(p.value, path) is None:
            continue
        if match.method is not None and match.method != method:
            continue
        hmap = dict(headers)
        if any(hmap.get(h.name) != h.value for h in match.headers):
            continue
        return value
    return None


segments = st.sampled_from(["a", "b", "ab", ""])
paths = st.lists(segments, min_size=0, max_size=4).map(lambda parts: "/" + "/".join(parts))


@st.composite
def matches(draw: st.DrawFn) -> ir.HttpMatch:
    kind = draw(st.sampled_from(list(ir.PathMatchType)))
    value = draw(paths) if kind is not ir.PathMatchType.REGEX else draw(st.sampled_from(["/a.*", "/b/[a-z]+", ".*"]))
    headers = draw(
        st.lists(
            st.builds(ir.HeaderMatch, name=st.sampled_from(["x-a", "x-b"]), value=st.sampled_from(["1", "2"])),
            max_size=2,
        )
    )
    method = draw(st.sampled_from([None, "GET", "POST"]))
    return ir.HttpMatch(path=ir.PathMatch(type=kind, value=value), headers=tuple(headers), method=method)


@given(
    st.lists(matches(), max_size=12),
    st.sampled_from(["GET", "POST"]),
    paths,
    st.lists(
        st.tuples(st.sampled_from(["x-a", "x-b"]), st.sampled_from(["1", "2"])), max_size=2, unique_by=lambda h: h[0]
    ),
)
def test_indexed_table_agrees_with_a_linear_scan(
    ms: list[ir.HttpMatch], method: str, path: str, headers: list[tuple[str, str]]
) -> None:
    entries = [(m, i) for i, m in enumerate(ms)]
    assert RouteTable(entries).match(method, path, "", headers) == _naive(entries, method, path, headers)


@given(
    st.lists(matches(), max_size=12),
    st.lists(
        st.tuples(
            st.sampled_from(["GET", "POST"]),
            paths,
            st.lists(
                st.tuples(st.sampled_from(["x-a", "x-b", "user-agent"]), st.sampled_from(["1", "2"])),
                max_size=3,
                unique_by=lambda h: h[0],
            ),
        ),
        max_size=20,
    ),
)
def test_one_table_answering_many_requests_agrees_with_a_linear_scan(
    ms: list[ir.HttpMatch], requests: list[tuple[str, str, list[tuple[str, str]]]]
) -> None:
    """The decision cache (requests repeat, differ only in headers no route matches on, or in matched values)."""
    entries = [(m, i) for i, m in enumerate(ms)]
    table = RouteTable(entries)
    for method, path, headers in [*requests, *requests]:
        assert table.match(method, path, "", headers) == _naive(entries, method, path, headers)


def test_decision_cache_is_keyed_by_matched_headers_only_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from nantian.proxy import router

    t = RouteTable([(_m("/", headers=(ir.HeaderMatch(name="x-a", value="1"),)), "a"), (_m("/"), "any")])
    for agent in ("curl", "wrk", "httpx"):
        assert t.match("GET", "/p", "", [("user-agent", agent), ("x-a", "1")]) == "a"
    assert t.match("GET", "/p", "", [("user-agent", "curl")]) == "any"
    assert t.match("GET", "/p", "", [("x-a", "1"), ("x-a", "2")]) == "any"  # joined: "1,2"
    assert len(t._cache) == 3  # user-agent is not part of the key
    monkeypatch.setattr(router, "MATCH_CACHE_SIZE", 8)
    for i in range(50):
        assert t.match("GET", f"/p{i}", "", [("x-a", "1")]) == "a"
        assert len(t._cache) <= 8
    t._cache.clear()
    assert t.match("GET", "/" + "x" * 600, "", [("x-a", "1")]) == "a"
    assert t.match("GET", "/", "", [("x-a", "1" * 600)]) == "any"
    assert len(t._cache) == 0  # long paths and header values are matched without the cache
