"""`dedup node ...`: what a member institution runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dedup.cli import exits
from dedup.cli.common import CommandError, add_config, emit_json, load_config, plural
from dedup.config import ConfigError

from .catalogue import Catalogue
from .client import NotConfigured
from .duplicates import duplicates_json, duplicates_text
from .settings import NodeSettings, unconfigured
from .wording import rule_words

ENV = "DEDUP_NODE_CONFIG"

#: Shown in `claim --help` (the protocol allows other kinds; these are the usual ones).
CLAIM_KINDS_HELP = ("camera_original", "accession_record", "earlier_generation", "conservation_master",
                    "provenance_record", "other")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "node", help="a member institution's node: scan, push, local duplicates, master decisions, lookups",
        description="Scan the institution's own storage, keep a local catalogue of fingerprints, and send "
                    "signed fingerprints (never images, paths or names) to the consortium's coordinator.\n\n"
                    "A local audit needs no configuration: with no --config and no $DEDUP_NODE_CONFIG, scan, "
                    "duplicates, report, not-duplicates, import-catalogue and lookup use the catalogue "
                    "dedup-catalogue.sqlite in the current folder, and say so. The commands that sign or talk to "
                    "the coordinator (push, withdraw, witness, decisions, accept, reject, claim, rule) need the "
                    "member's configuration, and say which settings are missing.",
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
                                    "\"witness\". With witness_quorum set, the push then waits up to "
                                    "quorum_wait_seconds for a checkpoint covering it to be cosigned by that many of "
                                    "the listed witnesses, and says whether proofs citing it are final (under "
                                    "\"witness\".\"quorum\"). With auto_decisions.after_push = true, open master proposals are "
                                    "first answered as by `dedup node decisions --auto` (result under "
                                    "\"decisions\").",
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
                                    "command exits 4. `push` runs this at its end unless witness_after_push = false. "
                                    "With witness_quorum set, it also says whether the checkpoint is final: "
                                    "cosigned by that many of the witnesses listed in `witnesses` (SPEC.md 8.2).",
                        epilog=exits.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config(s, ENV, "node")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.set_defaults(func=_witness)

    s = cmds.add_parser("witness-serve", help="serve as a C2SP tlog-witness: logs send checkpoints to cosign",
                        description="Serve the C2SP tlog-witness protocol (https://c2sp.org/tlog-witness): a log this "
                                    "node trusts (log_verifier_key) POSTs its new checkpoint to "
                                    "<url>/add-checkpoint with a consistency proof from the size this node last "
                                    "cosigned, and gets this member's cosignature back. The checks and the record "
                                    "are those of `dedup node witness`, which pulls where this is pushed to; both "
                                    "keep one record per log in the catalogue. Answers: 200 the cosignature line, "
                                    "400 malformed, 403 no signature by a trusted key, 404 an unknown log, 409 the "
                                    "old size is not this node's (the body, text/x.tlog.size, says which) or the "
                                    "same size with another root, 422 a consistency proof that fails, 503 the "
                                    "catalogue is busy (nothing recorded: send again); a "
                                    "contradicting history leaves an evidence file as `witness` does. The first "
                                    "line printed is the URL to give the log's operator (the coordinator's "
                                    "[[witnesses]] url), with this node's cosigner key. Loopback by default: "
                                    "put a TLS reverse proxy in front to serve others. Runs until interrupted.",
                        epilog=exits.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config(s, ENV, "node")
    s.add_argument("--listen", metavar="HOST:PORT", help="address to listen on (default 127.0.0.1:7380; port 0 "
                                                          "picks a free one)")
    s.add_argument("--prefix", default="", metavar="PATH", help="URL path before /add-checkpoint (default none)")
    s.set_defaults(func=_witness_serve)

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

    s = cmds.add_parser("decisions", help="master proposals for clusters this member holds copies in; --auto answers them",
                        description="List the coordinator's master proposals for the cross-member clusters this "
                                    "member holds a copy in, each with every copy's declared evidence side by side "
                                    "(our copy first: dimensions, format family, bit depth, JPEG quality, capture "
                                    "date, rights, whether it is a crop or edit of another copy), the proposed "
                                    "master and the policy rule that decided it, whether it follows the published "
                                    "policy when this node re-runs it, the deadline (a holder still silent then "
                                    "is counted as accepting) and the votes so far. Answer with `dedup node "
                                    "accept`, `reject` or `claim`. Every run also records the agreed outcomes "
                                    "(which member holds the master of each of our copies) in the catalogue, for "
                                    "the audit report and its PREMIS export.\n\n"
                                    "With --auto, every open proposal not yet answered is answered by the local "
                                    "rule in the [auto_decisions] settings: accept when the proposal follows the "
                                    "published policy; but cast nothing and list it as held for a person when our "
                                    "copy would lose master status (we hold the cluster's agreed master, or our "
                                    "copy ranks first under the policy and the proposal names another) or when "
                                    "the proposal does not follow the policy (or reject it, with "
                                    "off_policy = \"reject\"). Its answers are signed once, as one ballot (up to "
                                    "1,000 votes; one log entry); if the coordinator refuses the ballot (a "
                                    "proposal superseded since it was listed) they are sent again one by one, and "
                                    "a ballot the coordinator never acknowledged is sent again by the next run. "
                                    "With auto_decisions.after_push = true, `push` "
                                    "runs this after a push with no refusal.",
                        epilog=exits.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config(s, ENV, "node")
    s.add_argument("--all", action="store_true", help="also list agreed and superseded proposals")
    s.add_argument("--auto", action="store_true", help="answer open proposals by the local rule (see above)")
    s.add_argument("--json", action="store_true", help='print {"proposals": [...], "outcomes": N, "auto": {...}}')
    s.set_defaults(func=_decisions)

    s = cmds.add_parser("accept", help="accept a master proposal (a signed vote)",
                        description="Sign a MasterVote accepting the proposal with this member's Ed25519 key and "
                                    "send it. Only a member holding a copy in the cluster can vote, once per "
                                    "proposal; a vote on a superseded proposal is refused. When every holder has "
                                    "accepted, the proposal is agreed.",
                        epilog=exits.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("proposal", metavar="PROPOSAL_ID", help="as listed by `dedup node decisions`")
    add_config(s, ENV, "node")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.set_defaults(func=_accept)

    s = cmds.add_parser("reject", help="reject a master proposal, with a reason (opens a dispute)",
                        description="Sign a MasterVote rejecting the proposed master and send it. The reason is "
                                    "logged and shown to the other holders; the proposal becomes disputed until "
                                    "an arbiter of the consortium settles it with a signed ruling.",
                        epilog=exits.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("proposal", metavar="PROPOSAL_ID", help="as listed by `dedup node decisions`")
    s.add_argument("--reason", required=True, help="why the proposed master is wrong (logged)")
    add_config(s, ENV, "node")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.set_defaults(func=_reject)

    s = cmds.add_parser("claim", help="claim the master for a copy, with evidence the policy does not see",
                        description="Sign a MasterVote claiming that a copy in the cluster (usually our own) should "
                                    "be the master, with the kind of evidence and the evidence itself (an "
                                    "accession number, a catalogue URL, a note on the camera original). The claim "
                                    "is logged and opens a dispute that an arbiter settles with a signed ruling.",
                        epilog=exits.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("proposal", metavar="PROPOSAL_ID", help="as listed by `dedup node decisions`")
    s.add_argument("--asset", required=True, metavar="ASSET",
                   help="the copy claimed as master: our asset id or catalogued file, or MEMBER/ASSET_ID for "
                        "another member's copy")
    s.add_argument("--kind", required=True, metavar="KIND",
                   help="kind of evidence: " + ", ".join(CLAIM_KINDS_HELP))
    s.add_argument("--evidence", required=True, help="the evidence, or a reference to it (logged)")
    s.add_argument("--reason", default="", help="anything else the arbiter should read (logged)")
    add_config(s, ENV, "node")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.set_defaults(func=_claim)

    s = cmds.add_parser("rule", help="as an arbiter: settle a disputed proposal with a signed ruling",
                        description="For a member admitted as an arbiter (arbiter = true in the coordinator's member "
                                    "list): sign a MasterRuling naming the master of a disputed proposal, with the "
                                    "reasoning, and send it. The ruling and the outcome it decides are logged. An "
                                    "arbiter sees every proposal in `dedup node decisions`, with the votes, reasons "
                                    "and claims.",
                        epilog=exits.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("proposal", metavar="PROPOSAL_ID", help="a disputed proposal")
    s.add_argument("--master", required=True, metavar="MEMBER/ASSET_ID", help="the copy ruled to be the master")
    s.add_argument("--reasoning", required=True, help="why (logged)")
    add_config(s, ENV, "node")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.set_defaults(func=_rule)

    s = cmds.add_parser("duplicates", help="list this collection's own duplicate clusters",
                        description="Group the catalogue's files that are copies of one photograph (same bytes, "
                                    "same pixels, or perceptually the same), with the kind of copy for each link.")
    add_config(s, ENV, "node")
    s.add_argument("--json", action="store_true", help='print {"clusters": [{"assets": [{"path": ...}], "links": [...]}]}')
    s.set_defaults(func=_duplicates)

    s = cmds.add_parser(
        "lookup", help="is this picture the definitive version? ask the consortium, without sending the image",
        description="Fingerprint the files (and every file under the folders) here, exactly as `scan` does, and "
                    "ask the coordinator whether any member holds a copy of each. Only the fingerprint records "
                    "are sent: no image, path, name or asset id, and the coordinator stores none of it (it counts "
                    "lookups per member; the log says who asked how often, never what). Nothing is added to the "
                    "catalogue.\n\n"
                    "For each file the answer gives: whether it matches (by the same rule and verification the "
                    "coordinator uses for members' collections); the cluster's master, held by which member under "
                    "which opaque asset id, with its declared evidence (dimensions, format family, capture date, "
                    "rights); where the choice of master stands (agreed; proposed, open to votes; disputed, "
                    "awaiting an arbiter; or none yet); and what this file is relative to the master, e.g. 'same "
                    "image, lower resolution 1024 vs 6000 px', 'cropped, about 80% kept, colour-corrected', "
                    "'greyscale', 'identical'. An agreed master comes with the inclusion proof of its MasterAgreed "
                    "log entry: --proofs DIR writes each as entry-N.tlog-proof, to cite and to check later with "
                    "`dedup audit check-proof FILE --key LOG_KEY`. With witness_quorum set, a proof whose "
                    "checkpoint is not yet cosigned by that many of the node's witnesses is proved again into the "
                    "largest checkpoint this node has seen cosigned by them, so it passes check-proof --quorum N; "
                    "the summary says how many saved proofs are final.\n\n"
                    "Members of any kind may look up, including readers (members with no collection). Lookups are "
                    "rate-limited per member: past the limit the coordinator answers RESOURCE_EXHAUSTED with when "
                    "to retry, and the files not yet asked about are listed as such.\n\n"
                    "With no [coordinator] and [tls] configured (or with --local), the answer comes from this "
                    "node's own catalogue alone: its own copies of each file and the consortium outcome last "
                    "fetched for them by `dedup node decisions`; the output says so.\n\n"
                    "examples:\n"
                    "  dedup node lookup photo.jpg\n"
                    "  dedup node lookup story-0412/ --csv story-0412.csv --proofs proofs/\n"
                    "  dedup node lookup photo.jpg --json | jq '.results[0].master_status'",
        epilog=exits.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("paths", nargs="+", metavar="FILE_OR_FOLDER", help="image files, or folders to look up every "
                                                                     "file in (walked as `scan` walks)")
    add_config(s, ENV, "node")
    s.add_argument("--json", action="store_true", help='print {"answered_by": ..., "results": [...]} (one per file, '
                                                       "with the proof bundle text of agreed masters)")
    s.add_argument("--csv", type=Path, metavar="FILE", help="also write one row per file to FILE")
    s.add_argument("--proofs", type=Path, metavar="DIR", help="write each agreed master's inclusion proof to DIR")
    s.add_argument("--local", action="store_true", help="answer from the local catalogue only, even with a "
                                                        "coordinator configured")
    s.add_argument("--workers", type=int, help="processes to fingerprint with (default: config, else one per core)")
    s.set_defaults(func=_lookup)


    s = cmds.add_parser("report", help="write the internal audit: sizes, duplicates, costs, rights, fixity",
                        description="Write the collection's audit into OUT: report.html (one self-contained file with "
                                    "thumbnails of this node's own images, local only), clusters.csv, report.json, "
                                    "plan.csv (copies that could go, for people to review), masters.csv (the "
                                    "master agreed in the consortium for each of our copies: 'we hold the master' "
                                    "or 'master held by member X (asset id)', as last fetched by `dedup node "
                                    "decisions`) and fixity.jsonl (PREMIS-style fixity events, with a derivation "
                                    "relationship to the agreed master). It shows size per source and format, duplicate "
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
                                    "Rights are given by name, ID or URI, in any case: 'In Copyright', 'NoC-US', "
                                    "'CC BY 4.0', 'CC0', 'Public Domain Mark'. deploy/CATALOGUE.md describes every "
                                    "column, with an example file. A bad file is refused whole, naming the line "
                                    "and what is accepted.",
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
    from .report import build_report, write_csv, write_html, write_json, write_masters, write_plan, write_premis

    settings, cat = _open(args, existing=True)
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
    write_masters(report, out / "masters.csv")
    write_premis(cat, out / "fixity.jsonl", member_id=settings.member_id)
    if args.json:
        emit_json({"out": str(out), "files": ["report.html", "clusters.csv", "report.json", "plan.csv", "masters.csv",
                                              "fixity.jsonl"]})
    else:
        print(f"report written to {out}/report.html (also clusters.csv, report.json, plan.csv, masters.csv, "
              "fixity.jsonl)")
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

    settings, cat = _open(args, signs=True)
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
            created_unix=int(time.time())), origin=settings.origin())
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
        print(f"withdrew {plural(resp.withdrawn, 'asset')} (log entry {resp.log_index}); "
              f"{'it is' if resp.withdrawn == 1 else 'they are'} no longer in the catalogue")
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
        print(f"imported {plural(len(rows), 'catalogue row')}; rights changed on "
              f"{plural(changed, 'catalogued file')}")
    return exits.OK


def _not_duplicates(args) -> int:
    _, cat = _open(args, existing=True)
    ids = []
    for f in (args.a, args.b):
        asset = cat.asset_id_of(f if f.startswith("s3://") else str(Path(f).resolve()))
        if asset is None:
            raise CommandError(f"{f} is not in the catalogue: scan it first")
        ids.append(asset)
    cat.mark_not_duplicates(ids[0], ids[1], args.note)
    print(f"recorded: {args.a} and {args.b} are not duplicates")
    return exits.OK


#: What the commands that sign or talk to the coordinator need, and what each setting is.
_CONSORTIUM = {
    "member_id": "member_id      this institution's member id in the consortium",
    "signing_key": "signing_key    the member's statement key, which signs what the node sends",
    "tls": "[tls]          ca, cert and key: the member's certificate for mutual TLS",
    "coordinator": "[coordinator]  address: where the consortium's coordinator listens",
}


def _open(args, *, existing=False, signs: bool | None = None) -> tuple[NodeSettings, Catalogue]:
    """The settings and the catalogue. With no configuration file, a local catalogue in the
    current folder: ``existing`` (or ``existing(settings)``) refuses to start one, as a command
    that only reads it would answer from nothing. ``signs`` (True: the command signs and talks
    to the coordinator; False: it talks to it) refuses, before anything is opened, when the
    consortium's settings are missing."""
    if args.config is None:
        try:
            settings = unconfigured()
        except ConfigError as exc:
            raise CommandError(str(exc)) from exc
    else:
        settings = load_config(args, NodeSettings, ENV)
    if signs is not None:
        _require_consortium(args, settings, signs)
    if args.config is None:
        if (existing(settings) if callable(existing) else existing) and not settings.catalogue.exists():
            raise CommandError(f"no catalogue here ({settings.catalogue}): scan a folder first, from this folder "
                               "(`dedup node scan FOLDER`), or give the node's configuration with --config FILE")
        print(f"catalogue: {settings.catalogue} (no configuration given; --config FILE to use one)", file=sys.stderr)
    return settings, Catalogue(settings.catalogue)


