"""SQLite the way every local store here uses it: WAL, autocommit, explicit transactions."""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def connect(path: Path, schema: str, *, synchronous: str = "FULL", threads: bool = False) -> sqlite3.Connection:
    """Open (creating) a database file in WAL mode and apply ``schema``.

    Autocommit mode, so that transactions are exactly the ``transaction()`` blocks.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=not threads)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("PRAGMA foreign_keys=ON")
    db.executescript(schema)
    return db


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        # SQLite rolls some failures back itself (a full disk, an I/O error); a COMMIT that
        # failed leaves the transaction open. Either way none of it is kept, and the
        # connection is left ready for the next transaction.
        if db.in_transaction:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        raise
