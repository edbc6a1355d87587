"""Machine-readable forms of the report: CSV for spreadsheets, JSON for scripts, and the
reviewable removal plan. None of them is ever acted on by this code."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

from .model import Report

CSV_COLUMNS = ("cluster", "path", "asset_id", "size", "format", "width", "height", "relation_to_keeper", "keeper",
               "rights", "consortium_master", "rights_uri", "description")
MASTERS_COLUMNS = ("path", "asset_id", "cluster_id", "consortium_master", "master_member", "master_asset", "basis",
                   "proposal_id", "outcome_log_index", "pending_proposal")
PLAN_COLUMNS = ("path", "asset_id", "size", "cluster", "keeper_path", "reason")


def _cell(value: object) -> object:
    return "" if value is None else value


def write_csv(report: Report, path: Path | str) -> None:
    """One row per file in a duplicate cluster, keeper first within each cluster."""
    with open(path, "w", newline="", encoding="utf-8") as out:
        w = csv.writer(out)
        w.writerow(CSV_COLUMNS)
        agreed = {m.path: m.statement for m in report.consortium_masters}
        for c in report.clusters:
            for m in c.members:
                f = m.file
                w.writerow([c.number, f.path, f.asset_id, f.size, _cell(f.format), _cell(f.width), _cell(f.height),
                            m.relation_to_keeper, "yes" if m.keeper else "no", f.rights_shown, agreed.get(f.path, ""),
                            f.rights, m.description])


def write_masters(report: Report, path: Path | str) -> None:
    """One row per own file with a master agreed in the consortium."""
    with open(path, "w", newline="", encoding="utf-8") as out:
        w = csv.writer(out)
        w.writerow(MASTERS_COLUMNS)
        for m in report.consortium_masters:
            w.writerow([m.path, m.asset_id, m.cluster_id, m.statement, m.master_member, m.master_asset, m.basis,
                        m.proposal_id, m.outcome_log_index, _cell(m.pending_proposal)])


def as_dict(report: Report) -> dict:
    """The whole report; keys in the dataclasses' declared order, which never varies."""
    return dataclasses.asdict(report)


def write_json(report: Report, path: Path | str) -> None:
    Path(path).write_text(json.dumps(as_dict(report), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_plan(report: Report, path: Path | str) -> None:
    """The copies that could go, for a person to review: a list, never a script, and
    nothing here deletes or moves anything."""
    with open(path, "w", newline="", encoding="utf-8") as out:
        w = csv.writer(out)
        w.writerow(PLAN_COLUMNS)
        for c in report.clusters:
            keeper = next(m.file for m in c.members if m.keeper)
            for m in c.members:
                if m.keeper:
                    continue
                reason = f"{m.description}, against the keeper {keeper.name}; keep {keeper.name}: {c.reason}"
                w.writerow([m.file.path, m.file.asset_id, m.file.size, c.number, keeper.path, reason])