def _require_consortium(args, settings: NodeSettings, signs: bool) -> None:
    missing = [k for k in _CONSORTIUM if (signs or k != "signing_key") and getattr(settings, k) is None]
    if not missing:
        return
    does = ("signs what it sends with this member's key and talks to the consortium's coordinator" if signs
            else "talks to the consortium's coordinator")
    given = ("no configuration was given (--config FILE or $DEDUP_NODE_CONFIG)" if args.config is None
             else f"{args.config} does not set them")
    raise CommandError(
        f"`dedup node {args.node_command}` {does}; it needs these settings, and {given}:\n"
        + "".join(f"  {_CONSORTIUM[k]}\n" for k in missing)
        + "A member gets them when the consortium admits it: `dedup pki request MEMBER_ID --dir /etc/dedup` "
          "makes the member's keys and a request for the records service, and `dedup pki install FOLDER --dir "
          "/etc/dedup` installs what the records service sends back, with a node.toml holding these settings "
          "(see deploy/README.md). scan, duplicates, report and a local lookup need none of them.")


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
        if summary.refingerprinted:
            print(f"fingerprints changed in this version: {plural(summary.refingerprinted, 'file was', 'files were')} "
                  "read again (same asset ids; `dedup node push` sends their new records)")
        print(f"scanned {plural(summary.seen, 'file')} in {summary.seconds:.1f} s: {summary.read} read, "
              f"{summary.unchanged} unchanged, {summary.failed} unreadable, {len(summary.skipped)} skipped")
        for path, reason in summary.errors:
            print(f"  unreadable: {path}: {reason}")
        for path, reason in summary.skipped:
            print(f"  skipped: {path}: {reason}")
        print(f"catalogue: {plural(counts['files'], 'file')}, {plural(counts['bytes'], 'byte')}, "
              f"{counts['unreadable']} unreadable")
    return exits.FAILED if summary.failed else exits.OK


