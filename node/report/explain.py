"""Words for people: why the policy chose a keeper, and what a relation means."""

from __future__ import annotations

from dedup.policy import Candidate, Decision
from dedup.v1 import asset_pb2

RELATION_WORDS = {
    "identical_bytes": "identical file (same bytes)",
    "identical_pixels": "same pixels, different metadata",
    "reencoded": "re-encoded (other size, format or quality)",
    "tone_variant": "tone or colour variant",
    "greyscale": "greyscale copy",
    "cropped": "cropped",
    "rotated_mirrored": "rotated or mirrored",
    "bordered": "border or matte differs",
    "edited": "locally edited (watermark, caption or overlay)",
    "similar": "visually the same picture",
    "rescanned": "rescanned (skew differs)",
}


def relation_words(name: str, kept: float | None = None) -> str:
    text = RELATION_WORDS.get(name, name.replace("_", " "))
    if name == "cropped" and kept is not None:
        text += f", keeps {kept:.0%} of the larger picture"
    return text


def _dims(e: asset_pb2.Evidence) -> str:
    return f"{e.width}\u00d7{e.height}"


def _quality(e: asset_pb2.Evidence) -> str:
    if e.format_family == asset_pb2.FORMAT_FAMILY_LOSSLESS:
        return "lossless"
    return f"JPEG quality {e.jpeg_quality}" if e.jpeg_quality else "unknown quality"


def reason(decision: Decision, names: dict[str, str]) -> str:
    """One sentence: what separated the keeper from the runner-up (``names``: asset id -> file name)."""
    k: Candidate = decision.master
    if decision.deciding_rule == "only_copy":
        return "it is the only copy"
    r: Candidate = decision.ranking[1]
    ke, re_ = k.evidence, r.evidence
    other = names.get(r.asset_id, r.asset_id)
    rule = decision.deciding_rule
    if rule == "pixel_count":
        return f"it has the most pixels: {_dims(ke)} against {_dims(re_)} for the next best copy ({other})"
    if rule == "lossless":
        return f"it is stored losslessly; the next best copy ({other}) has as many pixels but is lossy"
    if rule == "bit_depth":
        return f"it has more bits per channel: {ke.bit_depth} against {re_.bit_depth} ({other})"
    if rule == "colour":
        return f"it is in colour; the next best copy ({other}) is otherwise as good but greyscale"
    if rule == "jpeg_quality":
        return f"it has the higher quality: {_quality(ke)} against {_quality(re_)} ({other})"
    if rule == "capture_date":
        theirs = re_.capture_date or "unknown"
        return f"it has the earliest known capture date: {ke.capture_date} against {theirs} ({other})"
    if rule == "rights_known":
        return f"its rights statement is known; the next best copy's ({other}) is unknown"
    if rule == "custodial_priority":
        return f"its holder has the higher custodial priority than the next best copy's ({other})"
    return (f"the copies are equal on every published criterion; the tie is broken by asset id "
            f"({k.asset_id} before {r.asset_id})")
