"""PEM checks for TLS material: server certificate Secrets and CA bundles (ConfigMap ``ca.crt``)."""

from __future__ import annotations

import functools

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from nantian.ir import Secret as IrSecret
from nantian.resources import ConfigMap, Secret

__all__ = ["ca_bundle_problem", "ca_secret", "certificate_problem", "server_secret"]


@functools.lru_cache(maxsize=4096)
def _pem_pair_problem(crt: bytes, key: bytes) -> str | None:
    try:
        certs = x509.load_pem_x509_certificates(crt)
    except ValueError as exc:
        return f"tls.crt is not a PEM certificate: {exc}"
    try:
        private = serialization.load_pem_private_key(key, password=None, unsafe_skip_rsa_key_validation=True)
    except (ValueError, TypeError) as exc:
        return f"tls.key is not a PEM private key: {exc}"
    except Exception as exc:  # cryptography raises UnsupportedAlgorithm for unknown key types
        return f"tls.key cannot be used: {exc}"
    if certs[0].public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
        return "tls.key does not match the certificate in tls.crt"
    return None


@functools.lru_cache(maxsize=4096)
def _pem_bundle_problem(text: str) -> str | None:
    try:
        x509.load_pem_x509_certificates(text.encode())
    except ValueError as exc:
        return f"ca.crt holds no valid PEM certificate: {exc}"
    return None


def certificate_problem(secret: Secret) -> str | None:
    """Why ``secret`` cannot serve as a listener certificate, or ``None`` when it can."""
    data = secret.data or {}
    crt, key = data.get("tls.crt"), data.get("tls.key")
    if secret.type not in (None, "kubernetes.io/tls", "Opaque"):
        return f"Secret type {secret.type} is not kubernetes.io/tls"
    if not crt or not key:
        return "Secret lacks tls.crt or tls.key"
    return _pem_pair_problem(bytes(crt), bytes(key))


def ca_bundle_problem(config_map: ConfigMap) -> str | None:
    """Why ``config_map`` does not hold a usable CA bundle in ``ca.crt``, or ``None``."""
    text = (config_map.data or {}).get("ca.crt")
    if not text:
        return "ConfigMap has no ca.crt"
    return _pem_bundle_problem(text)


def server_secret(secret: Secret) -> IrSecret:
    """The IR secret (certificate chain and key) of a checked TLS Secret."""
    data = secret.data or {}
    return IrSecret(
        name=f"{secret.metadata.namespace}/{secret.metadata.name}",
        certificate_chain=bytes(data.get("tls.crt", b"")).decode(errors="replace"),
        private_key=bytes(data.get("tls.key", b"")).decode(errors="replace"),
    )


def ca_secret(config_map: ConfigMap) -> IrSecret:
    """The IR secret (CA bundle) of a checked CA ConfigMap."""
    return IrSecret(
        name=f"{config_map.metadata.namespace}/{config_map.metadata.name}",
        ca_bundle=(config_map.data or {}).get("ca.crt"),
    )
