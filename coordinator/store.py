"""The coordinator's durable store: SQLite (WAL) by default, PostgreSQL by URL.

Everything an intake changes — the batch, its assets, the matches, the clusters and the log
entries recording them — is written in one transaction, so an acknowledged batch is either
wholly stored or, after a crash, wholly absent and safely resent under the same batch id.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from dedup.v1 import statements_pb2

from .database import TYPES, Database

#: Asset ids per ``IN (...)`` list (well under every database's limit on parameters).
_IN_CHUNK = 500

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS members (
    member_id TEXT PRIMARY KEY,
    public_key {BLOB} NOT NULL,
    admitted_index {INT} NOT NULL,
    arbiter {INT} NOT NULL DEFAULT 0, -- as logged in its MemberAdmitted entry
    reader {INT} NOT NULL DEFAULT 0,  -- likewise: looks up only, sends no batches or votes
    auditor {INT} NOT NULL DEFAULT 0  -- likewise: reads every log entry, sends no batches or votes
);
CREATE TABLE IF NOT EXISTS lookup_counts (
    member_id TEXT PRIMARY KEY,       -- only counts: what was looked up is never stored
    calls {INT} NOT NULL,
    files {INT} NOT NULL,
    since_unix {INT} NOT NULL         -- start of the period not yet logged
);
CREATE TABLE IF NOT EXISTS withdrawals (
    member_id TEXT NOT NULL,
    withdrawal_id TEXT NOT NULL,
    statement {BLOB} NOT NULL,
    withdrawn {INT} NOT NULL,
    log_index {INT} NOT NULL,
    PRIMARY KEY (member_id, withdrawal_id)
);
CREATE TABLE IF NOT EXISTS tombstones (
    member_id TEXT NOT NULL,
    asset_id TEXT NOT NULL,
    log_index {INT} NOT NULL,
    PRIMARY KEY (member_id, asset_id)
);
CREATE TABLE IF NOT EXISTS revocations (
    member_id TEXT NOT NULL,
    public_key {BLOB} NOT NULL,
    log_index {INT} NOT NULL,
    PRIMARY KEY (member_id, public_key)
);
CREATE TABLE IF NOT EXISTS batches (
    member_id TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    sequence {INT} NOT NULL,
    manifest {BLOB} NOT NULL,
    accepted {INT} NOT NULL,
    new_matches {INT} NOT NULL,
    log_index {INT} NOT NULL,
    received_unix {INT} NOT NULL,
    PRIMARY KEY (member_id, batch_id)
);
CREATE TABLE IF NOT EXISTS assets (
    member_id TEXT NOT NULL,
    asset_id TEXT NOT NULL,
    record {BLOB} NOT NULL,           -- serialised dedup.v1.Asset as the member declared it
    batch_id TEXT NOT NULL,
    PRIMARY KEY (member_id, asset_id)
);
CREATE TABLE IF NOT EXISTS clusters (
    member_id TEXT NOT NULL,
    asset_id TEXT NOT NULL,
    cluster_id TEXT NOT NULL,
    PRIMARY KEY (member_id, asset_id)
);
CREATE INDEX IF NOT EXISTS clusters_by_id ON clusters (cluster_id);
CREATE TABLE IF NOT EXISTS followers (
    member_id TEXT NOT NULL,
    asset_id TEXT NOT NULL,           -- a copy kept out of the candidate index
    version_id TEXT NOT NULL,         -- the same member's indexed asset it follows
    PRIMARY KEY (member_id, asset_id)
);
CREATE TABLE IF NOT EXISTS matches (
    match_id TEXT PRIMARY KEY,
    cluster_id TEXT NOT NULL,
    a_member TEXT NOT NULL, a_asset TEXT NOT NULL,
    b_member TEXT NOT NULL, b_asset TEXT NOT NULL,
    relation {INT} NOT NULL,
    algorithm TEXT NOT NULL,
    distance {INT} NOT NULL,
    kept_permille {INT} NOT NULL,
    log_index {INT} NOT NULL,
    crop {INT} NOT NULL DEFAULT 0     -- which side is the crop: 1 a, 2 b, 0 not known
);
CREATE INDEX IF NOT EXISTS matches_a ON matches (a_member);
CREATE INDEX IF NOT EXISTS matches_b ON matches (b_member);
CREATE INDEX IF NOT EXISTS matches_a_asset ON matches (a_member, a_asset);
CREATE INDEX IF NOT EXISTS matches_b_asset ON matches (b_member, b_asset);
CREATE TABLE IF NOT EXISTS proposals (
    proposal_id TEXT PRIMARY KEY,
    cluster_id TEXT NOT NULL,
    master_member TEXT NOT NULL,
    master_asset TEXT NOT NULL,
    deciding_rule TEXT NOT NULL,
    log_index {INT} NOT NULL
);
CREATE INDEX IF NOT EXISTS proposals_by_cluster ON proposals (cluster_id);
CREATE TABLE IF NOT EXISTS negotiations (
    proposal_id TEXT PRIMARY KEY,
    cluster_id TEXT NOT NULL,
    status {INT} NOT NULL,            -- dedup.v1.ProposalStatus
    proposal {BLOB} NOT NULL,         -- the MasterProposed body as logged
    log_index {INT} NOT NULL,
    deadline_unix {INT} NOT NULL,
    outcome_index {INT},              -- the MasterAgreed entry, once agreed
    agreed_member TEXT,
    agreed_asset TEXT,
    basis {INT} NOT NULL DEFAULT 0,   -- dedup.v1.AgreementBasis
    superseded_by TEXT                -- the proposal that replaced it, if any
);
CREATE INDEX IF NOT EXISTS negotiations_by_cluster ON negotiations (cluster_id);
CREATE INDEX IF NOT EXISTS negotiations_by_status ON negotiations (status, deadline_unix);
CREATE TABLE IF NOT EXISTS proposal_holders (
    member_id TEXT NOT NULL,
    log_index {INT} NOT NULL,         -- the proposal's entry: pages are in log order
    proposal_id TEXT NOT NULL,
    PRIMARY KEY (member_id, log_index)
);
CREATE TABLE IF NOT EXISTS votes (
    proposal_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    choice {INT} NOT NULL,
    statement {BLOB} NOT NULL,        -- the member's MasterVote body as signed (a ballot's vote: as serialised in it)
    log_index {INT} NOT NULL,
    PRIMARY KEY (proposal_id, member_id)
);
CREATE TABLE IF NOT EXISTS rulings (
    proposal_id TEXT PRIMARY KEY,
    arbiter_id TEXT NOT NULL,
    statement {BLOB} NOT NULL,        -- the arbiter's MasterRuling body as signed
    log_index {INT} NOT NULL
);
CREATE TABLE IF NOT EXISTS log_entries (
    idx {INT} PRIMARY KEY,
    entry {BLOB} NOT NULL,
    leaf_hash {BLOB} NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    size {INT} PRIMARY KEY,
    note TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cosignatures (
    size {INT} NOT NULL,              -- the published checkpoint it cosigns
    member_id TEXT NOT NULL,          -- the witness (its cosigner name is its member id)
    line TEXT NOT NULL,               -- the C2SP signature line as verified, newline-terminated
    cosigned_unix {INT} NOT NULL,     -- the cosignature's own timestamp
    PRIMARY KEY (size, member_id)
);
"""


