"""Master negotiation from the member nodes' side: real nodes (real catalogues of scanned image
files, the `dedup node` command line run in-process) against a real coordinator over mutual TLS
on loopback, through agreement, disputes and rulings, deadlines, re-proposals, withdrawals,
concurrent votes, every refusal a node can meet, the automatic mode, and the outcome in the
catalogue, the audit report and its PREMIS export."""

from __future__ import annotations

import csv
import json
import threading
from pathlib import Path

import pytest
import tomli_w
from PIL import Image
from skimage import data

from dedup import pki
from dedup.cli.main import main
from dedup.config import load
from dedup.node.catalogue import Catalogue
from dedup.node.negotiation import (ALL, PolicyCheck, VoteRefused, auto_answer, auto_decide, cast_vote,
                                    check_policy, list_proposals)
from dedup.node.settings import AutoDecisions, NodeSettings
from dedup.signing import parse_body, parse_entry
from dedup.v1 import asset_pb2, log_pb2, negotiation_pb2 as N, statements_pb2 as S

from conftest import ORIGIN, make_party

A, B, C = "records-office", "city-museum", "university-library"
ARBITER = "records-service"


# --- a consortium with an arbiter, and nodes with real catalogues ----------------------------------


@pytest.fixture
def cons(consortium, tmp_path):
    """The conftest consortium, restarted with an arbiter member admitted."""
    port = consortium.server.port
    consortium.stop()
    party = make_party(tmp_path, consortium.ca, ARBITER)
    consortium.parties[ARBITER] = party
    members = [m.model_dump() for m in consortium.settings.members] + [
        {"id": ARBITER, "name": "Records Service", "public_key": party.signer.verifier().to_string(),
         "custodial_priority": 100, "arbiter": True}]
    # A member joining at this restart is admitted now, as an arbiter.
    fresh = {**consortium.settings.model_dump(), "listen": f"127.0.0.1:{port}", "members": members}
    consortium.settings = type(consortium.settings).model_validate(fresh)
    consortium.start()
    return consortium


class Node:
    def __init__(self, cons, member: str, root: Path, **extra) -> None:
        self.member = member
        self.dir = root / member
        self.photos = self.dir / "photos"
        self.photos.mkdir(parents=True)
        party = cons.parties[member]
        pki.write_private(self.dir / "signing.key", party.signer.to_string().encode())
        cfg = {"member_id": member, "catalogue": str(self.dir / "catalogue.sqlite"),
               "signing_key": str(self.dir / "signing.key"), "roots": [str(self.photos)], "workers": 1,
               "log_origin": ORIGIN,
               "tls": {"ca": str(cons.ca_pem), "cert": str(party.tls_cert), "key": str(party.tls_key)},
               "coordinator": {"address": f"127.0.0.1:{cons.server.port}", "server_name": "coordinator",
                               "timeout_seconds": 10}, **extra}
        self.config = self.dir / "node.toml"
        self.config.write_text(tomli_w.dumps(cfg))

    @property
    def settings(self) -> NodeSettings:
        return load(self.config, NodeSettings)

    @property
    def catalogue(self) -> Catalogue:
        return Catalogue(self.dir / "catalogue.sqlite")

    def add(self, name: str, image: Image.Image, **save) -> None:
        image.save(self.photos / name, **save)

    def asset(self, name: str) -> str:
        return self.catalogue.asset_id_of(str((self.photos / name).resolve()))

    def path(self, name: str) -> str:
        return str((self.photos / name).resolve())

    def run(self, capsys, *args: str, code: int = 0) -> tuple[str, str]:
        capsys.readouterr()
        got = main(["node", args[0], "--config", str(self.config), *args[1:]])
        out, err = capsys.readouterr()
        assert got == code, f"exit {got}, expected {code}\n{out}\n{err}"
        return out, err

    def json(self, capsys, *args: str, code: int = 0) -> dict:
        return json.loads(self.run(capsys, *args, "--json", code=code)[0])

    def sync(self, capsys) -> dict:
        """scan and push."""
        self.run(capsys, "scan", "--json")
        return self.json(capsys, "push")

    def decisions(self, capsys, *flags: str, code: int = 0) -> dict:
        return self.json(capsys, "decisions", *flags, code=code)


CAMERA = Image.fromarray(data.camera())  # 512 x 512 greyscale
ASTRONAUT = Image.fromarray(data.astronaut())  # 512 x 512 colour


def entry(cons, index: int):
    e = cons.log(A).GetEntries(log_pb2.GetEntriesRequest(start=index, end=index + 1), timeout=5).entries[0]
    return parse_body(parse_entry(e))


def only(proposals: list[dict]) -> dict:
    assert len(proposals) == 1, proposals
    return proposals[0]