def _push(args) -> int:
    from .push import KeyProblem, push

    settings, cat = _open(args, signs=True)
    try:
        summary = push(settings, cat)
    except (NotConfigured, KeyProblem) as exc:
        raise CommandError(str(exc)) from exc
    witnessing = (settings.witness_after_push and settings.log_verifier_key and not summary.unreachable
                  and not summary.refused)
    deciding = settings.auto_decisions.after_push and not summary.unreachable and not summary.refused
    if args.json:
        if not witnessing and not deciding:  # else printed with their results
            emit_json(summary.as_dict())
    else:
        _print_push(summary, settings.coordinator.address)
    if summary.unreachable:
        return exits.UNAVAILABLE
    if summary.refused:
        return exits.FAILED
    after = summary.as_dict()
    code = exits.OK
    if deciding:
        # Before witnessing, so the checkpoint this node cosigns already holds its votes.
        after["decisions"], code = _decisions_after_push(settings, cat, args.json)
    if witnessing:
        witnessed = _run_witness(settings, cat, args.json, after_push=after)
        return witnessed if witnessed != exits.OK else code
    if args.json and deciding:
        emit_json(after)
    return code


def _print_push(summary, address: str) -> None:
    """What a push did, in words: what was sent, and what was not and when it will be."""
    sent = plural(summary.batches_sent, "batch", "batches")
    earlier = summary.resent if not summary.unreachable else 0
    if summary.batches_sent:
        print(f"pushed {sent} ({plural(summary.assets_accepted, 'asset')}"
              + (f"; {earlier} of them left by an earlier push" if earlier else "") + "); "
              + plural(summary.new_matches, "new cross-member match", "new cross-member matches"))
    elif not summary.unreachable and not summary.refused:
        print("nothing new to send: every catalogued file is already with the coordinator")
    if summary.refused:
        print(f"dedup: {plural(len(summary.refused), 'batch', 'batches')} refused by the coordinator:",
              file=sys.stderr)
    for r in summary.refused:
        print(f"  refused batch {r['batch_id']}: {r['code']}: {r['detail']}", file=sys.stderr)
    if summary.unreachable:
        kept = (f"{plural(summary.pending, 'batch', 'batches')} ({plural(summary.pending_assets, 'asset')}) "
                f"{'is' if summary.pending == 1 else 'are'} kept, signed, and will be sent by the next push")
        print(("dedup: nothing sent" if not summary.batches_sent else "dedup: the rest not sent")
              + f": the coordinator at {address} could not be reached ({summary.unreachable}); {kept}",
              file=sys.stderr)


