"""`dedup audit ...`: what an auditor runs, offline."""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from dedup.cli import exits
from dedup.cli.common import CommandError, emit_json, plural
from dedup.cosignature import CosignatureError, CosignatureVerifier
from dedup.note import NoteError, NoteVerifier
from dedup.proofbundle import EXTENSION, BundleError, verify_bundle

from .verify import AuditFailure, StateError, TrustedCheckpoint, make_bundle, trusted_from, verify_export

_FORMATTER = argparse.RawDescriptionHelpFormatter


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit", help="verify an exported log offline",
        description="Check, with nothing but the coordinator's published public key, that an exported log is "
                    "complete, untampered and follows the published rules; make and check proofs that one entry "
                    "is in the log.",
        epilog=exits.EPILOG, formatter_class=_FORMATTER)
    cmds = p.add_subparsers(dest="audit_command", metavar="COMMAND", required=True)
    s = cmds.add_parser(
        "verify", help="replay an export: signatures, rules, Merkle root, checkpoints, witnesses",
        description="Replay every entry of EXPORT: each signature (members are introduced by coordinator-signed "
                    "admission entries, a new coordinator key by a LogKeyRotated entry signed with the old one; the "
                    "coordinator's matches, proposals, outcomes and lookup counts carry none, as the checkpoints "
                    "over them sign them), who may sign what, that every master proposal is the choice of the policy version it cites "
                    "(1 or 2, with the copies marked derived exactly as the log's matches show), that every vote "
                    "is by a member holding a copy, once, on a proposal still open (alone or in a ballot), every ruling by an arbiter on "
                    "a disputed proposal, and every agreed master follows from the votes, the ruling or the "
                    "deadline; rebuild the "
                    "Merkle tree and check every signed checkpoint against it. With --quorum, the latest "
                    "checkpoint must carry that many valid witness cosignatures; with --state, the log must "
                    "extend the checkpoint trusted last time, which is then replaced by the new latest one. "
                    "Exits 0 only if all of it holds; otherwise names the first entry or checkpoint that fails.",
        epilog=exits.EPILOG, formatter_class=_FORMATTER)
    s.add_argument("export", type=Path, metavar="EXPORT", help="folder written by `dedup coordinator export-log`")
    _key_option(s)
    s.add_argument("--state", type=Path, metavar="FILE",
                   help="JSON file holding the last trusted checkpoint (size, root, signed note): the export must "
                        "be consistent with it and not smaller; on success it is replaced, atomically, by the "
                        "export's latest checkpoint (created if missing); on failure it is left alone")
    _witness_options(s)
    s.add_argument("--witnesses-from-log", action="store_true",
                   help="also accept as witnesses every admitted, not revoked member, by its Ed25519 key with "
                        "cosigner name = member id")
    s.add_argument("--workers", type=int, metavar="N",
                   help="processes checking signatures (default: one per core for large exports, none for small)")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.set_defaults(func=_verify)

    pr = cmds.add_parser(
        "prove", help=f"write the inclusion proof bundle ({EXTENSION}) of one entry from an export",
        description="Write a c2sp.org/tlog-proof@v1 bundle for entry ENTRY of EXPORT: the entry itself (in the "
                    "`extra` line), its index, the Merkle audit path and the signed checkpoint (with its "
                    "cosignatures). Anyone holding the log key can check it alone with `dedup audit check-proof`.",
        epilog=exits.EPILOG, formatter_class=_FORMATTER)
    pr.add_argument("entry", type=int, metavar="ENTRY", help="index of the entry (0-based)")
    pr.add_argument("--export", type=Path, required=True, metavar="DIR",
                    help="folder written by `dedup coordinator export-log`")
    pr.add_argument("--size", type=int, metavar="N",
                    help="prove against the export's checkpoint of N entries (default: the latest)")
    pr.add_argument("--out", type=Path, required=True, metavar="FILE", help=f"bundle to write (e.g. entry{EXTENSION})")
    pr.add_argument("--json", action="store_true", help="print the result as JSON")
    pr.set_defaults(func=_prove)

    c = cmds.add_parser(
        "check-proof", help="verify an inclusion proof bundle alone",
        description="Verify a c2sp.org/tlog-proof@v1 bundle with nothing else: the checkpoint is signed by KEY "
                    "(repeat --key to accept several, e.g. before and after a key rotation), carries at least "
                    "--quorum valid cosignatures by distinct --witness keys, and the entry in the bundle sits at "
                    "its index in that checkpoint's tree.",
        epilog=exits.EPILOG, formatter_class=_FORMATTER)
    c.add_argument("bundle", type=Path, metavar="BUNDLE", help=f"a {EXTENSION} file")
    _key_option(c, repeat=True)
    _witness_options(c)
    c.add_argument("--json", action="store_true", help="print the result as JSON")
    c.set_defaults(func=_check_proof)


