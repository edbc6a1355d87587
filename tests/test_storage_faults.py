"""The coordinator's storage full or read-only, for real. Full: an in-process coordinator whose
SQLite store is on a small tmpfs of its own. Read-only: a coordinator process whose SQLite store
is on an ext4 file system (loop device) the kernel turns read-only under it, and a coordinator
process whose PostgreSQL server is switched to read-only. Each time intake refuses with a status
naming the problem, stores nothing of the refused batch, and takes the same batch once space or
write access is back, in the same process; the whole log still audits. Skipped, saying why,
where the test cannot mount file systems or run a PostgreSQL server of its own."""

from __future__ import annotations

import os
import subprocess
import time

import grpc
import pytest

from conftest import asset, fingerprint, near
from faultkit import Site, batch_id
from test_faults import private_postgres  # noqa: F401 - a fixture
from test_intake import A, B, batch, rows, submit

TABLES = ("batches", "assets", "log_entries", "matches", "proposals", "clusters")


@pytest.fixture
def mount(tmp_path):
    point = tmp_path / "store"
    point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs for the coordinator's store")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(point)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield point
    subprocess.run(["umount", "-l", str(point)], check=False)


@pytest.fixture
def database(mount):
    return str(mount / "coordinator.sqlite")


def counts(consortium):
    return {t: rows(consortium, t) for t in TABLES}


def audit(consortium, out):
    from dedup.audit.verify import verify_export
    from dedup.coordinator.export import export_log

    export_log(consortium.server.core.store, out, consortium.log_signer.verifier().to_string())
    return verify_export(out, consortium.log_signer.verifier())


def test_disk_full_refuses_cleanly_and_recovers(consortium, mount, tmp_path):
    submit(consortium, A, batch(consortium, A, [asset("a0", fingerprint(1))], seq=1))
    filler = mount / "filler"
    with open(filler, "wb") as f:  # take every free block
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    seq, refused = 2, None
    # The store may still have room inside its files: send until the disk is really full.
    for k in range(400):
        req = batch(consortium, A, [asset(f"f{k}-{i}", fingerprint(10_000 + 50 * k + i)) for i in range(50)], seq=seq)
        before = counts(consortium)
        try:
            submit(consortium, A, req)
            seq += 1
        except grpc.RpcError as err:
            refused = err
            break
    assert refused is not None, "the store never filled up"
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "store is out of space" in refused.details() and "nothing of this request was stored" in refused.details()
    assert counts(consortium) == before, "a refused batch left something behind"
    # Still full: refused again, the same way; reads keep working.
    with pytest.raises(grpc.RpcError) as again:
        submit(consortium, A, req)
    assert again.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    filler.unlink()
    first = submit(consortium, A, req)
    assert (first.accepted, first.already_stored) == (50, False)
    assert submit(consortium, A, req).already_stored
    # Matching still works with the in-memory index rebuilt after the failure.
    r = submit(consortium, B, batch(consortium, B, [asset("b1", near(fingerprint(10_000 + 50 * k), 3))], seq=1))
    assert r.new_matches == 1
    assert audit(consortium, tmp_path / "export").entries == rows(consortium, "log_entries")


@pytest.fixture
def ext4(tmp_path):
    from faultkit import Ext4Image

    try:
        fs = Ext4Image(tmp_path / "fs")
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot make and mount an ext4 file system on a loop device here: {exc!s}")
    try:
        yield fs
    finally:
        fs.close()


def _store_counts(path) -> dict:
    from faultkit import read_only

    db = read_only(path)
    try:
        return {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("batches", "assets", "log_entries")}
    finally:
        db.close()


