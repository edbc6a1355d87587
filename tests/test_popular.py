"""Popular photographs: a picture many members hold many times over.

A member's copy of a picture it already holds follows that asset (its version) instead of
entering the candidate index, and joins the cluster through one match. These tests hold the
coordinator's core to three promises: a batch gives the same clusters, followers, matches and
masters as the same assets sent one by one (across withdrawals and rescans); the index holds exactly the
versions, and no two versions of one member are close enough for one to follow the other
(checked against every pair); and the log grows with the copies, not with their pairs.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from dedup import pki
from dedup.note import NoteSigner
from dedup.signing import sign_statement
from dedup.v1 import asset_pb2

from conftest import ORIGIN, asset, fingerprint, near, opaque, record_of, rid

MEMBERS = ("records-office", "city-museum", "university-library", "film-archive")
PICTURES = [fingerprint(70 + i) for i in range(3)]


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """What every core of this module shares: the members' signers, the log key, TLS files."""
    root = tmp_path_factory.mktemp("popular")
    ca = pki.write_ca(root, "test CA")
    pki.write_server_tls(ca, root, "coordinator")
    pki.write_log_key(root, ORIGIN)
    return root, {m: NoteSigner.generate(m) for m in MEMBERS}


class Core:
    """A coordinator core on a fresh SQLite store, fed signed batches as a server would."""

    def __init__(self, keys, folder: Path, **overrides) -> None:
        from dedup.coordinator.server import build_core
        from dedup.coordinator.settings import CoordinatorSettings

        root, self.signers = keys
        self.settings = CoordinatorSettings(
            database=str(folder / "coordinator.sqlite"), log_key=root / pki.LOG_KEY,
            log_origin=ORIGIN,
            tls={"ca": root / pki.CA_CERT, "cert": root / pki.TLS_CERT, "key": root / pki.TLS_KEY},
            members=[{"id": m, "name": m, "public_key": self.signers[m].verifier().to_string(),
                      "custodial_priority": 10 * (i + 1)} for i, m in enumerate(MEMBERS)],
            **overrides)
        self.core = build_core(self.settings)
        self.core.clock = lambda: 1_700_000_000
        self.seq = dict.fromkeys(MEMBERS, 0)

    def send(self, member: str, assets: list[asset_pb2.Asset]):
        self.seq[member] += 1
        payload = asset_pb2.AssetList(assets=assets).SerializeToString(deterministic=True)
        manifest = asset_pb2.BatchManifest(member_id=member, batch_id=rid(f"b{self.seq[member]}"), sequence=self.seq[member],
                                           asset_count=len(assets), assets_sha256=hashlib.sha256(payload).digest())
        return self.core.submit_batch(member, sign_statement(self.signers[member], manifest, origin=ORIGIN), payload)

    def withdraw(self, member: str, names: list[str]):
        self.seq[member] += 1
        body = asset_pb2.AssetsWithdrawn(member_id=member, withdrawal_id=rid(f"w{self.seq[member]}"),
                                         asset_ids=[opaque(a) for a in names])
        return self.core.withdraw(member, sign_statement(self.signers[member], body, origin=ORIGIN))

    def state(self) -> dict:
        m = self.core.matcher
        db = self.core.store._db
        matches = sorted(tuple(r) for r in db.execute(
            "SELECT cluster_id, a_member, a_asset, b_member, b_asset, relation, distance FROM matches"))
        from dedup.coordinator.negotiation import LIVE

        # The live proposals' masters (a batch proposes once at its end, so the proposals it
        # closed on the way may differ from those of its copies sent one by one).
        masters = {cid: (mm, ma) for cid, mm, ma in db.execute(
            "SELECT p.cluster_id, p.master_member, p.master_asset FROM proposals p JOIN negotiations n"
            f" ON n.proposal_id = p.proposal_id WHERE n.status IN ({', '.join(map(str, LIVE))})")}
        return {"clusters": dict(m.cluster_of), "followers": dict(m.version_of),
                "indexed": set(m.index._number), "matches": matches, "masters": masters}

    def close(self) -> None:
        self.core.store.close()


def copy_of(name: str, picture: int, flips: int, seed: int, **kw) -> asset_pb2.Asset:
    return asset(name, near(PICTURES[picture], flips, seed=seed), **kw)


def key(member: str, name: str) -> tuple[str, str]:
    """The matcher's key of ``member``'s asset named ``name`` in the test."""
    return member, opaque(name)


