"""The published master-file policy: which copy in a cross-member cluster is the master.

Pure and deterministic, so the coordinator that proposes and the auditor that checks run
the same code on the same evidence and must reach the same answer. SPEC.md ("Master
policy") is the normative text; POLICY_VERSION changes whenever the ranking does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from dedup.v1 import asset_pb2

POLICY_VERSION = "dedup-master-policy/1"


@dataclass(frozen=True)
class Candidate:
    """One copy in a cluster, with the evidence its holder declared."""

    member_id: str
    asset_id: str
    evidence: asset_pb2.Evidence
    custodial_priority: int


def _quality(e: asset_pb2.Evidence) -> int:
    # A lossless copy has no quantisation loss: rank it above any JPEG quality.
    if e.format_family == asset_pb2.FORMAT_FAMILY_LOSSLESS:
        return 101
    return e.jpeg_quality


def _date_key(e: asset_pb2.Evidence) -> tuple[int, str]:
    # Earliest known capture first; unknown dates rank last.
    return (0, e.capture_date) if e.capture_date else (1, "")


#: (rule name, key) in order; a smaller key ranks higher.
RULES: tuple[tuple[str, Callable[[Candidate], object]], ...] = (
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


def _key(c: Candidate) -> tuple:
    return tuple(rule(c) for _, rule in RULES)


@dataclass(frozen=True)
class Decision:
    master: Candidate
    deciding_rule: str
    ranking: tuple[Candidate, ...]


def choose_master(candidates: Sequence[Candidate]) -> Decision:
    """Rank the copies; name the rule that put the master ahead of the runner-up."""
    if not candidates:
        raise ValueError("a cluster needs at least one copy")
    ranking = tuple(sorted(candidates, key=_key))
    if len(ranking) == 1:
        return Decision(ranking[0], "only_copy", ranking)
    first, second = ranking[0], ranking[1]
    for name, rule in RULES:
        if rule(first) != rule(second):
            return Decision(first, name, ranking)
    # Unreachable while tie_break compares distinct (member_id, asset_id) pairs.
    return Decision(first, "tie_break", ranking)