def _refused_twice(stub, req, *phrases: str) -> None:
    """The batch, sent twice, is refused as UNAVAILABLE with a message naming each phrase and
    saying that nothing was stored and to retry."""
    for _ in range(2):
        with pytest.raises(grpc.RpcError) as info:
            stub.SubmitBatch(req, timeout=30)
        err = info.value
        assert err.code() == grpc.StatusCode.UNAVAILABLE, (err.code(), err.details())
        assert all(p in err.details() for p in phrases), err.details()
        assert "nothing of this request was stored" in err.details() and "retry later" in err.details()


def test_storage_turned_read_only_by_the_kernel_under_a_coordinator_process(tmp_path, ext4):
    """A coordinator process keeps its SQLite store on an ext4 file system of its own (a loop
    device, ``errors=remount-ro``). After some batches are stored, an ext4 error makes the
    kernel turn the file system read-only under the running coordinator: the next batch is
    refused UNAVAILABLE naming read-only storage, twice, with nothing stored, while the
    coordinator keeps answering reads. The file system is then unmounted, checked with e2fsck
    and mounted again at the same path; the same process, without a restart, reopens its store
    and stores the refused batch once, matches against it, and the whole log audits."""
    import sqlite3

    from conftest import asset, fingerprint, near
    from faultkit import (Site, audit, check_acknowledged_stored_once, check_consistent, intake_stub,
                          latest_checkpoint, signed_batch)

    site = Site(tmp_path / "site", 2, database=str(ext4.point / "coordinator.sqlite"))
    a, b = site.members
    site.coordinator.start()
    stub, ch = intake_stub(site, a)
    acknowledged: list[str] = []

    def request(seq: int):
        return signed_batch(site, a, seq, [asset(f"ro{seq}-{i}", fingerprint(90_000 + 10 * seq + i)) for i in range(2)])

    def stored(req, seq: int) -> None:
        r = stub.SubmitBatch(req, timeout=30)
        assert (r.accepted, r.already_stored) == (2, False), r
        acknowledged.append(batch_id(a, seq))

    try:
        first = _store_counts(site.database)["log_entries"]  # the admissions
        for seq in (1, 2, 3):
            stored(request(seq), seq)
        before = _store_counts(site.database)
        old = [latest_checkpoint(site)[:2]]

        ext4.fail()
        assert ext4.refuses_writes(), "the kernel did not turn the file system read-only"
        req = request(4)
        _refused_twice(stub, req, "the storage is read-only")
        assert site.coordinator.proc.poll() is None, "the coordinator exited"
        # Reads still answer, and the log did not grow.
        assert latest_checkpoint(site, timeout=30)[:2] == old[0]

        ext4.unmount()
        # The coordinator notices on its next request that its file went, and lets go of it
        # (the kernel keeps the old file system while any file on it is open).
        with pytest.raises(grpc.RpcError) as gone:
            latest_checkpoint(site, timeout=30)
        assert gone.value.code() == grpc.StatusCode.UNAVAILABLE, (gone.value.code(), gone.value.details())
        assert ext4.released(), "the coordinator still holds files on the unmounted file system"
        ext4.repair()
        assert _store_counts(site.database) == before, "the failed writes left something behind"

        stored(req, 4)  # the same process reopens its store: the refused batch, once
        again = stub.SubmitBatch(req, timeout=30)
        assert again.already_stored and again.accepted == 2
        stored(request(5), 5)
        assert check_consistent(site, old) == first + len(acknowledged), "the log is not one entry per batch"
        # The matcher follows the store: a near copy of the refused-then-stored batch matches it.
        bstub, bch = intake_stub(site, b)
        try:
            r = bstub.SubmitBatch(signed_batch(site, b, 1, [asset("b-near", near(fingerprint(90_040), 3))]),
                                  timeout=30)
        finally:
            bch.close()
        assert r.new_matches == 1
        assert site.coordinator.proc.poll() is None and site.coordinator.starts == 1
    finally:
        ch.close()
        site.coordinator.stop()

    db = sqlite3.connect(f"file:{site.database}?mode=ro", uri=True)
    try:
        batches = [x for (x,) in db.execute("SELECT batch_id FROM batches WHERE member_id = ? ORDER BY sequence", (a,))]
        assets = db.execute("SELECT COUNT(*) FROM assets").fetchone()[0]
        entries = db.execute("SELECT COUNT(*), COUNT(DISTINCT entry) FROM log_entries").fetchone()
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()
    assert batches == acknowledged, "stored batches differ from the acknowledged ones"
    assert assets == 2 * len(acknowledged) + 1
    assert entries[0] == entries[1], "a log entry is stored twice"
    check_acknowledged_stored_once(site)
    assert audit(site, tmp_path / "export").entries == entries[0]