def check_versions(core: Core, *, withdrawn: bool) -> None:
    """The index holds exactly the held assets that follow nothing; each follower's version
    is its own member's, indexed; and, with nothing withdrawn, each follows a version within
    FOLLOW_DISTANCE and no two versions of one member are that close (every pair compared)."""
    from dedup.coordinator.matcher import follow_distance
    from dedup.matching import compared_hashes

    m = core.core.matcher
    held = {(mm, a) for mm, a in core.core.store._db.execute("SELECT member_id, asset_id FROM assets")}
    indexed = set(m.index._number)
    assert indexed | set(m.version_of) == held and not indexed & set(m.version_of)
    for f, v in m.version_of.items():
        assert v[0] == f[0] and v in indexed and f in m.followers[v]
        if not withdrawn:
            rv, rf = m.record(v), m.record(f)
            assert follow_distance(rv, compared_hashes(rv), rf, compared_hashes(rf)) is not None
    if not withdrawn:
        versions = sorted(indexed)
        for i, a in enumerate(versions):
            ra = m.record(a)
            for b in versions[i + 1:]:
                if b[0] == a[0]:
                    rb = m.record(b)
                    assert follow_distance(ra, compared_hashes(ra), rb, compared_hashes(rb)) is None, (a, b)


# One event: a member sends some copies (picture, bits flipped, seed, and which of its earlier
# assets the copy declares again with a new picture, a rescan, when not negative), or withdraws
# one of its earlier assets.
_copy = st.tuples(st.integers(0, len(PICTURES) - 1), st.integers(0, 14), st.integers(0, 10**6),
                  st.integers(-3, 10**6))
_send = st.tuples(st.just("send"), st.integers(0, len(MEMBERS) - 1), st.lists(_copy, min_size=1, max_size=6))
_withdraw = st.tuples(st.just("withdraw"), st.integers(0, len(MEMBERS) - 1), st.integers(0, 10**6))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(st.one_of(_send, _send, _send, _withdraw), min_size=1, max_size=12))
def test_a_batch_gives_what_the_same_copies_one_by_one_give(keys, events):
    with tempfile.TemporaryDirectory() as d:
        for name in ("batched", "single"):
            Path(d, name).mkdir()
        batched, single = Core(keys, Path(d, "batched")), Core(keys, Path(d, "single"))
        try:
            held: dict[str, list[str]] = {m: [] for m in MEMBERS}
            n = 0
            withdrawn = False
            for kind, who, what in events:
                member = MEMBERS[who]
                if kind == "send":
                    copies, ids = [], set()
                    for picture, flips, seed, again in what:
                        if again >= 0 and held[member] and (old := held[member][again % len(held[member])]) not in ids:
                            copies.append(copy_of(old, picture, flips, seed + 1))
                            ids.add(old)
                            withdrawn = True  # a rescan leaves followers as a withdrawal does
                            continue
                        copies.append(copy_of(f"p{n}", picture, flips, seed))
                        held[member].append(f"p{n}")
                        ids.add(f"p{n}")
                        n += 1
                    batched.send(member, copies)
                    for c in copies:
                        single.send(member, [c])
                elif held[member]:
                    gone = held[member].pop(what % len(held[member]))
                    batched.withdraw(member, [gone])
                    single.withdraw(member, [gone])
                    withdrawn = True
            assert batched.state() == single.state()
            check_versions(batched, withdrawn=withdrawn)
        finally:
            batched.close()
            single.close()


