"""Fixity export in PREMIS terms, one event per catalogued file.

JSON Lines rather than PREMIS XML: one self-contained event per line can be streamed from
a catalogue of millions of files, appended to, diffed and loaded with any JSON tool, and
a damaged line spoils only itself. The keys are PREMIS 3 semantic-unit names, so mapping
to premis.xsd later is mechanical.

The digest is the one the scanner computed over the file's bytes when it last read the
file (a rescan does not reread an unchanged file), so the event's date is that read.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from ..catalogue import Catalogue


def _iso(unix: int) -> str:
    return datetime.fromtimestamp(unix, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _relationship(asset_id: str, outcome: dict, member_id: str | None) -> dict:
    """PREMIS derivation: this copy has the agreed master as its source, or, when it is the master,
    is the source of every other copy in the cluster. Other members' copies are named by member id
    and their opaque asset id, the only names the consortium shares."""
    master = (outcome["master_member"], outcome["master_asset"])
    own = member_id or next((m for m, a in outcome["copies"] if a == asset_id), None)
    if master == (own, asset_id):
        subtype, related = "is source of", [c for c in outcome["copies"] if tuple(c) != master]
    else:
        subtype, related = "has source", [master]
    return {
        "relationshipType": "derivation",
        "relationshipSubType": subtype,
        "relatedObjectIdentifier": [
            {"relatedObjectIdentifierType": "consortium_asset", "relatedObjectIdentifierValue": f"{m}/{a}"}
            for m, a in related],
        "relatedEventIdentifier": [
            {"relatedEventIdentifierType": "consortium_log_entry",
             "relatedEventIdentifierValue": str(outcome["outcome_log_index"])}],
    }


def events(catalogue: Catalogue, now: datetime | None = None, member_id: str | None = None) -> list[dict]:
    """The events, in path order; ``now`` stamps when they were exported. A file whose master was
    agreed in the consortium carries its derivation relationship."""
    exported = (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    outcomes = catalogue.outcomes()
    rows = catalogue._db.execute(
        "SELECT path, asset_id, size, sha256, error, scanned_unix FROM files ORDER BY path")
    out = []
    for path, asset_id, size, sha256, error, scanned in rows:
        ok = error is None and sha256 is not None
        event: dict = {
            "eventIdentifier": {"eventIdentifierType": "local",
                                "eventIdentifierValue": f"fixity:{asset_id}:{scanned}"},
            "eventType": "fixity check",
            "eventDateTime": _iso(scanned),
            "eventDetailInformation": {"eventDetail": "SHA-256 over the file's bytes, computed by the node "
                                                      f"scanner; exported from the node catalogue {exported}"},
            "eventOutcomeInformation": {"eventOutcome": "pass" if ok else "fail"},
            "linkingObjectIdentifier": [
                {"linkingObjectIdentifierType": "asset_id", "linkingObjectIdentifierValue": asset_id},
                {"linkingObjectIdentifierType": "path", "linkingObjectIdentifierValue": path},
            ],
            "object": {
                "objectIdentifier": [
                    {"objectIdentifierType": "asset_id", "objectIdentifierValue": asset_id},
                    {"objectIdentifierType": "path", "objectIdentifierValue": path},
                ],
                "size": size,
            },
        }
        if asset_id in outcomes:
            event["object"]["relationship"] = [_relationship(asset_id, outcomes[asset_id], member_id)]
        if ok:
            event["object"]["fixity"] = {"messageDigestAlgorithm": "SHA-256", "messageDigest": bytes(sha256).hex()}
        else:
            reason = error or "no digest recorded"
            event["eventOutcomeInformation"]["eventOutcomeDetail"] = {"eventOutcomeDetailNote": reason}
        out.append(event)
    return out


def write_premis(catalogue: Catalogue, path: Path | str, now: datetime | None = None,
                 member_id: str | None = None) -> None:
    """Write one JSON event per line (UTF-8), in path order."""
    with open(path, "w", encoding="utf-8") as out:
        for event in events(catalogue, now, member_id):
            out.write(json.dumps(event, ensure_ascii=False) + "\n")