def _decisions_after_push(settings: NodeSettings, cat: Catalogue, as_json: bool) -> tuple[dict, int]:
    """`decisions --auto` after a push: (its result for the JSON summary, exit code)."""
    from .push import KeyProblem

    try:
        data, code = _run_decisions(settings, cat, auto=True, show_all=False)
    except (CommandError, NotConfigured, KeyProblem) as exc:
        print(f"dedup: automatic decisions not made: {exc}", file=sys.stderr)
        return {"error": str(exc)}, getattr(exc, "code", exits.USAGE)
    auto = data["auto"]
    if not as_json:
        print(f"automatic decisions: {len(auto['accepted'])} accepted, {len(auto['rejected'])} rejected, "
              f"{len(auto['held'])} held for a person; agreed masters recorded for {data['outcomes']} of our assets")
        for x in auto["held"]:
            print(f"  held: {x['proposal_id']}: {x['reason']}")
        for x in auto["refused"]:
            print(f"  vote on {x['proposal_id']} refused: {x['refusal']}", file=sys.stderr)
    return {"auto": auto, "outcomes": data["outcomes"]}, code


def _witness(args) -> int:
    settings, cat = _open(args, signs=True)
    return _run_witness(settings, cat, args.json)


def _witness_serve(args) -> int:
    import signal

    from .push import KeyProblem
    from .witness_http import DEFAULT_LISTEN, WitnessServer

    settings, _ = _open(args, signs=True)
    if not settings.log_verifier_key:
        raise CommandError("set log_verifier_key (the log's verifier key, or the file holding it) to serve as its "
                           "witness")
    try:
        server = WitnessServer(args.listen or DEFAULT_LISTEN, settings, args.prefix)
    except KeyProblem as exc:
        raise CommandError(str(exc)) from exc
    except OSError as exc:
        raise CommandError(f"cannot listen on {args.listen or DEFAULT_LISTEN}: {exc.strerror}") from exc
    print(f"serving tlog-witness at {server.url} as {server.signer.verifier.to_string()}", flush=True)

    def stop(*_):
        raise KeyboardInterrupt  # systemd stops a service with SIGTERM: close the socket as for ^C

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return exits.OK


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
    data = result.as_dict()
    if settings.witness_quorum:
        from .finality import await_quorum, quorum_words

        # After a push, wait for the other witnesses as configured; asked alone, look once.
        try:
            finality = await_quorum(settings, cat, wait=None if after_push is not None else 0)
        except Inconsistent as exc:
            print(f"dedup: the coordinator's log is inconsistent: {exc}", file=sys.stderr)
            return report({**data, "inconsistent": True, "problem": exc.problem, "evidence": str(exc.evidence)},
                          exits.INCONSISTENT)
        except grpc.RpcError as err:
            print(f"dedup: witness quorum not checked: {err.code().name}: {err.details()}", file=sys.stderr)
            unreachable = err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
            return report({**data, "quorum": {"error": f"{err.code().name}: {err.details()}"}},
                          exits.UNAVAILABLE if unreachable else exits.FAILED)
        data["quorum"] = finality.as_dict()
        if not as_json:
            print(quorum_words(finality))
    return report(data, exits.OK)


