"""`make bench-accuracy`: how well the project finds copies, against phash and PDQ.

One run, one corpus, the same pairs for all three methods. The project's fingerprints are
recomputed every run (its code changes); the baselines' hashes are cached with the corpus.
Writes bench/results/accuracy.json and the accuracy table in bench/README.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from bench import baselines, dataset, evaluate
from bench.common import code_label as _code, code_state, log, machine, now_iso, publish, versions
from bench.variants import CLASSES

TARGET_F1 = 0.99  # pairwise, and over clusters
TARGET_CLASS_RECALL = 0.97
TARGET_LABEL_ACCURACY = 0.90
TARGET_CLUSTER_FALSE_PAIRS_VS_PDQ = 0.1
COMMAND = ".venv/bin/python -m bench.accuracy"


def _read(path: str):
    """Worker: the project's facts for one file, or the reason it could not be read."""
    from dedup.node.imaging import ImageError, read_image

    try:
        return read_image(Path(path)), None
    except ImageError as exc:
        return None, str(exc)


def run_project(corpus: dataset.Corpus, workers: int) -> dict:
    from dedup.clusters import VERIFY_SLACK, cluster
    from dedup.matching import DEFAULT_RULE, compared_hashes, find_links, link, relation_name
    from dedup.node.scan import to_record

    paths = [str(corpus.path(e)) for e in corpus.entries]
    facts: list = [None] * len(paths)
    errors: dict[str, str] = {}
    t0 = time.monotonic()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for i, (f, err) in enumerate(pool.map(_read, paths, chunksize=8)):
            facts[i] = f
            if err is not None:
                errors[corpus.entries[i].file] = err
            if (i + 1) % 1000 == 0:
                log(f"project: read_image {i + 1}/{len(paths)}")
    read_s = time.monotonic() - t0
    log(f"project: read {len(paths)} files in {read_s:.1f}s ({len(errors)} unreadable)")
    # Unreadable files become empty records so indices still line up; they can link to nothing.
    from dedup.v1 import asset_pb2

    assets = []
    for i, f in enumerate(facts):
        if f is None:
            assets.append(asset_pb2.Asset(asset_id=f"x{i}", sha256=i.to_bytes(32, "big"), pixel_digest=i.to_bytes(32, "big")))
        else:
            assets.append(to_record(f"a{i}", f))
    t1 = time.monotonic()
    parsed = [compared_hashes(a) for a in assets]
    found = find_links(assets, parsed=parsed)
    match_s = time.monotonic() - t1
    log(f"project: find_links gave {len(found)} links in {match_s:.1f}s")
    # Clusters as the node forms them (dedup.clusters), what `dedup node duplicates` reports.
    t2 = time.monotonic()
    loose = DEFAULT_RULE.loosened(VERIFY_SLACK)
    groups = cluster(len(assets), found, lambda x, y: link(assets[x], assets[y], loose, ha=parsed[x], hb=parsed[y]) is not None)
    clusters = np.arange(len(assets))
    for g in groups:
        clusters[g] = g[0]
    cluster_s = time.monotonic() - t2
    log(f"project: {len(groups)} clusters in {cluster_s:.1f}s")
    links = np.array([(i, j) for i, j, _ in found], dtype=np.int64).reshape(-1, 2)
    rel = [(i, j, relation_name(lk.relation)) for i, j, lk in found]
    return {"facts": facts, "errors": errors, "links": links, "relations": rel, "clusters": clusters, "parsed": parsed,
            "read_seconds": read_s, "match_seconds": match_s, "cluster_seconds": cluster_s,
            "algorithms": dict(Counter(lk.algorithm for _, _, lk in found))}