# --- agreement, and the outcome in the catalogue, report and PREMIS export -------------------------------


def test_unanimous_agreement_lands_in_catalogue_report_and_premis(cons, tmp_path, capsys):
    a, b = Node(cons, A, tmp_path), Node(cons, B, tmp_path)
    a.add("camera.png", CAMERA)
    a.add("coffee.jpg", Image.fromarray(data.coffee()), quality=90)
    b.add("cam-small.jpg", CAMERA.resize((256, 256)), quality=70)
    assert a.sync(capsys)["assets_accepted"] == 2
    assert b.sync(capsys)["new_matches"] == 1
    master = a.asset("camera.png")

    # B sees the proposal with both copies' evidence, its own first.
    seen = b.decisions(capsys)
    p = only(seen["proposals"])
    assert (p["status"], p["master"], p["deciding_rule"], p["we_hold_master"], p["reason"]) == (
        "open", {"member_id": A, "asset_id": master}, "pixel_count", False, "new_cluster")
    assert [(c["member_id"], c["ours"], c["proposed_master"]) for c in p["copies"]] == [(B, True, False),
                                                                                         (A, False, True)]
    ours, theirs = p["copies"]
    assert ours["path"] == b.path("cam-small.jpg") and theirs["path"] is None
    assert ours["evidence"] == {"width": 256, "height": 256, "format_family": "lossy", "bit_depth": 8, "channels": 1,
                                "jpeg_quality": 70, "capture_date": "", "rights": "unknown"}
    assert theirs["evidence"]["format_family"] == "lossless" and theirs["evidence"]["width"] == 512
    assert p["policy_check"]["follows"] is True and p["policy_check"]["deciding_rule"] == "pixel_count"
    assert (p["votes"], p["not_voted"], p["deadline_unix"] > p["proposed_unix"]) == ([], [B, A], True)
    assert seen["outcomes"] == 0
    text, _ = b.run(capsys, "decisions")
    assert "OURS city-museum" in text and "dimensions" in text and "256\u00d7256" in text and "512\u00d7512" in text
    assert "we do not hold it" in text and "follows the policy" in text
    assert "(we do not hold it), chosen by dedup-master-policy/2 for the most pixels\n" in text
    assert "pixel_count" not in text  # rule ids stay in --json

    first = b.json(capsys, "accept", p["proposal_id"])
    assert (first["choice"], first["status"], first["outcome_log_index"], first["already_stored"]) == (
        "accept", "open", 0, False)
    assert only(a.decisions(capsys)["proposals"])["votes"][0] == {
        "member_id": B, "choice": "accept", "reason": "", "claimed_master": None, "claim_kind": "",
        "claim_evidence": ""}
    second = a.json(capsys, "accept", p["proposal_id"])
    assert second["status"] == "agreed" and second["outcome_log_index"] > second["log_index"] > first["log_index"]

    # The outcome is a signed log entry that follows from the two votes.
    agreed = entry(cons, second["outcome_log_index"])
    assert isinstance(agreed, S.MasterAgreed)
    assert (agreed.proposal_id, agreed.master.member_id, agreed.master.asset_id, agreed.basis) == (
        p["proposal_id"], A, master, S.AGREEMENT_BASIS_UNANIMOUS)
    assert list(agreed.vote_indexes) == [first["log_index"], second["log_index"]]
    vote = entry(cons, first["log_index"])
    assert (vote.member_id, vote.choice, vote.proposal_id) == (B, S.VOTE_CHOICE_ACCEPT, p["proposal_id"])

    # Nothing pending any more; the outcome is in both catalogues.
    after = b.decisions(capsys)
    assert (after["proposals"], after["outcomes"]) == ([], 1)
    assert only(b.decisions(capsys, "--all")["proposals"])["agreed_master"] == {"member_id": A, "asset_id": master}
    row = b.catalogue.outcomes()[b.asset("cam-small.jpg")]
    assert (row["master_member"], row["master_asset"], row["basis"], row["proposal_id"], row["outcome_log_index"],
            row["pending_proposal"]) == (A, master, "unanimous", p["proposal_id"], second["outcome_log_index"], None)
    assert a.decisions(capsys)["outcomes"] == 1
    assert list(a.catalogue.outcomes()) == [master]  # coffee.jpg is in no cross-member cluster

    # The report: 'master held by member X (asset id)' at B, 'we hold the master' at A.
    b.run(capsys, "report", "--out", str(b.dir / "report"), "--no-thumbnails")
    with open(b.dir / "report" / "masters.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["path"], r["consortium_master"], r["basis"], r["outcome_log_index"]) for r in rows] == [
        (b.path("cam-small.jpg"), f"master held by member {A} ({master})", "unanimous",
         str(second["outcome_log_index"]))]
    doc = json.loads((b.dir / "report" / "report.json").read_text())
    assert [(m["asset_id"], m["we_hold_master"], m["master_member"], m["master_asset"])
            for m in doc["consortium_masters"]] == [(b.asset("cam-small.jpg"), False, A, master)]
    html = (b.dir / "report" / "report.html").read_text()
    # The page says it in words; the other member's asset id is in masters.csv, report.json and
    # the cell's hover text, not in the words.
    assert "Consortium masters" in html and f"<td>master held by member {A}</td>" in html

    fixity = [json.loads(x) for x in (b.dir / "report" / "fixity.jsonl").read_text().splitlines()]
    assert [e["object"]["relationship"] for e in fixity] == [[{
        "relationshipType": "derivation", "relationshipSubType": "has source",
        "relatedObjectIdentifier": [{"relatedObjectIdentifierType": "consortium_asset",
                                     "relatedObjectIdentifierValue": f"{A}/{master}"}],
        "relatedEventIdentifier": [{"relatedEventIdentifierType": "consortium_log_entry",
                                    "relatedEventIdentifierValue": str(second["outcome_log_index"])}]}]]

    a.run(capsys, "report", "--out", str(a.dir / "report"), "--no-thumbnails")
    with open(a.dir / "report" / "masters.csv", newline="", encoding="utf-8") as f:
        assert [(r["path"], r["consortium_master"]) for r in csv.DictReader(f)] == [
            (a.path("camera.png"), "we hold the master")]
    events = {e["linkingObjectIdentifier"][1]["linkingObjectIdentifierValue"]: e
              for e in map(json.loads, (a.dir / "report" / "fixity.jsonl").read_text().splitlines())}
    rel = events[a.path("camera.png")]["object"]["relationship"][0]
    assert (rel["relationshipSubType"], rel["relatedObjectIdentifier"]) == (
        "is source of", [{"relatedObjectIdentifierType": "consortium_asset",
                          "relatedObjectIdentifierValue": f"{B}/{b.asset('cam-small.jpg')}"}])
    assert "relationship" not in events[a.path("coffee.jpg")]["object"]
    assert "we hold the master" in (a.dir / "report" / "report.html").read_text()


