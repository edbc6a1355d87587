"""The coordinator's side of witnessing: consistency proofs, and members' cosignatures on checkpoints.

Members are the log's witnesses (SPEC.md 8.2). A member's cosigner name is its member id and its
cosigner key is the Ed25519 key it signs statements with, under the ``cosignature/v1`` key id
(algorithm byte 0x04). A cosignature is stored only if it is the caller's, verifies, and covers
the exact text of a checkpoint this coordinator published.
"""

from __future__ import annotations

import grpc

from dedup.cosignature import CosignatureError, CosignatureVerifier
from dedup.note import NoteError, split_note

from .refusal import Refusal

#: How far a cosignature's timestamp may be ahead of the coordinator's clock.
MAX_FUTURE_SECONDS = 300


def witness_verifier(member) -> CosignatureVerifier:
    """The cosigner key of a member (``consortium.Member``): its member id and its statement key."""
    return CosignatureVerifier(member.settings.id, member.verifier.public_key)


def consistency_proof(core, old_size: int, new_size: int) -> tuple[int, list[bytes], str]:
    """(new_size, RFC 9162 proof hashes, cosigned checkpoint of new_size); new_size 0 is the latest."""
    latest = core.store.latest_checkpoint()
    latest_size = latest[0] if latest else 0
    if new_size == 0:
        new_size = latest_size
    if old_size > new_size:
        raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, "bad_sizes",
                      f"old_size {old_size} is larger than new_size {new_size}")
    if new_size > latest_size:
        raise Refusal(grpc.StatusCode.OUT_OF_RANGE, "beyond_latest",
                      f"new_size {new_size} is beyond the latest checkpoint (size {latest_size})")
    for which, size in (("old_size", old_size), ("new_size", new_size)):
        if core.store.checkpoint(size) is None:
            raise Refusal(grpc.StatusCode.NOT_FOUND, "unpublished_size",
                          f"{which} {size} is not the size of a published checkpoint")
    proof = core.log.tree.consistency_proof(old_size, new_size)
    return new_size, proof, core.log.checkpoint_note(new_size)


def add_cosignature(core, identity: str, cosigned: str) -> tuple[int, str]:
    """Check and store the caller's cosignature; return (checkpoint size, the stored line).

    Refusals, in order: not a member or revoked (PERMISSION_DENIED); not a signed note
    (INVALID_ARGUMENT); no line by the caller's cosigner key (INVALID_ARGUMENT); the line does not
    verify (UNAUTHENTICATED); timestamp too far ahead (INVALID_ARGUMENT); not the text of a
    published checkpoint (NOT_FOUND). Nothing is stored on a refusal.
    """
    member = core.member(identity, "it cannot cosign")
    try:
        text, sigs = split_note(cosigned)
    except NoteError as exc:
        raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, "bad_note", f"not a signed note: {exc}") from exc
    verifier = witness_verifier(member)
    mine = [s for s in sigs if (s.name, s.key_id) == (verifier.name, verifier.key_id)]
    if not mine:
        raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, "no_cosignature",
                      f"the note carries no cosignature by {verifier.name}+{verifier.key_id.hex()}, the cosigner key "
                      f"of {identity!r}")
    line = mine[-1]
    try:
        cosig = verifier.verify(text, line.signature)
    except CosignatureError as exc:
        raise Refusal(grpc.StatusCode.UNAUTHENTICATED, "bad_signature", str(exc)) from exc
    now = int(core.clock())
    if cosig.timestamp > now + MAX_FUTURE_SECONDS:
        raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, "future_timestamp",
                      f"cosignature time {cosig.timestamp} is {cosig.timestamp - now} s ahead of the coordinator's "
                      f"clock (at most {MAX_FUTURE_SECONDS} s allowed)")
    stored = line.to_line()
    # The store's one connection is shared: writing outside the intake lock could land inside
    # an intake's open transaction.
    with core.lock:
        size = _published_size(core, text)
        core.store.put_cosignature(size, identity, stored, cosig.timestamp)
    return size, stored


def _published_size(core, text: str) -> int:
    """The size of the published checkpoint whose text is exactly ``text``."""
    lines = text.split("\n")
    size_text = lines[1] if len(lines) > 2 else ""
    size = int(size_text) if size_text.isdigit() and (size_text == "0" or not size_text.startswith("0")) else None
    published = core.store.checkpoint(size) if size is not None and size < 2**63 else None
    if published is None:
        raise Refusal(grpc.StatusCode.NOT_FOUND, "unknown_checkpoint",
                      f"this log published no checkpoint of size {size_text!r}")
    if split_note(published)[0] != text:
        raise Refusal(grpc.StatusCode.NOT_FOUND, "unknown_checkpoint",
                      f"the cosigned text is not the checkpoint this log published for size {size}")
    return size
