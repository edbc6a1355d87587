"""The node's local catalogue (SQLite, WAL): one row per file seen, plus the outbound batches.

A file's row keeps the size and mtime it was read at, so a rescan of an unchanged file reads
no bytes at all; and the Asset record last acknowledged by the coordinator, so a push sends
only what changed. Batches are written here before they are sent, so a resend after a crash
or a timeout carries the same batch id and the coordinator stores nothing twice.
"""

from __future__ import annotations

import json
import sqlite3

from dedup import sqlitedb
import time
from dataclasses import dataclass
from pathlib import Path


SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    asset_id TEXT NOT NULL UNIQUE,
    scanned_unix INTEGER NOT NULL,
    error TEXT,                 -- why the file could not be read; NULL when it was
    sha256 BLOB,
    width INTEGER, height INTEGER, bit_depth INTEGER, mode TEXT, format TEXT,
    format_family TEXT, jpeg_quality INTEGER, capture_date TEXT, low_information INTEGER,
    record BLOB,                -- serialised dedup.v1.Asset as it would be sent
    pushed_record BLOB          -- the record the coordinator last acknowledged
);
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    sequence INTEGER NOT NULL UNIQUE,
    manifest BLOB NOT NULL,     -- serialised, signed dedup.v1.SignedStatement
    assets BLOB NOT NULL,       -- serialised dedup.v1.AssetList
    paths TEXT NOT NULL,        -- JSON list of the files whose records the batch carries
    state TEXT NOT NULL,        -- pending | acknowledged | refused
    detail TEXT,
    created_unix INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class FileRow:
    path: str
    size: int
    mtime_ns: int
    asset_id: str
    error: str | None
    record: bytes | None


@dataclass(frozen=True)
class Batch:
    batch_id: str
    sequence: int
    manifest: bytes
    assets: bytes
    paths: list[str]


class Catalogue:
    def __init__(self, path: Path) -> None:
        self._db = sqlitedb.connect(path, SCHEMA, synchronous="NORMAL")

    def close(self) -> None:
        self._db.close()

    def transaction(self):
        return sqlitedb.transaction(self._db)

    # --- files ---------------------------------------------------------------------------

    def file(self, path: str) -> FileRow | None:
        row = self._db.execute(
            "SELECT path, size, mtime_ns, asset_id, error, record FROM files WHERE path=?", (path,)).fetchone()
        return FileRow(*row) if row else None

    def stat_index(self) -> dict[str, tuple[int, int, str]]:
        """path -> (size, mtime_ns, asset_id), to decide what a rescan must read."""
        return {p: (s, m, a) for p, s, m, a in self._db.execute("SELECT path, size, mtime_ns, asset_id FROM files")}

    def put_file(self, db: sqlite3.Connection, row: dict) -> None:
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        updates = ", ".join(f"{c}=excluded.{c}" for c in row if c != "path")
        db.execute(f"INSERT INTO files ({cols}) VALUES ({marks}) ON CONFLICT (path) DO UPDATE SET {updates}",
                   tuple(row.values()))

    def readable(self) -> list[tuple[str, bytes]]:
        """(path, record) of every file that was read successfully."""
        return list(self._db.execute("SELECT path, record FROM files WHERE error IS NULL ORDER BY path"))

    def unreadable(self) -> list[tuple[str, str]]:
        return list(self._db.execute("SELECT path, error FROM files WHERE error IS NOT NULL ORDER BY path"))

    def unpushed(self) -> list[tuple[str, bytes]]:
        """(path, record) of readable files whose record the coordinator has not acknowledged."""
        return list(self._db.execute(
            "SELECT path, record FROM files WHERE error IS NULL AND record IS NOT NULL"
            " AND (pushed_record IS NULL OR pushed_record != record)"
            " AND path NOT IN (SELECT value FROM batches, json_each(batches.paths) WHERE state='pending')"
            " ORDER BY path"))

    def counts(self) -> dict[str, int]:
        q = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0), COUNT(error), COUNT(pushed_record) FROM files").fetchone()
        return {"files": q[0], "bytes": q[1], "unreadable": q[2], "pushed": q[3]}

    # --- batches -------------------------------------------------------------------------

    def next_sequence(self, db: sqlite3.Connection) -> int:
        row = db.execute("SELECT MAX(sequence) FROM batches").fetchone()
        return (row[0] or 0) + 1

    def add_batch(self, db: sqlite3.Connection, b: Batch) -> None:
        db.execute("INSERT INTO batches VALUES (?, ?, ?, ?, ?, 'pending', NULL, ?)",
                   (b.batch_id, b.sequence, b.manifest, b.assets, json.dumps(b.paths), int(time.time())))

    def pending_batches(self) -> list[Batch]:
        rows = self._db.execute(
            "SELECT batch_id, sequence, manifest, assets, paths FROM batches WHERE state='pending' ORDER BY sequence")
        return [Batch(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    def acknowledge(self, batch: Batch, records: dict[str, bytes], detail: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE batches SET state='acknowledged', detail=? WHERE batch_id=?", (detail, batch.batch_id))
            for path, record in records.items():
                db.execute("UPDATE files SET pushed_record=? WHERE path=?", (record, path))

    def refuse(self, batch: Batch, detail: str) -> None:
        self._db.execute("UPDATE batches SET state='refused', detail=? WHERE batch_id=?", (detail, batch.batch_id))