# --- disputes: rejection, claim, and the arbiter's ruling -----------------------------------------------


def test_rejection_and_claim_are_settled_by_the_arbiters_ruling(cons, tmp_path, capsys):
    a, b, r = Node(cons, A, tmp_path), Node(cons, B, tmp_path), Node(cons, ARBITER, tmp_path)
    a.add("camera.png", CAMERA)
    a.add("astronaut.png", ASTRONAUT)
    b.add("cam.jpg", CAMERA.resize((300, 300)), quality=75)
    b.add("astro.jpg", ASTRONAUT.resize((320, 320)), quality=80)
    a.sync(capsys)
    assert b.sync(capsys)["new_matches"] == 2
    props = {pr["copies"][0]["asset_id"]: pr for pr in b.decisions(capsys)["proposals"]}
    cam, astro = props[b.asset("cam.jpg")], props[b.asset("astro.jpg")]
    assert cam["master"]["member_id"] == astro["master"]["member_id"] == A

    # B rejects one and claims the master for its own copy of the other.
    rej = b.json(capsys, "reject", cam["proposal_id"], "--reason", "our print is the better scan")
    assert rej["status"] == "disputed"
    claim = b.json(capsys, "claim", astro["proposal_id"], "--asset", b.path("astro.jpg"), "--kind", "camera_original",
                   "--evidence", "accession 1987.12.3: the photographer's own print")
    assert claim["status"] == "disputed"
    vote = entry(cons, claim["log_index"])
    assert (vote.choice, vote.claimed_master.member_id, vote.claimed_master.asset_id, vote.claim_kind) == (
        S.VOTE_CHOICE_CLAIM, B, b.asset("astro.jpg"), "camera_original")

    # Every holder sees the dispute; auto mode answers nothing disputed.
    seen = {pr["proposal_id"]: pr for pr in a.decisions(capsys, "--auto")["proposals"]}
    assert seen[astro["proposal_id"]]["votes"][0]["claimed_master"] == {"member_id": B, "asset_id": b.asset("astro.jpg")}
    assert seen[cam["proposal_id"]]["votes"][0]["reason"] == "our print is the better scan"
    assert {pr["status"] for pr in seen.values()} == {"disputed"}
    text, _ = a.run(capsys, "decisions")
    assert "claims city-museum/" in text and "camera_original" in text

    # A member that is not an arbiter cannot rule.
    _, err = a.run(capsys, "rule", cam["proposal_id"], "--master", f"{A}/{a.asset('camera.png')}", "--reasoning",
                   "mine", code=1)
    assert "PERMISSION_DENIED" in err and "not admitted as an arbiter" in err

    # The arbiter sees both disputes (though it holds no copy) and settles them.
    listed = r.decisions(capsys)["proposals"]
    assert sorted(pr["proposal_id"] for pr in listed) == sorted([cam["proposal_id"], astro["proposal_id"]])
    assert all(pr["own_asset_ids"] == [] for pr in listed)
    kept = r.json(capsys, "rule", cam["proposal_id"], "--master", f"{A}/{a.asset('camera.png')}",
                  "--reasoning", "the larger lossless scan stands")
    moved = r.json(capsys, "rule", astro["proposal_id"], "--master", f"{B}/{b.asset('astro.jpg')}",
                   "--reasoning", "the accession record shows the camera original")
    ruled = entry(cons, moved["outcome_log_index"])
    assert (ruled.basis, ruled.master.member_id, ruled.ruling_index) == (S.AGREEMENT_BASIS_RULING, B,
                                                                        moved["log_index"])
    assert entry(cons, kept["outcome_log_index"]).master.member_id == A

    # A vote after the ruling is refused; the node shows the coordinator's status and message.
    _, err = a.run(capsys, "accept", astro["proposal_id"], code=1)
    assert "vote refused by the coordinator: FAILED_PRECONDITION" in err and "already agreed" in err

    assert b.decisions(capsys)["outcomes"] == 2
    out = b.catalogue.outcomes()
    assert (out[b.asset("astro.jpg")]["master_member"], out[b.asset("astro.jpg")]["basis"]) == (B, "ruling")
    assert (out[b.asset("cam.jpg")]["master_member"], out[b.asset("cam.jpg")]["basis"]) == (A, "ruling")
    a.decisions(capsys)
    statements = {a.asset(n): o["master_member"] for n in ("camera.png", "astronaut.png")
                  for o in [a.catalogue.outcomes()[a.asset(n)]]}
    assert statements == {a.asset("camera.png"): A, a.asset("astronaut.png"): B}
    a.run(capsys, "report", "--out", str(a.dir / "report"), "--no-thumbnails")
    with open(a.dir / "report" / "masters.csv", newline="", encoding="utf-8") as f:
        assert {r_["path"]: r_["consortium_master"] for r_ in csv.DictReader(f)} == {
            a.path("astronaut.png"): f"master held by member {B} ({b.asset('astro.jpg')})",
            a.path("camera.png"): "we hold the master"}