def _finality_words(rows: list[dict]) -> str:
    """' (2 final, 1 not yet cosigned by the witness quorum)', when a quorum is configured."""
    counted = [d["proof_final"] for d in rows if d.get("inclusion_proof") and "proof_final" in d]
    if not counted:
        return ""
    waiting = len(counted) - sum(counted)
    return f" ({sum(counted)} final" + (f", {waiting} not yet cosigned by the witness quorum)" if waiting else ")")


def _lookup(args) -> int:
    from .lookup import (UNREACHABLE, LookupRefused, answers, ask_coordinator, files_of, fingerprint, local_answer,
                         print_table, write_csv, write_proofs)

    settings, cat = _open(args, existing=lambda settings: _answers_locally(args, settings))
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        raise CommandError(f"no such file or folder: {', '.join(missing)}")
    skipped: list[tuple[str, str]] = []
    files = files_of(args.paths, skipped)
    if not files:
        raise CommandError("no files to look up under " + ", ".join(args.paths))
    queried = fingerprint(files, args.workers if args.workers is not None else settings.workers)
    local = _answers_locally(args, settings)
    source = "local catalogue" if local else "coordinator"
    refusal = not_asked = None
    code = exits.OK
    if local:
        answered = local_answer(cat, queried)
    else:
        try:
            answered = ask_coordinator(settings, queried)
        except LookupRefused as exc:
            answered, refusal = exc.answered, f"{exc.code.name}: {exc.details}"
            code = exits.UNAVAILABLE if exc.code in UNREACHABLE else exits.FAILED
            # Short in each row of the table; the reason in full once, below it.
            not_asked = "coordinator unreachable" if code == exits.UNAVAILABLE else f"refused ({exc.code.name})"
    rows = answers(queried, answered, source, not_asked)
    if args.proofs and not local and settings.witness_quorum:
        from .finality import anchor_proofs

        # Each proof into a checkpoint a quorum of this node's witnesses cosigned, where one is known.
        anchor_proofs(settings, cat, rows)
    proofs = write_proofs(rows, args.proofs) if args.proofs else []
    if args.csv:
        write_csv(rows, args.csv)
    unreadable = [q for q in queried if q.record is None]
    if unreadable and code == exits.OK:
        code = exits.FAILED
    if args.json:
        emit_json({"answered_by": source, "local_only": local, "results": rows, "proofs": proofs,
                   "skipped": [{"path": p, "reason": r} for p, r in skipped], "refusal": refusal,
                   "not_asked": len(rows) - len(answered) - len(unreadable)})
        return code
    if local:
        whose = f"{settings.member_id}'s" if settings.member_id else "this node's"
        print("LOCAL ANSWER: " + ("no coordinator is configured" if not args.local else "--local")
              + f"; only {whose} own catalogue was searched, not the consortium")
    print_table(rows, source)
    for p, r in skipped:
        print(f"  skipped: {p}: {r}")
    # A file the coordinator was never asked about is neither matched nor not matched.
    matched = sum(d["matched"] for d in rows)
    unasked = len(rows) - len(answered) - len(unreadable)
    print(f"{plural(len(rows), 'file')}: {matched} matched, {len(answered) - matched} not matched, "
          f"{len(unreadable)} unreadable" + (f", {unasked} not looked up" if unasked else "")
          + (f"; proofs written to {args.proofs}{_finality_words(rows)}" if proofs else "")
          + (f"; rows written to {args.csv}" if args.csv else ""))
    if unasked:
        print(f"dedup: {plural(unasked, 'file')} not looked up: "
              + (f"the coordinator could not be reached ({refusal}); run the same command again later"
                 if code == exits.UNAVAILABLE else f"the coordinator refused ({refusal})"), file=sys.stderr)
    return code