def _key_option(p: argparse.ArgumentParser, repeat: bool = False) -> None:
    p.add_argument("--key", required=True, metavar="KEY", action="append" if repeat else "store",
                   help="the coordinator's log verifier key (C2SP vkey string), or a file holding it")


def _witness_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--witness", action="append", default=[], metavar="VKEY",
                   help="a witness's C2SP cosigner verifier key (name+keyid+base64(0x04||key)), or a file holding "
                        "it; repeatable")
    p.add_argument("--quorum", type=int, default=0, metavar="N",
                   help="cosignatures by distinct witnesses the latest checkpoint must carry (default 0)")


def _read_text(value: str, what: str) -> str:
    path = Path(value)
    if "+" not in value or path.is_file():
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CommandError(f"cannot read {what} file {value}: {exc.strerror}") from exc
    return value


def read_key(value: str) -> NoteVerifier:
    try:
        return NoteVerifier.from_string(_read_text(value, "key"))
    except NoteError as exc:
        raise CommandError(f"not a verifier key: {exc}") from exc


def read_witness(value: str) -> CosignatureVerifier:
    try:
        return CosignatureVerifier.from_string(_read_text(value, "witness key"))
    except (CosignatureError, ValueError) as exc:
        raise CommandError(f"not a cosigner verifier key: {exc}") from exc


def _witnesses(args) -> tuple[CosignatureVerifier, ...]:
    if args.quorum < 0:
        raise CommandError("--quorum must not be negative")
    return tuple(read_witness(w) for w in args.witness)


def _fail(args, message: str) -> int:
    if args.json:
        emit_json({"ok": False, "failure": message})
    else:
        print(f"log NOT verified: {message}", file=sys.stderr)
    return exits.FAILED


