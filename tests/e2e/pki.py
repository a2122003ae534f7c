"""mTLS material for the config stream in the e2e tests: one CA, a server certificate, a client certificate."""

from __future__ import annotations

from pathlib import Path

import trustme


def write_pki(directory: Path, client: str, *server_names: str) -> dict[str, Path]:
    """A new CA, a server certificate for ``server_names`` (default 127.0.0.1) and a client certificate named
    ``client``, written as PEM files into ``directory``; their paths by name: ``ca``, ``cert``, ``key``,
    ``client_cert``, ``client_key``."""
    ca = trustme.CA()
    server = ca.issue_cert(*(server_names or ("127.0.0.1",)))
    leaf = ca.issue_cert(client)
    blobs = {
        "ca": ca.cert_pem,
        "cert": server.cert_chain_pems[0],
        "key": server.private_key_pem,
        "client_cert": leaf.cert_chain_pems[0],
        "client_key": leaf.private_key_pem,
    }
    paths = {name: directory / f"{name}.pem" for name in blobs}
    for name, blob in blobs.items():
        blob.write_to_path(str(paths[name]))
    return paths