def turned_both_ways(truth: evaluate.Truth, parsed: list) -> dict:
    """For every original and copy whose upright dct256 hashes are farther apart than the
    rule's whole-picture distance but one's turned hash is within it of the other's upright one
    (a turned copy): how far the other way round is. Rule 4 asks for it within
    ``whole_turned_back``, so that the candidate index holds upright hashes only."""
    from dataclasses import replace

    from dedup.matching import DEFAULT_RULE as rule, _turned

    anywhere = replace(rule, whole_turned_back=256)  # the rule's own measure, at any distance (257: none)

    def one_way(x, up) -> int:
        return _turned(x.dihedral, up, anywhere)

    gaps, far = Counter(), Counter()
    for master, copy, _ in truth.positives():
        ha, hb = parsed[master], parsed[copy]
        if ha is None or hb is None:
            continue
        a, b = ha.ints, hb.ints
        if (a.dihedral[0] ^ b.dihedral[0]).bit_count() <= rule.whole:
            continue
        ab, ba = one_way(a, b.dihedral[0]), one_way(b, a.dihedral[0])
        if min(ab, ba) <= rule.whole:
            gaps[abs(ab - ba)] += 1
            far[max(ab, ba)] += 1
    return {"pairs": sum(gaps.values()), "gap": {str(k): gaps[k] for k in sorted(gaps)},
            "farther_way_beyond_whole": sum(n for d, n in far.items() if d > rule.whole),
            "farther_way_beyond_turned_back": sum(n for d, n in far.items() if d > rule.whole_turned_back),
            "whole": rule.whole, "whole_turned_back": rule.whole_turned_back}


def colourless_groups(corpus: dataset.Corpus, truth: evaluate.Truth) -> frozenset[int]:
    """Groups whose original has no colour (every pixel's channels within 3 of each other on a
    64 x 64 reduction), for the labels of colour edits (``evaluate.COLOURLESS_ALSO``)."""
    from PIL import Image

    out = set()
    for g, i in truth.master_of.items():
        with Image.open(corpus.path(corpus.entries[i])) as im:
            rgb = np.asarray(im.convert("RGB").resize((64, 64), Image.Resampling.BOX), dtype=np.int16)
        if int((rgb.max(axis=2) - rgb.min(axis=2)).max()) <= 3:
            out.add(g)
    return frozenset(out)


