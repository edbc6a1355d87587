"""The node's local catalogue (SQLite, WAL): one row per file seen, plus the outbound batches.

A file's row keeps the size and mtime it was read at, so a rescan of an unchanged file reads
no bytes at all; and the Asset record last acknowledged by the coordinator, so a push sends
only what changed. Batches are written here before they are sent, so a resend after a crash
or a timeout carries the same batch id and the coordinator stores nothing twice.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from dedup import sqlitedb

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,      -- a local path, or s3://bucket/key
    source TEXT NOT NULL DEFAULT '',  -- the scanned root the file was found under
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,  -- local mtime; for objects, last-modified
    version TEXT NOT NULL DEFAULT '',  -- for objects, the ETag (a change marker, never a content hash)
    asset_id TEXT NOT NULL UNIQUE,
    scanned_unix INTEGER NOT NULL,
    error TEXT,                 -- why the file could not be read; NULL when it was
    sha256 BLOB,
    pixel_digest BLOB,
    width INTEGER, height INTEGER, bit_depth INTEGER, mode TEXT, format TEXT,
    format_family TEXT, jpeg_quality INTEGER, capture_date TEXT, low_information INTEGER,
    page_count INTEGER,
    rights_uri TEXT,            -- a wire value of dedup.rights: a rights URI, or 'unknown'
    rights_text TEXT,           -- the file's own notice, if any (kept when the catalogue overrides)
    rights_source TEXT,         -- which field decided (e.g. 'xmpRights:WebStatement', 'sidecar')
    record BLOB,                -- serialised dedup.v1.Asset as it would be sent
    pushed_record BLOB          -- the record the coordinator last acknowledged
);
CREATE TABLE IF NOT EXISTS sidecar (
    key TEXT PRIMARY KEY,       -- a path as scanned, or an accession number
    accession TEXT, title TEXT, rights TEXT
);
CREATE TABLE IF NOT EXISTS not_duplicates (
    a_asset TEXT NOT NULL, b_asset TEXT NOT NULL,  -- a_asset < b_asset; asset ids survive rescans
    marked_unix INTEGER NOT NULL, note TEXT,
    PRIMARY KEY (a_asset, b_asset)
);
CREATE TABLE IF NOT EXISTS source_state (
    source TEXT PRIMARY KEY,    -- an object-store prefix being listed
    resume_after TEXT,          -- last key fully recorded, to resume an interrupted listing
    completed_unix INTEGER
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
CREATE TABLE IF NOT EXISTS witness_state (
    origin TEXT PRIMARY KEY,    -- the log's origin (its key's name)
    size INTEGER NOT NULL,      -- the last checkpoint this node verified and cosigned
    root BLOB NOT NULL,
    note TEXT NOT NULL,         -- that checkpoint as the signed note it was shown
    verified_unix INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS master_outcomes (
    asset_id TEXT PRIMARY KEY,  -- this node's asset, in a cross-member cluster with an agreed master
    cluster_id TEXT NOT NULL,
    master_member TEXT NOT NULL,
    master_asset TEXT NOT NULL, -- the master's opaque asset id at its holder
    basis TEXT NOT NULL,        -- unanimous | deadline | ruling
    proposal_id TEXT NOT NULL,  -- the agreed proposal
    outcome_log_index INTEGER NOT NULL,  -- the MasterAgreed entry in the coordinator's log
    copies TEXT NOT NULL,       -- JSON [[member, asset id], ...]: every copy in the cluster as agreed
    pending_proposal TEXT,      -- an open or disputed re-proposal for the cluster, if any
    fetched_unix INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS master_votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    proposal_id TEXT NOT NULL,
    cluster_id TEXT NOT NULL,
    choice TEXT NOT NULL,       -- accept | reject | claim
    detail TEXT NOT NULL,       -- the reason, or the claim (kind, copy, evidence)
    statement BLOB NOT NULL,    -- the signed MasterVote exactly as sent, so a resend carries the same bytes
    state TEXT NOT NULL,        -- pending | accepted | refused
    response TEXT,              -- log index, or the coordinator's refusal
    log_index INTEGER,
    automatic INTEGER NOT NULL DEFAULT 0,  -- 1 when cast by the local rule (decisions --auto)
    voted_unix INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS master_votes_proposal ON master_votes (proposal_id);
CREATE TABLE IF NOT EXISTS master_ballots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    statement BLOB NOT NULL     -- the signed MasterBallot exactly as sent; its votes' rows hold each vote unsigned
);
CREATE TABLE IF NOT EXISTS ballot_votes (
    vote_id INTEGER PRIMARY KEY, -- a master_votes row cast in the ballot
    ballot_id INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ballot_votes_ballot ON ballot_votes (ballot_id);
CREATE TABLE IF NOT EXISTS consortium_members (
    member_id TEXT PRIMARY KEY, -- from the log's MemberAdmitted entries
    custodial_priority INTEGER NOT NULL,
    arbiter INTEGER NOT NULL,
    log_index INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS final_checkpoint (
    origin TEXT PRIMARY KEY,    -- the log's origin
    size INTEGER NOT NULL,      -- the largest checkpoint this node saw cosigned by witness_quorum of its witnesses
    root BLOB NOT NULL,
    note TEXT NOT NULL,         -- that checkpoint with the cosignatures it was shown with
    final_unix INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS witness_keys (
    vkey TEXT PRIMARY KEY,      -- a log verifier key this node trusts (C2SP vkey string)
    source TEXT NOT NULL,       -- 'config', or the LogKeyRotated entry that announced it
    retired_by TEXT,            -- the LogKeyRotated entry that replaced it; NULL while current
    added_unix INTEGER NOT NULL
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


class WitnessRecordMoved(Exception):
    """The witness record changed while a checkpoint was checked against it; nothing was saved."""

    def __init__(self, current: tuple[int, bytes] | None) -> None:
        super().__init__(f"the witness record moved to size {current[0] if current else None} meanwhile")
        self.current = current


class Catalogue:
    def __init__(self, path: Path) -> None:
        self._db = sqlitedb.connect(path, SCHEMA, synchronous="NORMAL")
        self._sidecar: dict | None = None  # the imported catalogue, loaded on first use

    def close(self) -> None:
        self._db.close()

    def transaction(self):
        return sqlitedb.transaction(self._db)

    # --- files ---------------------------------------------------------------------------

    def file(self, path: str) -> FileRow | None:
        row = self._db.execute(
            "SELECT path, size, mtime_ns, asset_id, error, record FROM files WHERE path=?", (path,)).fetchone()
        return FileRow(*row) if row else None

    def file_state(self, path: str) -> tuple[int, int, str, str] | None:
        """(size, mtime_ns, version, asset_id) as last recorded, to decide what a rescan must read."""
        return self._db.execute(
            "SELECT size, mtime_ns, version, asset_id FROM files WHERE path=?", (path,)).fetchone()

    def refingerprint_if_outdated(self, fingerprints: str) -> int:
        """When the catalogue's records were made with another fingerprint set than
        ``fingerprints`` (this version's kinds), mark every file to be read again, so the next
        scan replaces each record (same asset id) and the next push sends it; return how many
        files were marked. Recorded at once, so an interrupted scan still finishes the job."""
        row = self._db.execute("SELECT value FROM meta WHERE key='fingerprints'").fetchone()
        if row is not None and row[0] == fingerprints:
            return 0
        with self.transaction() as db:
            # A size no file has: the scan's unchanged-file check fails for every row.
            n = db.execute("UPDATE files SET size=-1 WHERE record IS NOT NULL OR error IS NOT NULL").rowcount
            db.execute("INSERT INTO meta (key, value) VALUES ('fingerprints', ?) ON CONFLICT (key) DO UPDATE"
                       " SET value=excluded.value", (fingerprints,))
        return n

    # --- object-store listings ---------------------------------------------------------------

    def listing_resume(self, source: str) -> str | None:
        """The last key recorded by an interrupted listing of ``source``, if any."""
        row = self._db.execute("SELECT resume_after FROM source_state WHERE source=?", (source,)).fetchone()
        return row[0] if row else None

    def set_listing(self, source: str, resume_after: str | None, completed: bool = False) -> None:
        self._db.execute(
            "INSERT INTO source_state (source, resume_after, completed_unix) VALUES (?, ?, ?)"
            " ON CONFLICT (source) DO UPDATE SET resume_after=excluded.resume_after,"
            " completed_unix=COALESCE(excluded.completed_unix, source_state.completed_unix)",
            (source, resume_after, int(time.time()) if completed else None))

    # --- the institution's own catalogue (sidecar) --------------------------------------------

    def replace_sidecar(self, rows: list[tuple[str, str, str, str]]) -> None:
        """Replace the imported sidecar with (key, accession, title, rights URI) rows."""
        with self.transaction() as db:
            db.execute("DELETE FROM sidecar")
            db.executemany("INSERT INTO sidecar (key, accession, title, rights) VALUES (?, ?, ?, ?)", rows)
        self._sidecar = None

    def rights_override(self, path: str) -> tuple[str, str, str] | None:
        """(uri, text, source) from the imported catalogue for this file, found by
        ``sidecar.match`` (path, then relative path, then name or stem)."""
        from .sidecar import SidecarRow, match

        if self._sidecar is None:
            self._sidecar = {k: SidecarRow(k, a or "", t or "", r or "")
                             for k, a, t, r in self._db.execute("SELECT key, accession, title, rights FROM sidecar")}
        if not self._sidecar:
            return None
        row = match(self._sidecar, path)
        return (row.rights, "", "sidecar") if row is not None and row.rights else None

    def apply_sidecar(self) -> int:
        """Re-apply sidecar rights to files already catalogued; return how many changed."""
        from .scan import rerecord_rights

        changed = 0
        for path, record, uri, source in list(self._db.execute(
                "SELECT path, record, rights_uri, rights_source FROM files WHERE error IS NULL AND record IS NOT NULL")):
            override = self.rights_override(path)
            if override is None and source == "sidecar":
                # No longer in the imported catalogue: what the file embeds is known only by reading it,
                # so the next scan reads it again (an mtime no file has fails the unchanged-file check;
                # the size stays right for the report meanwhile).
                self._db.execute("UPDATE files SET mtime_ns=-1 WHERE path=?", (path,))
            elif override and override[0] != uri:
                new_record = rerecord_rights(record, override[0])
                # rights_text stays: the file's own notice is shown beside the catalogue's statement.
                self._db.execute("UPDATE files SET rights_uri=?, rights_source=?, record=? WHERE path=?",
                                 (override[0], override[2], new_record, path))
                changed += 1
        return changed

    # --- decisions a person made ----------------------------------------------------------------

    def mark_not_duplicates(self, a_asset: str, b_asset: str, note: str = "") -> None:
        a, b = sorted((a_asset, b_asset))
        self._db.execute("INSERT OR REPLACE INTO not_duplicates VALUES (?, ?, ?, ?)", (a, b, int(time.time()), note))

    def not_duplicate_pairs(self) -> set[tuple[str, str]]:
        return {(a, b) for a, b in self._db.execute("SELECT a_asset, b_asset FROM not_duplicates")}

    def forget(self, paths: list[str]) -> None:
        """Drop files from the catalogue (after the consortium accepted their withdrawal)."""
        with self.transaction() as db:
            for p in paths:
                db.execute("DELETE FROM files WHERE path=?", (p,))

    def asset_id_of(self, path: str) -> str | None:
        row = self._db.execute("SELECT asset_id FROM files WHERE path=?", (path,)).fetchone()
        return row[0] if row else None

    def put_file(self, db: sqlite3.Connection, row: dict) -> None:
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        updates = ", ".join(f"{c}=excluded.{c}" for c in row if c != "path")
        db.execute(f"INSERT INTO files ({cols}) VALUES ({marks}) ON CONFLICT (path) DO UPDATE SET {updates}",
                   tuple(row.values()))

    def readable(self) -> list[tuple[str, bytes]]:
        """(path, record) of every file that was read successfully."""
        return list(self._db.execute("SELECT path, record FROM files WHERE error IS NULL ORDER BY path"))

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

    # --- master negotiation ----------------------------------------------------------------

    def replace_outcomes(self, rows: list[dict]) -> None:
        """Replace the agreed outcomes with the coordinator's current word on them."""
        with self.transaction() as db:
            db.execute("DELETE FROM master_outcomes")
            now = int(time.time())
            for r in rows:
                db.execute("INSERT INTO master_outcomes (asset_id, cluster_id, master_member, master_asset, basis,"
                           " proposal_id, outcome_log_index, copies, pending_proposal, fetched_unix)"
                           " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (r["asset_id"], r["cluster_id"], r["master_member"], r["master_asset"], r["basis"],
                            r["proposal_id"], r["outcome_log_index"], json.dumps(r["copies"]),
                            r.get("pending_proposal"), now))

    def outcomes(self) -> dict[str, dict]:
        """asset id -> its agreed outcome (the columns of master_outcomes; copies as a list)."""
        cols = ("asset_id", "cluster_id", "master_member", "master_asset", "basis", "proposal_id",
                "outcome_log_index", "copies", "pending_proposal", "fetched_unix")
        out = {}
        for row in self._db.execute(f"SELECT {', '.join(cols)} FROM master_outcomes ORDER BY asset_id"):
            d = dict(zip(cols, row))
            d["copies"] = [tuple(c) for c in json.loads(d["copies"])]
            out[d["asset_id"]] = d
        return out

    def pending_vote(self, proposal_id: str) -> tuple[int, str, str, bytes] | None:
        """(row id, choice, detail, statement) of a vote sent but never acknowledged, if any."""
        row = self._db.execute("SELECT id, choice, detail, statement FROM master_votes WHERE proposal_id=?"
                               " AND state='pending' ORDER BY id DESC LIMIT 1", (proposal_id,)).fetchone()
        return (row[0], row[1], row[2], bytes(row[3])) if row else None

    def add_vote(self, proposal_id: str, cluster_id: str, choice: str, detail: str, statement: bytes,
                 automatic: bool, voted_unix: int) -> int:
        cur = self._db.execute("INSERT INTO master_votes (proposal_id, cluster_id, choice, detail, statement, state,"
                               " automatic, voted_unix) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
                               (proposal_id, cluster_id, choice, detail, statement, int(automatic), voted_unix))
        return cur.lastrowid

    def settle_vote(self, vote_id: int, state: str, response: str, log_index: int | None = None) -> None:
        self._db.execute("UPDATE master_votes SET state=?, response=?, log_index=? WHERE id=?",
                         (state, response, log_index, vote_id))

    def add_ballot(self, statement: bytes, votes: list[tuple[str, str, str, str, bytes]], automatic: bool,
                   voted_unix: int) -> int:
        """Record a signed ballot and its votes, (proposal id, cluster id, choice, detail, vote
        body) each, as pending; any earlier pending vote on those proposals is replaced."""
        with self.transaction() as db:
            ballot_id = db.execute("INSERT INTO master_ballots (statement) VALUES (?)", (statement,)).lastrowid
            for proposal_id, cluster_id, choice, detail, body in votes:
                db.execute("UPDATE master_votes SET state='replaced', response='a different answer was sent instead'"
                           " WHERE proposal_id=? AND state='pending'", (proposal_id,))
                vote_id = db.execute(
                    "INSERT INTO master_votes (proposal_id, cluster_id, choice, detail, statement, state, automatic,"
                    " voted_unix) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
                    (proposal_id, cluster_id, choice, detail, body, int(automatic), voted_unix)).lastrowid
                db.execute("INSERT INTO ballot_votes (vote_id, ballot_id) VALUES (?, ?)", (vote_id, ballot_id))
        return ballot_id

    def ballot_of(self, vote_id: int) -> int | None:
        """The ballot a vote was cast in, if it was."""
        row = self._db.execute("SELECT ballot_id FROM ballot_votes WHERE vote_id=?", (vote_id,)).fetchone()
        return row[0] if row else None

    def ballot(self, ballot_id: int) -> tuple[bytes, list[tuple[int, str, str]]]:
        """(the signed ballot, (vote row id, proposal id, state) of each of its votes)."""
        (stmt,) = self._db.execute("SELECT statement FROM master_ballots WHERE id=?", (ballot_id,)).fetchone()
        rows = self._db.execute("SELECT v.id, v.proposal_id, v.state FROM ballot_votes b JOIN master_votes v"
                                " ON v.id = b.vote_id WHERE b.ballot_id=? ORDER BY v.id", (ballot_id,)).fetchall()
        return bytes(stmt), [tuple(r) for r in rows]

    def pending_ballots(self) -> list[int]:
        """Ballots sent but never acknowledged (a vote of theirs still pending), oldest first."""
        return [r[0] for r in self._db.execute(
            "SELECT DISTINCT b.ballot_id FROM ballot_votes b JOIN master_votes v ON v.id = b.vote_id"
            " WHERE v.state='pending' ORDER BY b.ballot_id")]

    def votes(self) -> list[dict]:
        cols = ("proposal_id", "cluster_id", "choice", "detail", "state", "response", "log_index", "automatic",
                "voted_unix")
        return [dict(zip(cols, r)) for r in self._db.execute(f"SELECT {', '.join(cols)} FROM master_votes ORDER BY id")]

    def consortium_members(self) -> tuple[dict[str, tuple[int, bool]], int]:
        """(member id -> (custodial priority, arbiter), log size read so far)."""
        members = {m: (p, bool(a)) for m, p, a in
                   self._db.execute("SELECT member_id, custodial_priority, arbiter FROM consortium_members")}
        row = self._db.execute("SELECT value FROM meta WHERE key='members_read_to'").fetchone()
        return members, int(row[0]) if row else 0

    def save_consortium_members(self, members: list[tuple[str, int, bool, int]], read_to: int) -> None:
        """Record (member id, priority, arbiter, log index) from MemberAdmitted entries read up to ``read_to``."""
        with self.transaction() as db:
            for m, p, a, i in members:
                db.execute("INSERT INTO consortium_members VALUES (?, ?, ?, ?) ON CONFLICT (member_id) DO UPDATE"
                           " SET custodial_priority=excluded.custodial_priority, arbiter=excluded.arbiter,"
                           " log_index=excluded.log_index", (m, p, int(a), i))
            db.execute("INSERT INTO meta (key, value) VALUES ('members_read_to', ?) ON CONFLICT (key) DO UPDATE"
                       " SET value=excluded.value", (str(read_to),))

    # --- witnessing the coordinator's log ---------------------------------------------------

    def witness_state(self, origin: str) -> tuple[int, bytes, str] | None:
        """(size, root, signed note) of the last checkpoint of ``origin`` this node verified."""
        row = self._db.execute("SELECT size, root, note FROM witness_state WHERE origin=?", (origin,)).fetchone()
        return (row[0], bytes(row[1]), row[2]) if row else None

    def advance_witness(self, origin: str, check) -> tuple[int, bytes, str]:
        """Compare and record in one transaction: ``check(state)`` gets the recorded (size, root,
        note) or None and returns the (size, root, note) to record, or raises; no other process
        or thread can record in between (a witness must never roll its record back)."""
        with self.transaction() as db:
            row = db.execute("SELECT size, root, note FROM witness_state WHERE origin=?", (origin,)).fetchone()
            size, root, note = check((row[0], bytes(row[1]), row[2]) if row else None)
            db.execute("INSERT INTO witness_state (origin, size, root, note, verified_unix) VALUES (?, ?, ?, ?, ?)"
                       " ON CONFLICT (origin) DO UPDATE SET size=excluded.size, root=excluded.root,"
                       " note=excluded.note, verified_unix=excluded.verified_unix",
                       (origin, size, root, note, int(time.time())))
        return size, root, note

    def final_checkpoint(self, origin: str) -> tuple[int, bytes, str] | None:
        """(size, root, cosigned note) of the largest checkpoint of ``origin`` seen final."""
        row = self._db.execute("SELECT size, root, note FROM final_checkpoint WHERE origin=?", (origin,)).fetchone()
        return (row[0], bytes(row[1]), row[2]) if row else None

    def save_final(self, origin: str, size: int, root: bytes, note: str) -> None:
        """Remember a checkpoint seen cosigned by a quorum, unless a larger one is remembered."""
        with self.transaction() as db:
            db.execute("INSERT INTO final_checkpoint (origin, size, root, note, final_unix) VALUES (?, ?, ?, ?, ?)"
                       " ON CONFLICT (origin) DO UPDATE SET size=excluded.size, root=excluded.root,"
                       " note=excluded.note, final_unix=excluded.final_unix"
                       " WHERE excluded.size >= final_checkpoint.size", (origin, size, root, note, int(time.time())))

    def log_keys(self) -> list[tuple[str, str, str | None]]:
        """(verifier key, source, retired_by) of every log key this node has trusted."""
        return list(self._db.execute("SELECT vkey, source, retired_by FROM witness_keys ORDER BY added_unix, vkey"))

    def trust_log_key(self, vkey: str, source: str) -> None:
        """Trust ``vkey`` unless already known (a retired key stays retired)."""
        self._db.execute("INSERT INTO witness_keys (vkey, source, retired_by, added_unix) VALUES (?, ?, NULL, ?)"
                         " ON CONFLICT (vkey) DO NOTHING", (vkey, source, int(time.time())))

    def save_witness(self, origin: str, size: int, root: bytes, note: str,
                     rotations: list[tuple[str, str, str]], *, expected: tuple[int, bytes] | None) -> None:
        """Record a verified checkpoint and the key rotations ((old, new, source)) that led to it, at once,
        if the record is still ``expected`` ((size, root) it was checked against, None for none) or
        already this checkpoint; else WitnessRecordMoved and nothing is recorded."""
        with self.transaction() as db:
            row = db.execute("SELECT size, root FROM witness_state WHERE origin=?", (origin,)).fetchone()
            current = (row[0], bytes(row[1])) if row else None
            if current != expected and current != (size, root):
                # `dedup node witness-serve` recorded another checkpoint meanwhile: saving this one
                # could roll its record back.
                raise WitnessRecordMoved(current)
            now = int(time.time())
            for old, new, source in rotations:
                db.execute("UPDATE witness_keys SET retired_by=? WHERE vkey=?", (source, old))
                db.execute("INSERT INTO witness_keys (vkey, source, retired_by, added_unix) VALUES (?, ?, NULL, ?)"
                           " ON CONFLICT (vkey) DO UPDATE SET retired_by=NULL", (new, source, now))
            db.execute("INSERT INTO witness_state (origin, size, root, note, verified_unix) VALUES (?, ?, ?, ?, ?)"
                       " ON CONFLICT (origin) DO UPDATE SET size=excluded.size, root=excluded.root,"
                       " note=excluded.note, verified_unix=excluded.verified_unix", (origin, size, root, note, now))
