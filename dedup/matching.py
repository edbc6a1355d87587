"""The matching rule every party applies: when two assets are copies of one photograph,
and what kind of copy one is of the other.

In order, the first that holds decides:

1. same file bytes; 2. same pixels (metadata differs);
3. neither is low-information (flat or near-blank images collide under any hash), and
   both carry the full fingerprint set;
4. the whole picture: the upright ``dct256`` hashes within ``Rule.whole`` (beyond
   ``WHOLE_CHECKED``, with the keypoints not contradicting it), or one's rotated or mirrored
   variant within it of the other's upright hash, the two hashes compared equal on one of
   their ``Rule.whole_bands`` bands;
5. a local edit (watermark, overlay, caption): the upright ``dct256`` hashes within
   ``Rule.whole_loose`` and the frames' low-frequency ``dct64`` hashes within ``Rule.low``, and
   the keypoints (when both pictures have enough) place the two on one another;
6. one picture inside the other (``dedup.alignment``): their keypoints (``kp64``) agree on a
   placement of one inside the other, the agreeing points cover the inner picture, and the
   inner picture looks like the part of the outer one it is placed on. A crop when it keeps
   part of the other picture, a rescan when it is turned, an edit when the two frame the same
   picture (whatever changed between them moved the global hashes apart).

Labels for whole-picture matches come from the declared evidence, so they cost nothing
beyond what is already sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Sequence

import numpy as np

from dedup import alignment
from dedup.fingerprint import points as kp
from dedup.fingerprint.kinds import DCT64_V2 as DCT64, DCT256_V2, KP64_V1 as KP64
from dedup.fingerprint.wire import Hashes, from_wire
from dedup.v1 import asset_pb2, statements_pb2

R = statements_pb2


@dataclass(frozen=True)
class Rule:
    """Match distances and the conditions of a placement; the defaults are the published
    ones (SPEC.md section 6)."""

    whole: int = DCT256_V2.threshold
    #: A whole-picture or turned match (within ``whole``) also needs the two hashes equal on one
    #: of this many fixed bands of their bits (16: their sixteen aligned 16-bit pieces): what
    #: the candidate index looks up, a few exact lookups per orientation.
    whole_bands: int = 16
    #: A turned match (one's rotated or mirrored hash within ``whole`` of the other's upright)
    #: also needs the other way round within this: the candidate index holds upright hashes
    #: only and finds a turned copy from the newer picture's turns, whichever came first. The
    #: two ways differ by the hash bits that a turn's sign changes move across the median.
    whole_turned_back: int = 48
    whole_loose: int = 80
    low: int = DCT64.threshold
    #: Keypoint hashes this close are possible correspondences.
    points: int = KP64.threshold
    #: A pair is considered for a placement only when at least two keypoints of each, among
    #: the ``points_indexed`` strongest, have hashes within ``points_index`` of one another,
    #: one such pair of hashes also equal on one of ``points_bands`` fixed bands of their bits
    #: (the four 16-bit quarters): the candidate index finds that pair with a few exact
    #: lookups per keypoint, then checks the rest.
    points_index: int = 8
    points_indexed: int = 32
    points_bands: int = 4
    #: Correspondences agree with a placement within this share of the long side.
    points_tolerance: float = 0.025
    #: A picture lies inside another when its corners fall within this share of the other's
    #: long side outside it.
    points_margin: float = 0.03
    #: A placement needs this many agreeing keypoints...
    points_inliers: int = 5
    #: ...spread over this share of the inner picture's width and height (or, when at least
    #: ``points_band_inliers`` agree, over ``points_band_coverage`` of one of them: a band of
    #: detail, a horizon or a street, that a shared logo or stamp never spans)...
    points_coverage: float = 0.3
    points_band_inliers: int = 7
    points_band_coverage: float = 0.18
    #: ...making this share of the inner picture's keypoints that fall inside the outer one
    #: (when the two frame the same picture, ``points_same_support``)...
    points_support: float = 0.12
    points_same_support: float = 0.3
    #: ...and the inner picture's low-frequency image, rebuilt from its whole-picture dct64,
    #: must correlate this well with the outer's over the part it is placed on.
    points_appearance: float = 0.25
    #: A placement this firm needs no appearance check (``_firm``): this many agreeing
    #: keypoints, spread over this share of the inner picture, making this share of its points.
    points_firm: int = 12
    points_firm_coverage: float = 0.5
    points_firm_support: float = 0.15
    #: A picture with few keypoints where the two overlap (at most ``points_few``: a map, a
    #: flat graphic, whose edges make few blobs) cannot show ``points_inliers`` agreeing. This
    #: many suffice when they are this share of those keypoints, spread over this share of the
    #: inner picture, and its appearance agrees at least this well.
    points_few: int = 16
    points_few_inliers: int = 3
    points_few_support: float = 0.3
    points_few_coverage: float = 0.5
    points_few_appearance: float = 0.4

    def loosened(self, factor: float) -> Rule:
        """Every distance (and the keypoint count that makes a picture one of few keypoints)
        times ``factor``, every required amount divided by it."""
        def fewer(n: int) -> int:
            return max(2, int(n / factor))
        return replace(
            self, whole=int(self.whole * factor), whole_turned_back=int(self.whole_turned_back * factor),
            whole_loose=int(self.whole_loose * factor),
            low=int(self.low * factor), points=int(self.points * factor),
            points_index=int(self.points_index * factor), points_tolerance=self.points_tolerance * factor,
            points_margin=self.points_margin * factor, points_inliers=fewer(self.points_inliers),
            points_coverage=self.points_coverage / factor, points_band_inliers=fewer(self.points_band_inliers),
            points_band_coverage=self.points_band_coverage / factor, points_support=self.points_support / factor,
            points_same_support=self.points_same_support / factor,
            points_appearance=self.points_appearance / factor, points_firm=fewer(self.points_firm),
            points_firm_coverage=self.points_firm_coverage / factor,
            points_firm_support=self.points_firm_support / factor, points_few=int(self.points_few * factor),
            points_few_inliers=fewer(self.points_few_inliers), points_few_support=self.points_few_support / factor,
            points_few_coverage=self.points_few_coverage / factor,
            points_few_appearance=self.points_few_appearance / factor)


DEFAULT_RULE = Rule()
DEFAULT_THRESHOLD = DEFAULT_RULE.whole
#: A placement whose inner picture comes this close (a share of the outer picture's width or
#: height) to every edge of the outer one frames the same picture: the two rectangles differ by
#: rounding and resampling only. Cutting more off any side is a crop.
SAME_FRAMING = 0.02
#: Turns smaller than this are measurement noise, not a rescan (degrees; the frame's own
#: deskew starts here too).
MIN_TURN = 0.4


@dataclass(frozen=True)
class Link:
    relation: int  # statements_pb2.Relation value
    algorithm: str
    distance: int
    #: For crops, the share of the larger picture that the smaller keeps (else 1.0).
    kept: float = 1.0
    #: For crops, which argument of ``link`` is the crop: 1 the first, 2 the second, 0
    #: unknown. Not part of equality: it orients the link, it is not its kind.
    crop: int = field(default=0, compare=False)


def hashes(asset: asset_pb2.Asset) -> Hashes | None:
    return from_wire((fp.algorithm, fp.version, fp.value) for fp in asset.fingerprints)


def compared_hashes(asset: asset_pb2.Asset) -> Hashes | None:
    """The hashes the rule and the candidate index compare: None for a low-information record
    (matched by its digests only) or an incomplete fingerprint set."""
    return None if asset.low_information else hashes(asset)


def _content(e: asset_pb2.Evidence) -> float:
    if not (e.width and e.height and e.frame_width and e.frame_height) or e.skew_centidegrees:
        return 1.0
    return (e.frame_width * e.frame_height) / (e.width * e.height)


#: ``tone_change``'s verdicts: none; slight (a change of several measures together, or a
#: modest one of saturation), which cannot explain a large distance between the hashes; clear.
TONE_NONE, TONE_SLIGHT, TONE_CLEAR = 0, 1, 2


def tone_change(a: asset_pb2.Evidence, b: asset_pb2.Evidence) -> int:
    """How clearly the tone summaries say one copy's tone or colour was changed."""
    # Each change as a share of what a copy never reaches: brighter or darker by 8 levels, or
    # by 15% of a dark picture's mean (at least 3); a spread wider or narrower by 12%.
    mean = abs(int(a.luma_mean) - int(b.luma_mean)) / max(3.0, min(8.0, 0.15 * max(a.luma_mean, b.luma_mean)))
    spread = abs(int(a.luma_spread) - int(b.luma_spread)) / max(a.luma_spread, b.luma_spread, 1) / 0.12
    if mean > 1.0 or spread > 1.0:
        return TONE_CLEAR
    verdict = TONE_NONE
    # A tone curve (a gamma) on a mostly bright or dark picture moves both a little, together.
    if mean + spread > TONE_TOGETHER and min(mean, spread) > TONE_EACH:
        verdict = TONE_SLIGHT
    if a.channels >= 3 and b.channels >= 3:
        # Re-encoding and resizing move the cast by at most 1; a white balance by 3 or more.
        if max(abs(a.cast_blue - b.cast_blue), abs(a.cast_red - b.cast_red)) > 2:
            return TONE_CLEAR
        saturation = max(a.saturation, b.saturation, 1)
        moved = abs(int(a.saturation) - int(b.saturation))
        if moved > max(SATURATION_STEP, 2 * SATURATION_SHARE * saturation):
            return TONE_CLEAR
        if moved > max(SATURATION_STEP, SATURATION_SHARE * saturation):
            verdict = TONE_SLIGHT
    return verdict


