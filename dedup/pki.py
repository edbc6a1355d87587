"""The consortium's certificate profile: a CA, and TLS certificates whose common name is
the member id (or the coordinator's service name).

Every party must agree on this profile, since the coordinator maps the client certificate
to a member by its common name and then insists that member signed the batch.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
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
    """Issue a TLS certificate, and make its key, for the coordinator (whose keys the records
    service holds anyway). Members make their own keys: see ``issue_for``."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key, issue_for(ca, common_name, key.public_key(), dns_names=dns_names, ip_addresses=ip_addresses,
                          server=server, client=client, days=days)


def issue_for(
    ca: KeyAndCert,
    common_name: str,
    public_key,
    *,
    dns_names: tuple[str, ...] = (),
    ip_addresses: tuple[str, ...] = (),
    server: bool = False,
    client: bool = True,
    days: int = 825,
) -> x509.Certificate:
    """A TLS certificate from the consortium CA for ``public_key``, made by whoever holds its
    private key. Members get client certificates named by their member id; the coordinator
    gets a server certificate whose SANs are the names and addresses nodes dial."""
    ca_key, ca_cert = ca
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
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert


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
#   member:      tls.pem, tls.key (client certificate, CN = member id), signing.key, signing.pub,
#                made on the member's own node; pending/ holds keys whose certificate or
#                admission has not come back yet

CA_CERT, CA_KEY = "ca.pem", "ca.key"
TLS_CERT, TLS_KEY = "tls.pem", "tls.key"
LOG_KEY, LOG_PUB = "log.key", "log.pub"
SIGNING_KEY, SIGNING_PUB = "signing.key", "signing.pub"
PENDING = "pending"
MEMBER_TOML = "member.toml"


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


def write_log_key(directory: Path, origin: str):
    """The log's Ed25519 signer, named by the log origin; returns it (``log.pub`` is the caller's)."""
    from dedup.note import NoteSigner

    signer = NoteSigner.generate(origin)
    private_dir(directory)
    write_signer(directory / LOG_KEY, signer)
    return signer


def write_member_key(directory: Path, member_id: str):
    """A member's Ed25519 statement key, named by its member id, made where it is kept (the
    member's node); the verifier goes beside it."""
    from dedup.note import NoteSigner

    signer = NoteSigner.generate(member_id)
    private_dir(directory)
    write_signer(directory / SIGNING_KEY, signer)
    (directory / SIGNING_PUB).write_text(signer.verifier().to_string() + "\n")
    return signer


def read_signer(path: Path):
    from dedup.note import NoteError, NoteSigner

    try:
        return NoteSigner.from_string(path.read_text(encoding="utf-8").strip())
    except FileNotFoundError as exc:
        raise PkiError(f"{path} is missing") from exc
    except (OSError, UnicodeDecodeError, NoteError) as exc:
        raise PkiError(f"cannot read the signing key {path}: {exc}") from exc


def read_tls_key(path: Path):
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise PkiError(f"{path} is missing") from exc
    except (OSError, ValueError, TypeError) as exc:
        raise PkiError(f"cannot read the TLS key {path}: {exc}") from exc


# --- a member's request: its own keys, made on its node ------------------------------------
#
# A member sends the records service one signed note (C2SP signed-note format):
#
#     dedup member request
#     member city-museum
#     statement-key city-museum+1a2b3c4d+AbCd...      (its Ed25519 verifier key)
#     csr MIIB...                                      (PKCS#10, base64 DER, CN = member id)
#
#     — city-museum 3f9a...                            (signed with that statement key)
#
# The note's signature shows the member holds the statement key, and the CSR's own signature
# that it holds the TLS key; the records service certifies and admits public keys only.

REQUEST_HEADER = "dedup member request"


@dataclass(frozen=True)
class MemberRequest:
    member_id: str
    statement_key: object  # NoteVerifier
    csr: x509.CertificateSigningRequest


