"""Whether one outcome meets one expectation of a case (pure functions; failures as readable lines)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from .probes import GrpcOutcome, HttpOutcome, Material, StreamOutcome

_TIMEOUTS = frozenset({408, 504})
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def status_matches(status: int, wanted: Sequence[int]) -> bool:
    """``status`` is one of ``wanted``; 408 and 504 count as each other."""
    return status in wanted or (status in _TIMEOUTS and bool(_TIMEOUTS & set(wanted)))


def _joined(values: Sequence[str], *, squash: bool = False) -> str:
    text = ",".join(values)
    return text.replace(" ", "") if squash else text


def _normal_pem(text: str) -> str:
    return "".join(text.split())


def _echo_headers(echo: Mapping[str, Any]) -> dict[str, list[str]]:
    return {str(k).lower(): [str(v) for v in vs] for k, vs in (echo.get("headers") or {}).items()}


def expected_request(expect: Mapping[str, Any], sent: Mapping[str, Any]) -> dict[str, Any]:
    """What the backend must have seen: ``expect.request``, or the request as sent when it is omitted."""
    if expect.get("request") is not None:
        return dict(expect["request"])
    out: dict[str, Any] = {"path": sent.get("path", ""), "method": sent.get("method", "")}
    if sent.get("host"):
        out["host"] = sent["host"]
    return out


def _check_backend_request(want: Mapping[str, Any], echo: Mapping[str, Any], material: Material) -> list[str]:
    failures: list[str] = []
    for field in ("host", "path", "method"):
        if want.get(field) and echo.get(field) != want[field]:
            failures.append(f"backend saw {field} {echo.get(field)!r}, want {want[field]!r}")
    headers = _echo_headers(echo)
    for name, value in (want.get("headers") or {}).items():
        actual = headers.get(str(name).lower())
        if actual is None:
            failures.append(f"backend did not see header {name} (want {value!r})")
        elif _joined(actual) != str(value):
            failures.append(f"backend saw {name}: {_joined(actual)!r}, want {value!r}")
    for name in want.get("absent_headers") or ():
        if str(name).lower() in headers:
            failures.append(f"backend saw header {name}: {headers[str(name).lower()]}, want it absent")
    tls = echo.get("tls") or {}
    if want.get("sni") and tls.get("serverName") != want["sni"]:
        failures.append(f"backend saw SNI {tls.get('serverName')!r} (tls: {bool(tls)}), want {want['sni']!r}")
    if want.get("client_cert"):
        pem = _normal_pem(material.pem(str(want["client_cert"]), kind="Secret").decode())
        if not any(_normal_pem(c) == pem for c in tls.get("peerCertificates") or ()):
            failures.append(f"backend did not see client certificate {want['client_cert']}")
    return failures


def _check_response_headers(want: Mapping[str, Any], outcome: HttpOutcome) -> list[str]:
    failures: list[str] = []
    squash = bool(want.get("ignore_whitespace"))
    for name, value in (want.get("headers") or {}).items():
        actual = outcome.header_values(str(name))
        if not actual:
            failures.append(f"response lacks header {name} (want {value!r})")
        elif _joined(actual, squash=squash) != (str(value).replace(" ", "") if squash else str(value)):
            failures.append(f"response header {name}: {_joined(actual)!r}, want {value!r}")
    for name, options in (want.get("headers_any_of") or {}).items():
        actual = outcome.header_values(str(name))
        wanted = [str(o).replace(" ", "") if squash else str(o) for o in options]
        if not actual or _joined(actual, squash=squash) not in wanted:
            failures.append(f"response header {name}: {_joined(actual)!r}, want one of {list(options)}")
    for name in want.get("absent_headers") or ():
        if outcome.header_values(str(name)):
            failures.append(f"response has header {name}: {outcome.header_values(str(name))}, want it absent")
    return failures


def _check_redirect(want: Mapping[str, Any], outcome: HttpOutcome, sent: Mapping[str, Any]) -> list[str]:
    location = outcome.header_values("location")
    if not location:
        return ["no Location header in the redirect"]
    parts = urlsplit(location[0])
    scheme = parts.scheme or str(sent.get("scheme") or "http")
    actual = {"scheme": scheme, "host": parts.hostname or "", "path": parts.path}
    failures = [
        f"redirect {field} {actual[field]!r} (Location {location[0]!r}), want {want[field]!r}"
        for field in ("scheme", "host", "path")
        if want.get(field) and actual[field] != want[field]
    ]
    port = str(parts.port) if parts.port is not None else ""
    want_port = str(want.get("port") or "")
    if want_port and port != want_port:
        failures.append(f"redirect port {port!r} (Location {location[0]!r}), want {want_port}")
    if not want_port and port not in ("", _DEFAULT_PORTS.get(str(want.get("scheme") or scheme), "")):
        failures.append(f"redirect port {port!r} (Location {location[0]!r}), want none or the default")
    return failures


def check_http(
    outcome: HttpOutcome, expect: Mapping[str, Any], sent: Mapping[str, Any], material: Material
) -> list[str]:
    """Failures of one HTTP outcome against an entry's ``expect`` (``sent``: the request, placeholders filled)."""
    wants_cert_request = bool(expect.get("client_cert_requested"))
    if expect.get("connection_error"):
        problems = [] if outcome.status is None else [f"got HTTP {outcome.status}, want a connection error"]
        if wants_cert_request and not outcome.client_cert_requested:
            problems.append("the server did not ask for a client certificate")
        return problems
    if outcome.status is None:
        return [f"request failed: {outcome.error}"]
    failures: list[str] = []
    if wants_cert_request and not outcome.client_cert_requested:
        failures.append("the server did not ask for a client certificate")
    status = outcome.status
    if expect.get("status_not") is not None:
        if status_matches(status, expect["status_not"]):
            failures.append(f"status {status}, want anything but {expect['status_not']}")
        return failures
    wanted = list(expect.get("status") or [200])
    if not status_matches(status, wanted):
        return [*failures, f"status {status}, want {wanted}"]
    if status in (200, 204):
        echo = outcome.echo
        needs_echo = any(expect.get(k) for k in ("backend", "namespace", "backend_from_request_header"))
        if echo is None:
            if needs_echo:
                failures.append("response is not an echo-basic answer")
        else:
            if expect.get("namespace") and echo.get("namespace") != expect["namespace"]:
                failures.append(f"served from namespace {echo.get('namespace')!r}, want {expect['namespace']!r}")
            if expect.get("backend") and not str(echo.get("pod", "")).startswith(str(expect["backend"])):
                failures.append(f"served by pod {echo.get('pod')!r}, want backend {expect['backend']!r}")
            header = expect.get("backend_from_request_header")
            if header:
                values = _echo_headers(echo).get(str(header).lower(), [])
                if len(values) != 1 or not str(echo.get("pod", "")).startswith(values[0]):
                    failures.append(f"pod {echo.get('pod')!r} does not start with header {header} {values}")
            failures.extend(_check_backend_request(expected_request(expect, sent), echo, material))
    if expect.get("response"):
        failures.extend(_check_response_headers(expect["response"], outcome))
    if expect.get("redirect"):
        failures.extend(_check_redirect(expect["redirect"], outcome, sent))
    return failures