#: ``tone_change``: the sum of the mean's and the spread's changes, each as a share of its own
#: limit, past which they are a tone change together, when each is at least ``TONE_EACH``.
TONE_TOGETHER = 0.9
TONE_EACH = 0.3
#: Between colour copies, mean saturation that moved by more than this and by more than
#: ``SATURATION_SHARE`` of the larger is a colour change; by twice that share, a clear one.
SATURATION_STEP = 1.5
SATURATION_SHARE = 0.15


#: Whole-picture copies this far apart on the upright ``dct256`` (re-encoding, blur and grain
#: leave at most 4-6; measured in bench/README.md), with no change of tone or framing to
#: explain it, differ in one place: an edit (a watermark, a caption, a logo). A copy under
#: ``SMALL_COPY`` of the other's size hashes less steadily and needs ``EDIT_DISTANCE_SMALL``.
EDIT_DISTANCE = 8
EDIT_DISTANCE_SMALL = 12
SMALL_COPY = 0.4
#: Mean saturation (``Evidence.saturation``) at or under which a colour copy's colour is faint.
FAINT_COLOUR = 3
#: Two copies whose trims differed but whose untrimmed pictures' dct64 are this close are the
#: same picture trimmed differently, not an edit (a faint watermark moves it by 2 or more).
RETRIM_LOW = 0


