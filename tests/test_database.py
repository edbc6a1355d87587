"""The database adapter's streamed reads, on SQLite and PostgreSQL."""

from __future__ import annotations

from coordinator.database import Database

SCHEMA = "CREATE TABLE IF NOT EXISTS items (n {INT} PRIMARY KEY, body {BLOB} NOT NULL);"


def test_stream_returns_every_row_in_order_a_chunk_at_a_time(database):
    db = Database(database, SCHEMA)
    rows = [(n, n.to_bytes(4, "big") * 8) for n in range(2_500)]
    with db.transaction():
        db.executemany("INSERT INTO items (n, body) VALUES (?, ?)", rows)

    seen = []
    open_cursors = None
    for n, body in db.stream("SELECT n, body FROM items WHERE n >= ? ORDER BY n", (0,), rows=1_000):
        seen.append((n, bytes(body)))
        if n == 1_500 and db.dialect == "postgresql":
            # Half-way through: the rows come from a cursor held by the server, not from a
            # result the client fetched whole.
            open_cursors = db.execute("SELECT COUNT(*) FROM pg_cursors WHERE left(name, 13) = 'dedup_stream_'").fetchone()[0]
    assert seen == rows
    if db.dialect == "postgresql":
        assert open_cursors == 1
        # The stream's transaction is over: the connection takes writes again at once.
        assert db.execute("SELECT COUNT(*) FROM pg_cursors").fetchone()[0] == 0
    db.execute("INSERT INTO items (n, body) VALUES (?, ?)", (9_999, b"x"))
    db.close()


def test_stream_stopped_early_leaves_the_connection_usable(database):
    db = Database(database, SCHEMA)
    with db.transaction():
        db.executemany("INSERT INTO items (n, body) VALUES (?, ?)", [(n, b"y") for n in range(50)])
    stream = db.stream("SELECT n FROM items ORDER BY n", rows=10)
    assert [next(stream)[0] for _ in range(3)] == [0, 1, 2]
    stream.close()
    with db.transaction():
        db.execute("INSERT INTO items (n, body) VALUES (?, ?)", (50, b"z"))
    assert db.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 51
    db.close()


def test_sqlite_file_gone_is_let_go_never_recreated_and_reopened_when_back(tmp_path):
    """The store's file moved away under an open connection (as when its file system is
    unmounted): the next statement is refused as a store outage and no empty store is made in
    its place; once the file is back, the same Database reopens it and carries on."""
    import grpc
    import pytest

    from coordinator.database import StoreUnavailable

    path = tmp_path / "store.sqlite"
    db = Database(path, SCHEMA)
    db.execute("INSERT INTO items (n, body) VALUES (?, ?)", (1, b"a"))
    aside = tmp_path / "aside"
    aside.mkdir()
    for f in tmp_path.glob("store.sqlite*"):
        f.rename(aside / f.name)
    with pytest.raises(StoreUnavailable) as info:
        db.execute("SELECT COUNT(*) FROM items")
    assert info.value.code == grpc.StatusCode.UNAVAILABLE and "unable to open" in info.value.message
    assert not path.exists(), "an empty store was created in place of the missing one"
    for f in aside.iterdir():
        f.rename(tmp_path / f.name)
    with db.transaction():
        db.execute("INSERT INTO items (n, body) VALUES (?, ?)", (2, b"b"))
    assert [n for (n,) in db.execute("SELECT n FROM items ORDER BY n")] == [1, 2]
    db.close()
