"""`dedup demo`: the local consortium, end to end, on embedded defaults."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dedup.cli import exits


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="run a three-member consortium on this machine, end to end",
        description="Create a throwaway consortium CA and keys, start a coordinator (SQLite) and three member "
                    "nodes on loopback, give each node a folder of sample photographs (shared ones appear as "
                    "real variants: recompressed, resized, greyscale, cropped), scan, push signed fingerprints, "
                    "match across members, propose masters, answer the proposals with each node's automatic "
                    "decisions (signed votes), write each member's internal audit report with the agreed masters "
                    "(internal duplicates, reclaimable storage and its cost, rights), let every member witness "
                    "and cosign the final log, look up one member's folder from another node and check a proof "
                    "against a quorum of witnesses, export the log and verify it with the audit tool. "
                    "The working folder is kept so every step can be inspected or rerun.",
        epilog=exits.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, help="working folder, replaced if it exists (default: ./demo-work, "
                                                "or $DEDUP_DEMO_DIR)")
    p.set_defaults(func=_demo)


def _demo(args) -> int:
    from dedup.node.report.html import human_bytes, money, plural

    from .run import DemoFailure, default_workdir, run

    workdir = (args.workdir or default_workdir()).resolve()
    try:
        out = run(workdir)
    except DemoFailure as exc:
        print(f"demo FAILED at {exc}", file=sys.stderr)
        print(f"working folder kept for inspection: {workdir}", file=sys.stderr)
        return exits.FAILED
    print()
    print("summary")
    print(f"  members:                 {out.members}")
    print(f"  assets fingerprinted:    {out.assets} ({out.unreadable} unreadable files recorded, not sent)")
    print(f"  cross-member clusters:   {out.clusters} (all {out.expected_groups} shared photographs found)")
    print(f"  proposed masters:        {len(out.proposals)} ({out.agreed} agreed by every holder's signed vote)")
    for cid, master in out.proposals.items():
        print(f"    {cid}: {master}")
    print(f"  log verified: {out.log_entries} entries, root {out.log_root}")
    print(f"  latest checkpoint:       size {out.witnessed_size}, cosigned by {len(out.cosigned_by)} witnesses "
          f"({', '.join(out.cosigned_by)}), quorum {out.quorum}")
    print(f"  proofs handed out:       {out.proofs} (by the lookup), checked alone with "
          f"`dedup audit check-proof --quorum {out.quorum}`:")
    print(f"    {out.proof_check}")
    print()
    low, high = out.price_per_gb_month
    print(f"each member's internal audit (storage priced at HK$ {low:.2f}-{high:.2f} per GB-month):")
    for a in out.audits:
        print(f"  {a.member}: {plural(a.files, 'file')} ({a.unreadable} unreadable), "
              f"{plural(a.clusters, 'internal duplicate cluster')} holding {plural(a.duplicate_files, 'file')}")
        print(f"    {human_bytes(a.reclaimable_bytes)} reclaimable: {money(a.per_year[0], a.currency)} to "
              f"{money(a.per_year[1], a.currency)} a year")
        print(f"    {plural(a.restricted, 'rights-restricted file')}; readable files by rights:")
        print("      " + ", ".join(f"{label} {n}" for label, n in a.rights.items()))
        print(f"    {a.report}")
    print(f"working folder: {out.workdir}")
    print(f"verify the log again with:\n  {out.verify_command}")
    return exits.OK
