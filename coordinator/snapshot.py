"""The candidate index saved to a file, so a restart reads it instead of re-parsing every record.

Rebuilding the index means reading every stored record, parsing it and recomputing the hashes
the index holds: minutes at a million assets. The coordinator saves the index's content
(``CandidateIndex.state``) when it stops, with the log size and root it reflects; on start-up
it uses the file only when the log still has that size and root (every change to the stored
assets is a log entry, so nothing changed since), the matching rule is the same, and the file's
keys are exactly the indexed assets the store holds. Anything else, a damaged file included,
and the index is rebuilt from the store as before: the file is a shortcut, never a source.

The file holds the index as it is in memory (rows and chunk tables), so loading it rebuilds
nothing: a restart costs reading the file. Format: one uncompressed ``.npz`` (numpy's zip of
arrays, read without pickle): ``header`` (UTF-8 JSON), ``members`` and ``asset_ids``
(NUL-separated UTF-8), ``member_of`` (each key's member number; all ones for a key removed),
and ``index/...``, the arrays of ``CandidateIndex.state``.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from dedup.matching import Rule

#: Changes when the file's layout does; a file of another format is not used.
FORMAT = 2

Key = tuple[str, str]


class SnapshotUnusable(Exception):
    """The saved index cannot stand for the store: the reason says why (it is rebuilt)."""


@dataclass(frozen=True)
class Header:
    log_size: int
    log_root: str  # hex
    rule: dict
    assets: int

    def to_json(self) -> bytes:
        return json.dumps({"format": FORMAT, **asdict(self)}, sort_keys=True).encode()


def rule_fields(rule: Rule) -> dict:
    return json.loads(json.dumps(asdict(rule)))


#: ``member_of`` of a key that was removed (its place in the index is kept).
_GONE = np.iinfo(np.uint32).max


def save(path: Path, header: Header, keys: list[Key | None], arrays: dict[str, np.ndarray]) -> int:
    """Write the index to ``path`` atomically (a temporary file renamed over it); returns its size."""
    members = sorted({k[0] for k in keys if k is not None})
    number = {m: i for i, m in enumerate(members)}
    ids = ["" if k is None else k[1] for k in keys]
    if any("\0" in a for a in ids) or any("\0" in m for m in members):
        raise ValueError("an id holds a NUL character")
    out = {
        "header": np.frombuffer(header.to_json(), dtype=np.uint8),
        "members": np.frombuffer("\0".join(members).encode(), dtype=np.uint8),
        "asset_ids": np.frombuffer("\0".join(ids).encode(), dtype=np.uint8),
        "member_of": np.array([_GONE if k is None else number[k[0]] for k in keys], dtype=np.uint32),
    }
    for name, value in arrays.items():
        out[f"index/{name}"] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **out)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path.stat().st_size


def read_header(path: Path) -> Header:
    try:
        with np.load(path, allow_pickle=False) as z:
            raw = json.loads(bytes(z["header"]).decode())
    except FileNotFoundError:
        raise SnapshotUnusable("no saved index") from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise SnapshotUnusable(f"the saved index cannot be read: {exc}") from exc
    if raw.get("format") != FORMAT:
        raise SnapshotUnusable(f"the saved index is of format {raw.get('format')}, this release reads {FORMAT}")
    try:
        return Header(int(raw["log_size"]), str(raw["log_root"]), dict(raw["rule"]), int(raw["assets"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise SnapshotUnusable(f"the saved index's header is damaged: {exc}") from exc


def load(path: Path) -> tuple[list[Key | None], dict[str, np.ndarray]]:
    """The keys (member ids interned: one string per member) and arrays saved by ``save``."""
    import sys

    try:
        with np.load(path, allow_pickle=False) as z:
            members = [sys.intern(m) for m in bytes(z["members"]).decode().split("\0")]
            ids = bytes(z["asset_ids"]).decode().split("\0")
            member_of = z["member_of"]
            arrays = {name.removeprefix("index/"): z[name] for name in z.files if name.startswith("index/")}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise SnapshotUnusable(f"the saved index cannot be read: {exc}") from exc
    if not member_of.size:
        ids = []
    held = member_of[member_of != _GONE]
    if len(ids) != member_of.size or (held.size and int(held.max()) >= len(members)):
        raise SnapshotUnusable("the saved index's keys are damaged")
    keys = [None if m == _GONE else (members[m], a) for m, a in zip(member_of.tolist(), ids)]
    return keys, arrays
