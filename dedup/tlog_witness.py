"""The C2SP tlog-witness protocol (https://c2sp.org/tlog-witness): the `add-checkpoint` request
and answer, and the witness's decision, with no server or client code.

A log POSTs `<prefix>/add-checkpoint` with the size the witness last cosigned ("old N"), a
consistency proof from it, and the new signed checkpoint; the witness answers with its
cosignature lines, or a status that says what is wrong: 400 malformed, 403 no trusted
signature, 404 unknown log, 409 the old size is not the witness's (the body says its size) or
the same size with another root, 422 a consistency proof that fails. The public witness
network and tools such as litewitness speak it, so any of them can cosign this log, and a
member node can cosign any log that speaks it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dedup.checkpoint import Checkpoint, CheckpointError
from dedup.merkle import ProofError, verify_consistency
from dedup.note import NoteError, NoteVerifier, open_note, split_note

PATH = "/add-checkpoint"
#: Content type of a 409 answer's body: the witness's latest cosigned size and a newline.
SIZE_CONTENT_TYPE = "text/x.tlog.size"
#: The most consistency proof lines a request may carry (a proof within a 2^63 tree).
MAX_PROOF_LINES = 63
#: A request larger than this is not a checkpoint with a proof.
MAX_BODY_BYTES = 64 * 1024


class Rejection(Exception):
    """The witness's refusal: an HTTP status, what is wrong, and for 409 its own size."""

    def __init__(self, status: int, message: str, size: int | None = None, *, evidence: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.size = size
        #: The log showed a history that contradicts the one cosigned: worth keeping.
        self.evidence = evidence


@dataclass(frozen=True)
class AddCheckpoint:
    old_size: int
    proof: tuple[bytes, ...]
    #: The checkpoint as a signed note (it may carry several signatures).
    signed_checkpoint: str

    def to_body(self) -> bytes:
        lines = [f"old {self.old_size}"] + [base64.b64encode(h).decode() for h in self.proof]
        return ("\n".join(lines) + "\n\n" + self.signed_checkpoint).encode("utf-8")

    @classmethod
    def parse(cls, body: bytes) -> AddCheckpoint:
        """Parse a request body; a malformed one is a 400 Rejection."""
        if len(body) > MAX_BODY_BYTES:
            raise Rejection(400, f"request body over {MAX_BODY_BYTES} bytes")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise Rejection(400, "request body is not UTF-8") from None
        head, sep, note = text.partition("\n\n")
        if not sep:
            raise Rejection(400, "no empty line between the old size and proof lines and the checkpoint")
        lines = head.split("\n")
        size_text = lines[0].removeprefix("old ")
        if not lines[0].startswith("old ") or not _decimal(size_text):
            raise Rejection(400, "the first line must be 'old <size>', the size in decimal with no leading zeroes")
        if len(lines) - 1 > MAX_PROOF_LINES:
            raise Rejection(400, f"{len(lines) - 1} consistency proof lines; at most {MAX_PROOF_LINES}")
        proof = []
        for n, line in enumerate(lines[1:], start=2):
            try:
                h = base64.b64decode(line, validate=True)
            except (binascii.Error, ValueError):
                h = b""
            if len(h) != 32 or base64.b64encode(h).decode() != line:
                raise Rejection(400, f"line {n} is not a base64 SHA-256 hash")
            proof.append(h)
        return cls(int(size_text), tuple(proof), note)

    def checkpoint(self) -> Checkpoint:
        """The checkpoint the note carries, unverified (its origin says which log's keys to
        check it with); a 400 Rejection if the note is not a signed checkpoint."""
        try:
            return Checkpoint.parse(split_note(self.signed_checkpoint)[0])
        except (NoteError, CheckpointError) as exc:
            raise Rejection(400, f"not a signed checkpoint: {exc}") from None


def _decimal(text: str) -> bool:
    return text.isascii() and text.isdigit() and (text == "0" or not text.startswith("0")) and len(text) <= 20


def decide(request: AddCheckpoint, logs: Mapping[str, Sequence[NoteVerifier]],
           recorded: tuple[int, bytes] | None) -> Checkpoint:
    """The checkpoint to cosign, or the Rejection the spec names.

    ``logs``: origin -> the log keys this witness trusts for it. ``recorded``: (size, root) of
    the latest checkpoint it cosigned for the request's origin, None if none. The caller must
    check and record atomically (two requests must not both pass against one record).
    """
    cp = request.checkpoint()
    keys = logs.get(cp.origin)
    if not keys:
        raise Rejection(404, f"unknown log {cp.origin!r}")
    try:
        open_note(request.signed_checkpoint, list(keys))
    except NoteError:
        raise Rejection(403, f"no signature by a key this witness trusts for {cp.origin!r} verifies") from None
    if request.old_size > cp.size:
        raise Rejection(400, f"old size {request.old_size} is larger than the checkpoint's size {cp.size}")
    mine = recorded[0] if recorded else 0
    if request.old_size != mine:
        raise Rejection(409, f"old size {request.old_size} is not {mine}, the size this witness last cosigned", mine)
    if request.old_size == 0:
        if request.proof:
            raise Rejection(400, "a consistency proof from size 0 must be empty")
        return cp
    if request.old_size == cp.size:
        if cp.root_hash != recorded[1]:
            raise Rejection(409, f"a checkpoint of size {cp.size} with another root than the one this witness "
                                 "cosigned", mine, evidence=True)
        if request.proof:
            # RFC 9162: the proof between a tree and itself is empty; any hash in it proves nothing.
            raise Rejection(422, f"a consistency proof from size {cp.size} to itself must be empty")
        return cp
    try:
        verify_consistency(request.old_size, cp.size, list(request.proof), recorded[1], cp.root_hash)
    except ProofError as exc:
        raise Rejection(422, f"the consistency proof from size {request.old_size} to {cp.size} fails: {exc}",
                        evidence=True) from None
    return cp


def size_body(size: int) -> bytes:
    """A 409 answer's body."""
    return f"{size}\n".encode()


def parse_size(body: bytes) -> int:
    """The witness's size from a 409 answer's body; ValueError if it is not one."""
    text = body.decode("ascii", "replace")
    if not text.endswith("\n") or not _decimal(text[:-1]):
        raise ValueError("a 409 answer's body is not a decimal size and a newline")
    return int(text[:-1])


def cosignature_lines(body: bytes) -> list[str]:
    """The signature lines of a 200 answer, each ending in a newline; ValueError if malformed."""
    text = body.decode("utf-8")
    if not text.endswith("\n"):
        raise ValueError("the answer does not end in a newline")
    lines = [line + "\n" for line in text[:-1].split("\n")]
    if not lines or not all(line.startswith("\u2014 ") for line in lines):
        raise ValueError("the answer is not signature lines ('\u2014 name signature')")
    return lines
