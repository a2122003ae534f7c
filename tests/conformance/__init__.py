"""The live Gateway API conformance runner: cases from tests/data/gateway-api against real nantian processes.

One pytest session starts one ``nantian echo`` process serving every echo pod the selected cases need (each
pod on its own loopback IP, with the container's real ports) and one nantian deployment, then runs the cases
one after another by rewriting the watched config directory:

    pytest tests/conformance                                  # nantian standalone
    pytest tests/conformance --conformance-mode=split         # nantian controller + nantian proxy
    NANTIAN_CONFORMANCE_MODE=split pytest                     # the same from the repository root

Modules: ``backends`` (echo pods and their EndpointSlices), ``harness`` (processes, config dir, admin API),
``session`` (what cases share; each case's documents), ``probes`` (one attempt of HTTP/gRPC/TLS/TCP/UDP/WebSocket
traffic), ``checks`` (does an outcome meet an expectation), ``consistency`` (timeouts, "N in a row"),
``traffic`` (a section's entries: eventual checks, distributions, mirrors, rounds), ``runner`` (a whole case:
status, traffic, steps), ``results`` (checks per case, the summary), ``unsupported`` (the cases nantian does
not pass yet, with reasons).
"""
