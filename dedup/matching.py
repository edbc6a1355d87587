"""The matching rule every party applies: when two assets are copies of one photograph,
and what kind of copy one is of the other.

In order, the first that holds decides:

1. same file bytes; 2. same pixels (metadata differs);
3. neither is low-information (flat or near-blank images collide under any hash), and
   both carry the full fingerprint set;
4. the whole picture: the upright ``dct256`` hashes within ``Rule.whole``, or one's
   rotated or mirrored variant within it of the other's upright hash;
5. a local edit (watermark, overlay, caption): the upright ``dct256`` hashes within
   ``Rule.whole_loose``, and either the low-frequency ``dct64`` hashes within ``Rule.low``
   or at least ``Rule.same_windows`` of the same ``win64`` windows within
   ``Rule.same_window`` of each other (the windows that leave the edit out still agree);
6. a crop: one picture's ``dct64`` within ``Rule.window`` of one of the other's ``win64``
   windows whose shape (aspect ratio) matches the first picture's frame.

Labels for whole-picture matches come from the declared evidence, so they cost nothing
beyond what is already sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

from dedup.fingerprint.kinds import DCT64_V2 as DCT64, DCT256_V2, WIN64_V2 as WIN64
from dedup.fingerprint.suite import WINDOWS
from dedup.fingerprint.wire import Hashes, from_wire
from dedup.v1 import asset_pb2, statements_pb2

R = statements_pb2


@dataclass(frozen=True)
class Rule:
    """Match distances; the defaults are the kinds' registered thresholds."""

    whole: int = DCT256_V2.threshold
    whole_loose: int = 80
    low: int = DCT64.threshold
    window: int = WIN64.threshold
    #: Largest relative difference between a crop's frame shape and the window's shape.
    aspect: float = 0.12
    same_window: int = 2
    same_windows: int = 3

    def loosened(self, factor: float) -> Rule:
        return Rule(int(self.whole * factor), int(self.whole_loose * factor), int(self.low * factor),
                    int(self.window * factor), self.aspect * factor, int(self.same_window * factor),
                    self.same_windows)


DEFAULT_RULE = Rule()
DEFAULT_THRESHOLD = DEFAULT_RULE.whole


@dataclass(frozen=True)
class Link:
    relation: int  # statements_pb2.Relation value
    algorithm: str
    distance: int
    #: For crops, the share of the larger picture that the smaller keeps (else 1.0).
    kept: float = 1.0
    #: For crops found by window, which argument of ``link`` is the crop: 1 the first, 2 the
    #: second, 0 unknown. Not part of equality: it orients the link, it is not its kind.
    crop: int = field(default=0, compare=False)


def hashes(asset: asset_pb2.Asset) -> Hashes | None:
    return from_wire((fp.algorithm, fp.version, fp.value) for fp in asset.fingerprints)


def compared_hashes(asset: asset_pb2.Asset) -> Hashes | None:
    """The hashes the rule and the candidate index compare: None for a low-information record
    (matched by its digests only) or an incomplete fingerprint set."""
    return None if asset.low_information else hashes(asset)


def _aspect(e: asset_pb2.Evidence) -> float:
    w, h = (e.frame_width or e.width), (e.frame_height or e.height)
    return w / h if h else 0.0


def _content(e: asset_pb2.Evidence) -> float:
    if not (e.width and e.height and e.frame_width and e.frame_height) or e.skew_centidegrees:
        return 1.0
    return (e.frame_width * e.frame_height) / (e.width * e.height)


def _tone_differs(a: asset_pb2.Evidence, b: asset_pb2.Evidence) -> bool:
    if abs(int(a.luma_mean) - int(b.luma_mean)) > 8:
        return True
    spread = max(a.luma_spread, b.luma_spread, 1)
    if abs(int(a.luma_spread) - int(b.luma_spread)) / spread > 0.12:
        return True
    return a.channels >= 3 and b.channels >= 3 and abs(int(a.saturation) - int(b.saturation)) > 8


def label(a: asset_pb2.Evidence, b: asset_pb2.Evidence, edited: bool = False) -> int:
    """What kind of whole-picture copy one is of the other, from their evidence alone."""
    if a.skew_centidegrees or b.skew_centidegrees:
        return R.RELATION_RESCANNED
    if abs(_content(a) - _content(b)) > 0.03:
        return R.RELATION_BORDERED
    if (a.channels >= 3) != (b.channels >= 3):
        return R.RELATION_GREYSCALE
    if edited:
        return R.RELATION_EDITED
    # The images' own shapes, not their frames': a trim may end a line or two apart at
    # different resolutions, a crop changes the whole image.
    ra = a.width / a.height if a.height else 0.0
    rb = b.width / b.height if b.height else 0.0
    if ra and rb and abs(ra - rb) / max(ra, rb) > 0.03:
        return R.RELATION_CROPPED
    if _tone_differs(a, b):
        return R.RELATION_TONE_VARIANT
    if (a.width, a.height, a.format_family, a.jpeg_quality) != (b.width, b.height, b.format_family, b.jpeg_quality):
        return R.RELATION_REENCODED
    return R.RELATION_SIMILAR


def _window_aspect(e: asset_pb2.Evidence, k: int) -> float:
    # Windows are cut from the whole picture (after undoing skew, before trimming).
    _, top, bottom, left, right = WINDOWS[k]
    whole_w, whole_h = (e.frame_width, e.frame_height) if e.skew_centidegrees else (e.width, e.height)
    w, h = whole_w * (right - left), whole_h * (bottom - top)
    return w / h if h else 0.0