def test_a_popular_picture_costs_each_copy_one_match(keys, tmp_path):
    """One member holds a picture; three others send 150 copies each (0-6 bits from it, so each
    member's copies follow its first), in batches of 50. Every copy joins the one cluster, each
    follower through exactly one match; the index holds one version per member; a proposal is
    made for each new holder only, until a copy outranks the master; the auditor accepts the log."""
    core = Core(keys, tmp_path)
    try:
        core.send(MEMBERS[0], [copy_of("original", 0, 0, 0, width=6000, height=4000, lossless=True)])
        sent = 0
        for round_ in range(3):
            for member in MEMBERS[1:]:
                core.send(member, [copy_of(f"c{sent + i}", 0, (sent + i) % 7, sent + i, width=800, height=600)
                                   for i in range(50)])
                sent += 50
        m = core.core.matcher
        assert len(set(m.cluster_of.values())) == 1 and len(m.cluster_of) == 1 + sent
        assert len(m.index) == len(MEMBERS) and len(m.version_of) == sent - 3
        # Each member's version links to the original and to the versions before it (1 + 2 + 3);
        # every other copy makes one match.
        assert core.core.store.counts()["matches"] == (sent - 3) + (1 + 2 + 3)
        from dedup.coordinator.negotiation import Negotiator

        # One proposal per new holder; later copies change neither the holders nor the master,
        # so the proposal stands (an agreement on it would too).
        latest = Negotiator.latest(core.core.store._db, next(iter(m.members_of)))
        assert core.core.store.counts()["proposals"] == 3 and latest.status == 1
        assert len(latest.body.copies) == 1 + 3 * 50
        assert (latest.body.master.member_id, latest.body.master.asset_id) == key(MEMBERS[0], "original")
        # A copy that outranks the master makes a new proposal naming it.
        core.send(MEMBERS[2], [copy_of("scan", 0, 1, 99, width=9000, height=6000, lossless=True)])
        latest = Negotiator.latest(core.core.store._db, next(iter(m.members_of)))
        assert (latest.body.master.member_id, latest.body.master.asset_id, len(latest.body.copies)) == (
            MEMBERS[2], opaque("scan"), 2 + sent)
        # The log is what an auditor accepts.
        from dedup.audit.verify import verify_export
        from dedup.coordinator.export import export_log

        export_log(core.core.store, tmp_path / "export", core.core.log.signer.verifier().to_string())
        report = verify_export(tmp_path / "export", core.core.log.signer.verifier())
        assert (report.proposals, report.matches) == (4, (sent - 3) + (1 + 2 + 3) + 1)  # the scan follows too
    finally:
        core.close()


def test_a_rescan_hands_its_followers_on_where_the_batch_reaches_it(keys, tmp_path):
    """A copy sent before a version's rescan in one batch follows the version's old picture,
    as it would sent alone, and is indexed in its place when the batch reaches the rescan."""
    core = Core(keys, tmp_path)
    try:
        core.send(MEMBERS[1], [copy_of("v", 1, 0, 0)])
        core.send(MEMBERS[1], [copy_of("early", 1, 2, 1), copy_of("v", 2, 0, 0), copy_of("late", 1, 3, 2)])
        m = core.core.matcher
        # "early" followed v's old picture, then took its place; "late" follows "early".
        assert {k for k in m.index._number} == {key(MEMBERS[1], "v"), key(MEMBERS[1], "early")}
        assert m.version_of == {key(MEMBERS[1], "late"): key(MEMBERS[1], "early")}
    finally:
        core.close()


def test_the_version_holding_the_master_is_the_first_representative(keys, tmp_path):
    """Representatives go by the master policy's evidence rules, not by key: the version whose
    copy the policy ranks first leads them, also when that copy is one of its followers and
    when 16 versions come before it by key."""
    from dedup.clusters import REPRESENTATIVES

    core = Core(keys, tmp_path)
    try:
        a, c = MEMBERS[0], MEMBERS[2]  # "records-office" < "university-library"
        core.send(a, [copy_of(f"a{i:02}", 0, 6, 100 + i, width=800, height=600) for i in range(24)])
        m = core.core.matcher
        versions_a = [k for k in m.index._number if k[0] == a]
        assert len(versions_a) > REPRESENTATIVES
        core.send(c, [copy_of("small", 0, 1, 7, width=400, height=300)])
        cid = m.cluster_of[key(c, "small")]
        reps = m.representatives(cid)
        assert key(c, "small") not in reps  # the smallest copy: not among the 16 best
        # Its follower is the best copy of all: the version holding it now leads.
        core.send(c, [copy_of("scan", 0, 1, 7, width=9000, height=6000, lossless=True)])
        assert m.version_of[key(c, "scan")] == key(c, "small")
        assert m.representatives(cid)[0] == key(c, "small")
        assert key(c, "small") not in sorted(k for k in m.members_of[cid] if k not in m.version_of)[:REPRESENTATIVES]
        from dedup.coordinator.negotiation import Negotiator

        latest = Negotiator.latest(core.core.store._db, cid)
        assert (latest.body.master.member_id, latest.body.master.asset_id) == key(c, "scan")
        # Withdrawn, the follower no longer lifts its version.
        core.withdraw(c, ["scan"])
        assert key(c, "small") not in m.representatives(cid)
    finally:
        core.close()


