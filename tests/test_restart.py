"""A restart from the saved candidate index (coordinator.snapshot), over real gRPC and a real
store: the saved index is used only when it stands for the store, and then answers exactly as
an index rebuilt from every stored record does."""

from __future__ import annotations

import logging
import random
import shutil

import pytest

from conftest import asset, fingerprint, near, opaque
from test_intake import A, B, C, batch, submit, withdrawal


def _fill(consortium, seed: int = 5) -> list:
    """Batches from three members: copies of a few pictures (near, and identical) among
    unrelated ones, then one withdrawal; returns every record sent."""
    rng = random.Random(seed)
    pictures = [fingerprint(100 + i) for i in range(6)]
    sent = []
    for n, member in enumerate((A, B, C, A, B)):
        assets = []
        for k in range(8):
            name = f"{member}-{n}-{k}"
            fp = near(rng.choice(pictures), rng.randint(0, 12), seed=n * 10 + k) if rng.random() < 0.6 \
                else fingerprint(1000 + 10 * n + k)
            assets.append(asset(name, fp))
        sent += assets
        submit(consortium, member, batch(consortium, member, assets, seq=n + 1))
    consortium.intake(A).WithdrawAssets(withdrawal(consortium, A, [opaque(f"{A}-0-0")]), timeout=10)
    return sent


def _state(core, queries) -> tuple:
    m = core.matcher
    return (sorted(m.index.added_since(0)), m.index.candidates_many(queries), dict(m.cluster_of),
            dict(m.version_of))


def _events(caplog, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == name]


@pytest.fixture
def saved(consortium, tmp_path):
    consortium.stop()
    consortium.settings.index_snapshot = tmp_path / "saved" / "index.npz"
    consortium.start()
    return consortium.settings.index_snapshot


def test_a_restart_reads_the_saved_index_and_answers_as_a_rebuild_does(consortium, saved, caplog):
    sent = _fill(consortium)
    caplog.set_level(logging.INFO, logger="dedup.coordinator")
    consortium.stop()
    assert saved.exists() and len(_events(caplog, "index_snapshot_saved")) == 1
    consortium.start()
    assert len(_events(caplog, "index_snapshot_loaded")) == 1 and not _events(caplog, "index_snapshot_unused")
    loaded = _state(consortium.server.core, sent)
    assert len(loaded[0]) > 0 and sum(map(len, loaded[1])) > len(sent)  # the comparison has teeth

    consortium.stop()
    saved.unlink()
    consortium.start()  # no file: rebuilt from every record
    assert len(_events(caplog, "index_snapshot_loaded")) == 1
    assert _state(consortium.server.core, sent) == loaded

    # And a restarted coordinator goes on matching: a near copy of a stored picture links.
    consortium.stop()
    consortium.start()
    assert len(_events(caplog, "index_snapshot_loaded")) == 2
    r = submit(consortium, C, batch(consortium, C, [asset("late", near(fingerprint(100), 3))], seq=9))
    assert r.new_matches >= 1


def test_a_saved_index_older_than_the_log_is_not_used(consortium, saved, caplog, tmp_path):
    _fill(consortium)
    consortium.stop()
    old = tmp_path / "old.npz"
    shutil.copy(saved, old)
    consortium.start()
    fp = fingerprint(777)
    submit(consortium, A, batch(consortium, A, [asset("new", fp)], seq=20))
    consortium.stop()
    shutil.copy(old, saved)  # as after a crash: the file on disk is from before the last intake
    caplog.set_level(logging.INFO, logger="dedup.coordinator")
    consortium.start()
    [unused] = _events(caplog, "index_snapshot_unused")
    assert "log has" in unused.fields["reason"] and not _events(caplog, "index_snapshot_loaded")
    # Rebuilt from the store: the asset taken in after the file was saved is found.
    r = submit(consortium, B, batch(consortium, B, [asset("copy", near(fp, 2))], seq=21))
    assert r.new_matches == 1


@pytest.mark.parametrize("damage", ["garbage", "truncated", "rule"])
def test_a_damaged_file_or_another_rule_means_a_rebuild(consortium, saved, caplog, damage):
    fp = fingerprint(4242)
    submit(consortium, A, batch(consortium, A, [asset("a", fp)]))
    consortium.stop()
    if damage == "garbage":
        saved.write_bytes(b"not an index")
        reason = "cannot be read"
    elif damage == "truncated":
        saved.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
        reason = "cannot be read"
    else:
        consortium.settings.match.whole -= 1
        reason = "another matching rule"
    caplog.set_level(logging.INFO, logger="dedup.coordinator")
    consortium.start()
    [unused] = _events(caplog, "index_snapshot_unused")
    assert reason in unused.fields["reason"]
    r = submit(consortium, B, batch(consortium, B, [asset("b", near(fp, 2))]))
    assert r.new_matches == 1


def test_a_file_whose_assets_differ_from_the_store_is_not_used(consortium, saved, caplog, tmp_path):
    """The log is the same, but the store lost a row behind the coordinator's back (restored
    from an older backup of one table): the file no longer stands for it."""
    if "://" in consortium.settings.database:
        pytest.skip("edits the SQLite file directly")
    import sqlite3

    submit(consortium, A, batch(consortium, A, [asset("a", fingerprint(1)), asset("b", fingerprint(2))]))
    consortium.stop()
    with sqlite3.connect(consortium.settings.database) as db:
        db.execute("DELETE FROM assets WHERE asset_id=?", (opaque("b"),))
    caplog.set_level(logging.INFO, logger="dedup.coordinator")
    consortium.start()
    [unused] = _events(caplog, "index_snapshot_unused")
    assert "not the ones the store holds" in unused.fields["reason"]
    assert sorted(consortium.server.core.matcher.index.added_since(0)) == [(A, opaque("a"))]


def test_default_file_sits_beside_a_sqlite_database_and_postgresql_has_none(consortium):
    s = consortium.settings
    s.index_snapshot = None
    if "://" in s.database:
        assert s.snapshot_path() is None
    else:
        assert str(s.snapshot_path()) == s.database + ".index"