def label(a: asset_pb2.Evidence, b: asset_pb2.Evidence, edited: bool = False, distance: int = 0,
          same_framing: bool = False) -> int:
    """What kind of whole-picture copy one is of the other, from their evidence and, for a
    match on the upright ``dct256``, its ``distance``. ``same_framing``: the keypoints showed
    both frame the same picture, so differences of trim or shape say nothing."""
    if a.skew_centidegrees or b.skew_centidegrees:
        return R.RELATION_RESCANNED
    if not same_framing and abs(_content(a) - _content(b)) > 0.03:
        return R.RELATION_BORDERED
    sizes = sorted((max(a.width, a.height), max(b.width, b.height)))
    small = sizes[1] > 0 and sizes[0] / sizes[1] < SMALL_COPY
    far = distance >= (EDIT_DISTANCE_SMALL if small else EDIT_DISTANCE)
    if (a.channels >= 3) != (b.channels >= 3):
        colour = a if a.channels >= 3 else b
        # Faint colour that came with a local change (a small coloured logo put on a black-and-
        # white picture) is that change: a conversion keeps the luma, so the hashes stay close.
        if not ((edited or far) and colour.saturation <= FAINT_COLOUR):
            return R.RELATION_GREYSCALE
    if edited:
        return R.RELATION_EDITED
    # The images' own shapes, not their frames': a trim may end a line or two apart at
    # different resolutions, a crop changes the whole image.
    ra = a.width / a.height if a.height else 0.0
    rb = b.width / b.height if b.height else 0.0
    if not same_framing and ra and rb and abs(ra - rb) / max(ra, rb) > 0.03:
        return R.RELATION_CROPPED
    tone = tone_change(a, b)
    # A slight change of tone does not explain hashes far apart: something was put on it.
    if tone == TONE_CLEAR or (tone == TONE_SLIGHT and distance < WHOLE_CHECKED):
        return R.RELATION_TONE_VARIANT
    if far:
        return R.RELATION_EDITED
    if (a.width, a.height, a.format_family, a.jpeg_quality) != (b.width, b.height, b.format_family, b.jpeg_quality):
        return R.RELATION_REENCODED
    return R.RELATION_SIMILAR