def _answers_locally(args, settings: NodeSettings) -> bool:
    """Whether `lookup` answers from the catalogue alone (asked to, or no coordinator to ask)."""
    return args.local or settings.coordinator is None or settings.tls is None


def _duplicates(args) -> int:
    _, cat = _open(args, existing=True)
    data = duplicates_json(cat)
    if args.json:
        emit_json(data)
    else:
        print("\n".join(duplicates_text(data)))
    return exits.OK


# --- master negotiation ------------------------------------------------------------------------


def _when(unix: int, now: float) -> str:
    from datetime import datetime, timezone

    if not unix:
        return "none"
    at = datetime.fromtimestamp(unix, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    left = unix - now
    if left <= 0:
        return f"{at} (passed)"
    return f"{at} (in {left / 86400:.1f} days)" if left >= 86400 else f"{at} (in {left / 3600:.1f} hours)"


def _evidence_rows(copies: list[dict]) -> list[tuple[str, list[str]]]:
    from dedup.rights import label as rights_label

    def quality(e):
        return "lossless" if e["format_family"] == "lossless" else (str(e["jpeg_quality"]) if e["jpeg_quality"] else "?")

    return [
        ("dimensions", [f"{c['evidence']['width']}\u00d7{c['evidence']['height']}" for c in copies]),
        ("format family", [c["evidence"]["format_family"] for c in copies]),
        ("bit depth", [f"{c['evidence']['bit_depth']} ({'colour' if c['evidence']['channels'] >= 3 else 'grey'})"
                       for c in copies]),
        ("JPEG quality", [quality(c["evidence"]) for c in copies]),
        ("capture date", [c["evidence"]["capture_date"] or "unknown" for c in copies]),
        ("rights", [rights_label(c["evidence"]["rights"]) for c in copies]),
        ("crop or edit", ["yes" if c["derived"] else "no" for c in copies]),
    ]


def _print_proposal(p: dict, now: float) -> None:
    master = p["master"]
    print(f"proposal {p['proposal_id']} [{p['status']}] cluster {p['cluster_id']}"
          + (f", supersedes {p['supersedes']}" if p["supersedes"] else "") + (f" ({p['reason']})" if p["reason"] else ""))
    held = "we hold it" if p["we_hold_master"] else "we do not hold it"
    print(f"  proposed master: {master['member_id']} {master['asset_id']} ({held}), chosen by "
          f"{p['policy_version']} for {rule_words(p['deciding_rule'])}")
    check = p.get("policy_check")
    if check is not None:
        print("  policy re-run here: " + ("follows the policy" if check["follows"] else check["problem"]))
    if p["status"] in ("open", "disputed"):
        print(f"  deadline: {_when(p['deadline_unix'], now)}; silence then counts as accepting")
    if p["agreed_master"]:
        a = p["agreed_master"]
        print(f"  agreed master: {a['member_id']} {a['asset_id']} ({p['basis']}, log entry {p['outcome_log_index']})")
    copies = p["copies"]
    heads = [("OURS " if c["ours"] else "") + f"{c['member_id']} {c['asset_id']}"
             + (" \u2605" if c["proposed_master"] else "") for c in copies]
    rows = _evidence_rows(copies)
    label = max(len(r[0]) for r in rows) + 2
    widths = [max(len(h), *(len(r[1][i]) for r in rows)) + 2 for i, h in enumerate(heads)]
    print(("    " + " " * label + "".join(h.ljust(w) for h, w in zip(heads, widths))).rstrip())
    for name, cells in rows:
        print(("    " + name.ljust(label) + "".join(c.ljust(w) for c, w in zip(cells, widths))).rstrip())
    if not p["own_asset_ids"]:
        print("    (we hold no copy in this cluster: shown because this member is an arbiter)")
    for c in copies:
        if c["ours"] and c["path"]:
            print(f"    our {c['asset_id']}: {c['path']}")
    votes = [(f"{v['member_id']} claims {v['claimed_master']['member_id']}/{v['claimed_master']['asset_id']} "
              f"[{v['claim_kind']}: {v['claim_evidence']}]" if v["claimed_master"] else f"{v['member_id']} {v['choice']}s")
             + (f" ({v['reason']})" if v["reason"] else "") for v in p["votes"]]
    print("  votes: " + ("; ".join(votes) if votes else "none yet")
          + (f"; not yet: {', '.join(p['not_voted'])}" if p["not_voted"] and p["status"] in ("open", "disputed") else ""))


def _negotiation_error(err, what: str) -> CommandError:
    import grpc

    code = exits.UNAVAILABLE if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) \
        else exits.FAILED
    return CommandError(f"{what}: {err.code().name}: {err.details()}", code)


