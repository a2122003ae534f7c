"""Real TLS material for generated Secrets: a few self-signed certificates, made once per process."""

from __future__ import annotations

import base64
import datetime
import functools

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["CERT_HOSTS", "PemPair", "pem_pair", "tls_secret_data"]

CERT_HOSTS: tuple[tuple[str, ...], ...] = (
    ("example.com", "*.example.com"),
    ("a.example.com",),
    ("*.b.example.com", "b.example.com"),
)
"""The SAN sets of the certificates :func:`pem_pair` makes (index 0, 1, 2)."""

_NOT_BEFORE = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
_NOT_AFTER = datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC)


@attrs.frozen
class PemPair:
    """A self-signed server certificate and its (unencrypted, PKCS#8) private key, as PEM text."""

    certificate: str
    private_key: str


@functools.cache
def pem_pair(index: int) -> PemPair:
    """The certificate for ``CERT_HOSTS[index]``: generated on first use (EC P-256, fast), then cached."""
    hosts = CERT_HOSTS[index]
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1000 + index)
        .not_valid_before(_NOT_BEFORE)
        .not_valid_after(_NOT_AFTER)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return PemPair(cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode())


def tls_secret_data(index: int) -> dict[str, str]:
    """``data`` of a ``kubernetes.io/tls`` Secret (base64 values) holding :func:`pem_pair` ``(index)``."""
    pair = pem_pair(index)
    return {
        "tls.crt": base64.b64encode(pair.certificate.encode()).decode(),
        "tls.key": base64.b64encode(pair.private_key.encode()).decode(),
    }
