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
from .common import CommandError, emit_json, plural

COORDINATOR_ENV = "DEDUP_COORDINATOR_CONFIG"
NODE_ENV = "DEDUP_NODE_CONFIG"

DESCRIPTION = """\
Make and manage the consortium's keys and certificates, in the formats the
coordinator and the nodes read. Every party makes its own private keys: the
records service makes the consortium CA, the coordinator's TLS key and the log
key; each member makes its TLS key and its Ed25519 statement key on its own
node, and sends only a signed request with the public halves. No command run
by the records service ever sees a member's private key, so the records
service cannot sign as a member.

On the records service, DIR holds:
  DIR/ca.pem, DIR/ca.key          the consortium CA (ECDSA P-256): every TLS certificate is issued by it
  DIR/log.pub                     the log's verifier key: give it to every member and every auditor
  DIR/coordinator/tls.pem, .key   the coordinator's server certificate (CN = --server-name)
  DIR/coordinator/log.key         the log's Ed25519 signing key (C2SP signer key, named by --origin)
  DIR/members/ID/                 what goes back to the member; no secrets:
      tls.pem                     its client certificate (CN = member id), for the key it requested
      signing.pub                 its statement key, as admitted
      ca.pem, log.pub             copies, so the folder stands alone
      member.toml                 the [[members]] entry for the coordinator's configuration
      node.toml                   a starting node configuration (with --coordinator)

On a member's node, NODE (e.g. /etc/dedup) holds:
  NODE/pending/                   keys `request` made, waiting for their certificate
  NODE/ID.request                 the request to send to the records service (public; signed)
  NODE/tls.key, NODE/signing.key  the keys in use, put there by `install`
  NODE/tls.pem, ca.pem, log.pub   from the folder the records service sends back

Private keys are written mode 0600 in folders of mode 0700. Nothing is ever
overwritten by accident: existing material is refused unless the command's
option says otherwise.

typical use, on the records service (RS) and on a member's node (node):
  RS    dedup pki init /etc/dedup/pki \\
            --origin records.example.hk/dedup-log \\
            --dns dedup.records.example.hk
  node  dedup pki request city-museum --dir /etc/dedup
        (send /etc/dedup/city-museum.request to the records service)
  RS    dedup pki issue city-museum --dir /etc/dedup/pki \\
            --request city-museum.request --name "City Museum" \\
            --coordinator dedup.records.example.hk:7443
        (append members/city-museum/member.toml to coordinator.toml,
        restart the coordinator, send members/city-museum/ back)
  node  dedup pki install city-museum/ --dir /etc/dedup
        dedup pki check --config /etc/dedup/node.toml
  RS    dedup pki revoke city-museum --config coordinator.toml \\
            --reason "key lost"
A new certificate: `request --renew`, then `issue` and `install` again. A new
statement key: `request --rekey`, `issue --rekey` (the log records the
replacement), `install`.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pki", help="the consortium CA, TLS certificates and Ed25519 keys: init, request, issue, "
                                   "install, revoke, check",
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

    s = cmds.add_parser("request", help="on a member's node: make its own keys and the request to send",
                        description="Make, on the member's own node, a TLS key (ECDSA P-256) and an Ed25519 "
                                    "statement key in NODE/pending/, and write NODE/MEMBER.request: a signed note "
                                    "with the statement key's public half and a certificate signing request for "
                                    "the TLS key. Send the request to the records service (it holds no secret); "
                                    "the private keys never leave this machine. `dedup pki install` puts the keys "
                                    "in use once the certificate comes back. Refused if NODE already has keys "
                                    "in use, unless --renew or --rekey.",
                        epilog=exits.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("member", metavar="MEMBER", help="member id: 1-63 of a-z 0-9 -, starting with a letter or digit")
    s.add_argument("--dir", type=Path, required=True, metavar="NODE",
                   help="the node's folder for its keys (e.g. /etc/dedup); created mode 0700")
    change = s.add_mutually_exclusive_group()
    change.add_argument("--renew", action="store_true",
                        help="a new TLS key and certificate; keep the statement key in use (the request is "
                             "signed with it)")
    change.add_argument("--rekey", action="store_true",
                        help="a new TLS key and a new statement key, replacing the one in use (for a key made "
                             "by the records service, or one that may be known to others); the coordinator logs "
                             "the replacement")
    s.add_argument("--json", action="store_true", help="print what was written as JSON")
    s.set_defaults(func=_request)

    s = cmds.add_parser("issue", help="certify a member's request: its TLS certificate and admission entry",
                        description="Check a member's request (`dedup pki request`): signed by the statement "
                                    "key it names, that key strong and named by the member id, the certificate "
                                    "signing request valid, for the member id, with an acceptable key. Then write "
                                    "DIR/members/MEMBER/: the client certificate for the requested key, the "
                                    "statement key's public half, copies of ca.pem and log.pub, and member.toml, "
                                    "the entry for the coordinator's [[members]] (with --coordinator also a "
                                    "starting node.toml). Nothing written is secret: send the folder back to the "
                                    "member. A request with the statement key already recorded in member.toml "
                                    "renews the certificate; one with another key needs --rekey. Private keys "
                                    "left in the folder by earlier versions (which made members' keys here) are "
                                    "deleted.",
                        epilog=exits.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("member", metavar="MEMBER", help="member id: 1-63 of a-z 0-9 -, starting with a letter or digit")
    s.add_argument("--dir", type=Path, required=True, help="the folder `dedup pki init` wrote")
    s.add_argument("--request", type=Path, required=True, metavar="FILE",
                   help="the member's request file, MEMBER.request")
    s.add_argument("--rekey", action="store_true",
                   help="admit a new statement key for a member already issued: member.toml gets the new key "
                        "and the old one in previous_keys, and the coordinator logs MemberKeyReplaced when it "
                        "next starts with that entry")
    s.add_argument("--name", help="the institution's display name, for member.toml (default: the member id)")
    s.add_argument("--priority", type=int, default=100,
                   help="custodial_priority for member.toml: master policy tie-break, lower first (default 100)")
    s.add_argument("--reader", action="store_true",
                   help="a reader member: it looks up provenance (`dedup node lookup`) and holds no collection, "
                        "sends no batches and casts no votes (reader = true in member.toml)")
    s.add_argument("--auditor", action="store_true",
                   help="an auditor: it reads every log entry in full (members read the entries about them) and, "
                        "like a reader, holds no collection and casts no votes (auditor = true in member.toml)")
    s.add_argument("--coordinator", metavar="HOST:PORT", help="also write node.toml dialling this address")
    s.add_argument("--days", type=int, default=825, help="certificate validity in days (default 825)")
    s.add_argument("--json", action="store_true", help="print what was written as JSON")
    s.set_defaults(func=_issue)

    s = cmds.add_parser("install", help="on a member's node: put the issued certificate and the pending keys in use",
                        description="Check the folder the records service sent back (`dedup pki issue`): the "
                                    "certificate is issued by its ca.pem, names this member and is for the TLS key "
                                    "in NODE/pending/, and the admitted statement key is the pending one. Then move "
                                    "the pending keys into NODE (tls.key, signing.key, signing.pub; the keys they "
                                    "replace are deleted), copy tls.pem, ca.pem and log.pub, and write node.toml "
                                    "if NODE has none. After a --rekey, install once the records service has "
                                    "restarted the coordinator with the new entry: until then it refuses the new "
                                    "key, and from then on the old one.",
                        epilog=exits.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("issued", type=Path, metavar="FOLDER", help="the members/MEMBER folder `dedup pki issue` wrote")
    s.add_argument("--dir", type=Path, required=True, metavar="NODE", help="the folder `dedup pki request` wrote in")
    s.add_argument("--json", action="store_true", help="print what was done as JSON")
    s.set_defaults(func=_install)

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
                                    "days it has left; that the statement key (signing_key) is this member's and "
                                    "matches the signing.pub beside it; then connect to the coordinator over mutual TLS and ask gRPC "
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


def _member_id(mid: str) -> str:
    if not MEMBER_ID.match(mid):
        raise CommandError(f"{mid!r} is not a member id: 1-63 of a-z 0-9 -, starting with a letter or digit")
    return mid


def _request(args) -> int:
    mid = _member_id(args.member)
    node = args.dir.resolve()
    in_use = [node / f for f in (pki.TLS_KEY, pki.SIGNING_KEY) if (node / f).exists()]
    if in_use and not (args.renew or args.rekey):
        raise CommandError(f"{node} already has keys in use ({', '.join(str(p) for p in in_use)}); pass --renew "
                           f"for a new certificate or --rekey for a new statement key as well")
    if (args.renew or args.rekey) and not (node / pki.SIGNING_KEY).exists():
        raise CommandError(f"--{'renew' if args.renew else 'rekey'}: {node / pki.SIGNING_KEY} does not exist; "
                           f"make a first request without it")
    if args.renew:
        try:
            signer = pki.read_signer(node / pki.SIGNING_KEY)
        except pki.PkiError as exc:
            raise CommandError(str(exc)) from exc
        if signer.name != mid:
            raise CommandError(f"{node / pki.SIGNING_KEY} is {signer.name!r}'s key, not {mid!r}'s")
    pki.private_dir(node)
    pending = pki.private_dir(node / pki.PENDING)
    for old in pending.iterdir():  # an earlier request that never came back is superseded
        old.unlink()
    tls_key = pki.new_tls_key()
    pki.write_key(pending / pki.TLS_KEY, tls_key)
    written = [pending / pki.TLS_KEY]
    if not args.renew:
        signer = pki.write_member_key(pending, mid)
        written += [pending / pki.SIGNING_KEY, pending / pki.SIGNING_PUB]
    request = node / f"{mid}.request"
    request.write_text(pki.make_request(mid, tls_key, signer), encoding="utf-8")
    written.append(request)
    kind = "renew" if args.renew else "rekey" if args.rekey else "new"
    out = {"member_id": mid, "dir": str(node), "request": str(request), "kind": kind,
           "statement_key": signer.verifier().to_string(), "files": [str(p) for p in written]}
    if args.json:
        emit_json(out)
    else:
        print(f"{mid}: keys made in {pending} (they stay on this machine); request written to {request}")
        print(f"statement key: {out['statement_key']}")
        issue = "dedup pki issue " + mid + " --request " + request.name + (" --rekey" if args.rekey else "")
        print(f"send {request.name} to the records service ({issue}); when its folder comes back: "
              f"dedup pki install FOLDER --dir {node}")
    return exits.OK


#: Files earlier versions of `issue` wrote into DIR/members/ID/ that held a member's private keys.
_LEGACY_PRIVATE = (pki.TLS_KEY, pki.SIGNING_KEY)


def _issue(args) -> int:
    import tomllib

    from dedup.note import NoteVerifier

    mid = _member_id(args.member)
    try:
        ca = pki.load_ca(args.dir)
        request = pki.read_request(args.request.read_bytes())
    except OSError as exc:
        raise CommandError(f"cannot read the request: {exc}") from exc
    except pki.PkiError as exc:
        raise CommandError(str(exc)) from exc
    if request.member_id != mid:
        raise CommandError(f"the request is {request.member_id!r}'s, not {mid!r}'s")
    new_key = request.statement_key
    mdir = args.dir / "members" / mid
    recorded = mdir / pki.MEMBER_TOML
    previous: list[str] = []
    entry: dict | None = None
    if recorded.exists():
        try:
            entry = tomllib.loads(recorded.read_text(encoding="utf-8"))["members"][0]
            current = NoteVerifier.from_string(entry["public_key"])
        except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
            raise CommandError(f"cannot read {mid}'s entry in {recorded}: {exc}") from exc
        previous = list(entry.get("previous_keys", []))
        if current.public_bytes() == new_key.public_bytes():
            if args.rekey:
                raise CommandError(f"--rekey: the request's statement key is the one {mid} already has; make the "
                                   f"request with `dedup pki request --rekey`")
        elif not args.rekey:
            raise CommandError(f"the request's statement key differs from the one recorded for {mid} in "
                               f"{recorded}; pass --rekey to replace it (the log will record the replacement)")
        else:
            if new_key.public_bytes() in {NoteVerifier.from_string(k).public_bytes() for k in previous}:
                raise CommandError(f"--rekey: {mid} has used the request's statement key before; a replaced key "
                                   f"is never taken back")
            previous.append(current.to_string())
    elif args.rekey:
        raise CommandError(f"--rekey: {recorded} does not exist; copy {mid}'s [[members]] entry from the "
                           f"coordinator's configuration there (as `dedup pki issue` writes it), then run again")
    renewal = entry is not None and not args.rekey
    pki.private_dir(args.dir / "members")
    pki.private_dir(mdir)
    removed = [str(mdir / f) for f in _LEGACY_PRIVATE if (mdir / f).exists()]
    for f in removed:
        Path(f).unlink()
    pki.write_cert(mdir / pki.TLS_CERT, pki.issue_member(ca, request, days=args.days))
    (mdir / pki.SIGNING_PUB).write_text(new_key.to_string() + "\n")
    for name in (pki.CA_CERT, pki.LOG_PUB):
        if (args.dir / name).exists():
            (mdir / name).write_bytes((args.dir / name).read_bytes())
    if entry is None:
        entry = {"id": mid, "name": args.name or mid, "custodial_priority": args.priority}
        if args.reader:
            entry["reader"] = True
        if args.auditor:
            entry["auditor"] = True
    elif args.name:
        entry["name"] = args.name
    entry["public_key"] = new_key.to_string()
    if previous:
        entry["previous_keys"] = previous
    entry = {k: entry[k] for k in ("id", "name", "public_key", "previous_keys", "custodial_priority", "reader",
                                   "auditor", "arbiter", "revoked") if k in entry}
    (mdir / pki.MEMBER_TOML).write_text("# The member's entry in the coordinator's configuration.\n"
                                        + tomli_w.dumps({"members": [entry]}))
    written = [pki.TLS_CERT, pki.SIGNING_PUB, pki.CA_CERT, pki.LOG_PUB, pki.MEMBER_TOML]
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
           "public_key": entry["public_key"], "renewed": renewal, "rekeyed": args.rekey,
           "removed_private_keys": removed,
           "certificate": pki.certificate_summary(mdir / pki.TLS_CERT), "member_entry": entry}
    if args.json:
        emit_json(out)
    else:
        print(f"{mid}: certificate for the requested key written to {mdir}")
        for f in removed:
            print(f"deleted {f}: a private key of {mid}'s that an earlier version made here")
        print(f"the entry in the coordinator's configuration must read (also in {mdir / pki.MEMBER_TOML}):\n")
        print(tomli_w.dumps({"members": [entry]}))
        if args.rekey:
            print(f"replace {mid}'s [[members]] entry with it and restart the coordinator: it logs the key "
                  f"replacement, then refuses the old key")
        print(f"send {mdir} back to {mid} (it holds no secret) for `dedup pki install`")
    return exits.OK


def _install(args) -> int:
    import shutil
    import tomllib

    from cryptography import x509

    from dedup.note import NoteError, NoteVerifier

    node = args.dir.resolve()
    pending = node / pki.PENDING
    issued = args.issued
    try:
        cert = x509.load_pem_x509_certificate((issued / pki.TLS_CERT).read_bytes())
        cas = x509.load_pem_x509_certificates((issued / pki.CA_CERT).read_bytes())
        entry = tomllib.loads((issued / pki.MEMBER_TOML).read_text(encoding="utf-8"))["members"][0]
        admitted = NoteVerifier.from_string(entry["public_key"])
        mid = _member_id(entry["id"])
    except (OSError, ValueError, KeyError, IndexError, TypeError, NoteError) as exc:
        raise CommandError(f"{issued} is not a folder `dedup pki issue` wrote: {exc}") from exc
    if not (pending / pki.TLS_KEY).exists():
        raise CommandError(f"no pending request in {node}: run `dedup pki request` there first")
    try:
        tls_key = pki.read_tls_key(pending / pki.TLS_KEY)
        new_signer = (pki.read_signer(pending / pki.SIGNING_KEY) if (pending / pki.SIGNING_KEY).exists()
                      else None)
        signer = new_signer or pki.read_signer(node / pki.SIGNING_KEY)
    except pki.PkiError as exc:
        raise CommandError(str(exc)) from exc
    problems = []
    if not pki.certificate_matches(cert, tls_key):
        problems.append(f"the certificate is not for the pending TLS key in {pending}")
    if not any(_issued_by(cert, ca) for ca in cas):
        problems.append(f"the certificate is not issued by the CA in {issued / pki.CA_CERT}")
    if pki.certificate_summary(issued / pki.TLS_CERT)["common_name"] != mid:
        problems.append(f"the certificate does not name {mid!r}")
    if signer.name != mid:
        problems.append(f"the statement key here is {signer.name!r}'s, not {mid!r}'s")
    if signer.verifier().public_bytes() != admitted.public_bytes():
        problems.append(f"the admitted statement key {admitted.to_string()} is not the one "
                        f"{'pending' if new_signer else 'in use'} here ({signer.verifier().to_string()})")
    if problems:
        raise CommandError("nothing installed: " + "; ".join(problems), exits.FAILED)
    # Keys first, each by an atomic rename on this file system; the certificate after its key.
    moved = []
    for name in (pki.TLS_KEY, pki.SIGNING_KEY, pki.SIGNING_PUB):
        if (pending / name).exists():
            os.replace(pending / name, node / name)
            moved.append(str(node / name))
    copied = []
    for name in (pki.TLS_CERT, pki.CA_CERT, pki.LOG_PUB):
        if (issued / name).exists():
            tmp = node / (name + ".tmp")
            shutil.copyfile(issued / name, tmp)
            os.replace(tmp, node / name)
            copied.append(str(node / name))
    wrote_config = False
    if (issued / "node.toml").exists() and not (node / "node.toml").exists():
        shutil.copyfile(issued / "node.toml", node / "node.toml")
        wrote_config = True
    shutil.rmtree(pending)
    request = node / f"{mid}.request"
    request.unlink(missing_ok=True)
    out = {"member_id": mid, "dir": str(node), "installed_keys": moved, "copied": copied,
           "node_toml": str(node / "node.toml") if wrote_config else None,
           "statement_key": signer.verifier().to_string(),
           "certificate": pki.certificate_summary(node / pki.TLS_CERT)}
    if args.json:
        emit_json(out)
    else:
        c = out["certificate"]
        print(f"{mid}: certificate {c['common_name']} from {c['issuer']} ({plural(c['days_left'], 'day')}) and "
              f"{'new keys' if new_signer else 'a new TLS key'} in use in {node}")
        if wrote_config:
            print(f"wrote {node / 'node.toml'}: set its roots, then `dedup pki check --config {node / 'node.toml'}`")
        else:
            print("restart the node's services to use them; check with `dedup pki check --config NODE.toml`")
    return exits.OK


def _issued_by(cert, ca) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not issued by this CA"
        return False


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


def _signing_key_problems(settings) -> list[str]:
    """What is wrong with the node's statement key file, offline: it must be readable, be this
    member's (named by its id) and, where the verifier key is kept beside it, match it."""
    try:
        signer = pki.read_signer(settings.signing_key)
    except pki.PkiError as exc:
        return [str(exc)]
    if signer.name != settings.member_id:
        return [f"{settings.signing_key} is {signer.name!r}'s statement key, not member {settings.member_id!r}'s"]
    pub = settings.signing_key.with_name(pki.SIGNING_PUB)
    try:
        kept = pub.read_text(encoding="utf-8").strip()
    except OSError:
        return []
    if kept != signer.verifier().to_string():
        return [f"{settings.signing_key} is not the key of {pub} ({kept}): the statement key the records "
                "service admitted is the one in the .pub file; install the matching pair"]
    return []


