"""Built-in filters: header modifiers, redirects, path replacement, CORS."""

from __future__ import annotations

from nantian import ir
from nantian.proxy.filters import (
    apply_header_modifier,
    cors_preflight,
    cors_response_headers,
    redirect_location,
    replace_path,
)


def test_header_modifier_remove_set_add_in_that_order() -> None:
    headers = [("a", "1"), ("b", "1"), ("b", "2"), ("c", "1")]
    mod = ir.HeaderModifier(
        remove=("C",),
        set=(ir.Header(name="B", value="x"), ir.Header(name="d", value="new")),
        add=(ir.Header(name="a", value="2"),),
    )
    apply_header_modifier(headers, mod)
    assert headers == [("a", "1"), ("b", "x"), ("d", "new"), ("a", "2")]


def test_replace_path() -> None:
    full = ir.PathModifier(type=ir.PathModifierType.FULL, value="/new")
    prefix = ir.PathModifier(type=ir.PathModifierType.PREFIX, value="/x")
    root = ir.PathModifier(type=ir.PathModifierType.PREFIX, value="/")
    assert replace_path("/a/b", full, "/a") == "/new"
    assert replace_path("/a/b", prefix, "/a") == "/x/b"
    assert replace_path("/a", prefix, "/a/") == "/x"
    assert replace_path("/a/b", root, "/a") == "/b"
    assert replace_path("/a", root, "/a") == "/"


def _loc(redirect: ir.Redirect, scheme: str = "http", port: int = 80, path: str = "/p", query: str = "") -> str:
    return redirect_location(
        redirect, scheme=scheme, host="h.example", listener_port=port, path=path, query=query, matched_prefix="/p"
    )


def test_redirect_ports_follow_gateway_api_rules() -> None:
    assert _loc(ir.Redirect()) == "http://h.example/p"
    assert _loc(ir.Redirect(), port=8080) == "http://h.example:8080/p"
    assert _loc(ir.Redirect(scheme="https"), port=8080) == "https://h.example/p"  # well-known port of the scheme
    assert _loc(ir.Redirect(scheme="https", port=443)) == "https://h.example/p"
    assert _loc(ir.Redirect(scheme="https", port=8443)) == "https://h.example:8443/p"
    assert _loc(ir.Redirect(hostname="o.example", port=80)) == "http://o.example/p"
    assert _loc(ir.Redirect(scheme="http"), scheme="https", port=443) == "http://h.example/p"


def test_redirect_path_and_query() -> None:
    r = ir.Redirect(path=ir.PathModifier(type=ir.PathModifierType.PREFIX, value="/q"), status_code=301)
    assert _loc(r, path="/p/x", query="a=1") == "http://h.example/q/x?a=1"


CORS = ir.Cors(
    allow_origins=("https://*.example.com", "https://app.test"),
    allow_methods=("GET", "POST"),
    allow_headers=("x-a",),
    expose_headers=("x-b",),
    max_age=60,
    allow_credentials=True,
)


def test_cors_preflight_for_an_allowed_origin() -> None:
    ans = cors_preflight(
        CORS, "OPTIONS", [("origin", "https://a.example.com"), ("access-control-request-method", "POST")]
    )
    assert ans is not None and ans.status == 200
    h = dict(ans.headers)
    assert h["access-control-allow-origin"] == "https://a.example.com"
    assert h["access-control-allow-methods"] == "GET, POST"
    assert h["access-control-max-age"] == "60"
    assert h["access-control-allow-credentials"] == "true"


def test_cors_preflight_refused_origin_and_non_preflight() -> None:
    ans = cors_preflight(CORS, "OPTIONS", [("origin", "https://evil.test"), ("access-control-request-method", "GET")])
    assert ans is not None and not any(k.startswith("access-control") for k, _ in ans.headers)
    assert cors_preflight(CORS, "OPTIONS", [("origin", "https://app.test")]) is None
    assert cors_preflight(CORS, "GET", [("origin", "https://app.test")]) is None


def test_cors_response_headers() -> None:
    assert dict(cors_response_headers(CORS, "https://app.test"))["access-control-expose-headers"] == "x-b"
    assert cors_response_headers(CORS, "https://evil.test") == []
    assert cors_response_headers(CORS, None) == []
    star = ir.Cors(allow_origins=("*",))
    assert cors_response_headers(star, "https://x") == [("access-control-allow-origin", "*")]


def test_cors_wildcards_with_credentials_echo_the_request() -> None:
    wild = ir.Cors(allow_origins=("*",), allow_methods=("*",), allow_headers=("*",), allow_credentials=True)
    asked = [
        ("origin", "https://o.test"),
        ("access-control-request-method", "PUT"),
        ("access-control-request-headers", "x-a, x-b"),
    ]
    ans = cors_preflight(wild, "OPTIONS", asked)
    assert ans is not None
    h = dict(ans.headers)
    assert h["access-control-allow-origin"] == "https://o.test"
    assert h["access-control-allow-methods"] == "PUT"
    assert h["access-control-allow-headers"] == "x-a, x-b"
    plain = ir.Cors(allow_origins=("*",), allow_methods=("*",), allow_headers=("*",))
    ans = cors_preflight(plain, "OPTIONS", asked)
    assert ans is not None
    assert dict(ans.headers)["access-control-allow-methods"] == "*"
    assert dict(ans.headers)["access-control-allow-origin"] == "*"


def test_raw_header_edit_appends_only_where_that_is_exact() -> None:
    from nantian.proxy.filters import RawHeaderEdit, raw_header_edit

    mod = ir.HeaderModifier(
        set=(ir.Header(name="X-Set", value="s"),), add=(ir.Header(name="x-add", value="a"),), remove=("x-rm",)
    )
    edit = RawHeaderEdit(mod)
    assert edit.lines == b"x-set: s\r\nx-add: a\r\n" and edit.names == ("x-rm", "x-set")
    assert edit.applies_to([("host", "h"), ("x-add", "old")])
    assert not edit.applies_to([("x-set", "old")]) and not edit.applies_to([("x-rm", "1")])
    assert edit.applies_to_block(b"Host: h\r\nX-Add: old\r\nX-Setting: 1\r\n")
    assert not edit.applies_to_block(b"Host: h\r\nX-SET: old\r\n")
    assert not edit.applies_to_block(b"x-rm: 1\r\n")
    assert raw_header_edit(None) is None
    assert raw_header_edit(ir.HeaderModifier(set=(ir.Header(name="x", value="\u4e2d"),))) is None