def new_tls_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_request(member_id: str, tls_key, signer) -> str:
    """The signed request for ``member_id``'s TLS key and statement key (``signer``)."""
    from dedup.note import sign_note

    if signer.name != member_id:
        raise PkiError(f"the statement key is named {signer.name!r}, not {member_id!r}")
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, member_id)]))
           .sign(tls_key, hashes.SHA256()))
    der = base64.b64encode(csr.public_bytes(serialization.Encoding.DER)).decode()
    text = (f"{REQUEST_HEADER}\nmember {member_id}\nstatement-key {signer.verifier().to_string()}\n"
            f"csr {der}\n")
    return sign_note(text, [signer])


def _tls_key_acceptable(key) -> str | None:
    """Why a TLS public key is refused, or None: the keys every gRPC build accepts, at strengths
    current guidance allows."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name in ("secp256r1", "secp384r1"):
            return None
        return f"an EC key on {key.curve.name} (use P-256 or P-384)"
    if isinstance(key, rsa.RSAPublicKey):
        return None if key.key_size >= 2048 else f"an RSA key of {key.key_size} bits (at least 2048)"
    return f"a {type(key).__name__} (use an EC P-256, P-384 or RSA key)"


def read_request(data: str | bytes) -> MemberRequest:
    """Parse and check a member's request; raise PkiError saying what is wrong."""
    from dedup.config import MEMBER_ID
    from dedup.note import NoteError, NoteVerifier, open_note, split_note

    try:
        text, _ = split_note(data)
    except NoteError as exc:
        raise PkiError(f"not a signed member request: {exc}") from exc
    lines = text.rstrip("\n").split("\n")
    fields = dict(line.partition(" ")[::2] for line in lines[1:])
    if lines[0] != REQUEST_HEADER or len(lines) != 4 or set(fields) != {"member", "statement-key", "csr"}:
        raise PkiError(f"not a member request: expected the lines {REQUEST_HEADER!r}, member, statement-key "
                       "and csr (as `dedup pki request` writes them)")
    mid = fields["member"]
    if not MEMBER_ID.match(mid):
        raise PkiError(f"the request names {mid!r}, which is not a member id")
    try:
        verifier = NoteVerifier.from_string(fields["statement-key"])  # weak keys are refused here
    except NoteError as exc:
        raise PkiError(f"the request's statement key is refused: {exc}") from exc
    if verifier.name != mid:
        raise PkiError(f"the request's statement key is named {verifier.name!r}, not {mid!r}")
    try:
        open_note(data, [verifier])
    except NoteError as exc:
        raise PkiError(f"the request is not signed by its statement key: {exc}") from exc
    try:
        csr = x509.load_der_x509_csr(base64.b64decode(fields["csr"], validate=True))
    except ValueError as exc:
        raise PkiError(f"the request's certificate signing request does not parse: {exc}") from exc
    if not csr.is_signature_valid:
        raise PkiError("the certificate signing request's signature is not valid")
    cn = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if [str(a.value) for a in cn] != [mid]:
        raise PkiError(f"the certificate signing request names {[str(a.value) for a in cn]}, not {mid!r}")
    why = _tls_key_acceptable(csr.public_key())
    if why:
        raise PkiError(f"the certificate signing request's key is refused: {why}")
    return MemberRequest(mid, verifier, csr)


def issue_member(ca: KeyAndCert, request: MemberRequest, *, days: int = 825) -> x509.Certificate:
    """A member's client certificate for the key in its request, CN = member id (the
    coordinator maps it to the member). The CSR's extensions are not copied: the profile is
    the consortium's, not the requester's."""
    return issue_for(ca, request.member_id, request.csr.public_key(), dns_names=(request.member_id,), client=True,
                     days=days)


def certificate_matches(cert: x509.Certificate, key) -> bool:
    return cert.public_key() == key.public_key()


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
