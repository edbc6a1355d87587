"""The coordinator's storage full or read-only, on a real filesystem of its own (a small tmpfs
mounted for the test; skipped where the test cannot mount one): intake refuses with a status
naming the problem, stores nothing of the refused batch, and takes the same batch once space
or write access is back; the whole log still audits."""

from __future__ import annotations

import os
import subprocess

import grpc
import pytest

from conftest import asset, fingerprint, near
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


def test_read_only_storage_refuses_cleanly_and_recovers(consortium, mount, tmp_path):
    submit(consortium, A, batch(consortium, A, [asset("a0", fingerprint(1))], seq=1))
    before = counts(consortium)
    ro = subprocess.run(["mount", "-o", "remount,ro", str(mount)], capture_output=True)
    conn = consortium.server.core.store._db._conn
    if ro.returncode != 0:
        # The kernel will not remount while the store's files are open for writing; SQLite's
        # own read-only switch gives the store the same refusal from the same layer.
        conn.execute("PRAGMA query_only = ON")
    req = batch(consortium, A, [asset("a1", fingerprint(2))], seq=2)
    try:
        for _ in range(2):
            with pytest.raises(grpc.RpcError) as info:
                submit(consortium, A, req)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "read-only" in info.value.details() or "readonly" in info.value.details()
            assert "nothing of this request was stored" in info.value.details()
    finally:
        if ro.returncode == 0:
            subprocess.run(["mount", "-o", "remount,rw", str(mount)], check=True)
        else:
            conn.execute("PRAGMA query_only = OFF")
    assert counts(consortium) == before
    assert submit(consortium, A, req).accepted == 1
    assert audit(consortium, tmp_path / "export").entries == rows(consortium, "log_entries")
