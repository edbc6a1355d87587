"""The coordinator's database connection: SQLite by default, PostgreSQL by URL.

One small adapter so the store's SQL is written once: statements use ``?`` placeholders
and portable syntax (``ON CONFLICT``), which this adapter passes to SQLite as they are and
to PostgreSQL (psycopg 3) with ``%s`` placeholders. Schemas name their column types
``{BLOB}`` and ``{INT}``, filled in per database.

A store that cannot take a write or answer (disk full, read-only, the PostgreSQL server
restarted or unreachable) raises StoreUnavailable, which the gRPC layer turns into a status
naming the problem. A lost PostgreSQL connection, and a SQLite file whose storage failed
(an I/O error, the file system turned read-only), is reopened on the next statement, so the
coordinator recovers without a restart once the storage is back.
"""

from __future__ import annotations

import errno
import itertools
import os
import re
import sqlite3
import threading
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


def storage_read_only(path: str | Path) -> bool:
    """Whether the file system holding ``path`` refuses writes: mounted read-only, or turned
    read-only by the kernel after an error (ext4 ``errors=remount-ro`` marks the file system
    read-only without changing the mount flags, so the flags alone do not tell)."""
    folder = Path(path).parent
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return True
        # An unnamed temporary file: nothing is left behind, and no file of the store is
        # opened and closed here (closing one would drop SQLite's locks on it).
        fd = os.open(folder, os.O_TMPFILE | os.O_WRONLY, 0o600)
    except OSError as exc:
        return exc.errno == errno.EROFS
    os.close(fd)
    return False


