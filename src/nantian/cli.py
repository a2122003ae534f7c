"""The ``nantian`` command: arguments, logging, event-loop choice; the apps do the rest."""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from nantian.eventloop import run_app

__all__ = ["main"]

log = logging.getLogger("nantian")


def _host_port(default_host: str) -> Callable[[str], tuple[str, int]]:
    def parse(text: str) -> tuple[str, int]:
        host, sep, port = text.rpartition(":")
        if not sep:
            host, port = default_host, text
        host = host.strip("[]") or default_host
        try:
            number = int(port)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT") from None
        if not 0 <= number <= 65535:
            raise argparse.ArgumentTypeError(f"port {number} out of range")
        return host, number

    return parse


def _cidr(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _workers(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if number < 1:
        raise argparse.ArgumentTypeError("at least 1 worker")
    return number


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )


# --- translate ---------------------------------------------------------------------------------------
def _cmd_translate(args: argparse.Namespace) -> int:
    import yaml

    from nantian.controlplane.view import kube_objects
    from nantian.errors import SourceError
    from nantian.ir import converter
    from nantian.resources import ResourceSet, parse_documents
    from nantian.sources.files import FileSource
    from nantian.translate import TranslateOptions, translate

    try:
        if args.dir == "-":
            objects, errors = parse_documents(sys.stdin.read(), "<stdin>")
            rs = ResourceSet.from_objects(
                (obj for obj, _ in objects), raw={obj.ref: raw for obj, raw in objects}, errors=errors
            )
        else:
            path = Path(args.dir)
            if not path.is_dir():
                print(f"nantian translate: error: {args.dir}: not a readable directory", file=sys.stderr)
                return 2
            rs = FileSource.load_once(path)
    except (OSError, UnicodeDecodeError, SourceError) as exc:
        print(f"nantian translate: error: {args.dir}: {exc}", file=sys.stderr)
        return 2
    options = TranslateOptions(controller_name=args.controller_name, address_pool=args.address_pool)
    translation = translate(rs, options)
    document = {
        "snapshot": converter.unstructure(translation.snapshot),
        "resources": kube_objects(rs, translation.statuses, redact_secrets=False),
    }
    if args.output == "yaml":
        sys.stdout.write(yaml.safe_dump(document, sort_keys=False))
    else:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    for error in rs.errors:
        print(f"nantian translate: invalid: {error}", file=sys.stderr)
    return 1 if rs.errors else 0


# --- standalone ----------------------------------------------------------------------------------------
def _access_log_path(value: str) -> str:
    from nantian.proxy.access_log import access_log_argument  # only when the flag is given: nantian.proxy is heavy

    return access_log_argument(value)


def _cmd_standalone(args: argparse.Namespace) -> int:
    from nantian.controlplane.standalone import StandaloneOptions, run_standalone
    from nantian.proxy.stream_options import stream_options_from

    if args.config_dir is None and args.source is None:
        print("nantian standalone: error: give --config-dir DIR or --source URL", file=sys.stderr)
        return 2
    if args.config_dir is not None and not Path(args.config_dir).is_dir():
        print(f"nantian standalone: error: {args.config_dir}: not a directory", file=sys.stderr)
        return 2
    options = StandaloneOptions(
        config_dir=Path(args.config_dir) if args.config_dir else None,
        source=args.source,
        admin_host=args.admin_address[0],
        admin_port=args.admin_address[1],
        address_pool=args.address_pool,
        port_offset=args.port_offset,
        controller_name=args.controller_name,
        drain_timeout=args.drain_timeout,
        workers=args.workers,
        stream=stream_options_from(args),
        access_log=args.access_log,
    )
    return run_app(run_standalone(options))


def _add_common_source(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config-dir", help="directory of manifests to watch (the file source)")
    p.add_argument("--source", help="resource source URL: files:DIR, kubernetes, or a plugin's scheme")
    p.add_argument("--address-pool", type=_cidr, default="127.0.0.0/8", help="CIDR Gateway addresses come from")
    p.add_argument("--controller-name", default="nantian.io/gateway-controller")


def build_parser(*, stream_flags: bool = True) -> argparse.ArgumentParser:
    """The ``nantian`` arguments. ``stream_flags=False`` leaves out standalone's stream listener flags, whose
    definitions live in :mod:`nantian.proxy` (an import that costs commands other than ``standalone`` ~0.1 s)."""
    parser = argparse.ArgumentParser(prog="nantian", description="A Kubernetes Gateway API implementation.")
    parser.add_argument("--log-level", default="info", help="debug, info, warning, error")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("translate", help="translate a directory of manifests offline and print IR + statuses")
    p.add_argument("dir", help="directory of manifests, or - for a multi-document stream on stdin")
    p.add_argument("-o", "--output", choices=("json", "yaml"), default="json")
    p.add_argument("--controller-name", default="nantian.io/gateway-controller")
    p.add_argument("--address-pool", type=_cidr, default="127.0.0.0/8")
    p.set_defaults(func=_cmd_translate)

    p = sub.add_parser("standalone", help="control plane and proxy in one process")
    _add_common_source(p)
    p.add_argument("--admin-address", type=_host_port("127.0.0.1"), default=("127.0.0.1", 19000))
    p.add_argument("--port-offset", type=int, default=0, help="a listener on port P binds P+N")
    p.add_argument("--drain-timeout", type=float, default=10.0, help="seconds to finish requests on SIGTERM")
    p.add_argument(
        "--workers", type=_workers, default=1, help="proxy processes sharing the listener ports (SO_REUSEPORT)"
    )
    p.add_argument(
        "--access-log",
        metavar="PATH",
        type=_access_log_path,
        help="HTTP access log file, written in batches (- for stdout); default: the nantian.access logger",
    )
    if stream_flags:
        from nantian.proxy.stream_options import add_stream_arguments

        add_stream_arguments(p)
    p.set_defaults(func=_cmd_standalone)

    for name, helptext in (
        ("controller", "the control plane: source, translator, gRPC config server, admin API"),
        ("proxy", "a data plane streaming its configuration from a controller"),
        ("echo", "an echo backend for examples and tests"),
    ):
        p = sub.add_parser(name, help=helptext, add_help=False)
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(func=None, app=name)
    return parser


def _delegate(app: str, argv: list[str]) -> int:
    if app == "echo":
        from nantian.echo import main as echo_main

        return echo_main(argv)
    if app == "controller":
        from nantian.controlplane.controller import main as controller_main

        return controller_main(argv)
    from nantian.dataplane.app import main as proxy_main

    return proxy_main(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(stream_flags="standalone" in args_list)
    args, _ = parser.parse_known_args(args_list)
    _setup_logging(args.log_level)
    if args.func is None:
        index = args_list.index(args.app)
        return _delegate(args.app, args_list[index + 1 :])
    args = parser.parse_args(args_list)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
