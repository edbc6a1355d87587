"""C2SP tlog-checkpoint note bodies (c2sp.org/tlog-checkpoint).

A checkpoint is the text a log signs to commit to its tree head. Parsing is
strict so that a checkpoint has exactly one textual form: two different
texts for the same tree head would let a log show different faces to
different witnesses while each signature still verifies.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

__all__ = ["Checkpoint", "CheckpointError"]

_SIZE = re.compile(r"0|[1-9][0-9]*")
_MAX_SIZE = 2**64 - 1  # tree sizes are uint64 in RFC 6962


class CheckpointError(ValueError):
    """Checkpoint text or fields that do not follow c2sp.org/tlog-checkpoint."""


def _check_line(line: str, what: str) -> None:
    if not isinstance(line, str):
        raise CheckpointError(f"{what} must be a str")
    if not line:
        raise CheckpointError(f"{what} must not be empty")
    for c in line:
        # Newlines would change the line structure; other control characters
        # are forbidden in signed notes anyway.
        if ord(c) < 0x20:
            raise CheckpointError(f"{what} contains control character U+{ord(c):04X}")


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: origin, tree size, root hash and opaque extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "origin")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise CheckpointError("size must be an int")
        if not 0 <= self.size <= _MAX_SIZE:
            raise CheckpointError(f"size {self.size} is outside 0..2^64-1")
        if not isinstance(self.root_hash, (bytes, bytearray)) or len(self.root_hash) != 32:
            raise CheckpointError("root hash must be 32 bytes")
        object.__setattr__(self, "root_hash", bytes(self.root_hash))
        extensions = tuple(self.extensions)
        for i, ext in enumerate(extensions):
            _check_line(ext, f"extension line {i + 1}")
        object.__setattr__(self, "extensions", extensions)

    def to_text(self) -> str:
        """The note text: origin, size and base64 root, then extensions, one per line."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode()]
        return "".join(line + "\n" for line in lines + list(self.extensions))

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse note text, accepting only the single canonical form."""
        if not isinstance(text, str):
            raise CheckpointError("checkpoint text must be a str")
        if not text.endswith("\n"):
            raise CheckpointError("checkpoint text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError(f"checkpoint needs at least 3 lines, got {len(lines)}")
        origin, size_text, root_text, *extensions = lines
        _check_line(origin, "origin")
        if not _SIZE.fullmatch(size_text):
            raise CheckpointError(f"tree size {size_text!r} is not a plain decimal number")
        try:
            root = base64.b64decode(root_text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise CheckpointError("root hash is not valid base64") from None
        if base64.b64encode(root).decode("ascii") != root_text:
            raise CheckpointError("root hash is not canonical base64")
        if len(root) != 32:
            raise CheckpointError(f"root hash is {len(root)} bytes, want 32")
        return cls(origin, int(size_text), root, tuple(extensions))