def test_a_new_copy_is_compared_with_a_bounded_number_of_a_clusters_copies(keys, tmp_path):
    """A picture held in many distinct versions: a new copy offered more of one cluster's
    copies than ``CLUSTER_COMPARISONS`` is compared with that many, the cluster's
    representatives among them, and so makes at most that many matches."""
    from dedup.coordinator.matcher import CLUSTER_COMPARISONS

    core = Core(keys, tmp_path)
    try:
        a, b, c = MEMBERS[0], MEMBERS[1], MEMBERS[2]
        core.send(a, [copy_of(f"a{i:02}", 0, 7, 200 + i) for i in range(50)])
        m = core.core.matcher
        versions_a = len([k for k in m.index._number if k[0] == a])
        assert versions_a > CLUSTER_COMPARISONS
        # The first copy of another member meets no cluster: it is compared with every version
        # (and each follower joins through one match of its own).
        assert core.send(b, [copy_of("b", 0, 0, 0)]).new_matches == 50
        cid = m.cluster_of[key(b, "b")]
        reps = m.representatives(cid)
        r = core.send(c, [copy_of("c", 0, 1, 1)])
        assert r.new_matches == CLUSTER_COMPARISONS
        linked = {(mm, aa) for mm, aa in core.core.store._db.execute(
            "SELECT a_member, a_asset FROM matches WHERE b_member=? AND b_asset=?", key(c, "c"))}
        assert len(linked) == CLUSTER_COMPARISONS and set(reps) <= linked
    finally:
        core.close()


def test_a_withdrawn_version_hands_its_followers_on(keys, tmp_path):
    """The version's first follower by key is indexed in its place and the rest follow it; a
    restart reads the same from the store."""
    core = Core(keys, tmp_path)
    try:
        core.send(MEMBERS[0], [copy_of("o", 1, 0, 0)])
        core.send(MEMBERS[1], [copy_of(f"x{i}", 1, i, i) for i in range(5)])
        m = core.core.matcher
        assert {k for k in m.index._number if k[0] == MEMBERS[1]} == {key(MEMBERS[1], "x0")}
        core.withdraw(MEMBERS[1], ["x0"])
        assert {k for k in m.index._number if k[0] == MEMBERS[1]} == {key(MEMBERS[1], "x1")}
        assert {f: v[1] for f, v in m.version_of.items()} == {key(MEMBERS[1], f"x{i}"): opaque("x1") for i in (2, 3, 4)}
        before = core.state()
        core.close()
        core = Core(keys, tmp_path)
        assert core.state() == before
        check_versions(core, withdrawn=True)
    finally:
        core.close()


def test_a_lookup_of_a_followers_file_finds_its_cluster(keys, tmp_path):
    """A follower is not in the index, but a file identical to it is answered through its
    version: the same cluster, its master, its copies and holders."""
    core = Core(keys, tmp_path)
    try:
        core.send(MEMBERS[0], [copy_of("o", 2, 0, 0, width=4000, height=3000, lossless=True)])
        sent = [copy_of(f"x{i}", 2, i, i, width=1000, height=750) for i in range(5)]
        core.send(MEMBERS[1], sent)
        m = core.core.matcher
        assert key(MEMBERS[1], "x3") in m.version_of
        asked = asset_pb2.Asset()
        asked.CopyFrom(sent[3])
        asked.asset_id = ""
        (r,) = core.core.lookup(MEMBERS[2], [asked]).results
        assert (r.matched, r.cluster_id, r.copies, r.holders) == (True, m.cluster_of[key(MEMBERS[0], "o")], 6, 2)
        assert (r.master.member_id, r.master.asset_id) == key(MEMBERS[0], "o")
    finally:
        core.close()


class _Gate:
    """The core's lock, holding one thread back at its second turn (between its search and its
    store) until the test lets it go: what another member's intake does in that gap."""

    def __init__(self, lock) -> None:
        self.lock, self.thread, self.turns = lock, None, 0
        self.between, self.go = threading.Event(), threading.Event()

    def __enter__(self):
        if threading.current_thread() is self.thread:
            self.turns += 1
            if self.turns == 2:
                self.between.set()
                assert self.go.wait(30)
        return self.lock.__enter__()

    def __exit__(self, *exc):
        return self.lock.__exit__(*exc)


def test_assets_indexed_between_a_batchs_search_and_its_store_are_found(keys, tmp_path):
    """Another member's intake may run between a batch's search and its store (so a large
    batch keeps others waiting for half of its work): what it indexed is searched too."""
    core = Core(keys, tmp_path, one_turn_assets=0)  # the one-asset batch takes two turns too
    gate = _Gate(core.core.lock)
    core.core.lock = gate
    try:
        results = []
        worker = threading.Thread(target=lambda: results.append(core.send(MEMBERS[1], [copy_of("b1", 0, 3, 1)])))
        gate.thread = worker
        worker.start()
        assert gate.between.wait(30)
        assert core.send(MEMBERS[2], [copy_of("c1", 0, 5, 2)]).new_matches == 0  # b1 is not stored yet
        gate.go.set()
        worker.join(30)
        assert results and results[0].new_matches == 1
        m = core.core.matcher
        assert m.cluster_of[key(MEMBERS[1], "b1")] == m.cluster_of[key(MEMBERS[2], "c1")]
    finally:
        core.close()


