"""Plain words for people: what kind of copy one file is of another, and which copy to keep.

The node's terminal output (`duplicates`, a local `lookup`) and the HTML report say things in
these words only. The machine names (relation enum names, distances, rule and asset ids) stay
in `--json` and in the report's CSV and JSON, where scripts read them.

A relation comes from the matching rule; the words add what the declared evidence shows beside
it, because the rule names one kind of copy and a copy is often several at once: a re-encode
that is also smaller, a crop that is also greyscale.
"""

from __future__ import annotations

from dedup.fingerprint.dct import DIHEDRAL_ORDER
from dedup.matching import hashes, relation_name, tone_change
from dedup.policy import Decision, frame_share
from dedup.provenance import encoding, is_colour, long_side
from dedup.v1 import asset_pb2
from dedup.v1 import statements_pb2 as R

#: Every relation, as a short label when nothing else is known (the evidence usually adds more).
LABELS = {
    R.RELATION_UNSPECIFIED: "a copy of the same photograph",
    R.RELATION_IDENTICAL_BYTES: "same file",
    R.RELATION_IDENTICAL_PIXELS: "same pixels, other metadata",
    R.RELATION_REENCODED: "recompressed",
    R.RELATION_TONE_VARIANT: "colour-corrected",
    R.RELATION_GREYSCALE: "greyscale copy",
    R.RELATION_CROPPED: "cropped",
    R.RELATION_ROTATED_MIRRORED: "turned or mirrored",
    R.RELATION_BORDERED: "in a mat/border",
    R.RELATION_EDITED: "locally edited (watermark, caption or overlay)",
    R.RELATION_SIMILAR: "looks the same",
    R.RELATION_RESCANNED: "rescanned",
}

#: What each variant of the dihedral hashes means for a person (``DIHEDRAL_ORDER``).
TURNS = {
    "rot90": "turned a quarter", "rot270": "turned a quarter", "rot180": "turned upside down",
    "flip_lr": "mirrored", "flip_ud": "mirrored top to bottom",
    "transpose": "turned a quarter and mirrored", "transverse": "turned a quarter and mirrored",
}

#: How an agreed master was agreed (``master_outcomes.basis``).
BASIS_WORDS = {"unanimous": "every holder accepted", "deadline": "no objection by the deadline",
               "ruling": "an arbiter's ruling"}


def _quality(e: asset_pb2.Evidence) -> int:
    # As the master policy ranks them: lossless above any JPEG quality.
    return 101 if e.format_family == asset_pb2.FORMAT_FAMILY_LOSSLESS else e.jpeg_quality


def facts(e: asset_pb2.Evidence) -> str:
    """'600×400, lossless, colour'."""
    parts = [f"{e.width}\u00d7{e.height}" if e.width and e.height else "size unknown", encoding(e)]
    if e.bit_depth > 8:
        parts.append(f"{e.bit_depth}-bit")
    if e.channels:
        parts.append("colour" if is_colour(e) else "greyscale")
    return ", ".join(parts)


def _percent(kept: float) -> str:
    return f"{round(kept * 100)}%"


def _degrees(centidegrees: int) -> str:
    return f"{abs(centidegrees) / 100:.1f}".rstrip("0").rstrip(".") + "\u00b0"


def _pixels(this: asset_pb2.Evidence, ref: asset_pb2.Evidence) -> str:
    """'200 px of 600' for a smaller copy, '1200 px against 600' for a larger one."""
    q, m = long_side(this), long_side(ref)
    return f"{q} px of {m}" if q < m else f"{q} px against {m}"


def _sizes_differ(this: asset_pb2.Evidence, ref: asset_pb2.Evidence) -> bool:
    q, m = long_side(this), long_side(ref)
    return bool(q and m and q != m)


def _tone(this: asset_pb2.Evidence, ref: asset_pb2.Evidence) -> str:
    return "colour-corrected" if is_colour(this) and is_colour(ref) else "tone-adjusted"


def turn_between(a: asset_pb2.Asset, b: asset_pb2.Asset) -> str | None:
    """For a turned or mirrored pair, which turn or mirror relates them ('turned a quarter',
    'mirrored', ...): the dihedral variant of one closest to the other's upright hash. None
    when the records lack the hashes."""
    ha, hb = hashes(a), hashes(b)
    if ha is None or hb is None:
        return None
    ia, ib = ha.ints, hb.ints
    up_a, up_b = ia.dihedral[0], ib.dihedral[0]
    best = min(range(1, 8), key=lambda k: min((ia.dihedral[k] ^ up_b).bit_count(), (ib.dihedral[k] ^ up_a).bit_count()))
    return TURNS.get(DIHEDRAL_ORDER[best])


def _extras(relation: int, this: asset_pb2.Evidence, ref: asset_pb2.Evidence, said_size: bool) -> list[str]:
    """What the evidence adds beside the relation. A crop has fewer pixels by nature, so only
    uncropped copies are compared by size; nor is a change of tone told from a change of content."""
    out = []
    if not said_size and relation != R.RELATION_CROPPED and _sizes_differ(this, ref):
        out.append(("smaller" if long_side(this) < long_side(ref) else "larger") + f" ({_pixels(this, ref)})")
    if relation != R.RELATION_GREYSCALE and this.channels and ref.channels and is_colour(this) != is_colour(ref):
        out.append("greyscale" if not is_colour(this) else "in colour")
    elif relation not in _OTHER_CONTENT and tone_change(this, ref):
        out.append(_tone(this, ref))
    return out


