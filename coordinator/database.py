"""The coordinator's database connection: SQLite by default, PostgreSQL by URL.

One small adapter so the store's SQL is written once: statements use ``?`` placeholders
and portable syntax (``ON CONFLICT``), which this adapter passes to SQLite as they are and
to PostgreSQL (psycopg 3) with ``%s`` placeholders. Schemas name their column types
``{BLOB}`` and ``{INT}``, filled in per database.

A store that cannot take a write or answer (disk full, read-only, the PostgreSQL server
restarted or unreachable) raises StoreUnavailable, which the gRPC layer turns into a status
naming the problem; a lost PostgreSQL connection is reopened on the next statement.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import grpc

from dedup import sqlitedb

TYPES = {
    "sqlite": {"BLOB": "BLOB", "INT": "INTEGER"},
    "postgresql": {"BLOB": "BYTEA", "INT": "BIGINT"},
}


_cursor_ids = itertools.count()


def is_url(location: str | Path) -> bool:
    return str(location).startswith(("postgresql://", "postgres://"))


class DatabaseError(Exception):
    """The database cannot be reached or refused an operation; the message says which."""


class StoreUnavailable(DatabaseError):
    """The store cannot do this now (full, read-only, unreachable); nothing of the operation was
    kept and the same request may succeed later. ``code`` is the gRPC status to answer with."""

    def __init__(self, code: grpc.StatusCode, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message


def store_fault(exc: BaseException) -> StoreUnavailable | None:
    """The StoreUnavailable a driver error amounts to, or None for an error of the program's own
    (a constraint violated, bad SQL), which must not pass for a passing outage."""
    if isinstance(exc, StoreUnavailable):
        return exc
    full = "the coordinator's store is out of space ({}); nothing of this request was stored: retry once space is freed"
    down = "the coordinator's store is unavailable ({}); nothing of this request was stored: retry later"
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc)
        if "full" in text:
            return StoreUnavailable(grpc.StatusCode.RESOURCE_EXHAUSTED, "store_full", full.format(f"SQLite: {text}"))
        if "readonly" in text or "read-only" in text:
            return StoreUnavailable(grpc.StatusCode.UNAVAILABLE, "store_read_only",
                                    down.format(f"SQLite: {text}; the storage is read-only"))
        if any(k in text for k in ("I/O error", "unable to open", "locked", "no such file")):
            return StoreUnavailable(grpc.StatusCode.UNAVAILABLE, "store_io", down.format(f"SQLite: {text}"))
        return None
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return None
    if isinstance(exc, psycopg.errors.DiskFull):
        return StoreUnavailable(grpc.StatusCode.RESOURCE_EXHAUSTED, "store_full", full.format(f"PostgreSQL: {exc}"))
    if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
        return StoreUnavailable(grpc.StatusCode.UNAVAILABLE, "store_read_only", down.format(f"PostgreSQL: {exc}"))
    if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
        return StoreUnavailable(grpc.StatusCode.UNAVAILABLE, "store_unreachable",
                                down.format(f"PostgreSQL: {str(exc).strip() or type(exc).__name__}"))
    return None


def _faults(fn):
    """Run ``fn``, raising driver outages as StoreUnavailable."""
    try:
        return fn()
    except Exception as exc:
        fault = store_fault(exc)
        if fault is None or fault is exc:
            raise
        raise fault from exc


class Database:
    def __init__(self, location: str | Path, schema: str, *, options: str | None = None) -> None:
        self.location = str(location)
        self._options = options
        if is_url(location):
            self.dialect = "postgresql"
            self._conn: Any = self._connect_pg()
            self._conn.execute(schema.format(**TYPES["postgresql"]))
        else:
            self.dialect = "sqlite"
            self._conn = sqlitedb.connect(Path(location), schema.format(**TYPES["sqlite"]), synchronous="FULL",
                                          threads=True)

    def _connect_pg(self):
        import psycopg

        try:
            extra = {"options": self._options} if self._options else {}
            return psycopg.connect(self.location, autocommit=True, connect_timeout=10, **extra)
        except psycopg.Error as exc:
            raise DatabaseError(f"cannot connect to PostgreSQL: {exc}") from exc

    def _live(self):
        """The connection, reopened if the server dropped it (a restart, a terminated backend)."""
        if self.dialect == "postgresql" and (self._conn.closed or self._conn.broken):
            try:
                self._conn = self._connect_pg()
            except DatabaseError as exc:
                raise StoreUnavailable(grpc.StatusCode.UNAVAILABLE, "store_unreachable",
                                       f"the coordinator's store is unavailable ({exc}); retry later") from exc
        return self._conn

    def execute(self, sql: str, params: tuple | list = ()):
        if self.dialect == "postgresql":
            sql = re.sub(r"\?", "%s", sql)
        return _faults(lambda: self._live().execute(sql, params))

    def stream(self, sql: str, params: tuple | list = (), *, rows: int = 10_000) -> Iterator[tuple]:
        """The rows of a large query, ``rows`` at a time: the start-up scans read every asset
        and every log entry, which must not be held in memory at once. SQLite's cursor already
        steps through the result; psycopg would fetch the whole of it, so PostgreSQL reads
        through a server-side cursor (in a read-only transaction of its own)."""
        if self.dialect == "sqlite":
            yield from _faults(lambda: self._conn.execute(sql, params))
            return
        sql = re.sub(r"\?", "%s", sql)
        with _translated():
            conn = self._live()
            with conn.transaction(), conn.cursor(name=f"dedup_stream_{next(_cursor_ids)}") as cur:
                cur.itersize = rows
                cur.execute(sql, params)
                while batch := cur.fetchmany(rows):
                    yield from batch

    def executemany(self, sql: str, rows) -> None:
        if self.dialect == "postgresql":
            def many():
                with self._live().cursor() as cur:
                    cur.executemany(re.sub(r"\?", "%s", sql), rows)
            _faults(many)
        else:
            _faults(lambda: self._conn.executemany(sql, rows))

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        if self.dialect == "sqlite":
            with _translated():
                with sqlitedb.transaction(self._conn):
                    yield self
            return
        with _translated():
            conn = self._live()
            conn.execute("BEGIN")
            try:
                yield self
                conn.execute("COMMIT")
            except BaseException:
                if not (conn.closed or conn.broken):
                    try:
                        conn.execute("ROLLBACK")
                    except Exception:  # noqa: BLE001 - the first error is the one to report
                        pass
                raise

    def close(self) -> None:
        self._conn.close()


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        fault = store_fault(exc)
        if fault is None or fault is exc:
            raise
        raise fault from exc
