"""TLS settings for the gateway.control.v1 stream: server certificate, optional client verification (mTLS)."""

from __future__ import annotations

from pathlib import Path

import attrs
import grpc

__all__ = ["ClientTls", "ServerTls"]


@attrs.frozen(kw_only=True)
class ServerTls:
    """The control plane's certificate and key (PEM files); with ``client_ca``, data planes must present a
    certificate signed by it (mTLS)."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    def credentials(self) -> grpc.ServerCredentials:
        pair = (self.key.read_bytes(), self.cert.read_bytes())
        ca = self.client_ca.read_bytes() if self.client_ca is not None else None
        return grpc.ssl_server_credentials([pair], root_certificates=ca, require_client_auth=ca is not None)


@attrs.frozen(kw_only=True)
class ClientTls:
    """How a data plane verifies the control plane (``ca``; the system roots when ``None``) and, for mTLS, the
    certificate and key it presents. ``server_name`` overrides the name checked in the server certificate."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    server_name: str | None = None

    def __attrs_post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ValueError("a client certificate needs both cert and key")

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca.read_bytes() if self.ca is not None else None,
            private_key=self.key.read_bytes() if self.key is not None else None,
            certificate_chain=self.cert.read_bytes() if self.cert is not None else None,
        )
