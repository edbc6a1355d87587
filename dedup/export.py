"""The log export an auditor verifies offline.

An export is a folder:

    entries              every log entry in order, each framed as uint32be(length) || bytes
    checkpoints/<size>   the signed checkpoint (C2SP signed note) published at that tree size
    log.pub              the coordinator's verifier key (C2SP vkey), for convenience only:
                         auditors pass the key they trust with --key

The coordinator writes it; the auditor reads it; nothing else is needed to check the log.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

ENTRIES = "entries"
CHECKPOINTS = "checkpoints"
PUBLIC_KEY = "log.pub"
MAX_ENTRY = 1 << 20


class ExportError(ValueError):
    """The export folder is missing a part or is not well formed."""


def write_entries(f: BinaryIO, entries: Iterable[bytes]) -> int:
    n = 0
    for e in entries:
        f.write(struct.pack(">I", len(e)))
        f.write(e)
        n += 1
    return n


def read_entries(path: Path) -> Iterator[bytes]:
    """Yield entries in order; raise ExportError on a truncated or oversized frame."""
    for _, _, entry in read_frames(path):
        yield entry


def read_frames(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """(index, file offset, entry) in order, read in large blocks (an export may hold millions
    of small entries); ExportError on a truncated or oversized frame."""
    with open_entries(path) as f:
        buf, base, pos, index = b"", 0, 0, 0  # buf holds the file from offset `base`
        while True:
            if len(buf) - pos < 4 + MAX_ENTRY:
                buf, base, pos = buf[pos:] + f.read(BLOCK), base + pos, 0
            if pos == len(buf):
                return
            n = frame_length(buf, pos, index)
            yield index, base + pos, buf[pos + 4 : pos + 4 + n]
            pos += 4 + n
            index += 1


#: Bytes read at a time from an entries file.
BLOCK = 8 << 20
_LENGTH = struct.Struct(">I")


def open_entries(path: Path) -> BinaryIO:
    try:
        return open(path / ENTRIES, "rb")
    except OSError as exc:
        raise ExportError(f"cannot read {path / ENTRIES}: {exc.strerror}") from exc


def frame_length(buf: bytes, pos: int, index: int) -> int:
    """The length of entry ``index``, framed at ``pos`` in ``buf`` (which holds the rest of the
    file, or at least 4 + MAX_ENTRY bytes of it); ExportError says what is wrong."""
    if len(buf) - pos < 4:
        raise ExportError(f"entry {index}: truncated length prefix")
    (n,) = _LENGTH.unpack_from(buf, pos)
    if n > MAX_ENTRY:
        raise ExportError(f"entry {index}: declared length {n} exceeds {MAX_ENTRY}")
    if len(buf) - pos - 4 < n:
        raise ExportError(f"entry {index}: truncated ({len(buf) - pos - 4} of {n} bytes)")
    return n


def checkpoint_name(size: int) -> str:
    return f"{size:012d}"


def write_checkpoint(path: Path, size: int, note: str) -> None:
    d = path / CHECKPOINTS
    d.mkdir(parents=True, exist_ok=True)
    (d / checkpoint_name(size)).write_text(note, encoding="utf-8")


def read_checkpoints(path: Path) -> list[tuple[str, str]]:
    """(file name, signed note text) for every checkpoint, oldest first."""
    d = path / CHECKPOINTS
    if not d.is_dir():
        raise ExportError(f"{d} is missing: an export needs at least one signed checkpoint")
    out = [(p.name, p.read_text(encoding="utf-8")) for p in sorted(d.iterdir()) if p.is_file()]
    if not out:
        raise ExportError(f"{d} holds no checkpoint")
    return out