#: Copies whose pictures hold other content than the other copy's (a part, a border, a caption):
#: their tone summaries differ for that reason, so they say nothing of a colour correction.
_OTHER_CONTENT = (R.RELATION_TONE_VARIANT, R.RELATION_CROPPED, R.RELATION_BORDERED, R.RELATION_EDITED,
                  R.RELATION_RESCANNED)


def copy_words(relation: int, this: asset_pb2.Evidence, ref: asset_pb2.Evidence, *, kept: float | None = None,
               this_is_crop: bool | None = None, turn: str | None = None, ref_name: str = "the other") -> str:
    """What ``this`` copy is relative to ``ref``, as a short label: 'same file', 'greyscale copy',
    'smaller copy (1024 px of 6000)', 'cropped, keeps 80%', 'rescanned (skewed 2°)'.

    ``kept``: a crop's share of the larger picture; ``this_is_crop``: which side is the crop
    (None when the match does not say); ``turn``: ``turn_between`` for a turned copy;
    ``ref_name``: how to name ``ref`` where the words must (its file name, 'the keeper')."""
    if relation == R.RELATION_IDENTICAL_BYTES or relation == R.RELATION_IDENTICAL_PIXELS:
        return LABELS[relation]
    said_size = False
    if relation in (R.RELATION_REENCODED, R.RELATION_SIMILAR):
        # A downsized copy is re-encoded by the rule; what a person needs to know is that it is smaller.
        if _sizes_differ(this, ref):
            main = ("smaller" if long_side(this) < long_side(ref) else "larger") + f" copy ({_pixels(this, ref)})"
            said_size = True
        elif relation == R.RELATION_REENCODED and encoding(this) != encoding(ref):
            better = _quality(this) > _quality(ref)
            main = f"{'better-quality copy' if better else 'recompressed'} ({encoding(this)}; {ref_name} is {encoding(ref)})"
        else:
            main = LABELS[relation]
    elif relation == R.RELATION_GREYSCALE:
        main = "greyscale copy" if not is_colour(this) or is_colour(ref) == is_colour(this) else \
            f"colour copy ({ref_name} is greyscale)"
    elif relation == R.RELATION_TONE_VARIANT:
        main = _tone(this, ref)
    elif relation == R.RELATION_CROPPED:
        if kept is not None and 0 < kept < 1 and this_is_crop is not None:
            main = (f"cropped, keeps {_percent(kept)}" if this_is_crop
                    else f"the full picture ({ref_name} is a crop keeping {_percent(kept)} of it)")
        else:
            main = "cropped differently (other proportions)"
    elif relation == R.RELATION_ROTATED_MIRRORED:
        main = turn or LABELS[relation]
    elif relation == R.RELATION_BORDERED:
        main = ("in a mat/border" if frame_share(this) <= frame_share(ref)
                else f"without the mat/border ({ref_name} is in one)")
    elif relation == R.RELATION_RESCANNED:
        skew = this.skew_centidegrees or ref.skew_centidegrees
        main = f"rescanned (skewed {_degrees(skew)})" if skew else "rescanned (slightly turned)"
    elif relation in LABELS:
        main = LABELS[relation]
    else:
        main = f"another kind of copy ({relation_name(relation)})"
    if relation == R.RELATION_UNSPECIFIED:
        return main
    return ", ".join([main, *_extras(relation, this, ref, said_size)])


