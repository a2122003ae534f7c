"""TLS material for Gateway API cases: CA ConfigMaps and server/client Secrets, as Kubernetes object dicts.

The upstream conformance suite generates certificates at run time; ``tests/data/gateway-api/generated.yaml``
describes them as data (and each case's ``generated`` list names the ones it needs). :class:`CertificateFactory`
makes them with ``cryptography``: RSA 2048 keys, PKCS#1 ``RSA PRIVATE KEY`` PEM, SANs from ``hosts`` (IP literal ->
IP SAN, DNS name (optionally ``*.``) -> DNS SAN, anything else -> URI SAN).

Keys are slow to make, so a factory caches every key and object it made: the same factory hands out the same
material for the same entry, and CAs sign with the key they were made with.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CertificateFactory",
    "MaterialSpec",
    "generated_objects",
    "suite_material",
]

_DNS_RE = re.compile(r"^(\*\.)?([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$", re.I)
_TYPES = ("ca", "self-signed", "ca-signed-server", "ca-signed-client")
# A fixed instant keeps generated material independent of the wall clock's second; validity covers it widely.
_NOT_BEFORE = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
_NOT_AFTER = datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC)


@attrs.frozen(kw_only=True)
class MaterialSpec:
    """One generated object: a CA ConfigMap (``type`` ``ca``) or a TLS Secret."""

    kind: str
    namespace: str
    name: str
    type: str = attrs.field(validator=attrs.validators.in_(_TYPES))
    hosts: tuple[str, ...] = ()
    ca: str | None = None
    """Name of the CA ConfigMap (in :attr:`ca_namespace`) that signs this Secret."""
    ca_namespace: str = "gateway-conformance-infra"

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> MaterialSpec:
        """Read one entry of a ``generated`` list (case file or ``generated.yaml``)."""
        return cls(
            kind=str(entry["kind"]),
            namespace=str(entry["namespace"]),
            name=str(entry["name"]),
            type=str(entry["type"]),
            hosts=tuple(str(h) for h in entry.get("hosts") or ()),
            ca=entry.get("ca"),
        )

    @property
    def key(self) -> tuple[str, str, str]:
        """(kind, namespace, name): one object per key."""
        return (self.kind, self.namespace, self.name)


def suite_material(path: Path) -> tuple[MaterialSpec, ...]:
    """The suite-wide material of ``generated.yaml`` at ``path``, in creation order."""
    doc = yaml.safe_load(path.read_text())
    return tuple(MaterialSpec.from_entry(e) for e in doc.get("generated") or ())


def _sans(hosts: Iterable[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
            continue
        except ValueError:
            pass
        if _DNS_RE.match(host):
            names.append(x509.DNSName(host))
        else:
            names.append(x509.UniformResourceIdentifier(host))
    return names


def _pem_cert(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _pem_key(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()


@attrs.define
class _Ca:
    key: rsa.RSAPrivateKey
    cert: x509.Certificate


class CertificateFactory:
    """Makes (and remembers) CA certificates and signed or self-signed leaf certificates.

    :param key_size: RSA modulus size; the suite uses 2048.
    """

    def __init__(self, *, key_size: int = 2048) -> None:
        self._key_size = key_size
        self._cas: dict[tuple[str, str], _Ca] = {}
        self._objects: dict[MaterialSpec, dict[str, Any]] = {}

    def _new_key(self) -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=self._key_size)

    def _ca(self, namespace: str, name: str) -> _Ca:
        found = self._cas.get((namespace, name))
        if found is not None:
            return found
        key = self._new_key()
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, "gatewayapi"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Kubernetes Gateway API"),
                x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            ]
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(2024)
            .not_valid_before(_NOT_BEFORE)
            .not_valid_after(_NOT_AFTER)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        ca = _Ca(key=key, cert=cert)
        self._cas[(namespace, name)] = ca
        return ca

    def _leaf(self, spec: MaterialSpec) -> tuple[str, str]:
        key = self._new_key()
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, "default"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme Co"),
            ]
        )
        if spec.type == "self-signed":
            issuer_name, signing_key = subject, key
        else:
            ca = self._ca(spec.ca_namespace, spec.ca or "")
            issuer_name, signing_key = ca.cert.subject, ca.key
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if spec.type == "ca-signed-client" else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_NOT_BEFORE)
            .not_valid_after(_NOT_AFTER)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=True,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        sans = _sans(spec.hosts)
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(signing_key, hashes.SHA256())
        return _pem_cert(cert), _pem_key(key)

    def object(self, spec: MaterialSpec) -> dict[str, Any]:
        """The Kubernetes object (``ConfigMap`` with ``ca.crt`` or ``kubernetes.io/tls`` Secret) for ``spec``."""
        found = self._objects.get(spec)
        if found is not None:
            return _copy(found)
        meta = {"name": spec.name, "namespace": spec.namespace}
        obj: dict[str, Any]
        if spec.type == "ca":
            ca = self._ca(spec.namespace, spec.name)
            obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"ca.crt": _pem_cert(ca.cert)}}
        else:
            crt, key = self._leaf(spec)
            obj = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": meta,
                "type": "kubernetes.io/tls",
                "data": {"tls.crt": _b64(crt), "tls.key": _b64(key)},
            }
        self._objects[spec] = obj
        return _copy(obj)

    def objects(self, specs: Iterable[MaterialSpec]) -> list[dict[str, Any]]:
        """Objects for ``specs`` in order, CAs first so each exists before what it signs; duplicates dropped."""
        unique: dict[tuple[str, str, str], MaterialSpec] = {}
        for spec in specs:
            unique.setdefault(spec.key, spec)
        ordered = sorted(unique.values(), key=lambda s: s.type != "ca")
        return [self.object(s) for s in ordered]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _copy(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        k: ({kk: (dict(vv) if isinstance(vv, dict) else vv) for kk, vv in v.items()} if isinstance(v, dict) else v)
        for k, v in obj.items()
    }


_DEFAULT_FACTORY: CertificateFactory | None = None


def generated_objects(
    entries: Iterable[Mapping[str, Any] | MaterialSpec], *, factory: CertificateFactory | None = None
) -> list[dict[str, Any]]:
    """Objects for ``generated`` entries, made by ``factory`` (default: one process-wide factory, so repeated
    calls reuse keys and stay fast)."""
    global _DEFAULT_FACTORY
    if factory is None:
        if _DEFAULT_FACTORY is None:
            _DEFAULT_FACTORY = CertificateFactory()
        factory = _DEFAULT_FACTORY
    specs = [e if isinstance(e, MaterialSpec) else MaterialSpec.from_entry(e) for e in entries]
    return factory.objects(specs)
