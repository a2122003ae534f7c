"""The strategies themselves: real TLS material, well-formed document sets."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from hypothesis import given

from nantian.testing import strategies as nst


@pytest.mark.parametrize("index", range(len(nst.CERT_HOSTS)))
def test_pem_pairs_load_into_an_ssl_context(index: int, tmp_path: Path) -> None:
    pair = nst.pem_pair(index)
    assert nst.pem_pair(index) is pair, "generated once per process"
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_text(pair.certificate)
    key.write_text(pair.private_key)
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    parsed = x509.load_pem_x509_certificate(pair.certificate.encode())
    sans = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert tuple(sans.get_values_for_type(x509.DNSName)) == nst.CERT_HOSTS[index]


@given(nst.secret_documents())
def test_secret_documents_carry_one_of_the_pem_pairs(doc: dict[str, Any]) -> None:
    assert doc["type"] == "kubernetes.io/tls"
    certificate = base64.b64decode(doc["data"]["tls.crt"]).decode()
    assert certificate in {nst.pem_pair(i).certificate for i in range(len(nst.CERT_HOSTS))}
