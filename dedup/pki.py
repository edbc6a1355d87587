"""The consortium's certificate profile: a CA, and TLS certificates whose common name is
the member id (or the coordinator's service name).

Every party must agree on this profile, since the coordinator maps the client certificate
to a member by its common name and then insists that member signed the batch.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyAndCert = tuple[ec.EllipticCurvePrivateKey, x509.Certificate]


def _name(common_name: str, organisation: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def new_ca(common_name: str, *, organisation: str = "dedup consortium", days: int = 3650) -> KeyAndCert:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    name = _name(common_name, organisation)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True,
                          crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def issue(
    ca: KeyAndCert,
    common_name: str,
    *,
    dns_names: tuple[str, ...] = (),
    ip_addresses: tuple[str, ...] = (),
    server: bool = False,
    client: bool = True,
    days: int = 825,
) -> KeyAndCert:
    """Issue a TLS certificate from the consortium CA.

    Members get client certificates named by their member id; the coordinator gets a server
    certificate whose SANs are the names and addresses nodes dial.
    """
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    if not sans:
        sans = [x509.DNSName(common_name)]
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    org = ca_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, str(org)))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def write_private(path: Path, data: bytes) -> None:
    """Write secret material readable by its owner only (created 0600, never widened)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


def write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    write_private(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))


def write_cert(path: Path, cert: x509.Certificate) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


# --- consortium material on disk (`dedup pki`, and the demo) ------------------------------
#
# One layout for every party, so operators, the demo and the tests read the same files:
#   CA:          ca.pem, ca.key
#   coordinator: tls.pem, tls.key (server certificate), log.key (C2SP signer key)
#   member:      tls.pem, tls.key (client certificate, CN = member id), signing.key, signing.pub

CA_CERT, CA_KEY = "ca.pem", "ca.key"
TLS_CERT, TLS_KEY = "tls.pem", "tls.key"
LOG_KEY, LOG_PUB = "log.key", "log.pub"
SIGNING_KEY, SIGNING_PUB = "signing.key", "signing.pub"


class PkiError(Exception):
    """Consortium material is missing, unreadable or would be overwritten; the message says which."""


def private_dir(path: Path) -> Path:
    """A folder holding private keys: created 0700 (an existing one is narrowed to 0700)."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def write_signer(path: Path, signer) -> None:
    """A C2SP signer key (``PRIVATE+KEY+...``), mode 0600."""
    write_private(path, (signer.to_string() + "\n").encode())


def write_ca(directory: Path, common_name: str, *, organisation: str = "dedup consortium",
             days: int = 3650) -> KeyAndCert:
    ca = new_ca(common_name, organisation=organisation, days=days)
    private_dir(directory)
    write_key(directory / CA_KEY, ca[0])
    write_cert(directory / CA_CERT, ca[1])
    return ca


def load_ca(directory: Path) -> KeyAndCert:
    try:
        cert = x509.load_pem_x509_certificate((directory / CA_CERT).read_bytes())
        key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise PkiError(f"no consortium CA in {directory} ({exc.filename} is missing); run `dedup pki init` "
                       f"first, or pass the folder it wrote with --dir") from exc
    except (OSError, ValueError) as exc:
        raise PkiError(f"cannot read the consortium CA in {directory}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise PkiError(f"{directory / CA_KEY} is not the private key of {directory / CA_CERT}")
    return key, cert


def write_server_tls(ca: KeyAndCert, directory: Path, server_name: str, *, dns_names: tuple[str, ...] = (),
                     ip_addresses: tuple[str, ...] = (), days: int = 825) -> x509.Certificate:
    """The coordinator's server certificate: CN and first SAN ``server_name`` (what nodes set as
    ``coordinator.server_name``), plus any other names and addresses nodes dial."""
    names = tuple(dict.fromkeys((server_name, *dns_names)))
    key, cert = issue(ca, server_name, dns_names=names, ip_addresses=ip_addresses, server=True, client=False,
                      days=days)
    private_dir(directory)
    write_key(directory / TLS_KEY, key)
    write_cert(directory / TLS_CERT, cert)
    return cert


def write_member_tls(ca: KeyAndCert, directory: Path, member_id: str, *, days: int = 825) -> x509.Certificate:
    """A member's client certificate, CN = member id (the coordinator maps it to the member)."""
    key, cert = issue(ca, member_id, dns_names=(member_id,), client=True, days=days)
    private_dir(directory)
    write_key(directory / TLS_KEY, key)
    write_cert(directory / TLS_CERT, cert)
    return cert


def write_log_key(directory: Path, origin: str):
    """The log's Ed25519 signer, named by the log origin; returns it (``log.pub`` is the caller's)."""
    from dedup.note import NoteSigner

    signer = NoteSigner.generate(origin)
    private_dir(directory)
    write_signer(directory / LOG_KEY, signer)
    return signer


def write_member_key(directory: Path, member_id: str):
    """A member's Ed25519 statement key, named by its member id; the verifier goes beside it."""
    from dedup.note import NoteSigner

    signer = NoteSigner.generate(member_id)
    private_dir(directory)
    write_signer(directory / SIGNING_KEY, signer)
    (directory / SIGNING_PUB).write_text(signer.verifier().to_string() + "\n")
    return signer


def certificate_summary(path: Path) -> dict:
    """What an operator checks on a certificate: subject, issuer, validity, usages."""
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    issuer = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n.value) for n in sans]
    except x509.ExtensionNotFound:
        names = []
    left = cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc)
    return {"file": str(path), "common_name": str(cn[0].value) if cn else None,
            "issuer": str(issuer[0].value) if issuer else None, "names": names,
            "not_after": cert.not_valid_after_utc.isoformat(), "days_left": left.days,
            "serial": format(cert.serial_number, "x")}