#: How far past the inner picture's edge the outer's flat ground may reach and still be a band
#: of its own (a border of another tone than the inner picture's plain edge), as a share.
BAND_SLACK = 0.01


def _flat_around(box: tuple[float, float, float, float], outer: asset_pb2.Evidence, inner: asset_pb2.Evidence) -> bool:
    """Whether the outer picture surrounds ``box`` with flat ground of its edges' tone on two
    opposite sides at least, and is flat wherever it reaches beyond the box (its evidence's
    flat edges reach the box on every side), where the inner picture itself does not end in
    flat ground, or does but the outer's ground stops at its edge (a band of another tone): a
    border or matte was added. Cutting plain ground away from one side or a
    corner looks the same from the fingerprints; it is a crop, as a border surrounds a picture
    (the trim's rule, too); so is cutting into a picture's own plain margin."""
    left, top, right, bottom = box
    margins = (top, 1.0 - bottom, left, 1.0 - right)
    flat = (outer.flat_top, outer.flat_bottom, outer.flat_left, outer.flat_right)
    own = (inner.flat_top, inner.flat_bottom, inner.flat_left, inner.flat_right)
    slack = 0.01
    if any(m > f / 1000 + slack for m, f in zip(margins, flat)):
        return False
    # The outer's flat ground ends where the inner picture begins although the inner itself
    # starts with flat ground there: the band is of another tone, a border, not more ground.
    band = [f / 1000 <= m + BAND_SLACK for m, f in zip(margins, flat)]
    added = [m > slack and (o / 1000 <= slack or b) for m, o, b in zip(margins, own, band)]
    return (added[0] and added[1]) or (added[2] and added[3])


def indexed_agreement(a: kp.Points, b: kp.Points, rule: Rule) -> bool:
    """The candidate condition for a placement: at least two keypoints of each, among the
    ``points_indexed`` strongest, with hashes within ``points_index``, and one of those pairs
    of hashes equal on one of their ``points_bands`` bands."""
    return near_points(a.hashes, b.hashes, rule)


def near_points(ha: np.ndarray, hb: np.ndarray, rule: Rule) -> bool:
    """``indexed_agreement`` on two arrays of keypoint hashes (uint64, strongest first)."""
    ha, hb = ha[:rule.points_indexed], hb[:rule.points_indexed]
    if ha.size < 2 or hb.size < 2:
        return False
    x = ha[:, None] ^ hb[None, :]
    near = np.bitwise_count(x) <= rule.points_index
    return int(near.any(axis=1).sum()) >= 2 and int(near.any(axis=0).sum()) >= 2 \
        and bool((near & shares_band(x, rule.points_bands)).any())


def band_shared(x: int, nbytes: int, bands: int) -> bool:
    """Whether the XOR ``x`` of two ``nbytes``-byte hashes held as big-endian integers is zero
    on at least one of ``bands`` bands of bits, cut as the candidate index cuts the hash's bytes
    (read as one little-endian number, widest band first, from its lowest bit). Bands of 16
    bits are the hash's aligned byte pairs."""
    v = int.from_bytes(x.to_bytes(nbytes, "big"), "little")
    bits, at = 8 * nbytes, 0
    for i in range(bands):
        w = bits // bands + (1 if i < bits % bands else 0)
        if not (v >> at) & ((1 << w) - 1):
            return True
        at += w
    return False


