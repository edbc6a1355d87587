"""Faults with real processes: the coordinator SIGKILLed during intake from several node
processes and restarted, again and again; a node killed mid-scan and mid-push; the connection
between a node and the coordinator cut and blackholed; the coordinator's storage full or
read-only; PostgreSQL dropping the coordinator's connection, and a PostgreSQL server of the test's
own restarted and stopped under a coordinator process. After each: nothing acknowledged
lost, nothing stored twice, the log consistent with every checkpoint published before.

`make test` runs a few kills and one PostgreSQL restart and stop; `make test-faults` runs
DEDUP_FAULT_KILLS (50) and DEDUP_PG_RESTARTS (10) of them.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import grpc
import pytest

from faultkit import (DEDUP, NodeProcess, Proxy, Site, audit, batch_id, check_acknowledged_stored_once, check_consistent,
                      check_final, edit_toml, latest_checkpoint, read_only, stored_checkpoints)

KILLS = int(os.environ.get("DEDUP_FAULT_KILLS", "3"))


def test_coordinator_sigkilled_during_intake_loses_nothing(tmp_path):
    """Three node processes push continuously; the coordinator is stopped at random moments,
    in turn by SIGTERM (it saves its index, and the next start reads it) and by SIGKILL (the
    index saved before is then out of date, and the next start rebuilds from the store), and
    restarted. After each restart every acknowledged batch is stored exactly once and the log
    is consistent with every checkpoint seen before any kill; at the end the nodes have resumed
    by themselves and every record is stored once, and the whole log audits."""
    rng = random.Random(int(os.environ.get("DEDUP_FAULT_SEED", "10")))
    site = Site(tmp_path, 3, node_settings={"batch_size": 3, "coordinator.timeout_seconds": 5.0,
                                            "coordinator.retries": 6, "coordinator.retry_backoff_seconds": 0.2})
    site.coordinator.start()
    nodes = [NodeProcess(site, m, per_round=6, seed=10_000_000) for m in site.members]
    seen: list[tuple[int, bytes]] = []  # the latest checkpoint served before each kill
    sizes, checked, known = [], 0, 0
    try:
        # The first kill comes once every node is pushing.
        deadline = time.monotonic() + 120
        while len({m for (m,) in _query(site.database, "SELECT DISTINCT member_id FROM batches")}) < len(nodes):
            assert time.monotonic() < deadline, "the nodes never pushed"
            time.sleep(0.1)
        started_at = 0  # the log's size when the coordinator last started
        for kill in range(KILLS):
            time.sleep(rng.uniform(0.2, 1.2))
            # Each kill comes after some intake since the last start, so the index saved at a
            # SIGTERM is out of date by the SIGKILL that follows it.
            deadline = time.monotonic() + 60
            while (size := latest_checkpoint(site)[0]) <= started_at:
                assert time.monotonic() < deadline, "no intake since the restart"
                time.sleep(0.05)
            size, root, _ = latest_checkpoint(site)
            seen.append((size, root))
            if kill % 2 == 0:
                site.coordinator.stop()
            else:
                site.coordinator.kill()
            # Every checkpoint published since the last kill, as the killed process left the store.
            published = stored_checkpoints(site, after=known)
            known = max([known, *(s for s, _ in published)])
            site.coordinator.start()
            started_at = latest_checkpoint(site)[0]
            sizes.append(check_consistent(site, seen + published))
            checked += len(seen) + len(published)
            check_acknowledged_stored_once(site)
        results = [n.finish() for n in nodes]
    finally:
        for n in nodes:
            if n.proc.poll() is None:
                n.proc.kill()
        site.coordinator.stop()
    final = check_final(site)
    once = check_acknowledged_stored_once(site)
    events = [json.loads(line).get("msg") for line in site.coordinator.tail_all().splitlines() if line.startswith("{")]
    # Each start after a SIGTERM read the saved index; the first after a SIGKILL found it out of date.
    assert events.count("index_snapshot_loaded") == (KILLS + 1) // 2
    assert events.count("index_snapshot_unused") == KILLS // 2
    report = audit(site, tmp_path / "export")
    assert report.entries == once["log_entries"]
    # Intake ran through the kills (each node pushing before the first) and went on after them.
    assert report.entries > seen[0][0]
    assert final["assets"] == sum(r["records"] for r in results)
    print(json.dumps({"kills": KILLS, "checkpoints_checked": checked, "restarts": site.coordinator.starts - 1, **final, **once,
                      "node_retries": sum(r["retries"] for r in results),
                      "pushes_cut_short": sum(r["pushes_cut_short"] for r in results)}))


def _query(path: Path, sql: str) -> list[tuple]:
    db = read_only(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


# --- a node killed mid-scan and mid-push -------------------------------------------------------


def _photos(folder: Path, n: int) -> None:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    for i in range(n):
        base = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
        Image.fromarray(base).resize((320, 240), Image.Resampling.BICUBIC).save(folder / f"p{i:03d}.png")


def _rows(path: Path, sql: str) -> int:
    if not path.exists():
        return 0
    db = read_only(path)
    try:
        return db.execute(sql).fetchone()[0]
    except Exception:  # noqa: BLE001 - the table may not exist yet
        return 0
    finally:
        db.close()


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, "finished before it could be killed: make the work larger"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # the scan's worker processes too
    proc.wait()


def test_node_killed_mid_scan_resumes_without_rereading_finished_files(tmp_path):
    site = Site(tmp_path, 1)
    member = site.members[0]
    n = 40
    _photos(tmp_path / "photos" / member, n)
    cfg, cat = site.node_config(member), site.catalogue(member)
    scan = subprocess.Popen([*DEDUP, "node", "scan", "--config", str(cfg), "--json"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_when(scan, lambda: _rows(cat, "SELECT COUNT(*) FROM files") >= 8)
    done = _rows(cat, "SELECT COUNT(*) FROM files")
    assert 8 <= done < n
    again = subprocess.run([*DEDUP, "node", "scan", "--config", str(cfg), "--json"], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)["scan"]
    # Exactly the files recorded before the kill are skipped; exactly the others are read.
    assert (summary["seen"], summary["unchanged"], summary["read"] + summary["failed"]) == (n, done, n - done)
    assert _rows(cat, "SELECT COUNT(*) FROM files WHERE error IS NULL") == n


def test_node_killed_mid_push_resumes_without_sending_anything_twice(tmp_path):
    site = Site(tmp_path, 2, node_settings={"batch_size": 1})
    member = site.members[0]
    from dedup.config import load
    from dedup.node.catalogue import Catalogue
    from dedup.node.settings import NodeSettings
    from conftest import asset, fingerprint

    cat = Catalogue(load(site.node_config(member), NodeSettings).catalogue)
    with cat.transaction() as db:
        for i in range(120):
            a = asset(f"x{i:04d}", fingerprint(500 + i))
            cat.put_file(db, {"path": f"/p/{i:04d}", "size": 1, "mtime_ns": i, "asset_id": a.asset_id,
                              "scanned_unix": 1, "record": a.SerializeToString(deterministic=True)})
    cat.close()
    site.coordinator.start()
    try:
        cmd = [*DEDUP, "node", "push", "--config", str(site.node_config(member)), "--json"]
        pushing = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _kill_when(pushing, lambda: _rows(site.database, "SELECT COUNT(*) FROM batches") >= 10)
        check_acknowledged_stored_once(site)
        before = _rows(site.database, "SELECT COUNT(*) FROM batches")
        assert before < 120
        again = subprocess.run(cmd, capture_output=True, text=True)
        assert again.returncode == 0, again.stderr
    finally:
        site.coordinator.stop()
    check_final(site)
    check_acknowledged_stored_once(site)
    # At most the one batch in flight at the kill reached the coordinator twice, and that
    # resend was acknowledged as already stored.
    events = [json.loads(line) for line in (site.coordinator.folder / "coordinator.log").read_text().splitlines()
              if line.startswith("{")]
    batches = [e for e in events if e.get("event") == "batch" or e.get("msg") == "batch"]
    assert len([e for e in batches if not e["already_stored"]]) == 120
    assert len([e for e in batches if e["already_stored"]]) <= 1


# --- the network between a node and the coordinator ------------------------------------------


def test_connection_cut_and_blackholed_mid_push_loses_and_duplicates_nothing(tmp_path):
    from dedup.config import load
    from dedup.node.catalogue import Catalogue
    from dedup.node.push import push
    from dedup.node.settings import NodeSettings
    from conftest import asset, fingerprint

    site = Site(tmp_path, 2, node_settings={"batch_size": 2, "coordinator.timeout_seconds": 1.0,
                                            "coordinator.retries": 8, "coordinator.retry_backoff_seconds": 0.1})
    site.coordinator.start()
    proxy = Proxy(site.port)
    member = site.members[0]
    edit_toml(site.node_config(member), **{"coordinator.address": f"127.0.0.1:{proxy.port}"})
    settings = load(site.node_config(member), NodeSettings)
    cat = Catalogue(settings.catalogue)
    added = 0

    def scan_more(n: int) -> None:
        nonlocal added
        with cat.transaction() as db:
            for i in range(added, added + n):
                a = asset(f"n{i:04d}", fingerprint(900 + i))
                cat.put_file(db, {"path": f"/p/{i:04d}", "size": 1, "mtime_ns": i, "asset_id": a.asset_id,
                                  "scanned_unix": 1, "record": a.SerializeToString(deterministic=True)})
        added += n

    scan_more(200)
    stop = threading.Event()
    faults = {"cut": 0, "blackhole": 0}

    def chaos():
        rng = random.Random(5)
        while not stop.wait(rng.uniform(0.1, 0.4)):
            if rng.random() < 0.5:
                proxy.cut()
                faults["cut"] += 1
            else:
                proxy.blackhole(True)
                faults["blackhole"] += 1
                stop.wait(rng.uniform(0.5, 1.5))
                proxy.blackhole(False)

    t = threading.Thread(target=chaos, daemon=True)
    t.start()
    rounds = 0
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and (rounds < 3 or cat.unpushed() or cat.pending_batches()):
            # The chaos runs for the first rounds (and until it has struck three times); the
            # last push runs on a quiet link.
            if rounds >= 6 and not stop.is_set() and faults["cut"] + faults["blackhole"] >= 3:
                stop.set()
                t.join()
                proxy.blackhole(False)
            summary = push(settings, cat)
            assert not summary.refused, summary.refused
            rounds += 1
            if not stop.is_set() and faults["cut"] + faults["blackhole"] < 3:
                # Pushed before the link failed often enough (a fast machine): more files to
                # push while it keeps failing.
                scan_more(50)
                continue
            if not summary.unreachable and not cat.unpushed() and not cat.pending_batches():
                break
    finally:
        stop.set()
        t.join()
        proxy.close()
        cat.close()
        site.coordinator.stop()
    assert faults["cut"] + faults["blackhole"] >= 3, faults
    assert check_final(site)["assets"] == added
    check_acknowledged_stored_once(site)


# --- PostgreSQL dropping the coordinator's connection --------------------------------------------


@pytest.mark.parametrize("database", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_postgresql_connection_terminated_fails_cleanly_then_recovers(consortium):
    import psycopg

    from conftest import PG_DSN, asset, fingerprint
    from test_intake import A, batch, rows, submit

    submit(consortium, A, batch(consortium, A, [asset("a1", fingerprint(1))], seq=1))
    req = batch(consortium, A, [asset("a2", fingerprint(2))], seq=2)
    for attempt in range(3):
        # Terminate the coordinator's backend, as a PostgreSQL restart or failover does.
        pid = consortium.server.core.store._db._conn.info.backend_pid
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
        with pytest.raises(grpc.RpcError) as info:
            submit(consortium, A, req)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "store is unavailable (PostgreSQL" in info.value.details() and "retry later" in info.value.details()
        # The next request reconnects; the refused batch, sent again, is stored once.
        first = submit(consortium, A, req)
        assert submit(consortium, A, req).already_stored
        req = batch(consortium, A, [asset(f"a{3 + attempt}", fingerprint(3 + attempt))], seq=3 + attempt)
    assert rows(consortium, "batches") == 4 and first.accepted == 1
    assert rows(consortium, "log_entries") == consortium.server.core.log.size


def test_backoff_waits_double_with_jitter_and_are_capped():
    from dedup.node.push import MAX_BACKOFF_SECONDS, backoff_waits

    for seed in range(20):
        waits = list(backoff_waits(10, 0.5, random.Random(seed)))
        assert len(waits) == 10
        for k, w in enumerate(waits):
            ceiling = min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** k)
            assert ceiling / 2 <= w <= ceiling
    # Two nodes cut off together do not come back in step.
    assert list(backoff_waits(5, 0.5, random.Random(1))) != list(backoff_waits(5, 0.5, random.Random(2)))


# --- the PostgreSQL server restarted and stopped under a coordinator process -----------------------

PG_RESTARTS = int(os.environ.get("DEDUP_PG_RESTARTS", "1"))


@pytest.fixture
def private_postgres():
    from faultkit import PrivatePostgres

    try:
        pg = PrivatePostgres()
    except (KeyError, RuntimeError, OSError, subprocess.SubprocessError) as exc:
        # KeyError: there is no postgres user to run the server as.
        pytest.skip(f"cannot make a PostgreSQL cluster of the test's own: {exc!s}")
    try:
        pg.start()
        yield pg
    finally:
        pg.close()


def test_postgresql_restarted_and_stopped_under_the_coordinator(tmp_path, private_postgres):
    """A coordinator process stores in a PostgreSQL server of the test's own. The server is
    restarted (`pg_ctl restart -m fast`): the coordinator's next request finds its connection
    dropped and is refused UNAVAILABLE naming PostgreSQL, and the one after reconnects and is
    stored. The server is then stopped, and every request while it is down is refused
    UNAVAILABLE naming PostgreSQL; once it is started again the next request is stored. The
    coordinator process lives throughout; at the end every acknowledged batch is stored once,
    no refused one is stored, and the log holds exactly one entry per stored batch."""
    import psycopg

    from conftest import asset, fingerprint
    from faultkit import intake_stub, signed_batch

    pg = private_postgres
    site = Site(tmp_path, 1, database=pg.url)
    member = site.members[0]
    site.coordinator.start()
    with psycopg.connect(pg.url) as db:
        first = db.execute("SELECT COUNT(*) FROM log_entries").fetchone()[0]  # the admissions
    stub, ch = intake_stub(site, member)
    acknowledged: list[str] = []
    seq = {"n": 0}

    def send():
        seq["n"] += 1
        n = seq["n"]
        return n, signed_batch(site, member, n, [asset(f"pg{n:04d}", fingerprint(70_000 + n))])

    def stored(req) -> None:
        r = stub.SubmitBatch(req, timeout=20)
        assert (r.accepted, r.already_stored) == (1, False)
        acknowledged.append(batch_id(member, seq["n"]))

    def refused(req) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as info:
            stub.SubmitBatch(req, timeout=20)
        err = info.value
        assert err.code() == grpc.StatusCode.UNAVAILABLE, (err.code(), err.details())
        assert "store is unavailable" in err.details() and "PostgreSQL" in err.details(), err.details()
        assert "retry later" in err.details()
        return err

    outage_refusals = 0
    try:
        for _ in range(2):
            stored(send()[1])
        for _ in range(PG_RESTARTS):
            pg.restart()
            _, req = send()
            refused(req)  # the connection the restart dropped
            stored(req)  # reconnected: the same batch is stored, once
            stored(send()[1])
            pg.stop()
            for _ in range(3):
                _, req = send()
                refused(req)
                outage_refusals += 1
                assert site.coordinator.proc.poll() is None, "the coordinator exited during the outage"
            pg.start()
            stored(req)  # the last refused batch, sent again, is stored once
            stored(send()[1])
        assert site.coordinator.proc.poll() is None
    finally:
        ch.close()
        site.coordinator.stop()
    with psycopg.connect(pg.url) as db:
        batches = [b for (b,) in db.execute("SELECT batch_id FROM batches ORDER BY sequence")]
        entries = db.execute("SELECT COUNT(*), COUNT(DISTINCT entry) FROM log_entries").fetchone()
    assert batches == acknowledged, "stored batches differ from the acknowledged ones"
    assert entries[0] == entries[1], "a log entry is stored twice"
    assert entries[0] == first + len(batches), "the log holds other than one entry per stored batch"
    assert outage_refusals == 3 * PG_RESTARTS
    print(json.dumps({"restarts": PG_RESTARTS, "stops": PG_RESTARTS, "refused_while_down": outage_refusals,
                      "stored": len(batches), "log_entries": entries[0]}))
