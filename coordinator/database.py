"""The coordinator's database connection: SQLite by default, PostgreSQL by URL.

One small adapter so the store's SQL is written once: statements use ``?`` placeholders
and portable syntax (``ON CONFLICT``), which this adapter passes to SQLite as they are and
to PostgreSQL (psycopg 3) with ``%s`` placeholders. Schemas name their column types
``{BLOB}`` and ``{INT}``, filled in per database.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from dedup import sqlitedb

TYPES = {
    "sqlite": {"BLOB": "BLOB", "INT": "INTEGER"},
    "postgresql": {"BLOB": "BYTEA", "INT": "BIGINT"},
}


def is_url(location: str | Path) -> bool:
    return str(location).startswith(("postgresql://", "postgres://"))


class DatabaseError(Exception):
    """The database cannot be reached or refused an operation; the message says which."""


class Database:
    def __init__(self, location: str | Path, schema: str, *, options: str | None = None) -> None:
        self.location = str(location)
        if is_url(location):
            import psycopg

            self.dialect = "postgresql"
            try:
                extra = {"options": options} if options else {}
                self._conn: Any = psycopg.connect(self.location, autocommit=True, connect_timeout=10, **extra)
            except psycopg.Error as exc:
                raise DatabaseError(f"cannot connect to PostgreSQL: {exc}") from exc
            self._conn.execute(schema.format(**TYPES["postgresql"]))
        else:
            self.dialect = "sqlite"
            self._conn = sqlitedb.connect(Path(location), schema.format(**TYPES["sqlite"]), synchronous="FULL",
                                          threads=True)

    def execute(self, sql: str, params: tuple | list = ()):
        if self.dialect == "postgresql":
            sql = re.sub(r"\?", "%s", sql)
        return self._conn.execute(sql, params)

    def executemany(self, sql: str, rows) -> None:
        if self.dialect == "postgresql":
            with self._conn.cursor() as cur:
                cur.executemany(re.sub(r"\?", "%s", sql), rows)
        else:
            self._conn.executemany(sql, rows)

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        if self.dialect == "sqlite":
            with sqlitedb.transaction(self._conn):
                yield self
            return
        self._conn.execute("BEGIN")
        try:
            yield self
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            self._conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()