def _run_decisions(settings: NodeSettings, cat: Catalogue, *, auto: bool, show_all: bool) -> tuple[dict, int]:
    """List (and with ``auto`` answer) the proposals, record the outcomes; (JSON data, exit code)."""
    import grpc

    from .negotiation import ALL, PENDING, auto_decide, check_policy, consortium_members, list_proposals, \
        refresh_outcomes, view_dict

    try:
        views = list_proposals(settings, ALL)
        result = None
        if auto:
            result = auto_decide(settings, cat, views)
            if result.accepted or result.rejected:
                views = list_proposals(settings, ALL)  # the votes may have agreed some
        outcomes = refresh_outcomes(cat, views)
        paths = {a: p for p, a in cat._db.execute("SELECT path, asset_id FROM files")}
        members = None

        def priorities():
            nonlocal members
            if members is None:
                members = {m: p for m, (p, _) in consortium_members(settings, cat).items()}
            return members

        shown = [v for v in views if show_all or v.status in PENDING]
        data = {"member_id": settings.member_id, "outcomes": outcomes,
                "proposals": [view_dict(v, settings.member_id, paths, check_policy(v, priorities)) for v in shown]}
    except grpc.RpcError as err:
        raise _negotiation_error(err, "cannot list proposals") from err
    code = exits.OK
    if result is not None:
        data["auto"] = result.as_dict()
        if result.unreachable:
            code = exits.UNAVAILABLE
        elif result.refused:
            code = exits.FAILED
    return data, code


def _decisions(args) -> int:
    import time

    from .push import KeyProblem

    settings, cat = _open(args, signs=args.auto)
    try:
        data, code = _run_decisions(settings, cat, auto=args.auto, show_all=args.all)
    except (NotConfigured, KeyProblem) as exc:
        raise CommandError(str(exc)) from exc
    if args.json:
        emit_json(data)
        return code
    now = time.time()
    for p in data["proposals"]:
        _print_proposal(p, now)
        print()
    pending = sum(p["status"] in ("open", "disputed") for p in data["proposals"])
    print(f"{plural(pending, 'pending proposal')} visible to {settings.member_id}"
          + ("" if args.all else " (--all for agreed and superseded)")
          + f"; agreed masters recorded for {data['outcomes']} of our assets")
    auto = data.get("auto")
    if auto is not None:
        for key, verb in (("accepted", "accepted"), ("rejected", "rejected")):
            for x in auto[key]:
                print(f"  auto: {verb} {x['proposal_id']} (log entry {x['log_index']}): {x['reason']}")
        for x in auto["held"]:
            print(f"  auto: HELD for a person: {x['proposal_id']}: {x['reason']}")
        for x in auto["refused"]:
            print(f"  auto: vote on {x['proposal_id']} refused: {x['refusal']}", file=sys.stderr)
        if auto["unreachable"]:
            print(f"  coordinator unavailable ({auto['unreachable']}); run again later", file=sys.stderr)
    if pending:
        print("answer with: dedup node accept ID | reject ID --reason TEXT | "
              "claim ID --asset OUR_ASSET --kind KIND --evidence TEXT")
    return code


