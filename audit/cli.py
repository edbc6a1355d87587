"""`dedup audit ...`: what an auditor runs, offline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dedup.cli import exits
from dedup.cli.common import CommandError, emit_json
from dedup.note import NoteError, NoteVerifier

from .verify import AuditFailure, verify_export


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit", help="verify an exported log offline",
        description="Check, with nothing but the coordinator's published public key, that an exported log is "
                    "complete, untampered and follows the published rules.",
        epilog=exits.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    cmds = p.add_subparsers(dest="audit_command", metavar="COMMAND", required=True)
    s = cmds.add_parser(
        "verify", help="replay an export: signatures, rules, Merkle root, checkpoints",
        description="Replay every entry of EXPORT: each signature (members are introduced by coordinator-signed "
                    "admission entries), who may sign what, that every master proposal is the published policy's "
                    "choice; rebuild the Merkle tree and check every signed checkpoint against it. Exits 0 only "
                    "if all of it holds; otherwise names the first entry or checkpoint that fails.",
        epilog=exits.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("export", type=Path, metavar="EXPORT", help="folder written by `dedup coordinator export-log`")
    s.add_argument("--key", required=True, metavar="KEY",
                   help="the coordinator's log verifier key (C2SP vkey string), or a file holding it")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.set_defaults(func=_verify)


def read_key(value: str) -> NoteVerifier:
    text = value
    path = Path(value)
    if "+" not in value or path.is_file():
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CommandError(f"cannot read key file {value}: {exc.strerror}") from exc
    try:
        return NoteVerifier.from_string(text)
    except NoteError as exc:
        raise CommandError(f"not a verifier key: {exc}") from exc


def _verify(args) -> int:
    verifier = read_key(args.key)
    if not args.export.is_dir():
        raise CommandError(f"{args.export} is not a folder")
    try:
        report = verify_export(args.export, verifier)
    except AuditFailure as exc:
        if args.json:
            emit_json({"ok": False, "failure": str(exc)})
        else:
            print(f"log NOT verified: {exc}", file=sys.stderr)
        return exits.FAILED
    if args.json:
        emit_json(report.as_dict())
    else:
        print(f"log verified: {report.entries} entries, root {report.root.hex()}")
        print(f"  origin {report.origin}; {len(report.members)} members, {report.batches} batches, "
              f"{report.matches} matches, {report.proposals} master proposals, {report.checkpoints} checkpoints")
    return exits.OK
