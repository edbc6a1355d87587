"""Witness quorums: which listed witnesses validly cosigned a checkpoint (SPEC.md 8.2).

A checkpoint is final for a party when at least a quorum of the witnesses it lists have
cosigned it: the log can then no longer show that party one history and others another
without a witness holding two signed, contradicting checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dedup.cosignature import CosignatureError, CosignatureVerifier, cosignatures
from dedup.note import NoteError, NoteVerifier


class WitnessKeyError(ValueError):
    """Not a witness key."""


def parse_witness(vkey: str) -> CosignatureVerifier:
    """A witness's cosigner key, from a C2SP cosigner key (0x04) or from a member's statement
    verifier key (0x01): a member cosigns with its statement key under its member id."""
    try:
        return CosignatureVerifier.from_string(vkey)
    except CosignatureError as as_cosigner:
        try:
            statement = NoteVerifier.from_string(vkey)
        except NoteError:
            raise WitnessKeyError(f"not a witness key ({as_cosigner}), nor a member's statement key") from None
        return CosignatureVerifier.from_raw(statement.name, statement.public_bytes())


@dataclass(frozen=True)
class Quorum:
    """How a checkpoint stands against a quorum of listed witnesses."""

    cosigned_by: tuple[str, ...]  # names of the listed witnesses whose cosignature verifies
    needed: int
    bad: tuple[str, ...] = ()  # listed witnesses whose line on it does not verify

    @property
    def reached(self) -> bool:
        return len(self.cosigned_by) >= self.needed


def count(signed_note: str, witnesses: Sequence[CosignatureVerifier], needed: int) -> Quorum:
    """Which of ``witnesses`` validly cosigned ``signed_note``. A line that fails by one of them
    is named in ``bad`` and not counted; lines by anyone else are ignored. The note's own log
    signature is the caller's to check."""
    good, bad = [], []
    for w in witnesses:
        try:
            if cosignatures(signed_note, [w]):
                good.append(w.name)
        except CosignatureError:
            bad.append(w.name)
    return Quorum(tuple(sorted(good)), needed, tuple(sorted(bad)))