def _vote(args, choice: int, **kw) -> int:
    import grpc

    from dedup.v1 import statements_pb2

    from dedup.v1.negotiation_pb2 import PROPOSAL_STATUS_OPEN as OPEN

    from .negotiation import ALL, VoteRefused, cast_vote, list_proposals, refresh_outcomes, status_name
    from .push import KeyProblem

    settings, cat = _open(args, signs=True)
    try:
        views = list_proposals(settings, ALL)
    except NotConfigured as exc:
        raise CommandError(str(exc)) from exc
    except grpc.RpcError as err:
        raise _negotiation_error(err, "cannot list proposals") from err
    view = next((v for v in views if v.proposal_id == args.proposal), None)
    if view is None:
        raise CommandError(f"proposal {args.proposal} is not visible to {settings.member_id}: there is no such "
                           f"proposal, or {settings.member_id} holds no copy in its cluster (only holders vote)",
                           exits.FAILED)
    if choice == statements_pb2.VOTE_CHOICE_CLAIM:
        kw["claimed_master"] = _claimed(args.asset, settings.member_id, cat, view)
    try:
        r = cast_vote(settings, cat, view.proposal_id, view.cluster_id, choice, **kw)
    except (NotConfigured, KeyProblem) as exc:
        raise CommandError(str(exc)) from exc
    except VoteRefused as exc:
        if exc.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            raise CommandError(f"coordinator unavailable ({exc}); the signed vote is kept and the same command "
                               "sends it again", exits.UNAVAILABLE) from exc
        later = next((v.proposal_id for v in views if v.supersedes == view.proposal_id), None)
        hint = f" (the proposal is {status_name(view.status)}" + (f"; answer {later} instead)" if later else ")")
        if args.json:
            emit_json({"proposal_id": view.proposal_id, "refused": True, "code": exc.code.name,
                       "message": exc.details})
        raise CommandError(f"vote refused by the coordinator: {exc.code.name}: {exc.details}"
                           + (hint if view.status != OPEN else ""), exits.FAILED) from exc
    if r.outcome_log_index:
        try:
            refresh_outcomes(cat, list_proposals(settings, ALL))
        except grpc.RpcError:
            pass  # recorded by the next `decisions`
    if args.json:
        emit_json(r.as_dict())
    else:
        print(f"{r.choice} on {r.proposal_id} recorded in the log at entry {r.log_index}"
              + (" (already stored: this vote was sent before)" if r.already_stored else "")
              + f"; the proposal is now {r.status}"
              + (f" (outcome at log entry {r.outcome_log_index})" if r.outcome_log_index else ""))
    return exits.OK


def _claimed(text: str, member_id: str, cat: Catalogue, view):
    from dedup.v1 import statements_pb2

    if "/" in text and not text.startswith(("/", ".")) and "://" not in text and text.count("/") == 1 \
            and not Path(text).exists():
        member, asset = text.split("/")
    else:
        member = member_id
        asset = cat.asset_id_of(text if text.startswith("s3://") else str(Path(text).resolve())) or text
    if not any((c.ref.member_id, c.ref.asset_id) == (member, asset) for c in view.copies):
        copies = ", ".join(f"{c.ref.member_id}/{c.ref.asset_id}" for c in view.copies)
        raise CommandError(f"{text} is not a copy in cluster {view.cluster_id} (its copies: {copies})")
    return statements_pb2.AssetRef(member_id=member, asset_id=asset)


def _accept(args) -> int:
    from dedup.v1 import statements_pb2

    return _vote(args, statements_pb2.VOTE_CHOICE_ACCEPT)


def _reject(args) -> int:
    from dedup.v1 import statements_pb2

    if not args.reason.strip():
        raise CommandError("a rejection needs a reason (--reason)")
    return _vote(args, statements_pb2.VOTE_CHOICE_REJECT, reason=args.reason)


def _claim(args) -> int:
    from dedup.v1 import statements_pb2
    from dedup.wire_rules import is_claim_kind

    if not is_claim_kind(args.kind):
        raise CommandError(f"--kind {args.kind!r}: a lowercase word such as {', '.join(CLAIM_KINDS_HELP[:2])}")
    if not args.evidence.strip():
        raise CommandError("a claim needs its evidence (--evidence)")
    return _vote(args, statements_pb2.VOTE_CHOICE_CLAIM, reason=args.reason, claim_kind=args.kind,
                 claim_evidence=args.evidence)


def _rule(args) -> int:
    import grpc

    from dedup.v1 import statements_pb2

    from .negotiation import ALL, VoteRefused, list_proposals, refresh_outcomes, send_ruling
    from .push import KeyProblem

    settings, cat = _open(args, signs=True)
    if args.master.count("/") != 1:
        raise CommandError(f"--master {args.master!r}: give MEMBER/ASSET_ID")
    member, asset = args.master.split("/")
    try:
        views = list_proposals(settings, ALL)
        view = next((v for v in views if v.proposal_id == args.proposal), None)
        if view is None:
            raise CommandError(f"proposal {args.proposal} is not visible to {settings.member_id} (is it an arbiter?)",
                               exits.FAILED)
        resp = send_ruling(settings, view.proposal_id, view.cluster_id,
                           statements_pb2.AssetRef(member_id=member, asset_id=asset), args.reasoning)
        if view.own_asset_ids:
            refresh_outcomes(cat, list_proposals(settings, ALL))
    except (NotConfigured, KeyProblem) as exc:
        raise CommandError(str(exc)) from exc
    except VoteRefused as exc:
        unreachable = exc.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        raise CommandError(f"ruling refused by the coordinator: {exc}",
                           exits.UNAVAILABLE if unreachable else exits.FAILED) from exc
    except grpc.RpcError as err:
        raise _negotiation_error(err, "cannot list proposals") from err
    if args.json:
        emit_json({"proposal_id": view.proposal_id, "log_index": resp.log_index,
                   "outcome_log_index": resp.outcome_log_index})
    else:
        print(f"ruling on {view.proposal_id} recorded at log entry {resp.log_index}; master {member}/{asset} agreed "
              f"(outcome at log entry {resp.outcome_log_index})")
    return exits.OK