def _verify(args) -> int:
    verifier = read_key(args.key)
    witnesses = _witnesses(args)
    if args.quorum > len({w.name for w in witnesses}) and not args.witnesses_from_log:
        raise CommandError(f"--quorum {args.quorum} needs at least as many --witness keys"
                           " (or --witnesses-from-log)")
    if not args.export.is_dir():
        raise CommandError(f"{args.export} is not a folder")
    trusted = None
    if args.state is not None:
        try:
            trusted = TrustedCheckpoint.load(args.state)
        except StateError as exc:
            raise CommandError(str(exc)) from exc
    try:
        report = verify_export(args.export, verifier, witnesses=witnesses, witnesses_from_log=args.witnesses_from_log,
                               quorum=args.quorum, trusted=trusted, state_name=str(args.state), workers=args.workers)
    except AuditFailure as exc:
        return _fail(args, str(exc))
    if args.state is not None:
        trusted_from(report).save(args.state)
    if args.json:
        emit_json(report.as_dict())
    else:
        print(f"log verified: {plural(report.entries, 'entry', 'entries')}, root {report.root.hex()}")
        print(f"  origin {report.origin}; {plural(len(report.members), 'member')}, "
              f"{plural(report.batches, 'batch', 'batches')}, {plural(report.matches, 'match', 'matches')}, "
              f"{plural(report.proposals, 'master proposal')}, {plural(report.checkpoints, 'checkpoint')}")
        if report.withdrawals:
            print(f"  {plural(report.withdrawals, 'withdrawal')}")
        if report.votes or report.rulings or report.agreements:
            ballots = f" ({plural(report.ballots, 'ballot')})" if report.ballots else ""
            print(f"  {plural(report.votes, 'vote')}{ballots}, {plural(report.rulings, 'ruling')}, "
                  f"{plural(report.agreements, 'agreed master')}")
        if report.revocations or report.key_replacements:
            print(f"  {plural(report.revocations, 'member key revocation')}, "
                  f"{plural(report.key_replacements, 'member key replacement')}")
        if report.unbound:
            print(f"  {plural(report.unbound, 'entry', 'entries')} signed for no log (by releases before statements "
                  "were bound to their log); none after the first signed for this one")
        if report.lookup_counts:
            print(f"  {plural(report.lookup_counts, 'lookup count')} (who looked up how often; never what)")
        if report.rotations:
            print(f"  {plural(report.rotations, 'coordinator key rotation')}; key in force: {report.coordinator_key}")
        if args.quorum:
            print(f"  latest checkpoint cosigned by {plural(len(report.cosigned_by), 'witness', 'witnesses')} "
                  f"({', '.join(report.cosigned_by)}), quorum {args.quorum}")
        if trusted is not None:
            print(f"  consistent with the trusted checkpoint of size {trusted.size}; {args.state} now trusts size "
                  f"{report.entries}")
        elif args.state is not None:
            print(f"  {args.state} created: trusts size {report.entries}")
    return exits.OK


def _prove(args) -> int:
    if not args.export.is_dir():
        raise CommandError(f"{args.export} is not a folder")
    try:
        bundle = make_bundle(args.export, args.entry, args.size)
    except AuditFailure as exc:
        if args.json:
            emit_json({"ok": False, "failure": str(exc)})
        else:
            print(f"no proof written: {exc}", file=sys.stderr)
        return exits.FAILED
    args.out.write_text(bundle.to_text(), encoding="utf-8")
    if args.json:
        emit_json({"ok": True, "index": bundle.index, "hashes": len(bundle.proof), "out": str(args.out)})
    else:
        print(f"wrote {args.out}: entry {bundle.index}, {plural(len(bundle.proof), 'proof hash', 'proof hashes')}")
    return exits.OK


def _check_proof(args) -> int:
    keys = [read_key(k) for k in args.key]
    witnesses = _witnesses(args)
    if args.quorum > len({w.name for w in witnesses}):
        raise CommandError(f"--quorum {args.quorum} needs at least as many --witness keys")
    try:
        text = args.bundle.read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read {args.bundle}: {exc.strerror}") from exc
    try:
        v = verify_bundle(text, keys, witnesses, args.quorum)
    except BundleError as exc:
        if args.json:
            emit_json({"ok": False, "failure": str(exc)})
        else:
            print(f"proof NOT verified: {exc}", file=sys.stderr)
        return exits.FAILED
    if args.json:
        emit_json({"ok": True, "index": v.index, "tree_size": v.checkpoint.size, "origin": v.checkpoint.origin,
                   "root": v.checkpoint.root_hash.hex(), "entry_sha256": hashlib.sha256(v.entry).hexdigest(),
                   "cosigned_by": [c.name for c in v.cosignatures]})
    else:
        print(f"proof verified: entry {v.index} is in {v.checkpoint.origin} at size {v.checkpoint.size}, "
              f"root {v.checkpoint.root_hash.hex()}")
        if v.cosignatures:
            print(f"  cosigned by {', '.join(c.name for c in v.cosignatures)}")
    return exits.OK
