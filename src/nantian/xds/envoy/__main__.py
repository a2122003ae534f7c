"""``python -m nantian.xds.envoy --node-id ID --xds HOST:PORT``: print an Envoy bootstrap for a nantian controller.

Run the controller with ``--transport envoy``, then ``envoy -c <(python -m nantian.xds.envoy ...)``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from nantian.xds.envoy.bootstrap import bootstrap

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nantian.xds.envoy", description="print an Envoy bootstrap (JSON)")
    p.add_argument("--node-id", required=True)
    p.add_argument("--xds", required=True, help="HOST:PORT of the controller (started with --transport envoy)")
    p.add_argument("--admin-address", default="127.0.0.1:0", help="Envoy's admin HOST:PORT")
    p.add_argument("--gateway", action="append", default=[], help="serve only NS/NAME (repeatable)")
    p.add_argument("--port-offset", type=int, default=0, help="a listener on port P binds P+N")
    p.add_argument("--xds-tls-ca", help="verify the controller with this CA (enables TLS)")
    p.add_argument("--xds-tls-cert", help="client certificate for mTLS")
    p.add_argument("--xds-tls-key", help="private key of --xds-tls-cert")
    args = p.parse_args(argv)
    if ":" not in args.xds:
        p.error(f"--xds {args.xds!r} is not HOST:PORT")
    document = bootstrap(
        args.node_id,
        args.xds,
        admin_address=args.admin_address,
        gateways=args.gateway,
        port_offset=args.port_offset,
        tls_ca=args.xds_tls_ca,
        tls_cert=args.xds_tls_cert,
        tls_key=args.xds_tls_key,
    )
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