def _check(args) -> int:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from dedup.node.settings import NodeSettings

    from .common import load_config

    settings = load_config(args, NodeSettings, NODE_ENV)
    if settings.tls is None or settings.coordinator is None or settings.member_id is None \
            or settings.signing_key is None:
        raise CommandError(f"{args.config} lacks member_id, signing_key, [tls] or [coordinator]: a node with "
                           "them all (as `dedup pki install` writes node.toml) can be checked; a node for local "
                           "audits alone has nothing to check")
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
    if not any(_issued_by(cert, c) for c in ca):
        problems.append(f"the certificate is not issued by the CA in {settings.tls.ca}")
    problems += _signing_key_problems(settings)
    if out["certificate"]["days_left"] < 0:
        problems.append("the certificate has expired")
    elif out["certificate"]["days_left"] < 30:
        out["warning"] = f"the certificate expires in {plural(out['certificate']['days_left'], 'day')}: renew it"
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
        print(f"{settings.member_id}: certificate {c['common_name']} from {c['issuer']}, {plural(c['days_left'], 'day')} left")
        if "warning" in out:
            print(f"warning: {out['warning']}")
        if "coordinator" in out and code == exits.OK:
            print(f"coordinator {settings.coordinator.address}: {out['coordinator']['status']} over mutual TLS")
        for p in problems:
            print(f"problem: {p}")
    return code
