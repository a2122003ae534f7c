"""Gateway API cases whose status expectations nantian's translator does not meet, each with the reason.

This is the only such list. ``test_translate_cases.py`` asserts that each case here still fails (so the list
shrinks as soon as one starts passing) and that every other case passes.
"""

from __future__ import annotations

OUT_OF_SCOPE: dict[str, str] = {
    "tlsroute-mixed-termination-same-namespace": (
        "TLSRouteModeMixed (Passthrough and Terminate TLS listeners on one port) is not claimed: an IR Listener is "
        "one bind with one tls_mode, so both listeners are reported Conflicted/ProtocolConflict instead "
        "(see tlsroute-listener-mixed-termination-not-supported, which passes)."
    ),
}