def _whole_aspect(e: asset_pb2.Evidence) -> float:
    w, h = (e.frame_width, e.frame_height) if e.skew_centidegrees else (e.width, e.height)
    return w / h if h else 0.0


_FULL64 = (1 << 64) - 1


def _crop(small: asset_pb2.Asset, hs: Hashes, large: asset_pb2.Asset, hl: Hashes, rule: Rule) -> Link | None:
    """Is ``small`` a crop of ``large``? The best window that fits, if any."""
    best: Link | None = None
    si, windows = hs.ints, hl.ints.windows
    # The crop as framed (trimmed) and as a whole: a flat strip left at its edge may or may
    # not have been trimmed, depending on where the crop cut.
    for low, aspect in ((si.low, _aspect), (si.low_whole, _whole_aspect)):
        ra = None
        for k, w in enumerate(windows):
            if w == 0 or w == _FULL64:  # degenerate window
                continue
            d = (low ^ w).bit_count()
            if d > rule.window or (best is not None and d >= best.distance):
                continue
            if ra is None:
                ra = aspect(small.evidence)
            rw = _window_aspect(large.evidence, k)
            if ra and rw and abs(ra - rw) / max(ra, rw) > rule.aspect:
                continue
            _, top, bottom, left, right = WINDOWS[k]
            best = Link(R.RELATION_CROPPED, WIN64.name, d, round((bottom - top) * (right - left), 3))
    return best


#: ``link``'s default for the parsed hashes: parse them from the record.
PARSE: object = object()


def link(a: asset_pb2.Asset, b: asset_pb2.Asset, rule: Rule = DEFAULT_RULE, *,
         ha: Hashes | None | object = PARSE, hb: Hashes | None | object = PARSE) -> Link | None:
    """The relation between two assets, or None when they are not copies of one another.

    ``ha`` and ``hb`` may pass ``hashes(a)`` and ``hashes(b)`` when the caller already has
    them (a coordinator compares one record with many)."""
    if a.sha256 == b.sha256:
        return Link(R.RELATION_IDENTICAL_BYTES, "sha256", 0)
    if a.pixel_digest and a.pixel_digest == b.pixel_digest:
        return Link(R.RELATION_IDENTICAL_PIXELS, "pixel-sha256", 0)
    if a.low_information or b.low_information:
        return None
    if ha is PARSE:
        ha = hashes(a)
    if hb is PARSE:
        hb = hashes(b)
    if ha is None or hb is None:
        return None
    ia, ib = ha.ints, hb.ints
    up_a, up_b = ia.dihedral[0], ib.dihedral[0]
    d_up = (up_a ^ up_b).bit_count()
    if d_up <= rule.whole:
        return Link(label(a.evidence, b.evidence), DCT256_V2.name, d_up)
    d_rot = min(min((ia.dihedral[k] ^ up_b).bit_count(), (ib.dihedral[k] ^ up_a).bit_count()) for k in range(1, 8))
    if d_rot <= rule.whole:
        return Link(R.RELATION_ROTATED_MIRRORED, DCT256_V2.name, d_rot)
    if d_up <= rule.whole_loose:
        d_low = (ia.low ^ ib.low).bit_count()
        if d_low <= rule.low:
            return Link(label(a.evidence, b.evidence, edited=True), DCT64.name, d_low)
        same = sorted((x ^ y).bit_count() for x, y in zip(ia.windows, ib.windows)
                      if not (x in (0, _FULL64) or y in (0, _FULL64)))
        if len(same) >= rule.same_windows and same[rule.same_windows - 1] <= rule.same_window:
            return Link(label(a.evidence, b.evidence, edited=True), WIN64.name, same[rule.same_windows - 1])
    crops = [replace(c, crop=side) for side, c in ((1, _crop(a, ha, b, hb, rule)), (2, _crop(b, hb, a, ha, rule)))
             if c is not None]
    return min(crops, key=lambda c: c.distance) if crops else None


def find_links(assets: Sequence[asset_pb2.Asset], rule: Rule = DEFAULT_RULE) -> list[tuple[int, int, Link]]:
    """Every pair (i, j), i < j, of ``assets`` that the rule links, without comparing all
    pairs: candidates come from exact digests and Hamming indexes, then the rule decides."""
    from dedup.candidates import CandidateIndex

    index = CandidateIndex(rule)
    for i, a in enumerate(assets):
        index.add(i, a)
    out = []
    # With every asset indexed, asking for i finds each j < i that asking when i was the
    # newest would have found (and more, which the j < i filter drops).
    step = 512
    for lo in range(0, len(assets), step):
        for i, found in enumerate(index.candidates_many(assets[lo:lo + step]), start=lo):
            for j in sorted(k for k in found if k < i):
                lk = link(assets[j], assets[i], rule)
                if lk is not None:
                    out.append((j, i, lk))
    return out


def relation_name(value: int) -> str:
    """'RELATION_CROPPED' -> 'cropped', for people and JSON output.

    A value this version does not name (sent by a newer coordinator) reads 'relation N'
    rather than failing the whole answer."""
    if value not in statements_pb2.Relation.values():
        return f"relation {value}"
    return statements_pb2.Relation.Name(value).removeprefix("RELATION_").lower()