def store_fault(exc: BaseException, path: str | Path | None = None) -> StoreUnavailable | None:
    """The StoreUnavailable a driver error amounts to, or None for an error of the program's own
    (a constraint violated, bad SQL), which must not pass for a passing outage. ``path``, a
    SQLite file, lets an I/O error be told apart as read-only storage."""
    if isinstance(exc, StoreUnavailable):
        return exc
    full = "the coordinator's store is out of space ({}); nothing of this request was stored: retry once space is freed"
    down = "the coordinator's store is unavailable ({}); nothing of this request was stored: retry later"
    if isinstance(exc, sqlite3.ProgrammingError) and "closed database" in str(exc):
        # Another request dropped the connection after a storage fault while this one used it.
        return StoreUnavailable(grpc.StatusCode.UNAVAILABLE, "store_io", down.format(f"SQLite: {exc}"))
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc)
        if "full" in text:
            return StoreUnavailable(grpc.StatusCode.RESOURCE_EXHAUSTED, "store_full", full.format(f"SQLite: {text}"))
        if "readonly" in text or "read-only" in text:
            return StoreUnavailable(grpc.StatusCode.UNAVAILABLE, "store_read_only",
                                    down.format(f"SQLite: {text}; the storage is read-only"))
        if any(k in text for k in ("I/O error", "unable to open", "locked", "no such file")):
            # A file system the kernel turned read-only under the store shows in SQLite as an
            # I/O error or a file it cannot open, not as "readonly".
            if path is not None and "locked" not in text and storage_read_only(path):
                return StoreUnavailable(grpc.StatusCode.UNAVAILABLE, "store_read_only",
                                        down.format(f"SQLite: {text}; the storage is read-only"))
            return StoreUnavailable(grpc.StatusCode.UNAVAILABLE, "store_io", down.format(f"SQLite: {text}"))
        return None
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return None
    if isinstance(exc, psycopg.errors.DiskFull):
        return StoreUnavailable(grpc.StatusCode.RESOURCE_EXHAUSTED, "store_full", full.format(f"PostgreSQL: {exc}"))
    if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
        return StoreUnavailable(grpc.StatusCode.UNAVAILABLE, "store_read_only",
                                down.format(f"PostgreSQL: {exc}; the store is read-only"))
    if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
        return StoreUnavailable(grpc.StatusCode.UNAVAILABLE, "store_unreachable",
                                down.format(f"PostgreSQL: {str(exc).strip() or type(exc).__name__}"))
    return None


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class Database:
    def __init__(self, location: str | Path, schema: str, *, options: str | None = None) -> None:
        self.location = str(location)
        self._options = options
        self._reopening = threading.RLock()
        self._local = threading.local()  # .txn: this thread is inside transaction()
        if is_url(location):
            self.dialect = "postgresql"
            self._path: Path | None = None
            self._conn: Any = self._connect_pg()
            self._conn.execute(schema.format(**TYPES["postgresql"]))
        else:
            self.dialect = "sqlite"
            self._path = Path(location).resolve()
            self._conn = sqlitedb.connect(Path(location), schema.format(**TYPES["sqlite"]), synchronous="FULL",
                                          threads=True)
            self._file = _identity(self._path)

    def _connect_pg(self):
        import psycopg

        try:
            extra = {"options": self._options} if self._options else {}
            return psycopg.connect(self.location, autocommit=True, connect_timeout=10, **extra)
        except psycopg.Error as exc:
            raise DatabaseError(f"cannot connect to PostgreSQL: {exc}") from exc

    def _reopen_sqlite(self) -> sqlite3.Connection:
        """The store's file opened again after a storage fault. Never created: while the
        storage is away its mount point may be an empty folder, and a fresh empty store there
        would pass for the real one. WAL mode is kept in the file itself."""
        try:
            conn = sqlite3.connect(f"{self._path.as_uri()}?mode=rw", uri=True, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._fault(exc) from exc
        try:
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            conn.close()
            raise self._fault(exc) from exc
        self._file = _identity(self._path)
        return conn

    def _live(self):
        """The connection, reopened if the server dropped it (a restart, a terminated backend)
        or, for SQLite, if it was let go after a storage fault."""
        if self.dialect == "postgresql":
            if self._conn.closed or self._conn.broken:
                try:
                    self._conn = self._connect_pg()
                except DatabaseError as exc:
                    raise StoreUnavailable(grpc.StatusCode.UNAVAILABLE, "store_unreachable",
                                           f"the coordinator's store is unavailable ({exc}); retry later") from exc
            return self._conn
        conn = self._conn
        if conn is not None and _identity(self._path) != self._file:
            # The file at the store's path is not the one open (its file system was unmounted,
            # or unmounted and mounted again after a repair): let go of the old one.
            self._drop()
            conn = None
        if conn is None:
            with self._reopening:
                if self._conn is None:
                    self._conn = self._reopen_sqlite()
                conn = self._conn
        return conn

    def _fault(self, exc: BaseException) -> BaseException:
        """What to raise for ``exc``: the StoreUnavailable it amounts to, or ``exc`` itself.
        A SQLite connection whose storage failed under it is let go: its open files may belong
        to a file system that is being replaced (unmounted, checked, mounted again), and one
        opened afresh on the next statement sees the storage as it is then."""
        fault = store_fault(exc, self._path)
        if fault is None:
            return exc
        # Inside a transaction the connection is let go once the transaction has rolled back.
        if (self.dialect == "sqlite" and fault.reason in ("store_io", "store_read_only")
                and "locked" not in str(exc) and not getattr(self._local, "txn", False)):
            self._drop()
        return fault

    def _drop(self) -> None:
        with self._reopening:
            conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:
                pass

    def _run(self, fn):
        """Run ``fn``, raising driver outages as StoreUnavailable."""
        with self._translated():
            return fn()

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Driver outages raised inside as StoreUnavailable (a connection whose storage failed
        is let go: see ``_fault``)."""
        try:
            yield
        except Exception as exc:
            fault = self._fault(exc)
            if fault is exc:
                raise
            raise fault from exc

    def execute(self, sql: str, params: tuple | list = ()):
        if self.dialect == "postgresql":
            sql = re.sub(r"\?", "%s", sql)
        return self._run(lambda: self._live().execute(sql, params))

    def stream(self, sql: str, params: tuple | list = (), *, rows: int = 10_000) -> Iterator[tuple]:
        """The rows of a large query, ``rows`` at a time: the start-up scans read every asset
        and every log entry, which must not be held in memory at once. SQLite's cursor already
        steps through the result; psycopg would fetch the whole of it, so PostgreSQL reads
        through a server-side cursor (in a read-only transaction of its own)."""
        if self.dialect == "sqlite":
            with self._translated():
                yield from self._live().execute(sql, params)
            return
        sql = re.sub(r"\?", "%s", sql)
        with self._translated():
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
            self._run(many)
        else:
            self._run(lambda: self._live().executemany(sql, rows))

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        if self.dialect == "sqlite":
            with self._translated():
                conn = self._live()
                self._local.txn = True
                try:
                    with sqlitedb.transaction(conn):
                        yield self
                finally:
                    self._local.txn = False
            return
        with self._translated():
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
        if self._conn is not None:
            self._conn.close()