# --- the deadline ------------------------------------------------------------------------------------------


def test_silence_until_the_deadline_counts_as_acceptance(cons, tmp_path, capsys):
    a, b = Node(cons, A, tmp_path), Node(cons, B, tmp_path)
    a.add("camera.png", CAMERA)
    b.add("cam.jpg", CAMERA.resize((256, 256)), quality=70)
    a.sync(capsys)
    b.sync(capsys)
    p = only(b.decisions(capsys)["proposals"])
    vote = b.json(capsys, "accept", p["proposal_id"])
    assert cons.server.core.expire_deadlines(p["deadline_unix"] - 1) == []
    [(pid, outcome)] = cons.server.core.expire_deadlines(p["deadline_unix"] + 1)
    assert pid == p["proposal_id"]
    agreed = entry(cons, outcome)
    assert (agreed.basis, list(agreed.silent_members), list(agreed.vote_indexes), agreed.master.member_id) == (
        S.AGREEMENT_BASIS_DEADLINE, [A], [vote["log_index"]], A)
    assert b.decisions(capsys)["outcomes"] == 1
    assert b.catalogue.outcomes()[b.asset("cam.jpg")]["basis"] == "deadline"
    # The silent member can no longer vote.
    _, err = a.run(capsys, "accept", p["proposal_id"], code=1)
    assert "FAILED_PRECONDITION" in err and "already agreed" in err


# --- re-proposals: a better copy, a withdrawn master; automatic mode --------------------------------------


