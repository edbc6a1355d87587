"""`dedup pki ...`: the consortium's CA, TLS certificates and Ed25519 keys, on disk."""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

import tomli_w

from dedup import pki
from dedup.config import MEMBER_ID, ConfigError, load

from . import exits
from .common import CommandError, emit_json

COORDINATOR_ENV = "DEDUP_COORDINATOR_CONFIG"
NODE_ENV = "DEDUP_NODE_CONFIG"

DESCRIPTION = """\
Make and manage the consortium's keys and certificates, in the formats the coordinator and the
nodes read. One folder (DIR) holds the consortium CA; whoever runs the records service keeps it.

  DIR/ca.pem, DIR/ca.key          the consortium CA (ECDSA P-256): every TLS certificate is issued by it
  DIR/log.pub                     the log's verifier key: give it to every member and every auditor
  DIR/coordinator/tls.pem, .key   the coordinator's server certificate (CN = --server-name)
  DIR/coordinator/log.key         the log's Ed25519 signing key (C2SP signer key, named by --origin)
  DIR/members/ID/                 one member's bundle, to hand to that institution:
      tls.pem, tls.key            its client certificate (CN = member id)
      signing.key, signing.pub    its Ed25519 statement key (named by the member id)
      ca.pem, log.pub             copies, so the bundle stands alone
      member.toml                 the [[members]] entry to add to the coordinator's configuration
      node.toml                   a starting node configuration (with --coordinator)

Private keys are written mode 0600 in folders of mode 0700. Nothing is ever overwritten by
accident: existing material is refused unless the command's option says otherwise.

typical use, on the records service's machine:
  dedup pki init /etc/dedup/pki --origin records.example.hk/dedup-log --dns dedup.records.example.hk
  dedup pki issue city-museum --dir /etc/dedup/pki --name "City Museum" \\
      --coordinator dedup.records.example.hk:7443
  (append members/city-museum/member.toml to coordinator.toml, send the bundle to the museum)
  dedup pki check --config /etc/dedup/node.toml          (on the member's node, once installed)
  dedup pki revoke city-museum --config coordinator.toml --reason "key lost"
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pki", help="the consortium CA, TLS certificates and Ed25519 keys: init, issue, revoke, check",
                       description=DESCRIPTION, epilog=exits.EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    cmds = p.add_subparsers(dest="pki_command", metavar="COMMAND", required=True)

    s = cmds.add_parser("init", help="create the consortium CA, the coordinator's TLS certificate and the log key",
                        description="Create DIR with the consortium CA, the coordinator's server certificate and "
                                    "key, and the log's signing key (named by --origin, which is permanent: it is "
                                    "the first line of every checkpoint). Refused if DIR already holds a CA.",
                        epilog=exits.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("dir", type=Path, metavar="DIR", help="folder to create the material in")
    s.add_argument("--origin", required=True,
                   help="the log origin, e.g. records.example.hk/dedup-log (becomes log_origin; never a member id)")
    s.add_argument("--server-name", default="coordinator",
                   help="common name of the coordinator's certificate, which nodes put in "
                        "coordinator.server_name (default: coordinator)")
    s.add_argument("--dns", action="append", default=[], metavar="NAME",
                   help="another DNS name the coordinator is reached by (repeatable)")
    s.add_argument("--ip", action="append", default=[], metavar="ADDRESS",
                   help="an IP address the coordinator is reached at (repeatable)")
    s.add_argument("--ca-name", default="dedup consortium CA", help="common name of the CA certificate")
    s.add_argument("--organisation", default="dedup consortium", help="organisation name in every certificate")
    s.add_argument("--ca-days", type=int, default=3650, help="CA validity in days (default 3650)")
    s.add_argument("--days", type=int, default=825, help="coordinator certificate validity in days (default 825)")
    s.add_argument("--json", action="store_true", help="print what was written as JSON")
    s.set_defaults(func=_init)

    s = cmds.add_parser("issue", help="issue a member's TLS certificate and Ed25519 signing key",
                        description="Write DIR/members/MEMBER/: a client certificate whose common name is the "
                                    "member id, its key, the member's Ed25519 statement key, copies of ca.pem and "
                                    "log.pub, and member.toml, the entry to add to the coordinator's [[members]]. "
                                    "With --coordinator also a starting node.toml. --renew issues a new TLS "
                                    "certificate only and keeps the signing key (the key the log admitted the "
                                    "member with cannot be changed in the configuration). The bundle holds the "
                                    "member's private keys: hand it over securely and delete this copy.",
                        epilog=exits.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("member", metavar="MEMBER", help="member id: 1-63 of a-z 0-9 -, starting with a letter or digit")
    s.add_argument("--dir", type=Path, required=True, help="the folder `dedup pki init` wrote")
    s.add_argument("--name", help="the institution's display name, for member.toml (default: the member id)")
    s.add_argument("--priority", type=int, default=100,
                   help="custodial_priority for member.toml: master policy tie-break, lower first (default 100)")
    s.add_argument("--reader", action="store_true",
                   help="a reader member: it looks up provenance (`dedup node lookup`) and holds no collection, "
                        "sends no batches and casts no votes (reader = true in member.toml)")
    s.add_argument("--coordinator", metavar="HOST:PORT", help="also write node.toml dialling this address")
    s.add_argument("--renew", action="store_true", help="new TLS certificate and key only; keep the signing key")
    s.add_argument("--days", type=int, default=825, help="certificate validity in days (default 825)")
    s.add_argument("--json", action="store_true", help="print what was written as JSON")
    s.set_defaults(func=_issue)

    s = cmds.add_parser("renew-server", help="issue the coordinator a new TLS certificate from the consortium CA",
                        description="Replace DIR/coordinator/tls.pem and tls.key (same common name unless "
                                    "--server-name). The log key is not touched; rotate it with `dedup coordinator "
                                    "rotate-log-key`. Restart the coordinator to use the new certificate.",
                        epilog=exits.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--dir", type=Path, required=True, help="the folder `dedup pki init` wrote")
    s.add_argument("--server-name", help="common name (default: that of the current certificate)")
    s.add_argument("--dns", action="append", default=[], metavar="NAME", help="another DNS name (repeatable)")
    s.add_argument("--ip", action="append", default=[], metavar="ADDRESS", help="an IP address (repeatable)")
    s.add_argument("--days", type=int, default=825, help="validity in days (default 825)")
    s.add_argument("--json", action="store_true", help="print what was written as JSON")
    s.set_defaults(func=_renew_server)

    s = cmds.add_parser("revoke", help="revoke a member's key in the coordinator's configuration",
                        description="Set `revoked = REASON` on MEMBER's [[members]] entry of the coordinator's "
                                    "configuration file (other lines are left as they are). At its next start the "
                                    "coordinator appends a signed MemberRevoked entry to the log and from then on "
                                    "refuses everything the member sends, whatever certificate it presents; "
                                    "restart it to revoke now. There is no certificate revocation list: the "
                                    "coordinator refuses the identity, so the member's certificate is useless to "
                                    "it. If the entry cannot be found in the file, nothing is written and the "
                                    "exact lines to add are printed (exit 1).",
                        epilog=exits.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("member", metavar="MEMBER", help="member id to revoke")
    s.add_argument("-c", "--config", type=Path, default=os.environ.get(COORDINATOR_ENV),
                   help=f"coordinator configuration file (TOML); default: ${COORDINATOR_ENV}")
    s.add_argument("--reason", required=True, help="why, recorded in the log's MemberRevoked entry")
    s.add_argument("--dry-run", action="store_true", help="print the change; write nothing")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.set_defaults(func=_revoke)

    s = cmds.add_parser("check", help="check a node's certificate and key, and reach the coordinator with them",
                        description="On a member's node: check that the configured TLS certificate is issued by "
                                    "the configured CA, names this member and matches its key, and say how many "
                                    "days it has left; then connect to the coordinator over mutual TLS and ask gRPC "
                                    "health checking whether it is serving. For installation checks and container "
                                    "health checks.",
                        epilog="exit codes:\n  0  the material is sound and the coordinator answers SERVING\n"
                               "  1  a problem with the material, or the coordinator is not serving\n"
                               "  2  bad arguments or configuration\n"
                               "  3  the coordinator could not be reached (network, or the TLS handshake "
                               "was refused)\n",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("-c", "--config", type=Path, default=os.environ.get(NODE_ENV),
                   help=f"node configuration file (TOML); default: ${NODE_ENV}")
    s.add_argument("--offline", action="store_true", help="check the files only; do not connect")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.set_defaults(func=_check)


def _failed(exc: Exception) -> CommandError:
    return CommandError(str(exc), exits.FAILED)


def _init(args) -> int:
    args.dir = args.dir.resolve()  # printed paths must work from wherever the configuration lives
    if (args.dir / pki.CA_KEY).exists() or (args.dir / pki.CA_CERT).exists():
        raise CommandError(f"{args.dir} already holds a consortium CA; refusing to replace it")
    if MEMBER_ID.match(args.origin):
        raise CommandError(f"origin {args.origin!r} could be a member id; use a name with a '/' or '.', "
                           f"e.g. records.example.hk/dedup-log")
    try:
        ca = pki.write_ca(args.dir, args.ca_name, organisation=args.organisation, days=args.ca_days)
        cdir = args.dir / "coordinator"
        pki.write_server_tls(ca, cdir, args.server_name, dns_names=tuple(args.dns), ip_addresses=tuple(args.ip),
                             days=args.days)
        signer = pki.write_log_key(cdir, args.origin)
    except ValueError as exc:  # a malformed --ip, for one
        raise CommandError(f"cannot create the material: {exc}") from exc
    (args.dir / pki.LOG_PUB).write_text(signer.verifier().to_string() + "\n")
    out = {
        "dir": str(args.dir), "ca": str(args.dir / pki.CA_CERT), "ca_key": str(args.dir / pki.CA_KEY),
        "log_pub": str(args.dir / pki.LOG_PUB), "log_verifier_key": signer.verifier().to_string(),
        "log_origin": args.origin, "server_name": args.server_name,
        "coordinator": {"tls_cert": str(cdir / pki.TLS_CERT), "tls_key": str(cdir / pki.TLS_KEY),
                        "log_key": str(cdir / pki.LOG_KEY)},
    }
    if args.json:
        emit_json(out)
    else:
        print(f"consortium CA, coordinator certificate and log key written to {args.dir}\n"
              f"log verifier key (give to every member and auditor; also in {out['log_pub']}):\n"
              f"  {out['log_verifier_key']}\n"
              f"in the coordinator's configuration:\n"
              f"  log_origin = {json.dumps(args.origin)}\n"
              f"  log_key = {json.dumps(out['coordinator']['log_key'])}\n"
              f"  [tls] ca = {json.dumps(out['ca'])}, cert = {json.dumps(out['coordinator']['tls_cert'])}, "
              f"key = {json.dumps(out['coordinator']['tls_key'])}\n"
              f"keep {out['ca_key']} offline once the members are issued; next: dedup pki issue MEMBER --dir {args.dir}")
    return exits.OK


def _server_name(directory: Path) -> str:
    try:
        return pki.certificate_summary(directory / "coordinator" / pki.TLS_CERT)["common_name"] or "coordinator"
    except (OSError, ValueError):
        return "coordinator"


def _issue(args) -> int:
    mid = args.member
    if not MEMBER_ID.match(mid):
        raise CommandError(f"{mid!r} is not a member id: 1-63 of a-z 0-9 -, starting with a letter or digit")
    try:
        ca = pki.load_ca(args.dir)
    except pki.PkiError as exc:
        raise CommandError(str(exc)) from exc
    pki.private_dir(args.dir / "members")
    mdir = args.dir / "members" / mid
    key_file = mdir / pki.SIGNING_KEY
    if args.renew and not key_file.exists():
        raise CommandError(f"--renew: {key_file} does not exist; issue the member without --renew first")
    if not args.renew and key_file.exists():
        raise CommandError(f"{mid} already has a signing key in {mdir}; pass --renew for a new TLS certificate "
                           f"(a member's signing key cannot be replaced: see deploy/OPERATIONS.md)")
    pki.write_member_tls(ca, mdir, mid, days=args.days)
    if args.renew:
        from dedup.note import NoteSigner

        signer = NoteSigner.from_string(key_file.read_text(encoding="utf-8").strip())
    else:
        signer = pki.write_member_key(mdir, mid)
    for name in (pki.CA_CERT, pki.LOG_PUB):
        if (args.dir / name).exists():
            (mdir / name).write_bytes((args.dir / name).read_bytes())
    entry = {"id": mid, "name": args.name or mid, "public_key": signer.verifier().to_string(),
             "custodial_priority": args.priority}
    if args.reader:
        entry["reader"] = True
    (mdir / "member.toml").write_text("# Add to the coordinator's configuration file.\n"
                                      + tomli_w.dumps({"members": [entry]}))
    written = [pki.TLS_CERT, pki.TLS_KEY, pki.CA_CERT, pki.LOG_PUB, "member.toml"]
    if not args.renew:
        written[2:2] = [pki.SIGNING_KEY, pki.SIGNING_PUB]
    if args.coordinator:
        node = {
            "member_id": mid, "catalogue": "catalogue.sqlite", "signing_key": pki.SIGNING_KEY,
            "roots": [],
            "tls": {"ca": pki.CA_CERT, "cert": pki.TLS_CERT, "key": pki.TLS_KEY},
            "coordinator": {"address": args.coordinator, "server_name": _server_name(args.dir)},
        }
        if (mdir / pki.LOG_PUB).exists():
            node["log_verifier_key"] = pki.LOG_PUB
        (mdir / "node.toml").write_text("# Starting configuration: set roots; every setting is in "
                                        "deploy/CONFIGURATION.md.\n" + tomli_w.dumps(node))
        written.append("node.toml")
    out = {"member_id": mid, "dir": str(mdir), "files": [str(mdir / f) for f in written],
           "public_key": entry["public_key"], "renewed": args.renew,
           "certificate": pki.certificate_summary(mdir / pki.TLS_CERT), "member_entry": entry}
    if args.json:
        emit_json(out)
    else:
        what = "new TLS certificate" if args.renew else "TLS certificate and signing key"
        print(f"{mid}: {what} written to {mdir}")
        if not args.renew:
            print(f"add to the coordinator's configuration (also in {mdir / 'member.toml'}), then restart it:\n")
            print(tomli_w.dumps({"members": [entry]}))
        print(f"hand {mdir} to {mid} securely (it holds their private keys), then delete this copy")
    return exits.OK


def _renew_server(args) -> int:
    try:
        ca = pki.load_ca(args.dir)
    except pki.PkiError as exc:
        raise CommandError(str(exc)) from exc
    cdir = args.dir / "coordinator"
    name = args.server_name or _server_name(args.dir)
    try:
        pki.write_server_tls(ca, cdir, name, dns_names=tuple(args.dns), ip_addresses=tuple(args.ip), days=args.days)
    except ValueError as exc:
        raise CommandError(f"cannot issue the certificate: {exc}") from exc
    summary = pki.certificate_summary(cdir / pki.TLS_CERT)
    if args.json:
        emit_json(summary)
    else:
        print(f"coordinator certificate {summary['common_name']} ({', '.join(summary['names'])}) written to "
              f"{cdir / pki.TLS_CERT}, valid until {summary['not_after']}; restart the coordinator")
    return exits.OK


_MEMBERS_HEADER = re.compile(r"^\s*\[\[\s*members\s*\]\]\s*(#.*)?$")
_ANY_HEADER = re.compile(r"^\s*\[")
_REVOKED_LINE = re.compile(r"^(\s*)revoked\s*=.*$")


def revoke_in_config(text: str, member_id: str, reason: str) -> str | None:
    """``text`` with ``revoked = reason`` set on the member's ``[[members]]`` table, or None if that
    table cannot be found as a ``[[members]]`` block with an ``id = "..."`` line."""
    lines = text.splitlines(keepends=True)
    id_line = re.compile(r"^(\s*)id\s*=\s*([\"'])" + re.escape(member_id) + r"\2\s*(#.*)?$")
    i = 0
    while i < len(lines):
        if not _MEMBERS_HEADER.match(lines[i]):
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not _ANY_HEADER.match(lines[end]):
            end += 1
        block = range(i + 1, end)
        ids = [j for j in block if id_line.match(lines[j].rstrip("\r\n"))]
        if ids:
            value = f"revoked = {json.dumps(reason)}\n"
            for j in block:
                m = _REVOKED_LINE.match(lines[j].rstrip("\r\n"))
                if m:
                    lines[j] = m.group(1) + value
                    return "".join(lines)
            indent = id_line.match(lines[ids[0]].rstrip("\r\n")).group(1)
            if not lines[ids[0]].endswith("\n"):
                lines[ids[0]] += "\n"
            lines.insert(ids[0] + 1, indent + value)
            return "".join(lines)
        i = end
    return None


def _revoke(args) -> int:
    from dedup.coordinator.settings import CoordinatorSettings

    if args.config is None:
        raise CommandError(f"no configuration file: pass --config or set ${COORDINATOR_ENV}")
    try:
        settings = load(args.config, CoordinatorSettings)
    except ConfigError as exc:
        raise CommandError(str(exc)) from exc
    member = next((m for m in settings.members if m.id == args.member), None)
    if member is None:
        raise CommandError(f"{args.member!r} is not a member in {args.config}")
    instruction = (f"in {args.config}, in the [[members]] table with id = {json.dumps(args.member)}, set\n"
                   f"  revoked = {json.dumps(args.reason)}\nthen restart the coordinator")
    out = {"member_id": args.member, "config": str(args.config), "reason": args.reason,
           "already_revoked": member.revoked, "changed": False}
    text = args.config.read_text(encoding="utf-8")
    new = revoke_in_config(text, args.member, args.reason)
    if new is None:
        out["instruction"] = instruction
        if args.json:
            emit_json(out)
        else:
            print(f"cannot find the member's [[members]] block in {args.config}; nothing written. By hand:\n"
                  f"{instruction}")
        return exits.FAILED
    # The edit must load, and revoke exactly this member, before the file is replaced.
    tmp = args.config.with_name(args.config.name + ".tmp")
    tmp.write_text(new, encoding="utf-8")
    try:
        check = load(tmp, CoordinatorSettings)
        ok = {m.id: m.revoked for m in check.members} == {
            m.id: (args.reason if m.id == args.member else m.revoked) for m in settings.members}
        if not ok:
            raise ConfigError("the edited file does not revoke exactly this member")
    except ConfigError as exc:
        tmp.unlink()
        raise CommandError(f"could not edit {args.config} safely ({exc}); nothing written. By hand:\n"
                           f"{instruction}", exits.FAILED) from exc
    if args.dry_run:
        tmp.unlink()
        out["new_config"] = new
    else:
        os.chmod(tmp, args.config.stat().st_mode & 0o777)
        os.replace(tmp, args.config)
        out["changed"] = True
    if args.json:
        emit_json(out)
    elif args.dry_run:
        print(f"would write {args.config} as:\n{new}")
    else:
        print(f"{args.member} revoked in {args.config} ({args.reason}). Restart the coordinator: at start-up it "
              f"logs a signed MemberRevoked entry and from then on refuses everything {args.member} sends.")
    return exits.OK


def _check(args) -> int:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from dedup.node.settings import NodeSettings

    from .common import load_config

    settings = load_config(args, NodeSettings, NODE_ENV)
    if settings.tls is None or settings.coordinator is None:
        raise CommandError(f"{args.config} has no [tls] and [coordinator] settings; nothing to check")
    problems: list[str] = []
    out: dict = {"member_id": settings.member_id}
    try:
        cert = x509.load_pem_x509_certificate(settings.tls.cert.read_bytes())
        ca = x509.load_pem_x509_certificates(settings.tls.ca.read_bytes())
        key = serialization.load_pem_private_key(settings.tls.key.read_bytes(), password=None)
        out["certificate"] = pki.certificate_summary(settings.tls.cert)
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot read the TLS files: {exc}", exits.FAILED) from exc
    if out["certificate"]["common_name"] != settings.member_id:
        problems.append(f"the certificate names {out['certificate']['common_name']!r}, not member "
                        f"{settings.member_id!r}")
    if key.public_key() != cert.public_key():
        problems.append(f"{settings.tls.key} is not the key of {settings.tls.cert}")
    issued = False
    for c in ca:
        try:
            cert.verify_directly_issued_by(c)
            issued = True
        except Exception:  # noqa: BLE001 - any failure means "not issued by this CA"
            continue
    if not issued:
        problems.append(f"the certificate is not issued by the CA in {settings.tls.ca}")
    if out["certificate"]["days_left"] < 0:
        problems.append("the certificate has expired")
    elif out["certificate"]["days_left"] < 30:
        out["warning"] = f"the certificate expires in {out['certificate']['days_left']} days: renew it"
    out["problems"] = problems
    code = exits.FAILED if problems else exits.OK
    if not problems and not args.offline:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        from dedup.node.client import channel

        out["coordinator"] = {"address": settings.coordinator.address}
        with channel(settings) as ch:
            try:
                resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(),
                                                            timeout=settings.coordinator.timeout_seconds)
                status = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
                out["coordinator"]["status"] = status
                if resp.status != health_pb2.HealthCheckResponse.SERVING:
                    problems.append(f"the coordinator answers {status}")
                    code = exits.FAILED
            except grpc.RpcError as exc:
                out["coordinator"]["status"] = exc.code().name
                out["coordinator"]["detail"] = exc.details()
                problems.append(f"coordinator at {settings.coordinator.address}: {exc.code().name}: {exc.details()}")
                code = exits.UNAVAILABLE if exc.code() in (grpc.StatusCode.UNAVAILABLE,
                                                           grpc.StatusCode.DEADLINE_EXCEEDED) else exits.FAILED
    out["ok"] = code == exits.OK
    if args.json:
        emit_json(out)
    else:
        c = out["certificate"]
        print(f"{settings.member_id}: certificate {c['common_name']} from {c['issuer']}, {c['days_left']} days left")
        if "warning" in out:
            print(f"warning: {out['warning']}")
        if "coordinator" in out and code == exits.OK:
            print(f"coordinator {settings.coordinator.address}: {out['coordinator']['status']} over mutual TLS")
        for p in problems:
            print(f"problem: {p}")
    return code