def shares_band(x: np.ndarray, bands: int) -> np.ndarray:
    """Where the XORs ``x`` of 64-bit keypoint hashes are zero on at least one of ``bands``
    bands of bits, cut as the candidate index cuts the hash's 8 big-endian bytes (read as one
    little-endian word, widest band first, from its lowest bit). Four bands are the hash's
    four 16-bit quarters."""
    x = np.asarray(x, dtype=np.uint64).byteswap()
    out = np.zeros(x.shape, dtype=bool)
    at = 0
    for i in range(bands):
        w = 64 // bands + (1 if i < 64 % bands else 0)
        out |= (x >> np.uint64(at)) & np.uint64((1 << w) - 1) == 0
        at += w
    return out


@lru_cache(maxsize=1)
def _low_basis() -> np.ndarray:
    """Rows 1..8 of the 64-point DCT-II: the frequencies a dct64 hash keeps."""
    k = np.arange(1, 9, dtype=np.float64)[:, None]
    n = np.arange(64, dtype=np.float64)[None, :]
    return np.cos(np.pi * k * (2.0 * n + 1.0) / 128.0)


def _rebuilt(low: bytes) -> np.ndarray:
    """A 64 x 64 low-frequency image from a dct64 hash's signs: what the hash says the picture
    looks like, at the resolution it has."""
    signs = np.unpackbits(np.frombuffer(low, dtype=np.uint8)).reshape(8, 8).astype(np.float64) * 2.0 - 1.0
    d = _low_basis()
    return d.T @ signs @ d


_SAMPLES = (np.arange(24, dtype=np.float64) + 0.5) / 24


def _appearance(inner: Hashes, outer: Hashes, al: alignment.Alignment, inner_is_a: bool) -> float:
    """Correlation of the inner picture's rebuilt image with the outer's over the part the
    placement puts it on (both rebuilt from their whole-picture dct64, as the keypoints are
    of the whole picture)."""
    pi, po = inner.keypoints, outer.keypoints
    gx, gy = np.meshgrid(_SAMPLES * pi.width, _SAMPLES * pi.height)
    ox, oy = al.to_b(gx, gy) if inner_is_a else al.to_a(gx, gy)
    img_o, img_i = _rebuilt(outer.low_whole), _rebuilt(inner.low_whole)
    a = _bilinear(img_o, oy / po.height * 64 - 0.5, ox / po.width * 64 - 0.5)
    b = _bilinear(img_i, gy / pi.height * 64 - 0.5, gx / pi.width * 64 - 0.5)
    a, b = a - a.mean(), b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else 0.0


