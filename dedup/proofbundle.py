"""Offline inclusion proofs of one log entry (c2sp.org/tlog-proof@v1), stored as ``.tlog-proof``.

    c2sp.org/tlog-proof@v1
    extra <base64 of the entry bytes>
    index <N>
    <base64 proof hash>            one per line, from the leaf's sibling up to the root's child
    ...
                                   (an empty line)
    <the signed checkpoint note, verbatim, with any witness cosignatures>

The format treats ``extra`` as opaque and unauthenticated. Here it carries the entry itself,
and the verifier hashes it into the leaf the proof starts from, so a bundle alone proves that
exactly these bytes sit at that index in the tree the checkpoint signs. The parser accepts
one spelling only (canonical base64, no leading zeros, no stray lines).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Sequence

from dedup.checkpoint import Checkpoint, CheckpointError
from dedup.cosignature import Cosignature, CosignatureError, CosignatureVerifier, cosignatures
from dedup.merkle import HASH_SIZE, ProofError, leaf_hash, verify_inclusion
from dedup.note import NoteError, NoteVerifier, b64decode_canonical, open_note

__all__ = ["BUNDLE_HEADER", "EXTENSION", "Bundle", "BundleError", "VerifiedBundle", "verify_bundle"]

BUNDLE_HEADER = "c2sp.org/tlog-proof@v1"
EXTENSION = ".tlog-proof"
_INDEX = re.compile(r"index (0|[1-9][0-9]*)")
_MAX_PROOF = 64  # a tree of at most 2^64 leaves has at most 64 levels


class BundleError(ValueError):
    """A proof bundle is malformed or does not prove what it claims."""


def _b64(text: str, what: str) -> bytes:
    try:
        return b64decode_canonical(text, what)
    except NoteError as e:
        raise BundleError(str(e)) from None


@dataclass(frozen=True)
class Bundle:
    """An inclusion proof of ``entry`` at ``index`` in the tree of ``signed_checkpoint``."""

    entry: bytes
    index: int
    proof: tuple[bytes, ...]
    signed_checkpoint: str

    def to_text(self) -> str:
        lines = [BUNDLE_HEADER, "extra " + base64.b64encode(self.entry).decode(), f"index {self.index}"]
        lines += [base64.b64encode(h).decode() for h in self.proof]
        return "\n".join(lines) + "\n\n" + self.signed_checkpoint

    @classmethod
    def parse(cls, text: str | bytes) -> Bundle:
        if isinstance(text, (bytes, bytearray)):
            try:
                text = bytes(text).decode("utf-8")
            except UnicodeDecodeError:
                raise BundleError("bundle is not valid UTF-8") from None
        head, sep, note = text.partition("\n\n")
        if not sep:
            raise BundleError("bundle has no empty line before the checkpoint")
        lines = head.split("\n")
        if lines[0] != BUNDLE_HEADER:
            raise BundleError(f"line 1 must be {BUNDLE_HEADER!r}, got {lines[0][:60]!r}")
        if len(lines) < 2 or not lines[1].startswith("extra "):
            raise BundleError("line 2 must be 'extra <base64 entry>': this bundle does not carry its entry")
        entry = _b64(lines[1][len("extra "):], "extra (the entry)")
        if not entry:
            raise BundleError("extra (the entry) is empty")
        if len(lines) < 3:
            raise BundleError("line 3 must be 'index <N>'")
        m = _INDEX.fullmatch(lines[2])
        if not m:
            raise BundleError(f"line 3 must be 'index <N>' with N a decimal without leading zeros, got {lines[2][:60]!r}")
        proof = []
        for n, line in enumerate(lines[3:], 4):
            h = _b64(line, f"proof hash on line {n}")
            if len(h) != HASH_SIZE:
                raise BundleError(f"proof hash on line {n} is {len(h)} bytes, want {HASH_SIZE}")
            proof.append(h)
        if len(proof) > _MAX_PROOF:
            raise BundleError(f"bundle has {len(proof)} proof hashes, more than any tree needs")
        if not note:
            raise BundleError("bundle has no checkpoint after the empty line")
        return cls(entry, int(m.group(1)), tuple(proof), note)


@dataclass(frozen=True)
class VerifiedBundle:
    entry: bytes
    index: int
    checkpoint: Checkpoint
    log_key: NoteVerifier
    cosignatures: tuple[Cosignature, ...]


def verify_bundle(bundle: Bundle | str | bytes, log_verifiers: Sequence[NoteVerifier],
                  witness_verifiers: Sequence[CosignatureVerifier] = (), quorum: int = 0) -> VerifiedBundle:
    """Check a bundle alone: the checkpoint is signed by one of ``log_verifiers``, carries at
    least ``quorum`` valid cosignatures by distinct ``witness_verifiers``, and the entry sits
    at the index in its tree. Raise BundleError saying which part fails."""
    if not isinstance(bundle, Bundle):
        bundle = Bundle.parse(bundle)
    if quorum > len({w.name for w in witness_verifiers}):
        raise BundleError(f"quorum {quorum} is more than the {len({w.name for w in witness_verifiers})} witnesses given")
    try:
        opened = open_note(bundle.signed_checkpoint, list(log_verifiers))
    except NoteError as exc:
        raise BundleError(f"checkpoint: {exc}") from None
    try:
        cp = Checkpoint.parse(opened.text)
    except CheckpointError as exc:
        raise BundleError(f"checkpoint: {exc}") from None
    signer = next(v for v in log_verifiers if (v.name, v.key_id) == (opened.verified[0].name, opened.verified[0].key_id))
    if cp.origin != signer.name:
        raise BundleError(f"checkpoint origin {cp.origin!r} is not the log key's name {signer.name!r}")
    cosigs: tuple[Cosignature, ...] = ()
    if witness_verifiers:
        try:
            found = cosignatures(bundle.signed_checkpoint, list(witness_verifiers))
        except CosignatureError as exc:
            raise BundleError(f"checkpoint: {exc}") from None
        by_name: dict[str, Cosignature] = {}
        for c in found:
            by_name.setdefault(c.name, c)
        cosigs = tuple(by_name.values())
    if len(cosigs) < quorum:
        raise BundleError(f"checkpoint (size {cp.size}) carries {len(cosigs)} valid cosignatures by the given "
                          f"witnesses, fewer than the quorum of {quorum}")
    if bundle.index >= cp.size:
        raise BundleError(f"index {bundle.index} is not inside the checkpoint's tree of {cp.size} entries")
    try:
        verify_inclusion(leaf_hash(bundle.entry), bundle.index, cp.size, bundle.proof, cp.root_hash)
    except ProofError as exc:
        raise BundleError(f"entry {bundle.index} is not proven included in the tree of size {cp.size}: {exc}") from None
    return VerifiedBundle(bundle.entry, bundle.index, cp, signer, cosigs)
