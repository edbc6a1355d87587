"""The matching rule every party applies: when two assets are copies of one photograph,
and what kind of copy one is of the other.

Exact relations come first (same bytes, same decoded pixels). Otherwise the perceptual
fingerprint decides, except for low-information images (blank pages, grey cards), which
collide under any global hash and are never matched perceptually. The label is read off
the declared evidence, so it costs nothing beyond the fingerprints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from dedup.fingerprint.distance import hamming
from dedup.fingerprint.kinds import KINDS
from dedup.v1 import asset_pb2, statements_pb2

PERCEPTUAL = ("dct256", 1)
DEFAULT_THRESHOLD = KINDS[PERCEPTUAL].threshold


@dataclass(frozen=True)
class Link:
    relation: int  # statements_pb2.Relation value
    algorithm: str
    distance: int


def perceptual_value(asset: asset_pb2.Asset) -> bytes | None:
    for fp in asset.fingerprints:
        if (fp.algorithm, fp.version) == PERCEPTUAL:
            return fp.value
    return None


def _aspect(e: asset_pb2.Evidence) -> float:
    return e.width / e.height if e.height else 0.0


def label(a: asset_pb2.Evidence, b: asset_pb2.Evidence) -> int:
    """What kind of perceptual copy b is of a, from their evidence alone."""
    if (a.channels >= 3) != (b.channels >= 3):
        return statements_pb2.RELATION_GREYSCALE
    ra, rb = _aspect(a), _aspect(b)
    if ra and rb and abs(ra - rb) / max(ra, rb) > 0.02:
        return statements_pb2.RELATION_CROPPED
    if (a.width, a.height, a.format_family, a.jpeg_quality) != (b.width, b.height, b.format_family, b.jpeg_quality):
        return statements_pb2.RELATION_REENCODED
    return statements_pb2.RELATION_SIMILAR


def link(a: asset_pb2.Asset, b: asset_pb2.Asset, threshold: int = DEFAULT_THRESHOLD) -> Link | None:
    """The relation between two assets, or None when they are not copies of one another."""
    if a.sha256 == b.sha256:
        return Link(statements_pb2.RELATION_IDENTICAL_BYTES, "sha256", 0)
    if a.pixel_digest and a.pixel_digest == b.pixel_digest:
        return Link(statements_pb2.RELATION_IDENTICAL_PIXELS, "pixel-sha256", 0)
    if a.low_information or b.low_information:
        return None
    va, vb = perceptual_value(a), perceptual_value(b)
    if va is None or vb is None:
        return None
    d = hamming(va, vb)
    if d > threshold:
        return None
    return Link(label(a.evidence, b.evidence), PERCEPTUAL[0], d)


def find_links(assets: Sequence[asset_pb2.Asset], threshold: int = DEFAULT_THRESHOLD) -> list[tuple[int, int, Link]]:
    """Every pair (i, j), i < j, of ``assets`` that the rule links, without comparing all pairs:
    candidates come from exact digests and a Hamming index, then the rule decides."""
    from dedup.index import HammingIndex

    index = HammingIndex(32, capacity=max(len(assets), 1))
    row_to_i: list[int] = []
    by_exact: dict[bytes, list[int]] = {}
    out = []
    for i, a in enumerate(assets):
        cands: set[int] = set()
        for digest in (a.sha256, a.pixel_digest):
            cands.update(by_exact.get(digest, ()))
        value = perceptual_value(a)
        if value is not None and not a.low_information:
            cands.update(row_to_i[r] for r, _ in index.search(value, threshold))
            index.add(value)
            row_to_i.append(i)
        for j in sorted(cands):
            lk = link(assets[j], a, threshold)
            if lk is not None:
                out.append((j, i, lk))
        by_exact.setdefault(a.sha256, []).append(i)
        if a.pixel_digest != a.sha256:
            by_exact.setdefault(a.pixel_digest, []).append(i)
    return out


def relation_name(value: int) -> str:
    """'RELATION_CROPPED' -> 'cropped', for people and JSON output."""
    return statements_pb2.Relation.Name(value).removeprefix("RELATION_").lower()