def low_information_report(truth: evaluate.Truth, facts: list) -> dict:
    """How many low-information images the project flags, and which other images it flags."""
    flagged, total = Counter(), Counter()
    wrong: list[int] = []
    for i in range(truth.n):
        is_flagged = facts[i] is not None and facts[i].low_information
        if truth.role[i] == "low_information":
            total[truth.label[i]] += 1
            flagged[truth.label[i]] += is_flagged
        elif is_flagged:
            wrong.append(i)
    return {
        "low_information_images": sum(total.values()),
        "flagged": sum(flagged.values()),
        "by_kind": {k: {"flagged": flagged[k], "of": total[k]} for k in total},
        "other_images_flagged": len(wrong),
        "other_images_flagged_by_class": dict(Counter(truth.label[i] for i in wrong).most_common()),
        "other_images_flagged_examples": [truth.corpus.entries[i].file for i in wrong[:20]],
    }


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def render(report: dict) -> str:
    m = report["methods"]
    names = [k for k in ("project", "phash", "pdq") if k in m]
    title = {"project": "project (find_links; clusters as the node forms them)", "phash": "phash ≤ 10",
             "pdq": "PDQ dihedral ≤ 31"}
    lines = [
        f"Run {report['date']} on {_code(report['code'])} with `{report['command']}` "
        f"({report['duration_seconds']:.0f} s; {report['corpus']['counts']['images']} images, "
        f"{report['corpus']['counts']['originals']} originals, {report['corpus']['counts']['variants']} variants).",
        "",
        "| method | precision | recall | F1 | false pairs | cluster precision | cluster recall | cluster F1 | cluster false pairs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for k in names:
        p, c = m[k]["pairwise"], m[k]["clusters"]
        lines.append(f"| {title[k]} | {p['precision']:.4f} | {p['recall']:.4f} | {p['f1']:.4f} | {p['false_pairs']} | "
                     f"{c['precision']:.4f} | {c['recall']:.4f} | {c['f1']:.4f} | {c['false_pairs']} |")
    for k, why in report.get("unavailable", {}).items():
        lines.append(f"| {k} | unavailable: {why} | | | | | | | |")
    lines += ["", "Recall per class (original → variant, %), and the project's label accuracy "
              "(share of its found links with the expected relation):", "",
              "| class | " + " | ".join(names) + " | project label ok | expected label | project's labels |",
              "|---|" + "---|" * len(names) + "---|---|---|"]
    labels = report.get("project_labels", {})
    for vc in CLASSES:
        if vc.name not in m[names[0]]["per_class_recall"]:
            lines.append(f"| {vc.name} | skipped: {report['corpus']['skipped_classes'].get(vc.name, '')} |")
            continue
        row = [_pct(m[k]["per_class_recall"][vc.name]["recall"]) for k in names]
        lb = labels.get(vc.name, {})
        rels = ", ".join(f"{r} {n}" for r, n in lb.get("relations", {}).items())
        ref = "" if lb.get("reference", "master") == "master" else f" (vs {lb['reference']})"
        lines.append(f"| {vc.name} | " + " | ".join(row) + f" | {_pct(lb.get('accuracy'))}{ref} | "
                     f"{' or '.join(sorted(vc.expected))} | {rels} |")
    kinds = m[names[0]].get("per_kind", {})
    if kinds:
        lines += ["", "Recall per kind of original (original → variant, %), and the false pairs touching "
                  "each kind's images (a pair of two kinds counts for both):", "",
                  "| kind | originals | " + " | ".join(f"{k} recall" for k in names) + " | "
                  + " | ".join(f"{k} false pairs" for k in names) + " |",
                  "|---|---|" + "---|" * (2 * len(names))]
        for kind, v in kinds.items():
            row = [_pct(m[k]["per_kind"][kind]["recall"]) for k in names]
            row += [str(m[k]["per_kind"][kind]["false_pairs_touching"]) for k in names]
            lines.append(f"| {kind} | {v['originals']} | " + " | ".join(row) + " |")
    lines += ["", "Must-not-match sets (false matches among the set's named pairs):", "",
              "| set | pairs | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for s, v in m[names[0]]["must_not_match"].items():
        lines.append(f"| {s} | {v['pairs']} | " + " | ".join(str(m[k]["must_not_match"][s]["false_matches"]) for k in names) + " |")
    lines.append("| low-information images: every false link touching one | — | "
                 + " | ".join(str(m[k]["must_not_match"]["low_information"]["false_links_touching_set"]) for k in names) + " |")
    lines.append("| derivatives (not scored): links to their kept picture | — | "
                 + " | ".join(str(m[k]["informational"]["derivatives"]["links_to_their_kept_picture_or_its_copies"]) for k in names) + " |")
    for s, v in m[names[0]]["informational"].items():
        if s != "derivatives":
            lines.append(f"| {s} (versions of one picture, not scored): linked pairs | {v['pairs']} | "
                         + " | ".join(str(m[k]["informational"][s]["linked"]) for k in names) + " |")
    lo = report.get("project_low_information")
    if lo:
        kinds = ", ".join(f"{k} {v['flagged']}/{v['of']}" for k, v in lo["by_kind"].items())
        lines += ["", f"Project `low_information` flags: {lo['flagged']} of {lo['low_information_images']} low-information "
                  f"images ({kinds}); {lo['other_images_flagged']} other images flagged."]
    tb = report.get("project_turned_both_ways")
    if tb:
        gaps = ", ".join(f"{k} bits: {n}" for k, n in tb["gap"].items())
        lines += ["", f"Turned copies both ways round (rule 4): of {tb['pairs']} originals and copies whose upright "
                  f"hashes are over {tb['whole']} apart but one's turned hash is within {tb['whole']} of the other's "
                  f"upright one, the other way round differs by {gaps}; {tb['farther_way_beyond_whole']} are farther "
                  f"than {tb['whole']} that way, {tb['farther_way_beyond_turned_back']} farther than "
                  f"{tb['whole_turned_back']} (what the rule allows)."]
    lines += ["", "Targets for the project at its defaults:", ""]
    for t in report["targets"]["checks"]:
        lines.append(f"- {'met' if t['met'] else '**not met**'}: {t['what']} — {t['detail']}")
    short = report["targets"]["classes_short"]
    if short:
        lines.append("- classes below the recall target, by how much: "
                     + ", ".join(f"{c['class']} {100 * c['recall']:.1f}% ({100 * c['short_by']:.1f} points short)" for c in short))
    if report["project"].get("unreadable"):
        lines.append(f"- files the project could not read: {len(report['project']['unreadable'])} "
                     f"(e.g. {next(iter(report['project']['unreadable'].values()))})")
    return "\n".join(lines)


def targets(report: dict) -> dict:
    p = report["methods"]["project"]
    checks = []
    f1, cf1 = p["pairwise"]["f1"], p["clusters"]["f1"]
    checks.append({"what": f"pairwise F1 ≥ {TARGET_F1}", "met": f1 >= TARGET_F1, "detail": f"F1 {f1:.4f}"})
    checks.append({"what": f"cluster F1 ≥ {TARGET_F1}", "met": cf1 >= TARGET_F1, "detail": f"cluster F1 {cf1:.4f}"})
    short = []
    for c, v in p["per_class_recall"].items():
        if v["recall"] < TARGET_CLASS_RECALL:
            short.append({"class": c, "recall": v["recall"], "short_by": round(TARGET_CLASS_RECALL - v["recall"], 4)})
    short.sort(key=lambda s: -s["short_by"])
    checks.append({"what": f"every class's recall ≥ {TARGET_CLASS_RECALL}", "met": not short,
                   "detail": f"{len(short)} of {len(p['per_class_recall'])} classes below"})
    labels = report.get("project_labels", {})
    weak = sorted((c, v["accuracy"]) for c, v in labels.items()
                  if v["accuracy"] is not None and v["accuracy"] < TARGET_LABEL_ACCURACY)
    checks.append({"what": f"label accuracy ≥ {TARGET_LABEL_ACCURACY} in every class", "met": not weak,
                   "detail": (f"{len(weak)} of {len(labels)} classes below: "
                              + ", ".join(f"{c} {100 * a:.1f}%" for c, a in weak)) if weak
                   else f"lowest {100 * min(v['accuracy'] for v in labels.values() if v['accuracy'] is not None):.1f}%"})
    if "pdq" in report["methods"]:
        pdq = report["methods"]["pdq"]["clusters"]["false_pairs"]
        fp = p["clusters"]["false_pairs"]
        limit = pdq * TARGET_CLUSTER_FALSE_PAIRS_VS_PDQ
        checks.append({"what": "cluster false pairs ≤ a tenth of PDQ's", "met": fp <= limit,
                       "detail": f"{fp} cluster false pairs vs PDQ {pdq} (limit {limit:.1f})"})
    return {"checks": checks, "classes_short": short}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workers", type=int, default=2, help="processes for decoding (default 2)")
    ap.add_argument("--rebuild-corpus", action="store_true", help="write the corpus again even if cached")
    ap.add_argument("--no-readme", action="store_true", help="do not rewrite the table in bench/README.md")
    args = ap.parse_args(argv)
    started = time.monotonic()
    corpus = dataset.build(workers=args.workers, force=args.rebuild_corpus)
    truth = evaluate.Truth.build(corpus)
    log(f"corpus: {truth.n} images; {len(truth.positives())} positive pairs, {truth.negatives_total()} negative pairs")

    proj = run_project(corpus, args.workers)
    report: dict = {
        "command": COMMAND + ("" if not argv and len(sys.argv) <= 1 else " " + " ".join(argv or sys.argv[1:])),
        "date": now_iso(),
        "code": code_state(entries=("bench.accuracy",)),
        "machine": machine(),
        "versions": versions("dedup-consortium", "pillow", "pillow-heif", "imagehash", "pdqhash", "numpy", "scikit-image",
                             "tifffile", "resvg-py"),
        "methods": {},
        "unavailable": {},
    }
    report["methods"]["project"] = evaluate.score(truth, proj["links"], proj["clusters"]) | {
        "description": "dedup.matching.find_links at its defaults on to_record(read_image(file)); clusters by "
                       "dedup.clusters.cluster, as `dedup node duplicates` forms them",
        "seconds": {"read_image": round(proj["read_seconds"], 1), "find_links": round(proj["match_seconds"], 2),
                    "clusters": round(proj["cluster_seconds"], 2)},
        "link_algorithms": proj["algorithms"],
    }
    report["project_labels"] = evaluate.label_accuracy(truth, proj["relations"], colourless_groups(corpus, truth))
    report["project_low_information"] = low_information_report(truth, proj["facts"])
    report["project_turned_both_ways"] = turned_both_ways(truth, proj["parsed"])
    report["project"] = {"unreadable": proj["errors"]}

    paths = [corpus.path(e) for e in corpus.entries]
    hashes = baselines.compute(paths, workers=args.workers)
    report["baseline_hash_seconds_uncached"] = round(hashes.seconds, 1)
    log("baselines: phash all pairs")
    report["methods"]["phash"] = evaluate.score(truth, baselines.phash_pairs(hashes)) | {
        "description": f"imagehash.phash (64-bit), Hamming distance <= {baselines.PHASH_THRESHOLD}"}
    why = baselines.pdq_available()
    if why:
        report["unavailable"]["pdq"] = why
    else:
        log("baselines: PDQ all pairs (8 dihedral x upright)")
        report["methods"]["pdq"] = evaluate.score(truth, baselines.pdq_pairs(hashes)) | {
            "description": f"pdqhash.compute_dihedral, min over 8 variants of one vs the other's upright <= {baselines.PDQ_THRESHOLD}",
            "low_quality_hashes": int((hashes.pdq_quality < 50).sum())}
    report["baseline_unreadable"] = [corpus.entries[i].file for i in np.flatnonzero(~hashes.ok)]

    counts = Counter(e.role for e in corpus.entries)
    report["corpus"] = {
        "counts": {"images": len(corpus.entries), "originals": counts["master"], "variants": counts["variant"],
                   "must_not_match": counts["must_not_match"], "low_information": counts["low_information"],
                   "derivatives": counts["derivative"], "versions": counts["version"],
                   "positive_pairs": len(truth.positives()), "negative_pairs": truth.negatives_total(),
                   "originals_by_kind": dict(Counter(e.kind for e in corpus.entries if e.role == "master")),
                   "originals_by_package": dict(Counter(o["package"] for o in corpus.originals))},
        "classes": [{"name": c.name, "group": c.group, "expected_relation": sorted(c.expected),
                     "label_reference": c.label_reference} for c in CLASSES],
        "skipped_classes": corpus.skipped_classes,
        "skipped_sources": corpus.skipped_sources,
        "sets": {k: {"description": v["description"], "images": len(v["images"]), "pairs": len(v["pairs"])} for k, v in corpus.sets.items()},
        "generator": corpus.generator,
        "originals": corpus.originals,
        "reserved_sources": corpus.reserved,
        "dropped_candidates": corpus.dropped,
    }
    report["duration_seconds"] = round(time.monotonic() - started, 1)
    report["targets"] = targets(report)
    # Keep the key order readable: headline first, corpus list last.
    order = ["command", "date", "duration_seconds", "code", "machine", "versions", "targets", "methods",
             "unavailable", "project_labels", "project_low_information", "project_turned_both_ways", "project",
             "baseline_hash_seconds_uncached",
             "baseline_unreadable", "corpus"]
    report = {k: report[k] for k in order if k in report}
    publish("accuracy", report, render(report), not args.no_readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
