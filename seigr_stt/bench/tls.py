"""Self-signed certificates for the TLS peers (websockets over TLS, aioquic), made fresh for each
server: an ECDSA P-256 key (the common default of TLS servers) and a certificate valid for
``localhost`` and the server's own IP address, so clients verify it as usual against it as their
only trusted CA."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["client_context", "self_signed", "server_context", "write_pair"]


def self_signed(hosts: Sequence[str] = ("localhost",)) -> tuple[bytes, bytes]:
    """A fresh key and a self-signed certificate for ``hosts`` (names or IP addresses), as
    ``(certificate_pem, key_pem)``. Valid from yesterday to the day after tomorrow."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(["localhost", *hosts]):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "seigr-bench")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def write_pair(directory: Path, cert_pem: bytes, key_pem: bytes) -> tuple[Path, Path]:
    """Write the pair as ``cert.pem`` and ``key.pem`` in ``directory`` (for file-only APIs)."""
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert_pem)
    key_path.write_bytes(key_pem)
    return cert_path, key_path


def server_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """A TLS server context serving this pair (the files exist only while it is loaded)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory(prefix="seigr-bench-") as tmp:
        context.load_cert_chain(*write_pair(Path(tmp), cert_pem, key_pem))
    return context


def client_context(ca_pem: str) -> ssl.SSLContext:
    """A TLS client context that trusts only ``ca_pem`` (and checks the host name against it)."""
    return ssl.create_default_context(cadata=ca_pem)
