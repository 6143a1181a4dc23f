"""TLS material for the HTTP/3 front: configured PEM files, or a self-signed development certificate.

QUIC mandates TLS 1.3, so the proxy cannot start without a certificate. For a laptop a self-signed one (ECDSA P-256,
SAN localhost / 127.0.0.1 / ::1) is generated once into `$AIMDS_HOME/tls/` and reused; clients then need `--insecure`
or `--cafile $AIMDS_HOME/tls/dev-cert.pem`. Production deployments configure `cert` / `key`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
from pathlib import Path

from aimds_ray.quic.config import QuicConfig

log = logging.getLogger("aimds_ray.quic")

DEV_CERT_NAME = "dev-cert.pem"
DEV_KEY_NAME = "dev-key.pem"


def dev_tls_dir() -> Path:
    from aimds_ray.core.config import aimds_home

    return aimds_home() / "tls"


def _still_valid(cert_path: Path, margin_days: int = 7) -> bool:
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        return False
    return cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=margin_days)


def generate_self_signed(cert_path: Path, key_path: Path, *, days: int = 365) -> None:
    """Write a self-signed ECDSA P-256 certificate valid for localhost, 127.0.0.1 and ::1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "aimds-ray development (self-signed)"),
    ])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_bytes = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    tmp_key = key_path.with_suffix(".tmp")
    fd = os.open(tmp_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_bytes)
    os.replace(tmp_key, key_path)
    tmp_cert = cert_path.with_suffix(".tmp")
    tmp_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.replace(tmp_cert, cert_path)


def resolve_certificate(config: QuicConfig) -> tuple[Path, Path, bool]:
    """(cert, key, is_dev): the configured pair, else the dev pair in $AIMDS_HOME/tls/ (generated if missing)."""
    if config.cert and config.key:
        cert, key = Path(config.cert), Path(config.key)
        for p, what in ((cert, "quic.cert"), (key, "quic.key")):
            if not p.is_file():
                raise FileNotFoundError(f"{what}: no such file: {p}")
        return cert, key, False
    d = dev_tls_dir()
    cert, key = d / DEV_CERT_NAME, d / DEV_KEY_NAME
    if cert.is_file() and key.is_file() and _still_valid(cert):
        log.warning("HTTP/3: no TLS certificate configured; using the self-signed development certificate %s "
                    "(clients: --insecure or --cafile %s)", cert, cert)
        return cert, key, True
    generate_self_signed(cert, key)
    log.warning("HTTP/3: no TLS certificate configured; GENERATED a self-signed development certificate at %s "
                "(key %s). Clients need --insecure or --cafile %s. Configure quic.cert/quic.key for production.",
                cert, key, cert)
    return cert, key, True
