"""Throw-away key material for the local push providers, written into a temp dir.

* :func:`make_pki` — a test CA and a server certificate for ``127.0.0.1`` / ``localhost``
  (what :class:`~tests.support.push_servers.FakeApns` serves; clients trust ``ca_file``).
* :func:`make_apns_auth_key` — an APNs token-auth key: EC P-256, PKCS#8 PEM (``.p8``), with
  its key id, team id and public key (what the fake APNs verifies the ES256 JWTs with).
* :func:`make_apns_client_cert` — an APNs provider certificate: one PEM with the certificate
  (signed by the test CA, subject ``UID`` = the bundle id) and its private key.
* :func:`make_service_account` — an FCM service-account JSON (RSA key) whose ``token_uri``
  points at the local OAuth endpoint.

Nothing here is secret: every key is generated per test session and lives in a temp dir.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_PKCS8 = dict(encoding=serialization.Encoding.PEM,
              format=serialization.PrivateFormat.PKCS8,
              encryption_algorithm=serialization.NoEncryption())


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    os.chmod(path, 0o600)
    return path


def _pub_pem(key) -> bytes:  # noqa: ANN001
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.timezone.utc)
    return builder.not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(
        now + dt.timedelta(days=2))


# --------------------------------------------------------------------------- CA + server


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca_file: Path  # the CA certificate (PEM): a client's ``ca_file``, a server's ``ca_certs``
    server_cert_file: Path  # certificate for 127.0.0.1 / localhost
    server_key_file: Path
    ca_cert: x509.Certificate
    ca_key: ec.EllipticCurvePrivateKey


def make_pki(directory: str | os.PathLike[str]) -> Pki:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ivr-engine test CA")])
    ca_cert = (
        _validity(x509.CertificateBuilder())
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    srv_key = ec.generate_private_key(ec.SECP256R1())
    srv_cert = (
        _validity(x509.CertificateBuilder())
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(srv_key.public_key()).serial_number(x509.random_serial_number())
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = _write(d / "test-ca.pem", ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file = _write(d / "server.pem", srv_cert.public_bytes(serialization.Encoding.PEM))
    key_file = _write(d / "server.key", srv_key.private_bytes(**_PKCS8))
    return Pki(d, ca_file, cert_file, key_file, ca_cert, ca_key)


# --------------------------------------------------------------------------- APNs


@dataclass(frozen=True)
class ApnsAuthKey:
    path: Path  # AuthKey_<key_id>.p8
    key_id: str
    team_id: str
    public_key_pem: bytes


def make_apns_auth_key(directory: str | os.PathLike[str], *, key_id: str = "ABC123DEFG",
                       team_id: str = "TEAM123456") -> ApnsAuthKey:
    key = ec.generate_private_key(ec.SECP256R1())
    path = _write(Path(directory) / f"AuthKey_{key_id}.p8", key.private_bytes(**_PKCS8))
    return ApnsAuthKey(path, key_id, team_id, _pub_pem(key))


def make_apns_client_cert(pki: Pki, directory: str | os.PathLike[str], bundle_id: str) -> Path:
    """An APNs provider certificate like Apple's: ``UID`` = bundle id, client auth, RSA."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([
        x509.NameAttribute(NameOID.USER_ID, bundle_id),
        x509.NameAttribute(NameOID.COMMON_NAME, f"Apple Push Services: {bundle_id}"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "TEAM123456"),
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
    ])
    cert = (
        _validity(x509.CertificateBuilder())
        .subject_name(subject).issuer_name(pki.ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            pki.ca_key.public_key()), critical=False)
        .sign(pki.ca_key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(**_PKCS8)
    return _write(Path(directory) / f"apns-{bundle_id}.pem", pem)


# --------------------------------------------------------------------------- FCM


@dataclass(frozen=True)
class ServiceAccount:
    path: Path
    project_id: str
    client_email: str
    private_key_id: str
    token_uri: str
    public_key_pem: bytes


def make_service_account(directory: str | os.PathLike[str], token_uri: str, *,
                         project_id: str = "ivr-test") -> ServiceAccount:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = secrets.token_hex(20)
    email = f"firebase-adminsdk@{project_id}.iam.gserviceaccount.com"
    doc = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": kid,
        "private_key": key.private_bytes(**_PKCS8).decode(),
        "client_email": email,
        "client_id": str(secrets.randbelow(10**20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    }
    path = _write(Path(directory) / f"service-account-{project_id}.json",
                  json.dumps(doc, indent=2).encode())
    return ServiceAccount(path, project_id, email, kid, token_uri, _pub_pem(key))