def test_postgresql_turned_read_only_under_a_coordinator_process(tmp_path, private_postgres):
    """A coordinator process stores in a PostgreSQL server of the test's own, which is switched
    to read-only while the coordinator runs (``ALTER SYSTEM SET default_transaction_read_only``
    and a configuration reload, which every open session, the coordinator's included, takes
    up): batches are refused UNAVAILABLE naming the read-only store, with nothing stored;
    switched back, the same batch is stored once, by the same process."""
    import psycopg

    from conftest import asset, fingerprint
    from faultkit import intake_stub, signed_batch

    pg = private_postgres
    site = Site(tmp_path, 1, database=pg.url)
    member = site.members[0]
    site.coordinator.start()
    admin = psycopg.connect(pg.url, autocommit=True)
    watcher = psycopg.connect(pg.url, autocommit=True)  # an open session, to see a reload reach it

    def switch(on: bool) -> None:
        admin.execute("SET default_transaction_read_only = off")  # ALTER SYSTEM needs a writable session
        if on:
            admin.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        else:
            admin.execute("ALTER SYSTEM RESET default_transaction_read_only")
        admin.execute("SELECT pg_reload_conf()")
        want, deadline = "on" if on else "off", time.monotonic() + 30
        while watcher.execute("SHOW default_transaction_read_only").fetchone()[0] != want:
            assert time.monotonic() < deadline, "the open session never took up the reloaded setting"
            time.sleep(0.05)

    def counts():
        return admin.execute("SELECT (SELECT COUNT(*) FROM batches), (SELECT COUNT(*) FROM assets),"
                             " (SELECT COUNT(*) FROM log_entries)").fetchone()

    stub, ch = intake_stub(site, member)
    acknowledged: list[str] = []

    def request(seq: int):
        return signed_batch(site, member, seq, [asset(f"pgro{seq}", fingerprint(80_000 + seq))])

    def stored(req, seq: int) -> None:
        r = stub.SubmitBatch(req, timeout=30)
        assert (r.accepted, r.already_stored) == (1, False), r
        acknowledged.append(batch_id(member, seq))

    try:
        first = counts()[2]  # the admissions
        for seq in (1, 2):
            stored(request(seq), seq)
        before = counts()
        switch(True)
        req = request(3)
        _refused_twice(stub, req, "read-only", "PostgreSQL")
        assert counts() == before, "a refused batch left something behind"
        assert site.coordinator.proc.poll() is None
        switch(False)
        stored(req, 3)
        assert stub.SubmitBatch(req, timeout=30).already_stored
        stored(request(4), 4)
        assert site.coordinator.proc.poll() is None
    finally:
        ch.close()
        site.coordinator.stop()
        try:
            switch(False)
        except Exception:  # noqa: BLE001 - the cluster is thrown away anyway
            pass
        watcher.close()
    batches = [x for (x,) in admin.execute("SELECT batch_id FROM batches ORDER BY sequence")]
    entries = admin.execute("SELECT COUNT(*), COUNT(DISTINCT entry) FROM log_entries").fetchone()
    assets = admin.execute("SELECT COUNT(*) FROM assets").fetchone()[0]
    admin.close()
    assert batches == acknowledged
    assert assets == len(acknowledged)
    assert entries[0] == entries[1] == first + len(acknowledged)