@dataclass(frozen=True)
class StoredBatch:
    manifest: bytes
    accepted: int
    new_matches: int
    log_index: int


@dataclass(frozen=True)
class StoredMatch:
    match_id: str
    cluster_id: str
    a_member: str
    a_asset: str
    b_member: str
    b_asset: str
    relation: int
    algorithm: str
    distance: int
    kept_permille: int = 1000
    crop: int = 0  # which side is the crop: 1 a, 2 b, 0 not known


#: Version of SCHEMA. A database records the version that wrote it; MIGRATIONS[v] holds the
#: statements that bring version v to v + 1, applied in order in one transaction at start-up.
#: A (table, column, definition) step adds the column unless the table already has it (neither
#: database has a portable ADD COLUMN IF NOT EXISTS).
SCHEMA_VERSION = 7
MIGRATIONS: dict[int, tuple[str | tuple[str, str, str], ...]] = {
    # 1 -> 2: proposals are counted per cluster on every proposal.
    1: ("CREATE INDEX IF NOT EXISTS proposals_by_cluster ON proposals (cluster_id)",),
    # 2 -> 3: members' witness cosignatures on published checkpoints.
    2: ("CREATE TABLE IF NOT EXISTS cosignatures (size {INT} NOT NULL, member_id TEXT NOT NULL, line TEXT NOT NULL,"
        " cosigned_unix {INT} NOT NULL, PRIMARY KEY (size, member_id))",),
    # 3 -> 4: master negotiation (proposal states, holders, votes, rulings), arbiters, and the
    # side of a crop match, with indexes to find a cluster's matches by asset. Proposals logged
    # before have no state: the cluster's next proposal is the first open to votes.
    3: (("members", "arbiter", "{INT} NOT NULL DEFAULT 0"),
        ("matches", "crop", "{INT} NOT NULL DEFAULT 0"),
        "CREATE INDEX IF NOT EXISTS matches_a_asset ON matches (a_member, a_asset)",
        "CREATE INDEX IF NOT EXISTS matches_b_asset ON matches (b_member, b_asset)",
        "CREATE TABLE IF NOT EXISTS negotiations (proposal_id TEXT PRIMARY KEY, cluster_id TEXT NOT NULL,"
        " status {INT} NOT NULL, proposal {BLOB} NOT NULL, log_index {INT} NOT NULL, deadline_unix {INT} NOT NULL,"
        " outcome_index {INT}, agreed_member TEXT, agreed_asset TEXT, basis {INT} NOT NULL DEFAULT 0,"
        " superseded_by TEXT)",
        "CREATE INDEX IF NOT EXISTS negotiations_by_cluster ON negotiations (cluster_id)",
        "CREATE INDEX IF NOT EXISTS negotiations_by_status ON negotiations (status, deadline_unix)",
        "CREATE TABLE IF NOT EXISTS proposal_holders (member_id TEXT NOT NULL, log_index {INT} NOT NULL,"
        " proposal_id TEXT NOT NULL, PRIMARY KEY (member_id, log_index))",
        "CREATE TABLE IF NOT EXISTS votes (proposal_id TEXT NOT NULL, member_id TEXT NOT NULL, choice {INT} NOT NULL,"
        " statement {BLOB} NOT NULL, log_index {INT} NOT NULL, PRIMARY KEY (proposal_id, member_id))",
        "CREATE TABLE IF NOT EXISTS rulings (proposal_id TEXT PRIMARY KEY, arbiter_id TEXT NOT NULL,"
        " statement {BLOB} NOT NULL, log_index {INT} NOT NULL)"),
    # 4 -> 5: reader members (lookup only), and the per-member lookup counts not yet logged.
    4: (("members", "reader", "{INT} NOT NULL DEFAULT 0"),
        "CREATE TABLE IF NOT EXISTS lookup_counts (member_id TEXT PRIMARY KEY, calls {INT} NOT NULL,"
        " files {INT} NOT NULL, since_unix {INT} NOT NULL)"),
    # 5 -> 6: copies that follow one of their member's versions instead of being indexed.
    # Assets stored before are all versions.
    5: ("CREATE TABLE IF NOT EXISTS followers (member_id TEXT NOT NULL, asset_id TEXT NOT NULL,"
        " version_id TEXT NOT NULL, PRIMARY KEY (member_id, asset_id))",),
    # 6 -> 7: auditor members (read every log entry; others read the entries about them).
    6: (("members", "auditor", "{INT} NOT NULL DEFAULT 0"),),
}


