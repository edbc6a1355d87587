"""`dedup node ...`: what a member institution runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dedup.cli import exits
from dedup.cli.common import CommandError, add_config, emit_json, load_config

from .catalogue import Catalogue
from .client import NotConfigured
from .duplicates import duplicates_json
from .settings import NodeSettings

ENV = "DEDUP_NODE_CONFIG"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "node", help="a member institution's node: scan, push, local duplicates",
        description="Scan the institution's own storage, keep a local catalogue of fingerprints, and send "
                    "signed fingerprints (never images, paths or names) to the consortium's coordinator.",
        epilog=exits.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    cmds = p.add_subparsers(dest="node_command", metavar="COMMAND", required=True)

    s = cmds.add_parser("scan", help="fingerprint every image under the given folders or s3:// prefixes",
                        description="Walk the folders or object-store prefixes (or the configured roots), read every "
                                    "new or changed file once, and record its digests, fingerprints, evidence and "
                                    "rights in the catalogue. Unchanged files are not read again; an interrupted "
                                    "scan resumes where it stopped. Unreadable files are recorded with the "
                                    "reason and the scan goes on.",
                        epilog=exits.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("folders", nargs="*", metavar="DIR|s3://BUCKET/PREFIX",
                   help="folders or object-store prefixes to scan (default: roots in the config)")
    add_config(s, ENV, "node")
    s.add_argument("--json", action="store_true", help="print the summary as JSON (for scripts and cron)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--workers", type=int, help="processes to decode with (default: config, else one per core)")
    s.set_defaults(func=_scan)

    s = cmds.add_parser("push", help="send new and changed fingerprints to the coordinator, signed",
                        description="Sign the records the coordinator has not yet acknowledged into batches and "
                                    "send them over mutual TLS. Batches left pending by an interrupted push are "
                                    "resent first with the same id, so nothing is stored twice. After a push with no refusal, "
                                    "the log is witnessed as by `dedup node witness` (when log_verifier_key is set "
                                    "and witness_after_push is not false); with --json its result is under "
                                    "\"witness\".",
                        epilog=exits.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config(s, ENV, "node")
    s.add_argument("--json", action="store_true", help="print the summary as JSON")
    s.set_defaults(func=_push)

    s = cmds.add_parser("witness", help="check that the coordinator's log only grows, and cosign its checkpoint",
                        description="Act as one of the log's witnesses. Fetch the coordinator's latest checkpoint, "
                                    "check its signature with the log key this node trusts (log_verifier_key, and "
                                    "any key a LogKeyRotated entry signed by a trusted key announced), and check with "
                                    "a consistency proof that it extends the last checkpoint this node verified. "
                                    "Then remember it in the catalogue and send the coordinator this member's "
                                    "cosignature (C2SP cosignature/v1, cosigner name = member id, with the member's "
                                    "signing key). If the coordinator shows a checkpoint that contradicts the one "
                                    "remembered (same size with another root, a smaller size, or a failing proof), "
                                    "nothing is cosigned or remembered: both signed checkpoints and the proof are "
                                    "written to a JSON file in the evidence/ folder beside the catalogue, and the "
                                    "command exits 4. `push` runs this at its end unless witness_after_push = false.",
                        epilog=exits.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config(s, ENV, "node")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.set_defaults(func=_witness)

    s = cmds.add_parser("withdraw", help="withdraw files from the consortium (deaccessioned, deleted, no longer shared)",
                        description="Send a signed withdrawal of these files' assets: the coordinator keeps a "
                                    "tombstone, stops matching them, and proposes new masters where needed. The files "
                                    "are then forgotten by the catalogue; a later scan that finds them again shares "
                                    "them again.",
                        epilog=exits.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("files", nargs="+", metavar="FILE", help="catalogued files (paths or s3:// locators)")
    s.add_argument("--reason", default="", help="why, for the record (logged)")
    add_config(s, ENV, "node")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.set_defaults(func=_withdraw)

    s = cmds.add_parser("duplicates", help="list this collection's own duplicate clusters",
                        description="Group the catalogue's files that are copies of one photograph (same bytes, "
                                    "same pixels, or perceptually the same), with the kind of copy for each link.")
    add_config(s, ENV, "node")
    s.add_argument("--json", action="store_true", help='print {"clusters": [{"assets": [{"path": ...}], "links": [...]}]}')
    s.set_defaults(func=_duplicates)


    s = cmds.add_parser("report", help="write the internal audit: sizes, duplicates, costs, rights, fixity",
                        description="Write the collection's audit into OUT: report.html (one self-contained file with "
                                    "thumbnails of this node's own images, local only), clusters.csv, report.json, "
                                    "plan.csv (copies that could go, for people to review) and fixity.jsonl "
                                    "(PREMIS-style fixity events). It shows size per source and format, duplicate "
                                    "clusters with the kind of each copy and the suggested keeper under the "
                                    "published policy, reclaimable storage and its cost per month and year at both "
                                    "ends of the price range, the oldest and poorest duplicates, rights-restricted "
                                    "files and clusters mixing rights, and unreadable files. It never deletes or "
                                    "moves a file.",
                        epilog=exits.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write the report into")
    add_config(s, ENV, "node")
    s.add_argument("--price-low", type=float, help="HK$ per GB-month, low end (default: config, else 0.08)")
    s.add_argument("--price-high", type=float, help="HK$ per GB-month, high end (default: config, else 0.25)")
    s.add_argument("--no-thumbnails", action="store_true", help="leave images out of the HTML")
    s.add_argument("--json", action="store_true", help="print what was written as JSON")
    s.set_defaults(func=_report)

    s = cmds.add_parser("import-catalogue", help="import the institution's own catalogue (CSV): rights, accession, title",
                        description="Read a CSV export of the institution's catalogue (a path or accession-number "
                                    "column, and rights, accession number, title) into the node. Its rights "
                                    "statements override what is embedded in the files, now and on every rescan. "
                                    "A bad file is refused whole, naming the line.",
                        epilog=exits.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("csv", type=Path, metavar="CSV", help="the catalogue export")
    add_config(s, ENV, "node")
    s.add_argument("--json", action="store_true", help="print what was imported as JSON")
    s.set_defaults(func=_import_catalogue)

    s = cmds.add_parser("not-duplicates", help="record that two files are not copies of one another",
                        description="Keep two files out of each other's duplicate clusters, across rescans (the "
                                    "decision follows the files' asset ids, not their names).")
    s.add_argument("a", metavar="FILE_A")
    s.add_argument("b", metavar="FILE_B")
    s.add_argument("--note", default="", help="why, for the record")
    add_config(s, ENV, "node")
    s.set_defaults(func=_not_duplicates)


def _report(args) -> int:
    from .report import build_report, write_csv, write_html, write_json, write_plan, write_premis

    settings, cat = _open(args)
    low = args.price_low if args.price_low is not None else settings.price_per_gb_month[0]
    high = args.price_high if args.price_high is not None else settings.price_per_gb_month[1]
    try:
        report = build_report(cat, member_id=settings.member_id, price_low=low, price_high=high)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    write_html(report, out / "report.html", thumbnails=not args.no_thumbnails)
    write_csv(report, out / "clusters.csv")
    write_json(report, out / "report.json")
    write_plan(report, out / "plan.csv")
    write_premis(cat, out / "fixity.jsonl")
    if args.json:
        emit_json({"out": str(out), "files": ["report.html", "clusters.csv", "report.json", "plan.csv", "fixity.jsonl"]})
    else:
        print(f"report written to {out}/report.html (also clusters.csv, report.json, plan.csv, fixity.jsonl)")
        print("nothing was deleted or moved; plan.csv lists the copies that could go, for review")
    return exits.OK


def _withdraw(args) -> int:
    import time
    import uuid

    import grpc

    from dedup.signing import sign_statement
    from dedup.v1 import asset_pb2, intake_pb2, intake_pb2_grpc

    from .client import channel
    from .push import KeyProblem, load_signer

    settings, cat = _open(args)
    paths = [f if f.startswith("s3://") else str(Path(f).resolve()) for f in args.files]
    ids = []
    for f, p in zip(args.files, paths):
        a = cat.asset_id_of(p)
        if a is None:
            raise CommandError(f"{f} is not in the catalogue")
        ids.append(a)
    try:
        signer = load_signer(settings)
        stmt = sign_statement(signer, asset_pb2.AssetsWithdrawn(
            member_id=settings.member_id, withdrawal_id=uuid.uuid4().hex, asset_ids=ids, reason=args.reason,
            created_unix=int(time.time())))
        with channel(settings) as ch:
            resp = intake_pb2_grpc.IntakeServiceStub(ch).WithdrawAssets(
                intake_pb2.WithdrawAssetsRequest(withdrawal=stmt), timeout=settings.coordinator.timeout_seconds)
    except (NotConfigured, KeyProblem) as exc:
        raise CommandError(str(exc)) from exc
    except grpc.RpcError as err:
        code = exits.UNAVAILABLE if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) else exits.FAILED
        raise CommandError(f"withdrawal not accepted: {err.code().name}: {err.details()}", code) from err
    cat.forget(paths)
    if args.json:
        emit_json({"withdrawn": resp.withdrawn, "log_index": resp.log_index})
    else:
        print(f"withdrew {resp.withdrawn} assets (log entry {resp.log_index}); they are no longer in the catalogue")
    return exits.OK


def _import_catalogue(args) -> int:
    from .sidecar import SidecarError, read_sidecar

    _, cat = _open(args)
    try:
        rows = read_sidecar(args.csv)
    except (SidecarError, OSError) as exc:
        raise CommandError(f"{args.csv}: {exc}", exits.FAILED) from exc
    cat.replace_sidecar([(r.key, r.accession, r.title, r.rights) for r in rows])
    changed = cat.apply_sidecar()
    if args.json:
        emit_json({"rows": len(rows), "files_changed": changed})
    else:
        print(f"imported {len(rows)} catalogue rows; rights changed on {changed} catalogued files")
    return exits.OK


def _not_duplicates(args) -> int:
    _, cat = _open(args)
    ids = []
    for f in (args.a, args.b):
        asset = cat.asset_id_of(f if f.startswith("s3://") else str(Path(f).resolve()))
        if asset is None:
            raise CommandError(f"{f} is not in the catalogue: scan it first")
        ids.append(asset)
    cat.mark_not_duplicates(ids[0], ids[1], args.note)
    print(f"recorded: {args.a} and {args.b} are not duplicates")
    return exits.OK


def _open(args) -> tuple[NodeSettings, Catalogue]:
    settings = load_config(args, NodeSettings, ENV)
    return settings, Catalogue(settings.catalogue)


def _scan(args) -> int:
    from .scan import scan

    settings, cat = _open(args)
    from .scan import ScanError

    roots = args.folders or settings.roots
    if not roots:
        raise CommandError("nothing to scan: give folders or set roots in the configuration")
    missing = [r for r in roots if not r.startswith("s3://") and not Path(r).is_dir()]
    if missing:
        raise CommandError(f"not a folder: {', '.join(missing)}")
    workers = args.workers if args.workers is not None else settings.workers
    try:
        summary = scan(cat, roots, workers=workers, progress=False if (args.quiet or args.json) else None,
                       s3_endpoint=settings.s3_endpoint)
    except ScanError as exc:
        raise CommandError(f"scan stopped: {exc}; rerun to resume", exits.FAILED) from exc
    counts = cat.counts()
    if args.json:
        emit_json({"scan": summary.as_dict(), "catalogue": counts})
    else:
        print(f"scanned {summary.seen} files in {summary.seconds:.1f} s: {summary.read} read, "
              f"{summary.unchanged} unchanged, {summary.failed} unreadable, {len(summary.skipped)} skipped")
        for path, reason in summary.errors:
            print(f"  unreadable: {path}: {reason}")
        for path, reason in summary.skipped:
            print(f"  skipped: {path}: {reason}")
        print(f"catalogue: {counts['files']} files, {counts['bytes']} bytes, {counts['unreadable']} unreadable")
    return exits.FAILED if summary.failed else exits.OK


def _push(args) -> int:
    from .push import KeyProblem, push

    settings, cat = _open(args)
    try:
        summary = push(settings, cat)
    except (NotConfigured, KeyProblem) as exc:
        raise CommandError(str(exc)) from exc
    witnessing = (settings.witness_after_push and settings.log_verifier_key and not summary.unreachable
                  and not summary.refused)
    if args.json:
        if not witnessing:  # else printed with the witness result
            emit_json(summary.as_dict())
    else:
        print(f"pushed {summary.batches_sent} batches ({summary.assets_accepted} assets, {summary.resent} resent); "
              f"{summary.new_matches} new cross-member matches")
        for r in summary.refused:
            print(f"  refused batch {r['batch_id']}: {r['code']}: {r['detail']}", file=sys.stderr)
        if summary.unreachable:
            print(f"  coordinator unavailable ({summary.unreachable}); pending batches will be resent", file=sys.stderr)
    if summary.unreachable:
        return exits.UNAVAILABLE
    if summary.refused:
        return exits.FAILED
    if settings.witness_after_push and settings.log_verifier_key:
        return _run_witness(settings, cat, args.json, after_push=summary.as_dict())
    return exits.OK


def _witness(args) -> int:
    settings, cat = _open(args)
    return _run_witness(settings, cat, args.json)


def _run_witness(settings: NodeSettings, cat: Catalogue, as_json: bool, after_push: dict | None = None) -> int:
    """Witness the log; print the result (inside the push summary, after a push) and return the exit code."""
    import grpc

    from .push import KeyProblem
    from .witness import Inconsistent, WitnessError, witness

    def report(data: dict, code: int) -> int:
        if as_json:
            emit_json({**after_push, "witness": data} if after_push is not None else data)
        return code

    try:
        result = witness(settings, cat)
    except (NotConfigured, KeyProblem) as exc:
        raise CommandError(str(exc)) from exc
    except Inconsistent as exc:
        print(f"dedup: the coordinator's log is inconsistent: {exc}", file=sys.stderr)
        return report({"inconsistent": True, "problem": exc.problem, "evidence": str(exc.evidence)},
                      exits.INCONSISTENT)
    except WitnessError as exc:
        print(f"dedup: not witnessed: {exc}", file=sys.stderr)
        return report({"error": str(exc)}, exits.FAILED)
    except grpc.RpcError as err:
        unreachable = err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        print(f"dedup: not witnessed: {err.code().name}: {err.details()}", file=sys.stderr)
        return report({"error": f"{err.code().name}: {err.details()}"}, exits.UNAVAILABLE if unreachable else exits.FAILED)
    if not as_json:
        print(f"witnessed {result.origin} at size {result.size} ({result.proof}); cosignature sent")
        for k in result.learned_keys:
            print(f"  now trusting the log key {k}, announced in the log by the previous key")
    return report(result.as_dict(), exits.OK)


def _duplicates(args) -> int:
    _, cat = _open(args)
    data = duplicates_json(cat)
    if args.json:
        emit_json(data)
    else:
        for n, c in enumerate(data["clusters"], 1):
            print(f"cluster {n}:")
            for a in c["assets"]:
                print(f"  {a['path']}")
            for lk in c["links"]:
                print(f"    {lk['relation']} (distance {lk['distance']}): {Path(lk['b']).name} ~ {Path(lk['a']).name}")
        print(f"{len(data['clusters'])} clusters")
    return exits.OK