def _code(name: str) -> str:
    return name.replace("_", "").lower()


def check_grpc(outcome: GrpcOutcome, expect: Mapping[str, Any], request: Mapping[str, Any]) -> list[str]:
    """Failures of one gRPC outcome against an entry's ``expect``."""
    if expect.get("code_not") is not None:
        banned = {_code(str(c)) for c in expect["code_not"]}
        return [f"code {outcome.code}, want anything but {expect['code_not']}"] if _code(outcome.code) in banned else []
    want = str(expect.get("code") or "OK")
    if _code(outcome.code) != _code(want):
        return [f"code {outcome.code} ({outcome.error}), want {want}"]
    if outcome.code != "OK":
        return []
    failures: list[str] = []
    method = f"/{request.get('service')}/{request.get('method')}"
    if outcome.method != method:
        failures.append(f"backend answered method {outcome.method!r}, want {method!r}")
    if expect.get("namespace") and outcome.namespace != expect["namespace"]:
        failures.append(f"served from namespace {outcome.namespace!r}, want {expect['namespace']!r}")
    if expect.get("backend") and not outcome.pod.startswith(str(expect["backend"])):
        failures.append(f"served by pod {outcome.pod!r}, want backend {expect['backend']!r}")
    return failures


def check_stream(outcome: StreamOutcome, expect: Mapping[str, Any], *, udp: bool = False) -> list[str]:
    """Failures of one TCP/TLS/UDP outcome against an entry's ``expect``."""
    if expect.get("rejected"):
        return [] if outcome.rejected else [f"TLS handshake not rejected ({outcome.error})"]
    if outcome.answer is None:
        return [f"no echo answer: {outcome.error}"]
    answer = outcome.answer
    failures: list[str] = []
    if expect.get("namespace") and answer.get("namespace") != expect["namespace"]:
        failures.append(f"served from namespace {answer.get('namespace')!r}, want {expect['namespace']!r}")
    if expect.get("backend"):
        ok = (
            answer.get("service") == expect["backend"]
            if udp
            else str(answer.get("pod", "")).startswith(str(expect["backend"]))
        )
        if not ok:
            failures.append(
                f"served by {answer.get('service') if udp else answer.get('pod')!r}, want {expect['backend']!r}"
            )
    if expect.get("backend_tls") is not None and outcome.is_tls != bool(expect["backend_tls"]):
        failures.append(f"backend IS_TLS {outcome.is_tls}, want {expect['backend_tls']}")
    if expect.get("backend_sni"):
        sni = (answer.get("tls") or {}).get("serverName")
        if sni != expect["backend_sni"]:
            failures.append(f"backend saw SNI {sni!r}, want {expect['backend_sni']!r}")
    return failures