class SchemaError(Exception):
    """The database was written by a newer version of the coordinator."""


def _columns(db: Database, table: str) -> set[str]:
    if db.dialect == "sqlite":
        return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
    return {row[0] for row in db.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ?",
        (table,))}


class Store:
    def __init__(self, location: str | Path, *, options: str | None = None) -> None:
        # One connection, shared under the service's intake lock.
        self._db = Database(location, SCHEMA, options=options)
        self._migrate()

    def _migrate(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        version = int(row[0]) if row else SCHEMA_VERSION
        if version > SCHEMA_VERSION:
            self._db.close()
            raise SchemaError(f"the database has schema version {version}; this coordinator knows up to "
                              f"{SCHEMA_VERSION}: upgrade the coordinator, never downgrade it")
        with self._db.transaction() as db:
            for v in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[v]:
                    if isinstance(statement, tuple):
                        table, column, definition = statement
                        if column in _columns(db, table):
                            continue
                        statement = f"ALTER TABLE {table} ADD COLUMN {column} {definition}"
                    db.execute(statement.format(**TYPES[db.dialect]))
            db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key)"
                       " DO UPDATE SET value=excluded.value", (str(SCHEMA_VERSION),))

    @property
    def dialect(self) -> str:
        return self._db.dialect

    def close(self) -> None:
        self._db.close()

    def transaction(self):
        return self._db.transaction()

    # --- reads -------------------------------------------------------------------------

    def admitted_members(self) -> dict[str, bytes]:
        return {m: k for m, k in self._db.execute("SELECT member_id, public_key FROM members")}

    def admitted_arbiters(self) -> set[str]:
        return {m for (m,) in self._db.execute("SELECT member_id FROM members WHERE arbiter = 1")}

    def admitted_readers(self) -> set[str]:
        return {m for (m,) in self._db.execute("SELECT member_id FROM members WHERE reader = 1")}

    def admitted_auditors(self) -> set[str]:
        return {m for (m,) in self._db.execute("SELECT member_id FROM members WHERE auditor = 1")}

    def proposal_holders(self, proposal_id: str) -> set[str]:
        """Members holding a copy in a proposal's cluster, from the proposal as logged (empty if unknown)."""
        row = self._db.execute("SELECT proposal FROM negotiations WHERE proposal_id = ?", (proposal_id,)).fetchone()
        if row is None:
            return set()
        body = statements_pb2.MasterProposed()
        body.ParseFromString(bytes(row[0]))
        return {c.ref.member_id for c in body.copies}

    @staticmethod
    def count_lookup(db, member_id: str, files: int, now: int) -> None:
        db.execute("INSERT INTO lookup_counts (member_id, calls, files, since_unix) VALUES (?, 1, ?, ?)"
                   " ON CONFLICT (member_id) DO UPDATE SET calls = lookup_counts.calls + 1,"
                   " files = lookup_counts.files + excluded.files", (member_id, files, now))

    @staticmethod
    def lookup_counts(db) -> list[tuple[str, int, int, int]]:
        """(member, calls, files, since) of every count not yet logged."""
        return [tuple(r) for r in db.execute(
            "SELECT member_id, calls, files, since_unix FROM lookup_counts ORDER BY member_id")]

    def revoked_keys(self) -> set[tuple[str, bytes]]:
        return {(m, bytes(k)) for m, k in self._db.execute("SELECT member_id, public_key FROM revocations")}

    @staticmethod
    def add_revocation(db, member_id: str, public_key: bytes, log_index: int) -> None:
        db.execute("INSERT INTO revocations VALUES (?, ?, ?)", (member_id, public_key, log_index))

    def find_withdrawal(self, member_id: str, withdrawal_id: str) -> tuple[bytes, int, int] | None:
        row = self._db.execute("SELECT statement, withdrawn, log_index FROM withdrawals WHERE member_id=? AND withdrawal_id=?",
                               (member_id, withdrawal_id)).fetchone()
        return (bytes(row[0]), row[1], row[2]) if row else None

    @staticmethod
    def withdraw(db, member_id: str, withdrawal_id: str, statement: bytes, asset_ids: list[str], log_index: int) -> None:
        """Tombstone the assets: their records go, a tombstone stays; re-declaring one revives it."""
        db.execute("INSERT INTO withdrawals VALUES (?, ?, ?, ?, ?)",
                   (member_id, withdrawal_id, statement, len(asset_ids), log_index))
        for a in asset_ids:
            db.execute("DELETE FROM assets WHERE member_id=? AND asset_id=?", (member_id, a))
            db.execute("DELETE FROM clusters WHERE member_id=? AND asset_id=?", (member_id, a))
            db.execute("DELETE FROM followers WHERE member_id=? AND asset_id=?", (member_id, a))
            db.execute("INSERT INTO tombstones VALUES (?, ?, ?) ON CONFLICT (member_id, asset_id)"
                       " DO UPDATE SET log_index=excluded.log_index", (member_id, a, log_index))

    def find_batch(self, member_id: str, batch_id: str) -> StoredBatch | None:
        row = self._db.execute(
            "SELECT manifest, accepted, new_matches, log_index FROM batches WHERE member_id=? AND batch_id=?",
            (member_id, batch_id),
        ).fetchone()
        return StoredBatch(*row) if row else None

    def last_sequence(self, member_id: str) -> int:
        row = self._db.execute("SELECT MAX(sequence) FROM batches WHERE member_id=?", (member_id,)).fetchone()
        return row[0] if row and row[0] is not None else 0

    def assets(self) -> Iterator[tuple[str, str, bytes, str | None, str | None]]:
        """Every live asset with its cluster id and the asset id of the version it follows
        (each None if it has none), in one pass: the start-up load."""
        for member_id, asset_id, record, cluster, version in self._db.stream(
                "SELECT a.member_id, a.asset_id, a.record, c.cluster_id, f.version_id FROM assets a"
                " LEFT JOIN clusters c ON c.member_id = a.member_id AND c.asset_id = a.asset_id"
                " LEFT JOIN followers f ON f.member_id = a.member_id AND f.asset_id = a.asset_id"
                " ORDER BY a.member_id, a.asset_id"):
            yield member_id, asset_id, bytes(record), cluster, version

    def asset_keys(self) -> Iterator[tuple[str, str, str | None, str | None]]:
        """As ``assets`` without the records: what a restart from a saved index reads."""
        yield from self._db.stream(
            "SELECT a.member_id, a.asset_id, c.cluster_id, f.version_id FROM assets a"
            " LEFT JOIN clusters c ON c.member_id = a.member_id AND c.asset_id = a.asset_id"
            " LEFT JOIN followers f ON f.member_id = a.member_id AND f.asset_id = a.asset_id"
            " ORDER BY a.member_id, a.asset_id")

    def asset(self, member_id: str, asset_id: str) -> bytes | None:
        row = self._db.execute("SELECT record FROM assets WHERE member_id=? AND asset_id=?", (member_id, asset_id)).fetchone()
        return row[0] if row else None

    def cluster_of(self, member_id: str, asset_id: str) -> str | None:
        row = self._db.execute("SELECT cluster_id FROM clusters WHERE member_id=? AND asset_id=?", (member_id, asset_id)).fetchone()
        return row[0] if row else None

    def cluster_assets(self, cluster_id: str) -> list[tuple[str, str]]:
        return list(self._db.execute(
            "SELECT member_id, asset_id FROM clusters WHERE cluster_id=? ORDER BY member_id, asset_id", (cluster_id,)))

    def matches_for(self, member_id: str, offset: int, limit: int) -> list[StoredMatch]:
        """A member's matches whose two assets are both still held (not tombstoned)."""
        rows = self._db.execute(
            "SELECT match_id, cluster_id, a_member, a_asset, b_member, b_asset, relation, algorithm, distance,"
            " kept_permille FROM matches m WHERE (a_member=? OR b_member=?)"
            " AND EXISTS (SELECT 1 FROM assets x WHERE x.member_id=m.a_member AND x.asset_id=m.a_asset)"
            " AND EXISTS (SELECT 1 FROM assets y WHERE y.member_id=m.b_member AND y.asset_id=m.b_asset)"
            " ORDER BY log_index LIMIT ? OFFSET ?",
            (member_id, member_id, limit, offset),
        ).fetchall()
        return [StoredMatch(*r) for r in rows]

    def counts(self) -> dict[str, int]:
        q = {
            "assets": "SELECT COUNT(*) FROM assets",
            "batches": "SELECT COUNT(*) FROM batches",
            "matches": "SELECT COUNT(*) FROM matches",
            "clusters": "SELECT COUNT(DISTINCT cluster_id) FROM clusters",
            "proposals": "SELECT COUNT(*) FROM proposals",
            "log_entries": "SELECT COUNT(*) FROM log_entries",
        }
        return {k: self._db.execute(sql).fetchone()[0] for k, sql in q.items()}

    def latest_proposals(self) -> list[tuple[str, str, str, str]]:
        """(cluster_id, master_member, master_asset, deciding_rule) of each cluster's newest proposal."""
        return list(self._db.execute(
            "SELECT cluster_id, master_member, master_asset, deciding_rule FROM proposals p"
            " WHERE log_index = (SELECT MAX(log_index) FROM proposals q WHERE q.cluster_id = p.cluster_id)"
            " ORDER BY cluster_id"))

    def leaf_hashes(self) -> Iterator[bytes]:
        for (h,) in self._db.stream("SELECT leaf_hash FROM log_entries ORDER BY idx"):
            yield h

    def log_range(self, start: int, end: int) -> list[tuple[bytes, bytes]]:
        """(entry, leaf hash) for entries [start, end)."""
        return [(bytes(e), bytes(h)) for e, h in self._db.execute(
            "SELECT entry, leaf_hash FROM log_entries WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end))]

    def log_entries(self, start: int, end: int) -> list[bytes]:
        return [e for (e,) in self._db.execute(
            "SELECT entry FROM log_entries WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end))]

    def checkpoints(self) -> list[tuple[int, str]]:
        return list(self._db.execute("SELECT size, note FROM checkpoints ORDER BY size"))

    def checkpoint(self, size: int) -> str | None:
        """The signed checkpoint published for ``size`` entries, if one was."""
        row = self._db.execute("SELECT note FROM checkpoints WHERE size = ?", (size,)).fetchone()
        return row[0] if row else None

    def latest_checkpoint(self) -> tuple[int, str] | None:
        row = self._db.execute("SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else None

    # --- writes (inside transaction()) ----------------------------------------------------

    @staticmethod
    def add_log_entry(db: Database, index: int, entry: bytes, leaf_hash: bytes) -> None:
        db.execute("INSERT INTO log_entries (idx, entry, leaf_hash) VALUES (?, ?, ?)", (index, entry, leaf_hash))

    @staticmethod
    def add_member(db: Database, member_id: str, public_key: bytes, log_index: int, arbiter: bool = False,
                   reader: bool = False, auditor: bool = False) -> None:
        db.execute("INSERT INTO members (member_id, public_key, admitted_index, arbiter, reader, auditor)"
                   " VALUES (?, ?, ?, ?, ?, ?)", (member_id, public_key, log_index, int(arbiter), int(reader),
                                                  int(auditor)))

    @staticmethod
    def replace_key(db: Database, member_id: str, public_key: bytes) -> None:
        """The member's key from now on (the MemberKeyReplaced entry holds the old one)."""
        db.execute("UPDATE members SET public_key = ? WHERE member_id = ?", (public_key, member_id))

    @staticmethod
    def add_batch(db, member_id: str, batch_id: str, sequence: int, manifest: bytes, accepted: int,
                  new_matches: int, log_index: int, received_unix: int) -> None:
        db.execute("INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (member_id, batch_id, sequence, manifest, accepted, new_matches, log_index, received_unix))

    @staticmethod
    def put_assets(db, member_id: str, records: list[tuple[str, bytes]], batch_id: str) -> None:
        """Store a batch's records (asset id, serialized record) in two statements."""
        db.executemany("INSERT INTO assets VALUES (?, ?, ?, ?) ON CONFLICT (member_id, asset_id)"
                       " DO UPDATE SET record=excluded.record, batch_id=excluded.batch_id",
                       [(member_id, a, r, batch_id) for a, r in records])
        db.executemany("DELETE FROM tombstones WHERE member_id=? AND asset_id=?", [(member_id, a) for a, _ in records])

    @staticmethod
    def set_followers(db, member_id: str, version_id: str, asset_ids: list[str]) -> None:
        """``asset_ids`` (of ``member_id``) follow ``version_id``."""
        db.executemany("INSERT INTO followers VALUES (?, ?, ?) ON CONFLICT (member_id, asset_id)"
                       " DO UPDATE SET version_id=excluded.version_id", [(member_id, a, version_id) for a in asset_ids])

    @staticmethod
    def unfollow(db, member_id: str, asset_id: str) -> None:
        db.execute("DELETE FROM followers WHERE member_id=? AND asset_id=?", (member_id, asset_id))

    @staticmethod
    def promote(db, version: tuple[str, str], followers: list[tuple[str, str]]) -> None:
        """``version``, a follower until now, is a version that ``followers`` follow."""
        Store.unfollow(db, *version)
        Store.set_followers(db, version[0], version[1], [k[1] for k in followers])

    @staticmethod
    def first_links(db, member_id: str, asset_id: str, cluster_id: str,
                    limit: int = 64) -> list[tuple[tuple[str, str], int, str, int]]:
        """An asset's earliest matches in a cluster, in log order: (the other copy, relation,
        algorithm, which side is the crop: 1 this asset, 2 the other, 0 neither)."""
        rows = []
        for side, other in (("a", "b"), ("b", "a")):
            rows += [(idx, (m, a), relation, algorithm, crop if crop == 0 else (1 if (crop == 1) == (side == "a") else 2))
                     for idx, m, a, relation, algorithm, crop in db.execute(
                         f"SELECT log_index, {other}_member, {other}_asset, relation, algorithm, crop FROM matches"
                         f" WHERE {side}_member=? AND {side}_asset=? AND cluster_id=? ORDER BY log_index LIMIT {int(limit)}",
                         (member_id, asset_id, cluster_id))]
        return [row[1:] for row in sorted(rows)[:limit]]

    @staticmethod
    def leave_cluster(db, member_id: str, asset_id: str) -> None:
        db.execute("DELETE FROM clusters WHERE member_id=? AND asset_id=?", (member_id, asset_id))

    @staticmethod
    def set_cluster(db, member_id: str, asset_id: str, cluster_id: str) -> None:
        db.execute("INSERT INTO clusters VALUES (?, ?, ?) ON CONFLICT (member_id, asset_id)"
                   " DO UPDATE SET cluster_id=excluded.cluster_id", (member_id, asset_id, cluster_id))

    @staticmethod
    def rename_cluster(db, old: str, new: str) -> None:
        db.execute("UPDATE clusters SET cluster_id=? WHERE cluster_id=?", (new, old))
        db.execute("UPDATE matches SET cluster_id=? WHERE cluster_id=?", (new, old))

    @staticmethod
    def add_match(db, m: StoredMatch, log_index: int) -> None:
        db.execute("INSERT INTO matches (match_id, cluster_id, a_member, a_asset, b_member, b_asset, relation,"
                   " algorithm, distance, kept_permille, log_index, crop) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                   # The same pair linked again in its cluster (a copy declared with a new picture):
                   # the later match is the one that holds.
                   " ON CONFLICT (match_id) DO UPDATE SET relation=excluded.relation, algorithm=excluded.algorithm,"
                   " distance=excluded.distance, kept_permille=excluded.kept_permille, log_index=excluded.log_index,"
                   " crop=excluded.crop",
                   (m.match_id, m.cluster_id, m.a_member, m.a_asset, m.b_member, m.b_asset,
                    m.relation, m.algorithm, m.distance, m.kept_permille, log_index, m.crop))

    @staticmethod
    def links_between(db, keys: list[tuple[str, str]]) -> list[tuple[tuple[str, str], tuple[str, str], int, tuple[str, str] | None]]:
        """The latest recorded match between each pair of ``keys`` (whatever cluster it was
        recorded in): (a, b, relation, the crop or None), as master policy 2 reads them."""
        wanted = set(keys)
        latest: dict[tuple, tuple[int, tuple]] = {}
        by_member: dict[str, list[str]] = {}
        for member_id, asset_id in sorted(wanted):
            by_member.setdefault(member_id, []).append(asset_id)
        # A few hundred ids per statement: a cluster of thousands of copies costs tens of
        # statements, not two per copy.
        chunks = [(m, ids[i:i + _IN_CHUNK]) for m, ids in by_member.items() for i in range(0, len(ids), _IN_CHUNK)]
        for side in ("a", "b"):
            for member_id, ids in chunks:
                for am, aa, bm, ba, relation, crop, idx in db.execute(
                        "SELECT a_member, a_asset, b_member, b_asset, relation, crop, log_index FROM matches"
                        f" WHERE {side}_member=? AND {side}_asset IN ({', '.join('?' * len(ids))})", (member_id, *ids)):
                    a, b = (am, aa), (bm, ba)
                    if a not in wanted or b not in wanted:
                        continue
                    pair = (min(a, b), max(a, b))
                    if pair not in latest or latest[pair][0] < idx:
                        latest[pair] = (idx, (a, b, relation, a if crop == 1 else b if crop == 2 else None))
        return [v for _, v in sorted(latest.values())]

    @staticmethod
    def add_proposal(db, proposal_id: str, cluster_id: str, master_member: str, master_asset: str,
                     deciding_rule: str, log_index: int) -> None:
        db.execute("INSERT INTO proposals VALUES (?, ?, ?, ?, ?, ?)",
                   (proposal_id, cluster_id, master_member, master_asset, deciding_rule, log_index))

    def cosignature_lines(self, size: int) -> list[str]:
        """The stored witness cosignature lines for checkpoint ``size``, by member id."""
        return [line for (line,) in self._db.execute(
            "SELECT line FROM cosignatures WHERE size = ? ORDER BY member_id", (size,))]

    def put_cosignature(self, size: int, member_id: str, line: str, cosigned_unix: int) -> None:
        """Keep one cosignature per member per checkpoint: a later one replaces the earlier."""
        self._db.execute("INSERT INTO cosignatures (size, member_id, line, cosigned_unix) VALUES (?, ?, ?, ?)"
                         " ON CONFLICT (size, member_id) DO UPDATE SET line=excluded.line,"
                         " cosigned_unix=excluded.cosigned_unix", (size, member_id, line, cosigned_unix))

    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key)"
                         " DO UPDATE SET value=excluded.value", (key, value))

    def add_checkpoint(self, size: int, note: str) -> None:
        self._db.execute("INSERT INTO checkpoints (size, note) VALUES (?, ?) ON CONFLICT (size) DO NOTHING", (size, note))
