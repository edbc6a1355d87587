"""What a looked-up copy is relative to a master, in one sentence for people.

The coordinator sends this sentence with every lookup answer and the node uses the same
words for its local answers, so a picture desk reads the same thing whichever answered.
The sentence starts from the matching rule's relation and adds what the declared evidence
shows beside it (lower resolution, greyscale, a tone or colour change), because one copy is
often several things at once: cropped and colour-corrected, resized and recompressed.
"""

from __future__ import annotations

from dedup.matching import relation_name, tone_change
from dedup.v1 import asset_pb2, statements_pb2 as R


def long_side(e: asset_pb2.Evidence) -> int:
    return max(e.width, e.height)


def is_colour(e: asset_pb2.Evidence) -> bool:
    return e.channels >= 3


def encoding(e: asset_pb2.Evidence) -> str:
    """How a copy is stored, in words: 'lossless', 'JPEG quality 80' or 'lossy'."""
    if e.format_family == asset_pb2.FORMAT_FAMILY_LOSSLESS:
        return "lossless"
    return f"JPEG quality {e.jpeg_quality}" if e.jpeg_quality else "lossy"


def describe(relation: int, query: asset_pb2.Evidence, master: asset_pb2.Evidence, *, kept: float = 1.0,
             master_is_crop: bool = False) -> str:
    """E.g. 'same image, lower resolution 1024 vs 6000 px', 'cropped, about 80% kept, colour-corrected',
    'greyscale', 'identical'. ``kept`` is the crop's share of the larger picture."""
    if relation == R.RELATION_IDENTICAL_BYTES:
        return "identical"
    if relation == R.RELATION_IDENTICAL_PIXELS:
        return "identical pixels, different metadata"
    if relation == R.RELATION_UNSPECIFIED:
        return "a copy of the same photograph (matched through other copies of it, not the master directly)"
    cropped = relation == R.RELATION_CROPPED
    parts: list[str] = []
    if cropped and 0 < kept < 1:
        share = round(kept * 100)
        parts.append(f"uncropped: the master is a crop keeping about {share}% of this picture" if master_is_crop
                     else f"cropped, about {share}% kept")
    elif cropped:
        parts.append("cropped (other proportions)")
    elif relation == R.RELATION_GREYSCALE:
        parts.append("greyscale" if not is_colour(query) else "in colour; the master is greyscale")
    elif relation == R.RELATION_TONE_VARIANT:
        parts.append("colour-corrected" if is_colour(query) and is_colour(master) else "tone-adjusted")
    elif relation in (R.RELATION_REENCODED, R.RELATION_SIMILAR):
        parts.append("same image")
    else:
        parts.append({
            R.RELATION_ROTATED_MIRRORED: "rotated or mirrored",
            R.RELATION_BORDERED: "border or matte differs",
            R.RELATION_EDITED: "locally edited (watermark, caption or overlay)",
            R.RELATION_RESCANNED: "rescanned (scanned askew; the skew was undone to compare)",
        }.get(relation, relation_name(relation).replace("_", " ")))
    # What the evidence adds beside the relation. A crop has fewer pixels by nature, so only
    # uncropped copies are compared by resolution.
    if not cropped:
        q, m = long_side(query), long_side(master)
        if q and m and q != m:
            parts.append(f"{'lower' if q < m else 'higher'} resolution {q} vs {m} px")
        elif relation == R.RELATION_REENCODED and encoding(query) != encoding(master):
            parts.append(f"re-encoded ({encoding(query)}; the master is {encoding(master)})")
    if relation != R.RELATION_GREYSCALE and is_colour(query) != is_colour(master) and query.channels and master.channels:
        parts.append("greyscale" if not is_colour(query) else "in colour; the master is greyscale")
    elif relation != R.RELATION_TONE_VARIANT and tone_change(query, master):
        parts.append("colour-corrected" if is_colour(query) and is_colour(master) else "tone-adjusted")
    return ", ".join(parts)