def _bilinear(img: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    h, w = img.shape
    y, x = np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)
    y0, x0 = np.minimum(np.floor(y).astype(np.int64), h - 2), np.minimum(np.floor(x).astype(np.int64), w - 2)
    fy, fx = y - y0, x - x0
    top = img[y0, x0] * (1 - fx) + img[y0, x0 + 1] * fx
    bottom = img[y0 + 1, x0] * (1 - fx) + img[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _same_framing(p: alignment.Placement) -> bool:
    left, top, right, bottom = p.box
    return max(left, top, 1.0 - right, 1.0 - bottom) <= SAME_FRAMING


def _firm(p: alignment.Placement, rule: Rule) -> bool:
    """The keypoints alone place one picture in the other beyond doubt: many agree, spread
    over most of the inner picture, as a shared sprite or logo never does. The appearance
    check, rebuilt from 64 sign bits a picture, says less than they do."""
    return (p.inliers >= rule.points_firm and p.coverage >= rule.points_firm_coverage
            and p.support >= rule.points_firm_support)


def _placement(ha: Hashes, hb: Hashes, rule: Rule) -> tuple[alignment.Placement, int, int] | None:
    """Rule 6's geometry: (placement, which argument of ``link`` is the inner picture (1 or 2),
    the agreeing keypoints' median hash distance), or None when the keypoints do not place one
    picture inside the other by the rule's conditions."""
    pa, pb = ha.keypoints, hb.keypoints
    if not indexed_agreement(pa, pb, rule):
        return None
    # One order for both calls, so link(a, b) and link(b, a) see the same alignment.
    swap = hb.points < ha.points
    first, second = (hb, ha) if swap else (ha, hb)
    al = alignment.align(first.keypoints, second.keypoints, rule.points, rule.points_tolerance)
    if al is None:
        return None
    p = alignment.placement(al, first.keypoints, second.keypoints, rule.points_margin)
    if p is None:
        return None
    many = p.inliers >= rule.points_inliers and (
        p.coverage >= rule.points_coverage
        or (p.inliers >= rule.points_band_inliers and p.coverage >= rule.points_band_coverage))
    few = (not many and p.inside <= rule.points_few and p.inliers >= rule.points_few_inliers
           and p.support >= rule.points_few_support and p.coverage >= rule.points_few_coverage)
    if not (many or few):
        return None
    inner_is_first = p.inner == 1
    inner, outer = (first, second) if inner_is_first else (second, first)
    if few and _appearance(inner, outer, al, inner_is_first) < rule.points_few_appearance:
        return None
    if _same_framing(p) and abs(p.angle) < MIN_TURN:
        # The same framing, not turned: whatever moved the global hashes apart (a box on a dark
        # picture, heavy damage) left most keypoints where they were. Those hashes cannot vouch
        # for the appearance here, so most keypoints must agree. A turn (a rescan) explains the
        # distance itself and is judged as a crop is: the turn moves a scan's fine detail, and
        # with it many keypoints' hashes, more than any edit that leaves the frame in place.
        if p.support < rule.points_same_support:
            return None
    elif p.support < rule.points_support or (not _firm(p, rule)
                                             and _appearance(inner, outer, al, inner_is_first) < rule.points_appearance):
        return None
    side = (1 if inner_is_first else 2) if not swap else (2 if inner_is_first else 1)
    return p, side, al.distance


def _placed_link(a: asset_pb2.Asset, ha: Hashes, b: asset_pb2.Asset, hb: Hashes,
                 placed: tuple[alignment.Placement, int, int], rule: Rule) -> Link:
    """The link a placement makes: a rescan when one is turned; when both frame the same
    picture, the whole-picture label if their untrimmed pictures' ``dct64`` agree (their trims
    differed, nothing else) or an edit if not; a border when all the outer picture has beyond
    the inner one is flat ground; else a crop (with the kept share and which is the crop)."""
    p, side, distance = placed
    if abs(p.angle) >= MIN_TURN or a.evidence.skew_centidegrees or b.evidence.skew_centidegrees:
        # Turned, by the keypoints, or by the frame's deskew (then the keypoints, taken after
        # it, see no turn).
        return Link(R.RELATION_RESCANNED, KP64.name, distance, round(p.kept, 3), side)
    if _same_framing(p):
        # The global hashes are of the frames: when the two were trimmed differently and the
        # untrimmed pictures still agree, the trim moved them, not an edit.
        retrimmed = abs(_content(a.evidence) - _content(b.evidence)) > 0.03
        alike = retrimmed and (ha.ints.low_whole ^ hb.ints.low_whole).bit_count() <= RETRIM_LOW
        # A change of tone alone leaves the global hashes close: if they are far, it is an edit.
        return Link(label(a.evidence, b.evidence, edited=not alike, same_framing=True), KP64.name, distance)
    outer, inner = (b.evidence, a.evidence) if side == 1 else (a.evidence, b.evidence)
    if _flat_around(p.box, outer, inner):
        return Link(R.RELATION_BORDERED, KP64.name, distance)
    return Link(R.RELATION_CROPPED, KP64.name, distance, round(p.kept, 3), side)


#: A whole-picture match farther apart than this on the upright ``dct256`` is confirmed by the
#: keypoints, when both pictures have enough: centred subjects on plain ground (one galaxy and
#: another) can share a layout and little else.
WHOLE_CHECKED = 16


def _contradicted(placed: tuple | None, ha: Hashes, hb: Hashes, rule: Rule) -> bool:
    """The keypoints speak against a match: both pictures have keypoints enough that finding
    none in common means something, and they place neither picture on the other."""
    return placed is None and min(len(ha.keypoints), len(hb.keypoints)) >= rule.points_indexed // 2


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
    if d_up <= rule.whole and band_shared(up_a ^ up_b, 32, rule.whole_bands):
        relation = label(a.evidence, b.evidence, distance=d_up)
        if relation in (R.RELATION_BORDERED, R.RELATION_CROPPED) or d_up > WHOLE_CHECKED:
            placed = _placement(ha, hb, rule)
            if d_up > WHOLE_CHECKED and _contradicted(placed, ha, hb, rule):
                return None  # alike only in layout: the keypoints find nothing in common
            if placed is not None and abs(placed[0].angle) >= MIN_TURN:
                # The frames differ: a print scanned askew whose skew the frame could not undo
                # shows as a border or a crop; the keypoints see the turn.
                relation = R.RELATION_RESCANNED
        return Link(relation, DCT256_V2.name, d_up)
    d_rot = _turned(ia.dihedral, up_b, rule)
    if d_rot <= rule.whole_turned_back:
        back = _turned(ib.dihedral, up_a, rule)
        if min(d_rot, back) <= rule.whole and max(d_rot, back) <= rule.whole_turned_back:
            return Link(R.RELATION_ROTATED_MIRRORED, DCT256_V2.name, min(d_rot, back))
    if d_up <= rule.whole_loose:
        d_low = (ia.low ^ ib.low).bit_count()
        if d_low <= rule.low:
            # Close overall yet changed: an edit, if the keypoints agree (two pictures of one
            # layout, a galaxy and another, share their low frequencies too), unless they show
            # one is a slightly smaller part of the other (a small crop leaves them alike too).
            placed = _placement(ha, hb, rule)
            if placed is not None and (not _same_framing(placed[0]) or abs(placed[0].angle) >= MIN_TURN):
                return _placed_link(a, ha, b, hb, placed, rule)
            if _contradicted(placed, ha, hb, rule):
                return None
            return Link(label(a.evidence, b.evidence, edited=True), DCT64.name, d_low)
    placed = _placement(ha, hb, rule)
    return None if placed is None else _placed_link(a, ha, b, hb, placed, rule)


def _turned(dihedral: tuple[int, ...], upright: int, rule: Rule) -> int:
    """The least distance, among those sharing a band, from one picture's seven turned hashes
    to another's upright one (``whole_turned_back`` + 1 when none is within it)."""
    far = rule.whole_turned_back
    # The distance first: most turns are far, and the band test is the dearer of the two.
    return min((d for k in range(1, 8) if (d := (x := dihedral[k] ^ upright).bit_count()) <= far
                and band_shared(x, 32, rule.whole_bands)), default=far + 1)


def find_links(assets: Sequence[asset_pb2.Asset], rule: Rule = DEFAULT_RULE,
               parsed: Sequence[Hashes | None] | None = None) -> list[tuple[int, int, Link]]:
    """Every pair (i, j), i < j, of ``assets`` that the rule links, without comparing all
    pairs: candidates come from exact digests and Hamming indexes, then the rule decides.
    ``parsed``, if given, is ``compared_hashes`` of each asset."""
    from dedup.candidates import CandidateIndex

    if parsed is None:
        parsed = [compared_hashes(a) for a in assets]  # once each: a pair's comparison reuses them
    index = CandidateIndex(rule)
    index.add_many(list(enumerate(assets)), parsed)
    out = []
    # With every asset indexed, asking for i finds each j < i that asking when i was the
    # newest would have found (and more, which the j < i filter drops).
    step = 512
    for lo in range(0, len(assets), step):
        found_all = index.candidates_many(assets[lo:lo + step], parsed[lo:lo + step])
        for i, found in enumerate(found_all, start=lo):
            for j in sorted(k for k in found if k < i):
                lk = link(assets[j], assets[i], rule, ha=parsed[j], hb=parsed[i])
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