def test_better_copy_reopens_and_withdrawn_master_reproposes_with_auto_mode(cons, tmp_path, capsys):
    a, b, c = Node(cons, A, tmp_path), Node(cons, B, tmp_path), Node(cons, C, tmp_path)
    a.add("cam.jpg", CAMERA.resize((256, 256)), quality=70)
    b.add("cam.jpg", CAMERA.resize((384, 384)), quality=85)
    c.add("cam.png", CAMERA)
    a.sync(capsys)
    b.sync(capsys)
    p1 = only(a.decisions(capsys)["proposals"])
    assert p1["master"] == {"member_id": B, "asset_id": b.asset("cam.jpg")}

    # Automatic mode accepts a proposal that follows the policy (here: B's own copy is the master).
    auto_b = b.decisions(capsys, "--auto")["auto"]
    assert [x["proposal_id"] for x in auto_b["accepted"]] == [p1["proposal_id"]] and auto_b["held"] == []
    auto_a = a.decisions(capsys, "--auto")
    assert [x["proposal_id"] for x in auto_a["auto"]["accepted"]] == [p1["proposal_id"]]
    assert auto_a["auto"]["accepted"][0]["status"] == "agreed" and auto_a["outcomes"] == 1
    assert [v["automatic"] for v in a.catalogue.votes()] == [1]

    # A better copy arrives at C: the cluster is proposed again, naming C's copy.
    assert c.sync(capsys)["new_matches"] >= 1
    p2 = only(b.decisions(capsys)["proposals"])
    assert (p2["supersedes"], p2["reason"], p2["master"]) == (p1["proposal_id"], "copy_added",
                                                             {"member_id": C, "asset_id": c.asset("cam.png")})
    assert p2["deciding_rule"] == "pixel_count" and p2["policy_check"]["follows"] is True
    # B holds the agreed master and would lose it: automatic mode holds the proposal for a person.
    auto_b = b.decisions(capsys, "--auto")
    assert auto_b["auto"]["accepted"] == [] and len(auto_b["auto"]["held"]) == 1
    held = auto_b["auto"]["held"][0]
    assert held["proposal_id"] == p2["proposal_id"] and "we hold the agreed master" in held["reason"]
    assert b.catalogue.outcomes()[b.asset("cam.jpg")]["pending_proposal"] == p2["proposal_id"]
    text, _ = b.run(capsys, "decisions", "--auto")
    assert "HELD for a person" in text
    assert a.decisions(capsys, "--auto")["auto"]["accepted"][0]["proposal_id"] == p2["proposal_id"]
    c_auto = c.decisions(capsys, "--auto")["auto"]
    assert [x["proposal_id"] for x in c_auto["accepted"]] == [p2["proposal_id"]]

    # C withdraws its copy (the proposed master): the cluster is proposed again without it.
    c.run(capsys, "withdraw", c.path("cam.png"), "--reason", "deaccessioned")
    p3 = only(a.decisions(capsys)["proposals"])
    assert (p3["supersedes"], p3["reason"], p3["master"]) == (p2["proposal_id"], "copy_withdrawn",
                                                             {"member_id": B, "asset_id": b.asset("cam.jpg")})
    # B's vote on the superseded proposal is refused, pointing at the new one.
    _, err = b.run(capsys, "accept", p2["proposal_id"], code=1)
    assert "FAILED_PRECONDITION" in err and "superseded" in err and f"answer {p3['proposal_id']} instead" in err
    assert b.decisions(capsys, "--auto")["auto"]["accepted"][0]["proposal_id"] == p3["proposal_id"]
    done = a.decisions(capsys, "--auto")
    assert done["auto"]["accepted"][0]["status"] == "agreed"
    b.decisions(capsys)
    assert b.catalogue.outcomes()[b.asset("cam.jpg")]["proposal_id"] == p3["proposal_id"]
    assert a.catalogue.outcomes()[a.asset("cam.jpg")]["master_member"] == B
    assert c.decisions(capsys)["outcomes"] == 0 and c.catalogue.outcomes() == {}
    b.run(capsys, "report", "--out", str(b.dir / "report"), "--no-thumbnails")
    with open(b.dir / "report" / "masters.csv", newline="", encoding="utf-8") as f:
        assert [r["consortium_master"] for r in csv.DictReader(f)] == ["we hold the master"]


# --- concurrency ---------------------------------------------------------------------------------------------


