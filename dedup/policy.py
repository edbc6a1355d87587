"""The published master-file policy: which copy in a cross-member cluster is the master.

Pure and deterministic, so the coordinator that proposes and the auditor that checks run
the same code on the same evidence and must reach the same answer. SPEC.md ("Master
policy") is the normative text; POLICY_VERSION changes whenever the ranking does, and every
earlier version stays computable so old logs still audit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, NamedTuple, Sequence

from dedup.v1 import asset_pb2, statements_pb2

POLICY_V1 = "dedup-master-policy/1"
#: Version 2 puts ``not_derived`` first: a crop or a bordered copy never outranks the fuller one.
POLICY_V2 = "dedup-master-policy/2"
POLICY_VERSION = POLICY_V2


class Candidate(NamedTuple):
    """One copy in a cluster, with the evidence its holder declared. (A named tuple: an
    auditor builds one for every copy of every proposal in a log, and it is five times
    cheaper to make than a frozen dataclass.)"""

    member_id: str
    asset_id: str
    evidence: asset_pb2.Evidence
    custodial_priority: int
    #: The cluster's matches show this copy is a crop, or the bordered copy, of another
    #: (see derived_copies); ignored by policy 1.
    derived: bool = False


def _quality(e: asset_pb2.Evidence) -> int:
    # A lossless copy has no quantisation loss: rank it above any JPEG quality.
    if e.format_family == asset_pb2.FORMAT_FAMILY_LOSSLESS:
        return 101
    return e.jpeg_quality


def _date_key(e: asset_pb2.Evidence) -> tuple[int, str]:
    # Earliest known capture first; unknown dates rank last.
    return (0, e.capture_date) if e.capture_date else (1, "")


#: (rule name, key) in order; a smaller key ranks higher. Policy 1.
RULES_V1: tuple[tuple[str, Callable[[Candidate], object]], ...] = (
    ("pixel_count", lambda c: -(c.evidence.width * c.evidence.height)),
    ("lossless", lambda c: 0 if c.evidence.format_family == asset_pb2.FORMAT_FAMILY_LOSSLESS else 1),
    ("bit_depth", lambda c: -c.evidence.bit_depth),
    ("colour", lambda c: 0 if c.evidence.channels >= 3 else 1),
    ("jpeg_quality", lambda c: -_quality(c.evidence)),
    ("capture_date", lambda c: _date_key(c.evidence)),
    ("rights_known", lambda c: 1 if c.evidence.rights in ("", "unknown") else 0),
    ("custodial_priority", lambda c: c.custodial_priority),
    ("tie_break", lambda c: (c.member_id, c.asset_id)),
)


RULES_V2: tuple[tuple[str, Callable[[Candidate], object]], ...] = (
    ("not_derived", lambda c: 1 if c.derived else 0),
    *RULES_V1,
)

#: The rules of every policy version this code can compute.
POLICIES: dict[str, tuple[tuple[str, Callable[[Candidate], object]], ...]] = {
    POLICY_V1: RULES_V1,
    POLICY_V2: RULES_V2,
}
RULES = POLICIES[POLICY_VERSION]

_LOSSLESS = asset_pb2.FORMAT_FAMILY_LOSSLESS


def _key_v1(c: Candidate) -> tuple:
    # RULES_V1's keys in one call: auditors rank every proposal of a log, and ten calls per
    # copy cost three times as much. A test holds this equal to the rules one by one.
    e = c.evidence
    lossless = e.format_family == _LOSSLESS
    return (-(e.width * e.height), 0 if lossless else 1, -e.bit_depth, 0 if e.channels >= 3 else 1,
            -101 if lossless else -e.jpeg_quality, (0, e.capture_date) if e.capture_date else (1, ""),
            1 if e.rights in ("", "unknown") else 0, c.custodial_priority, (c.member_id, c.asset_id))


def _key_v2(c: Candidate) -> tuple:
    return (1 if c.derived else 0, *_key_v1(c))


#: Each version's whole key: the tuple of its rules' keys, in order.
KEYS: dict[str, Callable[[Candidate], tuple]] = {POLICY_V1: _key_v1, POLICY_V2: _key_v2}


@dataclass(frozen=True)
class Decision:
    master: Candidate
    deciding_rule: str
    ranking: tuple[Candidate, ...]


def choose_master(candidates: Sequence[Candidate], version: str = POLICY_VERSION) -> Decision:
    """Rank the copies by policy ``version``; name the rule that put the master ahead of the
    runner-up. ValueError for a version this code does not know."""
    keyed = _ranked(candidates, version)
    ranking = tuple(candidates[n] for _, n in keyed)
    return Decision(ranking[0], _deciding_rule(keyed, version), ranking)


def master_of(candidates: Sequence[Candidate], version: str = POLICY_VERSION) -> tuple[Candidate, str]:
    """``choose_master``'s master and deciding rule alone, at half the cost: what an auditor
    re-runs for every proposal in a log."""
    keyed = _ranked(candidates, version)
    return candidates[keyed[0][1]], _deciding_rule(keyed, version)


def _ranked(candidates: Sequence[Candidate], version: str) -> list[tuple[tuple, int]]:
    key = KEYS.get(version)
    if key is None:
        raise ValueError(f"unknown master policy {version!r}")
    if not candidates:
        raise ValueError("a cluster needs at least one copy")
    return sorted([(key(c), n) for n, c in enumerate(candidates)])


def _deciding_rule(keyed: list[tuple[tuple, int]], version: str) -> str:
    if len(keyed) == 1:
        return "only_copy"
    for (name, _), a, b in zip(POLICIES[version], keyed[0][0], keyed[1][0]):
        if a != b:
            return name
    # Unreachable while tie_break compares distinct (member_id, asset_id) pairs.
    return "tie_break"


Key = tuple[str, str]  # (member_id, asset_id)

#: Two copies' frames must cover shares of their images this far apart for one to count as
#: the bordered copy of the other (the matching rule's threshold for "bordered").
BORDER_SHARE = 0.03


def frame_share(e: asset_pb2.Evidence) -> float:
    """The share of the image its frame covers (1.0 when unknown or deskewed)."""
    if not (e.width and e.height and e.frame_width and e.frame_height) or e.skew_centidegrees:
        return 1.0
    return (e.frame_width * e.frame_height) / (e.width * e.height)


def derived_copies(evidence: dict[Key, asset_pb2.Evidence],
                   links: Iterable[tuple[Key, Key, int, Key | None]]) -> set[Key]:
    """The copies that policy 2 ranks last: a crop of a fuller copy, or the bordered (matted)
    copy of an unbordered one.

    ``evidence`` holds the cluster's copies; ``links`` the latest recorded match between
    each pair of them: (a, b, relation, the copy the match names as the crop or None). A crop
    is known only when the match says which side it is; a bordered copy is the one whose
    frame covers the smaller share of its image. Any other relation (an edit, a re-encode)
    has no direction, and neither copy is derived by it.
    """
    out: set[Key] = set()
    for a, b, relation, crop in links:
        if a not in evidence or b not in evidence:
            continue
        if relation == statements_pb2.RELATION_CROPPED:
            if crop in (a, b):
                out.add(crop)
        elif relation == statements_pb2.RELATION_BORDERED:
            sa, sb = frame_share(evidence[a]), frame_share(evidence[b])
            if abs(sa - sb) > BORDER_SHARE:
                out.add(a if sa < sb else b)
    return out