def sentence(relation: int, query: asset_pb2.Evidence, ours: asset_pb2.Evidence, ours_name: str, *,
             kept: float | None = None, query_is_crop: bool | None = None, turn: str | None = None,
             subject: str = "your file") -> str:
    """What one copy (a looked-up file, by default) is relative to another, as a sentence:
    'your file is a greyscale copy of our coffee.png', 'your file is the full picture; our
    crop.jpg is a crop keeping 64% of it'. ``ours_name``: how to name the other ('our coffee.png')."""
    said_size = False
    if relation == R.RELATION_IDENTICAL_BYTES:
        return f"{subject} is the same file as {ours_name}"
    if relation == R.RELATION_IDENTICAL_PIXELS:
        return f"{subject} has the same pixels as {ours_name}, with other metadata"
    if relation in (R.RELATION_REENCODED, R.RELATION_SIMILAR):
        if _sizes_differ(query, ours):
            bigger = long_side(query) > long_side(ours)
            main = f"a {'larger' if bigger else 'smaller'} copy of {ours_name} ({_pixels(query, ours)})"
            said_size = True
        elif relation == R.RELATION_REENCODED and encoding(query) != encoding(ours):
            better = _quality(query) > _quality(ours)
            main = (f"a {'better-quality' if better else 'recompressed'} copy of {ours_name} "
                    f"({encoding(query)}; ours is {encoding(ours)})")
        elif relation == R.RELATION_REENCODED:
            main = f"a recompressed copy of {ours_name}"
        else:
            main = f"the same picture as {ours_name}"
    elif relation == R.RELATION_GREYSCALE:
        main = (f"a greyscale copy of {ours_name}" if not is_colour(query) or is_colour(query) == is_colour(ours)
                else f"in colour; {ours_name} is a greyscale copy of it")
    elif relation == R.RELATION_TONE_VARIANT:
        main = f"a {_tone(query, ours)} copy of {ours_name}"
    elif relation == R.RELATION_CROPPED:
        if kept is not None and 0 < kept < 1 and query_is_crop is not None:
            main = (f"a crop of {ours_name}, keeping {_percent(kept)} of it" if query_is_crop
                    else f"the full picture; {ours_name} is a crop keeping {_percent(kept)} of it")
        else:
            main = f"cropped differently from {ours_name} (other proportions)"
    elif relation == R.RELATION_ROTATED_MIRRORED:
        main = f"a copy of {ours_name}, {turn or 'turned or mirrored'}"
    elif relation == R.RELATION_BORDERED:
        main = (f"a copy of {ours_name} in a mat/border" if frame_share(query) <= frame_share(ours)
                else f"the picture without the mat/border {ours_name} has")
    elif relation == R.RELATION_EDITED:
        main = f"a locally edited copy of {ours_name} (watermark, caption or overlay)"
    elif relation == R.RELATION_RESCANNED:
        skew = query.skew_centidegrees or ours.skew_centidegrees
        main = f"a rescan of {ours_name} ({f'skewed {_degrees(skew)}' if skew else 'slightly turned'})"
    elif relation == R.RELATION_UNSPECIFIED:
        return f"{subject} is a copy of the same photograph as {ours_name}"
    else:
        main = f"another kind of copy of {ours_name} ({relation_name(relation)})"
    # What the evidence adds is about the subject: it goes before a clause about the other copy.
    head, _, tail = main.partition("; ")
    extras = ["in greyscale" if x == "greyscale" else x for x in _extras(relation, query, ours, said_size)]
    return ", ".join([f"{subject} is {head}", *extras]) + (f"; {tail}" if tail else "")


def _dims(e: asset_pb2.Evidence) -> str:
    return f"{e.width}\u00d7{e.height}"


def keep_reason(decision: Decision, names: dict[str, str]) -> str:
    """Why the policy suggests keeping this copy, in one sentence: what set it ahead of the
    next best copy (``names``: asset id -> file name)."""
    k = decision.master
    if decision.deciding_rule == "only_copy" or len(decision.ranking) < 2:
        return "it is the only copy"
    r = decision.ranking[1]
    return _KEEP_REASONS.get(decision.deciding_rule, _TIE_BREAK).format(
        other=names.get(r.asset_id, "another copy"), k_dims=_dims(k.evidence), r_dims=_dims(r.evidence),
        k_bits=k.evidence.bit_depth, r_bits=r.evidence.bit_depth, k_enc=encoding(k.evidence),
        r_enc=encoding(r.evidence), k_date=k.evidence.capture_date, r_date=r.evidence.capture_date or "unknown")


#: What each master-policy rule (SPEC 7) prefers, in words: "chosen for <words>".
RULE_WORDS = {
    "only_copy": "being the only copy",
    "not_derived": "being the full picture, not a crop or a matted copy",
    "pixel_count": "the most pixels",
    "lossless": "lossless storage",
    "bit_depth": "the most bits per channel",
    "colour": "being in colour",
    "jpeg_quality": "the highest JPEG quality",
    "capture_date": "the earliest capture date",
    "rights_known": "a known rights statement",
    "custodial_priority": "its holder's custodial priority",
    "tie_break": "the fixed tie-break (the copies are equal on every count)",
}


def rule_words(rule: str) -> str:
    """A policy rule in words; an id this node does not know, as it is."""
    return RULE_WORDS.get(rule, rule)


#: One sentence per master-policy rule (SPEC 7): what set the keeper ahead of the next best copy.
_KEEP_REASONS = {
    "not_derived": "it is the full picture; the next best copy ({other}) is a crop of another copy or in a "
                   "mat/border",
    "pixel_count": "it has the most pixels: {k_dims} against {r_dims} for the next best copy ({other})",
    "lossless": "it is stored losslessly; the next best copy ({other}) has as many pixels but is lossy",
    "bit_depth": "it has more bits per channel: {k_bits} against {r_bits} ({other})",
    "colour": "it is in colour; the next best copy ({other}) is otherwise as good but greyscale",
    "jpeg_quality": "it has the higher quality: {k_enc} against {r_enc} ({other})",
    "capture_date": "it has the earliest known capture date: {k_date} against {r_date} ({other})",
    "rights_known": "its rights statement is known; the next best copy's ({other}) is unknown",
    "custodial_priority": "its holder has the higher custodial priority than the next best copy's ({other})",
}
_TIE_BREAK = "it and the next best copy ({other}) are equal on every count; a fixed tie-break picked it"