def test_concurrent_votes_from_two_nodes_agree_once(cons, tmp_path, capsys):
    a, b = Node(cons, A, tmp_path), Node(cons, B, tmp_path)
    a.add("camera.png", CAMERA)
    b.add("cam.jpg", CAMERA.resize((256, 256)), quality=70)
    a.sync(capsys)
    b.sync(capsys)
    [view] = list_proposals(a.settings, ALL)
    results: dict[str, object] = {}
    start = threading.Barrier(2)

    def vote(node: Node) -> None:
        start.wait()
        results[node.member] = cast_vote(node.settings, node.catalogue, view.proposal_id, view.cluster_id,
                                         S.VOTE_CHOICE_ACCEPT)

    threads = [threading.Thread(target=vote, args=(n,)) for n in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = sorted((r.status, bool(r.outcome_log_index)) for r in results.values())
    assert got == [("agreed", True), ("open", False)]
    outcomes = [r.outcome_log_index for r in results.values() if r.outcome_log_index]
    agreed = entry(cons, outcomes[0])
    assert sorted(agreed.vote_indexes) == sorted(r.log_index for r in results.values())
    assert cons.query("SELECT COUNT(*) FROM negotiations WHERE status=?", (N.PROPOSAL_STATUS_AGREED,)) == [(1,)]


# --- refusals the node meets ------------------------------------------------------------------------------------


def test_refusals_double_vote_non_holder_and_resend(cons, tmp_path, capsys):
    a, b, c = Node(cons, A, tmp_path), Node(cons, B, tmp_path), Node(cons, C, tmp_path)
    a.add("camera.png", CAMERA)
    b.add("cam.jpg", CAMERA.resize((256, 256)), quality=70)
    c.add("astronaut.png", ASTRONAUT)
    for n in (a, b, c):
        n.sync(capsys)
    p = only(b.decisions(capsys)["proposals"])
    assert c.decisions(capsys)["proposals"] == []

    # A member holding no copy does not see the proposal, and the coordinator refuses its vote.
    _, err = c.run(capsys, "accept", p["proposal_id"], code=1)
    assert "not visible to university-library" in err and "holds no copy" in err
    with pytest.raises(VoteRefused) as refused:
        cast_vote(c.settings, c.catalogue, p["proposal_id"], p["cluster_id"], S.VOTE_CHOICE_ACCEPT)
    assert refused.value.code.name == "PERMISSION_DENIED" and "holds no copy" in refused.value.details
    assert [(v["state"], v["response"].split(":")[0]) for v in c.catalogue.votes()] == [
        ("refused", "PERMISSION_DENIED")]

    # Bad answers are refused locally, before anything is signed.
    _, err = b.run(capsys, "reject", p["proposal_id"], "--reason", "  ", code=2)
    assert "needs a reason" in err
    _, err = b.run(capsys, "claim", p["proposal_id"], "--asset", "a-nothing", "--kind", "camera_original",
                   "--evidence", "x", code=2)
    assert "is not a copy in cluster" in err
    _, err = b.run(capsys, "claim", p["proposal_id"], "--asset", b.path("cam.jpg"), "--kind", "Camera Original!",
                   "--evidence", "x", code=2)
    assert "--kind" in err
    assert len(b.catalogue.votes()) == 0

    # Each member votes once: a second, different vote is refused ...
    first = b.json(capsys, "accept", p["proposal_id"])
    out, err = b.run(capsys, "reject", p["proposal_id"], "--reason", "changed our mind", "--json", code=1)
    assert json.loads(out) == {"proposal_id": p["proposal_id"], "refused": True, "code": "ALREADY_EXISTS",
                               "message": json.loads(out)["message"]}
    assert "already voted" in err and "each member votes once" in err
    # ... while a resend of the same signed vote (its answer was lost) is acknowledged, not counted twice.
    cat = b.catalogue
    accepted = next(v for v in cat.votes() if v["state"] == "accepted")
    cat._db.execute("UPDATE master_votes SET state='pending' WHERE log_index=?", (accepted["log_index"],))
    again = cast_vote(b.settings, cat, p["proposal_id"], p["cluster_id"], S.VOTE_CHOICE_ACCEPT)
    assert (again.resent, again.already_stored, again.log_index) == (True, True, first["log_index"])
    assert cons.query("SELECT COUNT(*) FROM votes") == [(1,)]
    # An unknown proposal id.
    _, err = b.run(capsys, "accept", "no-such-proposal", code=1)
    assert "not visible" in err


def test_refusal_when_the_coordinator_is_down_keeps_the_vote_for_a_resend(cons, tmp_path, capsys):
    a, b = Node(cons, A, tmp_path), Node(cons, B, tmp_path)
    a.add("camera.png", CAMERA)
    b.add("cam.jpg", CAMERA.resize((256, 256)), quality=70)
    a.sync(capsys)
    b.sync(capsys)
    [view] = list_proposals(b.settings, ALL)
    port = cons.server.port
    cons.stop()
    with pytest.raises(VoteRefused) as down:
        cast_vote(b.settings, b.catalogue, view.proposal_id, view.cluster_id, S.VOTE_CHOICE_ACCEPT)
    assert down.value.code.name == "UNAVAILABLE"
    assert [v["state"] for v in b.catalogue.votes()] == ["pending"]
    _, err = b.run(capsys, "decisions", code=3)
    assert "UNAVAILABLE" in err
    cons.settings = cons.settings.model_copy(update={"listen": f"127.0.0.1:{port}"})
    cons.start()
    sent = cast_vote(b.settings, b.catalogue, view.proposal_id, view.cluster_id, S.VOTE_CHOICE_ACCEPT)
    assert (sent.resent, sent.already_stored) == (True, False)
    assert [v["state"] for v in b.catalogue.votes()] == ["accepted"]


# --- automatic mode after a push --------------------------------------------------------------------------------


def test_auto_decisions_after_push(cons, tmp_path, capsys):
    a = Node(cons, A, tmp_path)
    b = Node(cons, B, tmp_path, auto_decisions={"after_push": True})
    a.add("camera.png", CAMERA)
    b.add("cam.jpg", CAMERA.resize((256, 256)), quality=70)
    a.sync(capsys)
    pushed = b.sync(capsys)
    assert pushed["new_matches"] == 1
    assert [x["proposal_id"] for x in pushed["decisions"]["auto"]["accepted"]] == [
        list_proposals(a.settings, ALL)[0].proposal_id]
    assert pushed["decisions"]["auto"]["held"] == []
    text, _ = b.run(capsys, "push")
    assert "automatic decisions: 0 accepted, 0 rejected, 0 held" in text


# --- the local rule on its own -----------------------------------------------------------------------------------


def _view(master: tuple[str, str], rule: str, version: str = "dedup-master-policy/2",
          status=N.PROPOSAL_STATUS_OPEN) -> N.ProposalView:
    def copy(member, asset, width):
        return S.Copy(ref=S.AssetRef(member_id=member, asset_id=asset), evidence=asset_pb2.Evidence(
            width=width, height=width, bit_depth=8, channels=3, format_family=asset_pb2.FORMAT_FAMILY_LOSSY,
            jpeg_quality=80, rights="unknown"))

    return N.ProposalView(proposal_id="c1/p1", cluster_id="c1", status=status,
                          copies=[copy(A, "a-1", 1000), copy(B, "b-1", 500)],
                          master=S.AssetRef(member_id=master[0], asset_id=master[1]), policy_version=version,
                          deciding_rule=rule, own_asset_ids=["b-1"])


def test_local_rule_holds_off_policy_and_unknown_policies():
    rules = AutoDecisions()
    good = _view((A, "a-1"), "pixel_count")
    assert check_policy(good).follows
    assert auto_answer(good, B, None, check_policy(good), rules)[0] == "accept"

    # A proposal naming the smaller copy does not follow the policy: held, or rejected if so configured.
    bad = _view((B, "b-1"), "pixel_count")
    check = check_policy(bad)
    assert (check.follows, check.master) == (False, {"member_id": A, "asset_id": "a-1"})
    answer, why = auto_answer(bad, B, None, check, rules)
    assert answer == "hold" and f"the policy gives {A}/a-1 for the most pixels" in why
    assert auto_answer(bad, B, None, check, AutoDecisions(off_policy="reject"))[0] == "reject"
    # Seen from A, whose copy ranks first, the same proposal would cost it the master.
    answer, why = auto_answer(bad, A, None, check, rules)
    assert answer == "hold" and "our copy a-1 ranks first" in why
    # The right master with the wrong rule does not follow the policy either.
    assert not check_policy(_view((A, "a-1"), "lossless")).follows
    # A policy version this node does not know is never accepted.
    unknown = _view((A, "a-1"), "pixel_count", version="dedup-master-policy/99")
    check = check_policy(unknown)
    assert not check.follows and "does not know policy" in check.problem
    assert auto_answer(unknown, B, None, check, rules)[0] == "hold"
    # With automatic acceptance off, even a following proposal waits for a person.
    assert auto_answer(good, B, None, check_policy(good), AutoDecisions(accept_following_policy=False))[0] == "hold"
    assert isinstance(check_policy(good), PolicyCheck)


def test_ties_on_evidence_are_checked_with_the_logged_custodial_priorities(cons, tmp_path, capsys):
    a, b = Node(cons, A, tmp_path), Node(cons, B, tmp_path)
    a.add("camera.png", CAMERA)
    b.add("camera.png", CAMERA)  # the same file: equal evidence, so custodial priority decides
    a.sync(capsys)
    b.sync(capsys)
    p = only(b.decisions(capsys)["proposals"])
    assert (p["master"]["member_id"], p["deciding_rule"]) == (A, "custodial_priority")
    assert p["policy_check"] == {"follows": True, "master": {"member_id": A, "asset_id": a.asset("camera.png")},
                                 "deciding_rule": "custodial_priority",
                                 "ranking": [{"member_id": A, "asset_id": a.asset("camera.png")},
                                             {"member_id": B, "asset_id": b.asset("camera.png")}],
                                 "problem": ""}
    # The priorities came from the log's MemberAdmitted entries, remembered in the catalogue.
    members, read_to = b.catalogue.consortium_members()
    assert members == {A: (10, False), B: (20, False), C: (30, False), ARBITER: (100, True)}
    assert read_to > 0
    assert b.decisions(capsys, "--auto")["auto"]["accepted"][0]["proposal_id"] == p["proposal_id"]


def test_help_teaches_the_decision_commands(capsys):
    for cmd, words in (("decisions", ("side by side", "--auto", "held for a person", "after_push")),
                       ("accept", ("signed", "superseded")), ("reject", ("--reason", "arbiter")),
                       ("claim", ("--asset", "--kind", "camera_original", "--evidence")),
                       ("rule", ("arbiter", "--master", "--reasoning"))):
        with pytest.raises(SystemExit) as done:
            main(["node", cmd, "--help"])
        out = capsys.readouterr().out
        assert done.value.code == 0 and out.startswith(f"usage: dedup node {cmd}")
        assert all(w in out for w in words), (cmd, [w for w in words if w not in out])
        assert "exit codes" in out


# --- ballots: the automatic mode's answers under one signature -----------------------------------------


def _ballots_and_votes(cons, member: str) -> tuple[list, list]:
    # As the member reads the log: its own entries in full, others' withheld (empty).
    es = [parse_entry(e) for e in cons.log(member).GetEntries(log_pb2.GetEntriesRequest(start=0, end=10_000),
                                                               timeout=5).entries if e]
    mine = [e for e in es if e.signer == member]
    return ([parse_body(e) for e in mine if e.type == "dedup.v1.MasterBallot"],
            [parse_body(e) for e in mine if e.type == "dedup.v1.MasterVote"])


def test_auto_mode_answers_every_proposal_in_one_ballot_and_resends_it(cons, tmp_path, capsys):
    a, b = Node(cons, A, tmp_path), Node(cons, B, tmp_path)
    a.add("camera.png", CAMERA)
    a.add("astronaut.png", ASTRONAUT)
    b.add("cam.jpg", CAMERA.resize((256, 256)), quality=70)
    b.add("astro.jpg", ASTRONAUT.resize((256, 256)), quality=70)
    a.sync(capsys)
    b.sync(capsys)
    pids = sorted(p["proposal_id"] for p in b.decisions(capsys)["proposals"])
    assert len(pids) == 2
    auto = b.decisions(capsys, "--auto")["auto"]
    assert sorted(x["proposal_id"] for x in auto["accepted"]) == pids and auto["refused"] == []
    ballots, votes = _ballots_and_votes(cons, B)
    assert votes == [] and [sorted(v.proposal_id for v in x.votes) for x in ballots] == [pids]
    assert [v["state"] for v in b.catalogue.votes()] == ["accepted", "accepted"]

    # The coordinator is down when A answers: the signed ballot is kept, and the next run sends it.
    views = list_proposals(a.settings, ALL)
    port = cons.server.port
    cons.stop()
    cons.settings = cons.settings.model_copy(update={"listen": f"127.0.0.1:{port}"})
    down = auto_decide(a.settings, a.catalogue, views)
    assert down.unreachable and down.accepted == []
    assert [v["state"] for v in a.catalogue.votes()] == ["pending", "pending"]
    cons.start()
    again = auto_decide(a.settings, a.catalogue, views)
    assert again.unreachable is None
    assert sorted((x["proposal_id"], x["status"]) for x in again.accepted) == [(p, "agreed") for p in pids]
    assert [v["state"] for v in a.catalogue.votes()] == ["accepted", "accepted"]
    ballots, votes = _ballots_and_votes(cons, A)
    assert votes == [] and len(ballots) == 1 and len(ballots[0].votes) == 2


def test_a_refused_ballot_is_sent_again_vote_by_vote(cons, tmp_path, capsys):
    a, b, c = Node(cons, A, tmp_path), Node(cons, B, tmp_path), Node(cons, C, tmp_path)
    a.add("camera.jpg", CAMERA.resize((384, 384)), quality=85)
    a.add("astronaut.png", ASTRONAUT)
    b.add("cam.jpg", CAMERA.resize((256, 256)), quality=70)
    b.add("astro.jpg", ASTRONAUT.resize((256, 256)), quality=70)
    a.sync(capsys)
    b.sync(capsys)
    stale = list_proposals(b.settings, ALL)
    # A better copy of the camera arrives at C: that proposal is superseded after B listed it.
    c.add("cam.png", CAMERA)
    c.sync(capsys)
    camera = next(v.proposal_id for v in stale if v.supersedes == "" and any(
        x.ref.asset_id == b.asset("cam.jpg") for x in v.copies))
    result = auto_decide(b.settings, b.catalogue, stale)
    assert [x["proposal_id"] for x in result.refused] == [camera]
    assert "FAILED_PRECONDITION" in result.refused[0]["refusal"] and "superseded" in result.refused[0]["refusal"]
    assert len(result.accepted) == 1 and result.accepted[0]["proposal_id"] != camera
    ballots, votes = _ballots_and_votes(cons, B)
    # The refused ballot stored nothing; the vote that could be taken was sent on its own.
    assert ballots == [] and [v.proposal_id for v in votes] == [result.accepted[0]["proposal_id"]]
    assert sorted(v["state"] for v in b.catalogue.votes()) == ["accepted", "refused", "refused", "refused"]