class _Turns:
    """The core's lock, recording who gets each turn; ``first``'s first turn keeps the lock until
    ``others`` threads wait for it."""

    def __init__(self, lock, first: str, others: int) -> None:
        self.lock, self.first, self.others, self.order = lock, first, others, []

    def __enter__(self):
        got = self.lock.__enter__()
        name = threading.current_thread().name
        if name == self.first and name not in self.order:
            deadline = time.monotonic() + 30
            while self.lock.waiting() < self.others:
                assert time.monotonic() < deadline
                time.sleep(0.001)
        self.order.append(name)
        return got

    def __exit__(self, *exc):
        return self.lock.__exit__(*exc)


@pytest.mark.parametrize(("one_turn", "order"), [(5, ["big", "small", "big"]), (0, ["big", "small", "big", "small"])])
def test_another_members_batch_goes_between_a_batchs_two_turns(keys, tmp_path, one_turn, order):
    """A batch takes the lock twice (its search, then its store): a member that asked during the
    first turn is served before the second, so it waits for one half of the batch's work. A
    batch of at most one_turn_assets takes one turn, so it does not wait behind the second half
    too."""
    core = Core(keys, tmp_path, one_turn_assets=one_turn)
    turns = _Turns(core.core.lock, "big", 1)
    core.core.lock = turns
    try:
        big = threading.Thread(name="big", target=lambda: core.send(MEMBERS[1], [copy_of(f"b{n}", 0, 3, n)
                                                                            for n in range(20)]))
        big.start()
        deadline = time.monotonic() + 30
        while not turns.lock.locked():  # big's first turn has begun
            assert time.monotonic() < deadline
            time.sleep(0.001)
        small = threading.Thread(name="small", target=lambda: core.send(MEMBERS[2], [copy_of("c1", 0, 5, 2)]))
        small.start()
        big.join(60)
        small.join(60)
        assert turns.order == order
    finally:
        core.close()


def test_real_copies_over_grpc_cost_one_version_each_member(consortium, tmp_path):
    """Real files through the node's own fingerprinting and a real server: B holds a
    photograph; A sends 120 JPEG copies of it (400 px, each re-encoded at its own quality with
    faint noise of its own), in batches of 40, while C sends one unrelated picture. All of A's
    copies join B's cluster, A's copies take one place in the index (the first; the rest
    follow it), and the log holds one match per copy."""
    import numpy as np
    import skimage.data
    from PIL import Image

    from test_intake import batch as signed_batch, submit

    A, B, C = "records-office", "city-museum", "university-library"
    photo = Image.fromarray(skimage.data.coffee()).resize((600, 400), Image.Resampling.LANCZOS)
    submit(consortium, B, signed_batch(consortium, B, [record_of("master", photo, tmp_path / "master.png")]))
    rng = np.random.default_rng(5)
    small = np.asarray(photo.resize((400, 267), Image.Resampling.LANCZOS), dtype=np.int16)
    copies = []
    for i in range(120):
        noisy = np.clip(small + rng.integers(-2, 3, small.shape), 0, 255).astype(np.uint8)
        copies.append(record_of(f"copy{i:03d}", Image.fromarray(noisy), tmp_path / f"copy{i:03d}.jpg",
                                quality=int(70 + i % 25)))
    for n in range(3):
        r = submit(consortium, A, signed_batch(consortium, A, copies[40 * n:40 * (n + 1)], seq=n + 1))
        assert (r.accepted, r.new_matches) == (40, 40)
    other = Image.fromarray(skimage.data.astronaut()).resize((400, 400), Image.Resampling.LANCZOS)
    assert submit(consortium, C, signed_batch(consortium, C, [record_of("other", other, tmp_path / "o.png")])).new_matches == 0
    core = consortium.server.core
    m = core.matcher
    assert {m.cluster_of.get((A, c.asset_id)) for c in copies} == {m.cluster_of[key(B, "master")]}
    assert sum(1 for c in copies if (A, c.asset_id) in m.index) == 1
    assert consortium.query("SELECT COUNT(*) FROM matches") == [(120,)]
