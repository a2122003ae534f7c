"""``nantian echo``: command-line arguments, logging and the event loop; nothing else."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence

from nantian.echo._context import PodContext, ServeSpec, SpecError, parse_serve_spec
from nantian.echo._requestlog import RequestLog
from nantian.echo._server import BoundListener, serve_echo

__all__ = ["build_parser", "main"]

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The ``nantian echo`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="nantian echo",
        description=(
            "An echo backend: answers every HTTP request with JSON describing it (a stand-in for the Gateway API "
            "conformance echo-basic server). Either --port for one identity, or --serve (repeatable) for many."
        ),
    )
    parser.add_argument("--port", type=int, help="HTTP/1.1 port (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address the --*port listeners bind (default 127.0.0.1)")
    parser.add_argument("--h2c-port", type=int, help="HTTP/2 prior-knowledge port")
    parser.add_argument("--https-port", type=int, help="HTTPS port (h2 and http/1.1); needs --cert and --key")
    parser.add_argument("--grpc-port", type=int, help="GrpcEcho service port (plaintext)")
    parser.add_argument("--tcp-port", type=int, help="TCP line echo port")
    parser.add_argument("--udp-port", type=int, help="UDP JSON echo port")
    parser.add_argument("--cert", help="server certificate (PEM file)")
    parser.add_argument("--key", help="server private key (PEM file)")
    parser.add_argument("--client-ca", help="ask HTTPS clients for a certificate and verify it against this CA")
    parser.add_argument(
        "--require-client-cert",
        action="store_true",
        help="with --client-ca: refuse HTTPS clients without a certificate",
    )
    parser.add_argument("--namespace", default=os.environ.get("NAMESPACE", ""), help="namespace reported (NAMESPACE)")
    parser.add_argument("--service", default=os.environ.get("SERVICE_NAME", ""), help="service reported")
    parser.add_argument("--pod", default=os.environ.get("POD_NAME", ""), help="pod name reported (POD_NAME)")
    parser.add_argument("--ingress", default=os.environ.get("INGRESS_NAME", ""), help="ingress name reported")
    parser.add_argument(
        "--serve",
        action="append",
        default=[],
        metavar="SPEC",
        help="one identity: 'http=HOST:PORT,h2c=..,https=..,grpc=..,grpcs=..,tcp=..,tcps=..,udp=..,"
        "namespace=..,service=..,pod=..,cert=..,key=..,client_ca=..,require_client_cert=true' or the same keys as "
        "a JSON object",
    )
    parser.add_argument("--request-log", help="append one JSON line per echoed request to this file")
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    return parser


def _simple_spec(args: argparse.Namespace) -> ServeSpec | None:
    ports = {
        "http": args.port,
        "h2c": args.h2c_port,
        "https": args.https_port,
        "grpc": args.grpc_port,
        "tcp": args.tcp_port,
        "udp": args.udp_port,
    }
    listeners = {kind: (args.host, port) for kind, port in ports.items() if port is not None}
    if not listeners:
        return None
    context = PodContext(namespace=args.namespace, ingress=args.ingress, service=args.service, pod=args.pod)
    return ServeSpec(
        context=context,
        cert=args.cert,
        key=args.key,
        client_ca=args.client_ca,
        require_client_cert=args.require_client_cert,
        **listeners,
    )


def _announce(bound: list[BoundListener]) -> None:
    for listener in bound:
        line = {"event": "listening", "kind": listener.kind, "address": listener.address}
        line.update(namespace=listener.namespace, service=listener.service, pod=listener.pod)
        sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.write(json.dumps({"event": "ready", "listeners": len(bound)}) + "\n")
    sys.stdout.flush()


async def _run(specs: list[ServeSpec], request_log: RequestLog) -> None:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    try:
        await serve_echo(specs, request_log=request_log, on_ready=_announce)
    except asyncio.CancelledError:
        log.info("echo.stopped")


def main(argv: Sequence[str]) -> int:
    """Run ``nantian echo`` with ``argv`` (without the program and sub-command names); returns the exit code.

    Prints one JSON line per bound listener (``{"event": "listening", "kind", "address", ...}``) and then
    ``{"event": "ready"}`` on stdout, and serves until SIGTERM/SIGINT.
    """
    parser = build_parser()
    args = parser.parse_args(list(argv))
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        specs = [parse_serve_spec(text) for text in args.serve]
        simple = _simple_spec(args)
    except SpecError as exc:
        parser.error(str(exc))
    if simple is not None:
        specs.insert(0, simple)
    if not specs:
        parser.error("nothing to serve: give --port (or another --*-port) or --serve")
    request_log = RequestLog(args.request_log)
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(_run(specs, request_log))
    except OSError as exc:
        sys.stderr.write(f"nantian echo: {exc}\n")
        return 1
    finally:
        request_log.close()
    return 0


def _loop_factory() -> type[asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is not available on Windows
        return None
    factory: type[asyncio.AbstractEventLoop] = uvloop.Loop
    return factory
