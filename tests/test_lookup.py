"""Provenance lookups against a real coordinator over mutual TLS on loopback (SQLite and
PostgreSQL): reader members, the answer for agreed, disputed, cropped and unmatched pictures,
proofs, rate limits, what is (not) stored and logged, and the node's command."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import grpc
import pytest

from dedup.cli.main import main as dedup
from dedup.signing import parse_body, parse_entry, sign_statement
from dedup.v1 import asset_pb2, intake_pb2, lookup_pb2 as L, lookup_pb2_grpc, negotiation_pb2 as N, statements_pb2 as S

from conftest import ORIGIN, asset, fingerprint, make_party, near, opaque, record_of, rid
from test_intake import batch, rows, submit
from test_negotiation import ACCEPT, REJECT, entries, ruling, the_proposal, vote, vote_stmt

A, B, C = "records-office", "city-museum", "university-library"
READER = "picture-desk"
ARBITER = "records-service"
STORED = ("assets", "batches", "matches", "clusters", "proposals", "negotiations", "log_entries", "tombstones")


@pytest.fixture
def consortium(consortium):
    """The shared consortium plus a reader (a newsroom with no collection) and an arbiter."""
    from dedup.coordinator.settings import MemberSettings

    for mid, extra in ((READER, {"reader": True}), (ARBITER, {"arbiter": True})):
        party = make_party(consortium.root, consortium.ca, mid)
        consortium.parties[mid] = party
        consortium.settings.members.append(MemberSettings(id=mid, name=mid.title(),
                                                          public_key=party.signer.verifier().to_string(), **extra))
    consortium.stop()
    consortium.start()
    return consortium


def lookup(consortium, member, files, **kw):
    stub = lookup_pb2_grpc.LookupServiceStub(consortium.channel(member))
    return stub.Lookup(L.LookupRequest(files=files), timeout=10, **kw)


def query(fp, **kw) -> asset_pb2.Asset:
    """A queried file: an asset record with no asset id."""
    a = asset("q-" + fp.hex()[:8], fp, **kw)
    a.asset_id = ""
    return a


def counts(consortium):
    return {t: rows(consortium, t) for t in STORED}


def agreed_pair(consortium, fp):
    """A holds the 4000 px lossless master a1, B a 1000 px copy b1; both accept."""
    submit(consortium, A, batch(consortium, A, [asset("a1", fp, width=4000, height=3000, lossless=True)]))
    submit(consortium, B, batch(consortium, B, [asset("b1", near(fp, 5), width=1000, height=750)]))
    p = the_proposal(consortium, A)
    vote(consortium, A, p)
    r = vote(consortium, B, p)
    assert r.status == N.PROPOSAL_STATUS_AGREED
    return p, r.outcome_log_index


def test_reader_is_admitted_as_reader_in_the_log(consortium):
    admitted = {e.member_id: (e.reader, e.arbiter) for e in entries(consortium) if isinstance(e, S.MemberAdmitted)}
    assert admitted == {A: (False, False), B: (False, False), C: (False, False), READER: (True, False),
                        ARBITER: (False, True)}
    assert consortium.query("SELECT member_id FROM members WHERE reader = 1") == [(READER,)]


def test_coordinator_refuses_to_start_when_config_and_log_disagree_on_reader(consortium):
    from dedup.coordinator.server import start

    consortium.stop()
    for m in consortium.settings.members:
        if m.id == READER:
            m.reader = False
    with pytest.raises(ValueError) as info:
        start(consortium.settings)
    assert str(info.value) == (f"member {READER}: configured reader = False, but the log admitted it with reader = "
                               "True; readers are named when first admitted")


def test_reader_cannot_be_an_arbiter():
    from pydantic import ValidationError

    from dedup.coordinator.settings import MemberSettings
    from dedup.note import NoteSigner

    key = NoteSigner.generate("x").verifier().to_string()
    with pytest.raises(ValidationError, match="a reader cannot be an arbiter"):
        MemberSettings(id="x", name="X", public_key=key, reader=True, arbiter=True)


def test_reader_looks_up_an_agreed_master_and_its_proof_verifies(consortium, tmp_path):
    fp = fingerprint(1)
    p, outcome = agreed_pair(consortium, fp)
    r, = lookup(consortium, READER, [query(near(fp, 3), width=1024, height=768, quality=75)]).results
    assert (r.position, r.matched, r.master_status) == (0, True, L.MASTER_STATUS_AGREED)
    assert (r.master.member_id, r.master.asset_id, r.proposal_id, r.cluster_id) == (A, opaque("a1"), p.proposal_id, p.cluster_id)
    assert (r.copies, r.holders) == (2, 2)
    e = r.master_evidence
    assert (e.width, e.height, e.format_family, e.rights) == (4000, 3000, asset_pb2.FORMAT_FAMILY_LOSSLESS, "unknown")
    assert (r.relation, r.distance, r.kept_permille) == (S.RELATION_REENCODED, 3, 0)
    assert r.description == "same image, lower resolution 1024 vs 4000 px"
    assert r.outcome_log_index == outcome and (r.agreed_master.member_id, r.agreed_master.asset_id) == (A, opaque("a1"))
    # The proof bundle alone shows the MasterAgreed entry is in the signed log.
    bundle = tmp_path / "agreed.tlog-proof"
    bundle.write_text(r.inclusion_proof)
    key = consortium.log_signer.verifier().to_string()
    assert dedup(["audit", "check-proof", str(bundle), "--key", key]) == 0
    from dedup.proofbundle import Bundle

    b = Bundle.parse(r.inclusion_proof)
    agreed = parse_body(parse_entry(b.entry))
    assert b.index == outcome and isinstance(agreed, S.MasterAgreed) and agreed.proposal_id == p.proposal_id
    # Full members look up too; no fingerprint is ever in the answer.
    r2, = lookup(consortium, C, [query(near(fp, 3), width=1024, height=768, quality=75)]).results
    assert r2 == r
    assert "fingerprints" not in {f.name for f, _ in r.ListFields()}


def test_identical_and_greyscale_copies(consortium):
    fp = fingerprint(1)
    agreed_pair(consortium, fp)
    same = asset("x", fp, width=4000, height=3000, lossless=True, sha=hashlib.sha256(b"a1" + fp).digest())
    same.asset_id = ""
    grey = query(near(fp, 4), width=4000, height=3000, lossless=True, channels=1)
    r1, r2 = lookup(consortium, READER, [same, grey]).results
    assert (r1.relation, r1.description) == (S.RELATION_IDENTICAL_BYTES, "identical")
    assert (r2.position, r2.relation, r2.description) == (1, S.RELATION_GREYSCALE, "greyscale")


def test_lookup_for_an_unmatched_image(consortium):
    agreed_pair(consortium, fingerprint(1))
    r, = lookup(consortium, READER, [query(fingerprint(99))]).results
    assert r == L.LookupResult(position=0, matched=False)


def test_cropped_and_recoloured_copy_of_a_master(consortium, tmp_path):
    """Real files: A's lossless master, B's half-size JPEG of it; the query has the top 20% cut
    off and is brightened. It is placed in the master by its keypoints."""
    import skimage.data
    from PIL import Image, ImageEnhance

    master = Image.fromarray(skimage.data.astronaut()).resize((400, 400), Image.Resampling.LANCZOS)
    a1 = record_of("a1", master, tmp_path / "a1.png")
    b1 = record_of("b1", master.resize((200, 200), Image.Resampling.LANCZOS), tmp_path / "b1.jpg", quality=85)
    submit(consortium, A, batch(consortium, A, [a1]))
    submit(consortium, B, batch(consortium, B, [b1]))
    cut = ImageEnhance.Brightness(master.crop((0, 80, 400, 400))).enhance(1.25)
    q = record_of("", cut, tmp_path / "q.jpg", quality=90)
    assert q.evidence.luma_mean > a1.evidence.luma_mean + 8  # the evidence says colour-corrected
    r, = lookup(consortium, READER, [q]).results
    assert (r.matched, r.master_status, r.master.member_id, r.master.asset_id) == (True, L.MASTER_STATUS_PROPOSED, A, opaque("a1"))
    assert (r.relation, r.master_is_crop) == (S.RELATION_CROPPED, False)
    assert 0 <= r.distance <= 10  # the agreeing keypoints' median hash distance
    assert abs(r.kept_permille - 800) <= 10, r.kept_permille
    assert r.description == f"cropped, about {round(r.kept_permille / 10)}% kept, colour-corrected"
    assert (r.outcome_log_index, r.inclusion_proof) == (0, "")


def test_lookup_for_a_disputed_decision(consortium):
    fp = fingerprint(1)
    submit(consortium, A, batch(consortium, A, [asset("a1", fp, width=4000, height=3000)]))
    submit(consortium, B, batch(consortium, B, [asset("b1", near(fp, 5), width=1000, height=750)]))
    p = the_proposal(consortium, A)
    assert vote(consortium, B, p, REJECT, reason="ours is the camera original").status == N.PROPOSAL_STATUS_DISPUTED
    r, = lookup(consortium, READER, [query(near(fp, 2), width=1000, height=750)]).results
    assert (r.master_status, r.master.asset_id, r.proposal_id) == (L.MASTER_STATUS_DISPUTED, opaque("a1"), p.proposal_id)
    assert (r.outcome_log_index, r.inclusion_proof) == (0, "")
    # The arbiter settles it for b1: the answer follows, with the proof.
    ruling(consortium, p, S.AssetRef(member_id=B, asset_id=opaque("b1")))
    r, = lookup(consortium, READER, [query(near(fp, 2), width=1000, height=750)]).results
    assert (r.master_status, r.master.member_id, r.master.asset_id) == (L.MASTER_STATUS_AGREED, B, opaque("b1"))
    assert r.description == "same image" and r.inclusion_proof.startswith("c2sp.org/tlog-proof@v1\n")


def test_single_member_copy_has_no_master_status(consortium):
    fp = fingerprint(5)
    submit(consortium, A, batch(consortium, A, [asset("a9", fp, width=2000, height=1500)]))
    r, = lookup(consortium, READER, [query(near(fp, 1), width=2000, height=1500)]).results
    assert (r.matched, r.master_status, r.master.asset_id, r.cluster_id, r.copies, r.holders) == (
        True, L.MASTER_STATUS_NONE, opaque("a9"), "", 1, 1)
    assert r.description == "same image"


def test_reader_refused_intake_and_votes(consortium):
    fp = fingerprint(1)
    submit(consortium, A, batch(consortium, A, [asset("a1", fp, width=4000, height=3000)]))
    submit(consortium, B, batch(consortium, B, [asset("b1", near(fp, 5), width=1000, height=750)]))
    p = the_proposal(consortium, A)
    before = counts(consortium)
    stub_i = consortium.intake(READER)
    with pytest.raises(grpc.RpcError) as info:
        submit(consortium, READER, batch(consortium, READER, [asset("r1", fp)]))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert info.value.details() == (f"{READER!r} is a reader member: it may look up, but not submit batches (it "
                                    "holds no collection)")
    w = sign_statement(consortium.parties[READER].signer, asset_pb2.AssetsWithdrawn(
        member_id=READER, withdrawal_id=rid("w1"), asset_ids=["r1"], created_unix=1), origin=ORIGIN)
    with pytest.raises(grpc.RpcError) as info:
        stub_i.WithdrawAssets(intake_pb2.WithdrawAssetsRequest(withdrawal=w), timeout=10)
    assert (info.value.code(), info.value.details()) == (
        grpc.StatusCode.PERMISSION_DENIED,
        f"{READER!r} is a reader member: it may look up, but not withdraw assets (it holds no collection)")
    from test_negotiation import stub

    with pytest.raises(grpc.RpcError) as info:
        stub(consortium, READER).Vote(N.VoteRequest(vote=vote_stmt(consortium, READER, p, ACCEPT)), timeout=10)
    assert (info.value.code(), info.value.details()) == (
        grpc.StatusCode.PERMISSION_DENIED, f"{READER!r} is a reader member: it may look up, but not vote on master "
                                           "proposals")
    body = S.MasterRuling(proposal_id=p.proposal_id, cluster_id=p.cluster_id, master=p.master, reasoning="x",
                          arbiter_id=READER, ruled_unix=1)
    with pytest.raises(grpc.RpcError) as info:
        stub(consortium, READER).Rule(N.RuleRequest(ruling=sign_statement(consortium.parties[READER].signer, body, origin=ORIGIN)),
                                      timeout=10)
    assert (info.value.code(), info.value.details()) == (
        grpc.StatusCode.PERMISSION_DENIED, f"{READER!r} is a reader member: it may look up, but not rule on master "
                                           "proposals")
    assert counts(consortium) == before


def test_lookup_over_the_rate_limit(consortium):
    from dedup.coordinator.settings import LookupSettings

    consortium.stop()
    consortium.settings.lookup = LookupSettings(max_files=3, rate=1.0, burst=3)
    consortium.start()
    consortium.server.core.lookups.limiter.clock = lambda: 1000.0  # time stands still: nothing refills
    files = [query(fingerprint(i)) for i in range(2)]
    assert len(lookup(consortium, READER, files).results) == 2
    with pytest.raises(grpc.RpcError) as info:
        lookup(consortium, READER, files)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert info.value.details() == f"member {READER!r} is over its lookup limit (1/s, burst 3); retry in 1.0 s"
    # One file left in the bucket; other members have their own.
    assert len(lookup(consortium, READER, files[:1]).results) == 1
    assert len(lookup(consortium, A, files).results) == 2
    with pytest.raises(grpc.RpcError) as info:
        lookup(consortium, A, [query(fingerprint(i)) for i in range(4)])
    assert (info.value.code(), info.value.details()) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED, "a lookup of 4 files; this coordinator answers at most 3 per call")
    # Only answered lookups are counted.
    assert consortium.query("SELECT member_id, calls, files FROM lookup_counts ORDER BY member_id") == [
        (READER, 2, 3), (A, 1, 2)]


def test_malformed_lookups_are_refused(consortium):
    named = query(fingerprint(1))
    named.asset_id = "a-123"
    with pytest.raises(grpc.RpcError) as info:
        lookup(consortium, READER, [query(fingerprint(2)), named])
    assert (info.value.code(), info.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "file 1: a lookup carries no asset id (it is never stored); leave asset_id empty")
    # Its evidence has the form intake requires, though nothing of it is stored.
    for field, value, problem in [("rights", "© Jane Doe, masters/jane_doe.tif", "is not a rights value"),
                                  ("capture_date", "Lakeside Manor", "is not a capture date")]:
        bad = query(fingerprint(3))
        setattr(bad.evidence, field, value)
        with pytest.raises(grpc.RpcError) as info:
            lookup(consortium, READER, [bad])
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert info.value.details().startswith(f"file 0.evidence: {field} {problem}")
    with pytest.raises(grpc.RpcError) as info:
        lookup(consortium, "outsider", [query(fingerprint(2))])
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as info:
        lookup(consortium, READER, [])
    assert (info.value.code(), info.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT,
                                                         "a lookup names at least one file")


def test_nothing_of_a_lookup_is_stored_and_the_log_shows_only_counts(consortium, tmp_path):
    fp = fingerprint(1)
    agreed_pair(consortium, fp)
    before = counts(consortium)
    files = [query(near(fp, 3), width=1024, height=768), query(fingerprint(50)), query(fingerprint(51))]
    lookup(consortium, READER, files)
    lookup(consortium, READER, files[:1])
    lookup(consortium, B, files[1:])
    assert counts(consortium) == before
    assert consortium.query("SELECT member_id, calls, files FROM lookup_counts ORDER BY member_id") == [
        (B, 1, 2), (READER, 2, 4)]
    core = consortium.server.core
    assert core.lookups.flush() == []  # the period (a day) has not ended
    first = core.log.size
    assert core.lookups.flush(force=True) == [first, first + 1]
    assert consortium.query("SELECT COUNT(*) FROM lookup_counts") == [(0,)]
    new = entries(consortium)[first:]
    assert [(e.member_id, e.calls, e.files) for e in new] == [(B, 1, 2), (READER, 2, 4)]
    for e in new:
        assert isinstance(e, S.LookupsCounted)
        assert {f.name for f, _ in e.ListFields()} <= {"member_id", "calls", "files", "period_start_unix",
                                                       "period_end_unix"}
        assert e.period_end_unix >= e.period_start_unix
    # The log's bytes hold nothing of what was asked.
    raw = b"".join(e for (e,) in consortium.query("SELECT entry FROM log_entries"))
    assert all(bytes(f.fingerprints[0].value[:32]) not in raw for f in files[1:])
    # The auditor accepts the counts.
    from dedup.audit.verify import verify_export
    from dedup.coordinator.export import export_log

    out = tmp_path / "export"
    export_log(core.store, out, consortium.log_signer.verifier().to_string())
    report = verify_export(out, consortium.log_signer.verifier())
    assert (report.lookup_counts, report.entries) == (2, first + 2)
    assert dedup(["audit", "verify", str(out), "--key", consortium.log_signer.verifier().to_string()]) == 0


def test_counts_are_flushed_when_their_period_ends(consortium):
    from dedup.coordinator.settings import LookupSettings

    consortium.stop()
    consortium.settings.lookup = LookupSettings(count_period_seconds=60)
    consortium.start()
    core = consortium.server.core
    lookup(consortium, READER, [query(fingerprint(3))])
    (since,), = consortium.query("SELECT since_unix FROM lookup_counts")
    assert core.lookups.flush(now=since + 59) == []
    idx, = core.lookups.flush(now=since + 60)
    e = entries(consortium)[idx]
    assert (e.member_id, e.calls, e.files, e.period_start_unix, e.period_end_unix) == (READER, 1, 1, since, since + 60)


def test_auditor_refuses_a_malformed_count_and_a_reader_signing_a_batch(consortium, tmp_path):
    from dedup.audit.verify import AuditFailure, verify_export
    from dedup.coordinator.export import export_log

    core = consortium.server.core
    with core.lock, core.log.transaction() as txn:
        txn.append_statement(S.LookupsCounted(member_id="nobody", calls=1, files=1))
    out = tmp_path / "export"
    export_log(core.store, out, consortium.log_signer.verifier().to_string())
    with pytest.raises(AuditFailure, match="lookup count for 'nobody', not an admitted member"):
        verify_export(out, consortium.log_signer.verifier())


def test_a_version_4_store_is_migrated(database):
    from dedup.coordinator.store import SCHEMA_VERSION, Store

    store = Store(database)
    for sql in ("DROP TABLE lookup_counts", "ALTER TABLE members DROP COLUMN reader",
                "UPDATE meta SET value='4' WHERE key='schema_version'"):
        store._db.execute(sql)
    store._db.execute("INSERT INTO members (member_id, public_key, admitted_index, arbiter) VALUES ('x', ?, 0, 0)",
                      (b"k" * 32,))
    store.close()
    store = Store(database)
    try:
        assert SCHEMA_VERSION == 7 and store.meta("schema_version") == "7"
        assert store.admitted_readers() == set()
        with store.transaction() as db:
            Store.add_member(db, "r", b"r" * 32, 1, reader=True)
            Store.count_lookup(db, "r", 3, 100)
            Store.count_lookup(db, "r", 2, 200)
        assert store.admitted_readers() == {"r"}
        assert Store.lookup_counts(store._db) == [("r", 2, 5, 100)]
    finally:
        store.close()


# --- the node's command ---------------------------------------------------------------------------


def _images(folder):
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(data.astronaut())
    img.save(folder / "master.png")
    return img


def _node_config(consortium, tmp_path, member, *, coordinator=True):
    import tomli_w

    p = consortium.parties[member]
    key = tmp_path / f"{member}.key"
    key.write_text(p.signer.to_string())
    cfg = {"member_id": member, "catalogue": str(tmp_path / f"{member}.sqlite"), "signing_key": str(key),
           "workers": 1}
    if coordinator:
        cfg["tls"] = {"ca": str(consortium.ca_pem), "cert": str(p.tls_cert), "key": str(p.tls_key)}
        cfg["coordinator"] = {"address": f"127.0.0.1:{consortium.server.port}", "server_name": "coordinator"}
        cfg["log_origin"] = ORIGIN
    path = tmp_path / f"{member}.toml"
    path.write_text(tomli_w.dumps(cfg))
    return path


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_node_lookup_of_a_folder_against_the_coordinator(consortium, tmp_path, capsys):
    from PIL import Image

    img = _images(tmp_path / "a")
    # A pushes its master; the reader's picture desk holds a smaller JPEG, a greyscale copy,
    # an unrelated picture and a file that is not an image.
    cfg_a = _node_config(consortium, tmp_path, A)
    assert dedup(["node", "scan", str(tmp_path / "a"), "--config", str(cfg_a), "--quiet"]) == 0
    assert dedup(["node", "push", "--config", str(cfg_a), "--json"]) == 0
    desk = tmp_path / "story"
    desk.mkdir()
    img.resize((256, 256)).save(desk / "small.jpg", quality=80)
    img.convert("L").save(desk / "grey.png")
    from skimage import data

    Image.fromarray(data.coffee()).save(desk / "other.png")
    (desk / "notes.txt").write_text("caption draft")
    cfg_r = _node_config(consortium, tmp_path, READER)
    capsys.readouterr()
    code = dedup(["node", "lookup", str(desk), "--config", str(cfg_r), "--json", "--csv", str(tmp_path / "story.csv")])
    out = json.loads(capsys.readouterr().out)
    assert code == 1  # the text file is unreadable: reported, not fatal
    assert (out["answered_by"], out["local_only"], out["refusal"]) == ("coordinator", False, None)
    by = {r["file"].rsplit("/", 1)[1]: r for r in out["results"]}
    assert sorted(by) == ["grey.png", "notes.txt", "other.png", "small.jpg"]
    assert by["notes.txt"]["error"] and not by["notes.txt"]["matched"]
    assert not by["other.png"]["matched"] and by["other.png"]["error"] is None
    small = by["small.jpg"]
    assert (small["matched"], small["master_status"], small["master"]["member_id"]) == (True, "none", A)
    assert small["master_evidence"]["width"] == 512 and small["master_evidence"]["format_family"] == "lossless"
    assert small["description"] == "same image, lower resolution 256 vs 512 px"
    assert (by["grey.png"]["relation"], by["grey.png"]["description"]) == ("greyscale", "greyscale")
    lines = (tmp_path / "story.csv").read_text().splitlines()
    assert lines[0].startswith("file,matched,answered_by,master_status,master_member") and len(lines) == 5
    # Nothing was added to the reader's catalogue, and the coordinator stored no asset of it.
    assert consortium.query("SELECT COUNT(*) FROM assets WHERE member_id=?", (READER,)) == [(0,)]
    # The terminal table.
    assert dedup(["node", "lookup", str(desk / "small.jpg"), "--config", str(cfg_r)]) == 0
    text = capsys.readouterr().out
    assert "FILE" in text and "small.jpg" in text and "same image, lower resolution 256 vs 512 px" in text
    assert "LOCAL ANSWER" not in text


def _solo_node(tmp_path) -> Path:
    """The configuration of a node 'solo' with no coordinator, after scanning tmp_path/coll."""
    import tomli_w

    from dedup.note import NoteSigner

    key = tmp_path / "k.key"
    key.write_text(NoteSigner.generate("solo").to_string())
    cfg = tmp_path / "node.toml"
    cfg.write_text(tomli_w.dumps({"member_id": "solo", "catalogue": str(tmp_path / "c.sqlite"),
                                  "signing_key": str(key), "workers": 1}))
    assert dedup(["node", "scan", str(tmp_path / "coll"), "--config", str(cfg), "--quiet"]) == 0
    return cfg


def test_node_lookup_without_a_coordinator_answers_locally(tmp_path, capsys):
    img = _images(tmp_path / "coll")
    cfg = _solo_node(tmp_path)
    img.resize((200, 200)).save(tmp_path / "copy.jpg", quality=85)
    capsys.readouterr()
    assert dedup(["node", "lookup", str(tmp_path / "copy.jpg"), "--config", str(cfg), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["answered_by"], out["local_only"]) == ("local catalogue", True)
    r, = out["results"]
    assert r["matched"] and r["master_status"] is None
    m, = r["local_matches"]
    assert m["path"] == str((tmp_path / "coll" / "master.png").resolve())
    assert m["description"] == "your file is a smaller copy of our master.png (200 px of 512)"
    assert (r["relation"], r["description"]) == ("reencoded", m["description"])
    assert (r["keeper"]["path"], r["keeper"]["reason"]) == (m["path"], "it is our only copy of this picture")
    assert dedup(["node", "lookup", str(tmp_path / "copy.jpg"), "--config", str(cfg)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("LOCAL ANSWER: no coordinator is configured; only solo's own catalogue was searched")
    assert dedup(["node", "lookup", str(tmp_path / "missing.jpg"), "--config", str(cfg)]) == 2


@pytest.fixture
def local_node(tmp_path):
    """A node with no coordinator whose catalogue holds a colour original, its greyscale copy,
    a crop of it and a smaller copy, scanned through the command line."""
    img = _images(tmp_path / "coll")
    w, h = img.size
    img.convert("L").save(tmp_path / "coll" / "grey.jpg", quality=90)
    img.crop((0, 0, int(w * 0.8), int(h * 0.8))).save(tmp_path / "coll" / "crop.jpg", quality=90)
    img.resize((w // 2, h // 2)).save(tmp_path / "coll" / "small.jpg", quality=85)
    cfg = _solo_node(tmp_path)
    (tmp_path / "asked").mkdir()
    return img, tmp_path / "coll", cfg


def _ask(path, cfg, capsys) -> tuple[dict, str]:
    capsys.readouterr()
    assert dedup(["node", "lookup", str(path), "--config", str(cfg), "--json"]) == 0
    r, = json.loads(capsys.readouterr().out)["results"]
    assert dedup(["node", "lookup", str(path), "--config", str(cfg)]) == 0
    return r, capsys.readouterr().out


def test_local_lookup_of_a_copy_of_the_greyscale_file(local_node, tmp_path, capsys):
    """A byte copy of our greyscale copy: the same file as it, and the picture's copy to keep
    is the colour original, never the greyscale one."""
    import shutil

    _, coll, cfg = local_node
    shutil.copy(coll / "grey.jpg", tmp_path / "asked" / "grey-copy.jpg")
    r, text = _ask(tmp_path / "asked" / "grey-copy.jpg", cfg, capsys)
    assert (r["matched"], r["relation"], r["distance"]) == (True, "identical_bytes", 0)
    assert r["description"] == "your file is the same file as our grey.jpg"
    assert r["reference"] == {"path": str(coll / "grey.jpg"), "asset_id": r["reference"]["asset_id"],
                              "identical": True, "to_keeper": "our grey.jpg is a greyscale copy of our master.png"}
    assert (r["keeper"]["path"], r["keeper"]["deciding_rule"]) == (str(coll / "master.png"), "lossless")
    assert r["keeper"]["facts"] == "512\u00d7512, lossless, colour"
    assert r["would_be_keeper"] is False and r["master"] is None and r["master_status"] is None
    assert sorted(r["our_copies"]) == sorted(str(coll / n) for n in ("crop.jpg", "grey.jpg", "master.png", "small.jpg"))
    assert "grey-copy.jpg  yes    master.png        -       your file is the same file as our grey.jpg" in text
    assert (f"  our copy to keep: {coll / 'master.png'} (512\u00d7512, lossless, colour) \u2014 it is stored "
            "losslessly; the next best copy (grey.jpg) has as many pixels but is lossy") in text
    assert "  our grey.jpg is a greyscale copy of our master.png\n" in text
    assert f"  matches {coll / 'master.png'}: your file is a greyscale copy of our master.png\n" in text
    assert "the master is greyscale" not in text and "master is a crop" not in text


def test_local_lookup_of_the_full_original(local_node, tmp_path, capsys):
    """The original itself: identical to our original, which is the copy to keep; our crop is
    a crop of it, not its master."""
    import shutil

    _, coll, cfg = local_node
    shutil.copy(coll / "master.png", tmp_path / "asked" / "picture.png")
    r, text = _ask(tmp_path / "asked" / "picture.png", cfg, capsys)
    assert (r["relation"], r["description"]) == ("identical_bytes", "your file is the same file as our master.png")
    assert r["reference"]["path"] == r["keeper"]["path"] == str(coll / "master.png")
    assert "to_keeper" not in r["reference"]
    crop = next(m for m in r["local_matches"] if m["path"] == str(coll / "crop.jpg"))
    assert (crop["relation"], crop["kept"]) == ("cropped", 0.64)
    assert crop["description"] == "your file is the full picture; our crop.jpg is a crop keeping 64% of it"
    assert "picture.png  yes    master.png        -       your file is the same file as our master.png" in text
    assert f"  matches {coll / 'crop.jpg'}: your file is the full picture; our crop.jpg is a crop keeping 64% of it" \
        in text
    assert "the master is a crop" not in text and "the master is greyscale" not in text


def test_local_lookup_of_a_new_crop(local_node, tmp_path, capsys):
    """A crop we do not hold: cropped relative to the original, whatever copy is closest."""
    img, coll, cfg = local_node
    w, h = img.size
    img.crop((int(w * 0.2), int(h * 0.1), w, h)).save(tmp_path / "asked" / "detail.jpg", quality=90)
    r, text = _ask(tmp_path / "asked" / "detail.jpg", cfg, capsys)
    assert (r["relation"], r["master_is_crop"]) == ("cropped", False)
    assert 0.65 <= r["kept"] <= 0.8
    share = round(r["kept"] * 100)
    assert r["description"] == f"your file is a crop of our master.png, keeping {share}% of it"
    assert (r["reference"]["path"], r["reference"]["identical"]) == (str(coll / "master.png"), False)
    assert r["keeper"]["path"] == str(coll / "master.png") and r["would_be_keeper"] is False
    assert f"detail.jpg  yes    master.png        -       your file is a crop of our master.png, keeping {share}%" \
        in text


def test_local_lookup_of_a_better_copy_than_ours(local_node, tmp_path, capsys):
    """Where we hold only a crop and a greyscale copy, the full colour original is answered as
    the fuller picture and the better copy to keep; neither of ours is called its master."""
    import shutil

    img, whole, cfg = local_node
    coll = tmp_path / "partial"
    coll.mkdir()
    for name in ("crop.jpg", "grey.jpg"):
        shutil.copy(whole / name, coll / name)
    cfg.write_text(cfg.read_text().replace("c.sqlite", "partial.sqlite"))
    assert dedup(["node", "scan", str(coll), "--config", str(cfg), "--quiet"]) == 0
    img.save(tmp_path / "asked" / "original.png")
    r, text = _ask(tmp_path / "asked" / "original.png", cfg, capsys)
    assert (r["keeper"]["path"], r["keeper"]["deciding_rule"]) == (str(coll / "grey.jpg"), "not_derived")
    assert (r["relation"], r["description"]) == ("greyscale", "your file is in colour; our grey.jpg is a greyscale "
                                                             "copy of it")
    assert r["would_be_keeper"] is True
    assert r["would_be_keeper_reason"] == ("it is stored losslessly; the next best copy (grey.jpg) has as many pixels "
                                           "but is lossy")
    assert ("  your file would be the better copy to keep: it is stored losslessly; the next best copy (grey.jpg) "
            "has as many pixels but is lossy") in text
