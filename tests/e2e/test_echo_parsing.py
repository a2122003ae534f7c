"""The echo backend's small parsers: Go durations, canonical header names, --serve specs, answers."""

from __future__ import annotations

import pytest

from nantian.echo import (
    Echo,
    EchoRequest,
    PodContext,
    Reply,
    Reset,
    SpecError,
    canonical_header_name,
    parse_go_duration,
    parse_serve_spec,
)


@pytest.mark.parametrize(
    ("text", "seconds"), [("1s", 1.0), ("300ms", 0.3), ("1m30s", 90.0), ("1.5h", 5400.0), ("0", 0.0), ("10us", 1e-5)]
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1", "s", "1x", "ms1"])
def test_bad_go_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_go_duration(text)


@pytest.mark.parametrize(
    ("name", "canonical"),
    [("x-echo-set-header", "X-Echo-Set-Header"), ("CONTENT-TYPE", "Content-Type"), ("a b", "a b"), ("x_y", "X_y")],
)
def test_canonical_header_names(name: str, canonical: str) -> None:
    assert canonical_header_name(name) == canonical


def test_serve_spec_forms() -> None:
    text = parse_serve_spec("http=127.0.0.1:3000, udp=127.0.0.2:0, namespace=ns, service=s, pod=s-1-2")
    assert text.http == ("127.0.0.1", 3000) and text.udp == ("127.0.0.2", 0)
    assert text.context == PodContext(namespace="ns", service="s", pod="s-1-2")
    as_json = parse_serve_spec('{"tcp": "[::1]:7", "pod": "p"}')
    assert as_json.tcp == ("::1", 7)
    assert [kind for kind, _ in parse_serve_spec("grpc=127.0.0.1:1,http=127.0.0.1:2").listeners()] == ["http", "grpc"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pod=p", "no listener"),
        ("http=127.0.0.1", "expected HOST:PORT"),
        ("http=127.0.0.1:70000", "expected HOST:PORT"),
        ("http=127.0.0.1:1,colour=red", "unknown key"),
        ("tcps=127.0.0.1:1", "needs cert= and key="),
        ("http", "expected key=value"),
        ("{not json", "not valid JSON"),
        ("[1]", "expected key=value"),
        ("http=127.0.0.1:1,require_client_cert=true", "needs client_ca="),
    ],
)
def test_serve_spec_errors(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_serve_spec(text)


def test_retry_state_is_per_uuid() -> None:
    echo = Echo(PodContext(pod="p"))

    def ask(uuid: str) -> Reply | Reset:
        return echo.answer(EchoRequest(method="GET", target=f"/retry/?succeedAfter=1&uuid={uuid}", host="h"))

    assert isinstance(ask("a"), Reset)
    assert isinstance(ask("b"), Reset)
    first = ask("a")
    assert isinstance(first, Reply) and first.status == 200 and first.echoed


def test_echo_set_header_appends_repeated_names() -> None:
    echo = Echo(PodContext())
    reply = echo.answer(
        EchoRequest(
            method="GET", target="/", host="h", headers=(("x-echo-set-header", "A:1,A:2"), ("X-Echo-Set-Header", "b:3"))
        )
    )
    assert isinstance(reply, Reply)
    assert ("A", "1,2") in reply.headers and ("b", "3") in reply.headers
