"""Members as the log's witnesses, against a real coordinator over mutual TLS on loopback:
consistency proofs, cosignatures (and their refusals), a forked log, and log-key rotation."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
import tomli_w

from dedup import pki
from dedup.checkpoint import Checkpoint
from dedup.cosignature import CosignatureSigner, CosignatureVerifier, add_cosignature, cosignatures
from dedup.merkle import Tree, leaf_hash, verify_consistency
from dedup.note import NoteSigner, split_note, open_note, sign_note
from dedup.node.catalogue import Catalogue
from dedup.node.settings import NodeSettings
from dedup.node.witness import WitnessError, witness
from dedup.signing import sign_statement
from dedup.v1 import log_pb2, statements_pb2

from conftest import ORIGIN, asset, fingerprint, near
from test_intake import A, B, batch, submit



def dedup(*args):
    return subprocess.run([sys.executable, "-m", "dedup.cli.main", *map(str, args)], capture_output=True, text=True)


def node_config(consortium, member, tmp_path, **extra) -> Path:
    """A node's TOML file pointing at the running coordinator and trusting the log key."""
    party = consortium.parties[member]
    pki.write_private(tmp_path / f"{member}.key", party.signer.to_string().encode())
    cfg = {
        "member_id": member, "catalogue": str(tmp_path / f"{member}.sqlite"), "signing_key": str(tmp_path / f"{member}.key"),
        "tls": {"ca": str(consortium.ca_pem), "cert": str(party.tls_cert), "key": str(party.tls_key)},
        "coordinator": {"address": f"127.0.0.1:{consortium.server.port}", "server_name": "coordinator",
                        "timeout_seconds": 10},
        "log_verifier_key": consortium.log_signer.verifier().to_string(),
        **extra,
    }
    path = tmp_path / f"{member}.toml"
    path.write_text(tomli_w.dumps(cfg))
    return path


def node(consortium, member, tmp_path) -> tuple[NodeSettings, Catalogue]:
    from dedup.config import load

    settings = load(node_config(consortium, member, tmp_path), NodeSettings)
    return settings, Catalogue(settings.catalogue)


def cosigner(consortium, member) -> CosignatureVerifier:
    return CosignatureVerifier(member, consortium.parties[member].signer.private_key.public_key())


def latest(consortium, member=A) -> str:
    return consortium.log(member).GetCheckpoint(log_pb2.GetCheckpointRequest(), timeout=5).signed_checkpoint


def size_of(note: str) -> int:
    return Checkpoint.parse(split_note(note)[0]).size


def stored_cosignatures(consortium) -> list[tuple]:
    return consortium.query("SELECT size, member_id, cosigned_unix FROM cosignatures ORDER BY size, member_id")


def coordinator_config(consortium) -> Path:
    """The running consortium's settings as a TOML file, for `dedup coordinator` commands."""
    def clean(v):
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items() if x is not None}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    path = consortium.root / "coordinator.toml"
    path.write_text(tomli_w.dumps(clean(consortium.settings.model_dump(mode="json"))))
    return path


def restart(consortium, **update):
    """Stop the coordinator and start it again on the same port, with settings changed by ``update``."""
    port = consortium.server.port
    consortium.stop()
    consortium.settings = consortium.settings.model_copy(update={"listen": f"127.0.0.1:{port}", **update})
    consortium.start()


# --- witnessing a growing log -----------------------------------------------------------------


def test_node_witnesses_twice_across_growth_and_the_coordinator_serves_the_cosigned_checkpoint(consortium, tmp_path):
    settings, cat = node(consortium, A, tmp_path)
    first = witness(settings, cat)
    assert (first.size, first.previous_size, first.proof, first.cosigned) == (3, None, "first checkpoint seen", True)
    note = latest(consortium, B)
    assert [c.name for c in cosignatures(note, [cosigner(consortium, A)])] == [A]
    open_note(note, [consortium.log_signer.verifier()])  # the log's own signature is still there and good
    assert [r[:2] for r in stored_cosignatures(consortium)] == [(3, A)]

    fp = fingerprint(1)
    submit(consortium, A, batch(consortium, A, [asset("a1", fp)]))
    submit(consortium, B, batch(consortium, B, [asset("b1", near(fp, 4))]))  # + match + proposal
    second = witness(settings, cat)
    assert second.size == 7 and second.previous_size == 3
    assert second.proof.startswith("consistent with size 3 (") and second.cosigned
    size, root, stored = cat.witness_state(ORIGIN)
    assert (size, root) == (7, consortium.server.core.log.tree.root(7))
    assert split_note(stored)[0] == split_note(latest(consortium))[0]

    # A second member witnesses too: the served checkpoint carries both cosignatures.
    settings_b, cat_b = node(consortium, B, tmp_path)
    assert witness(settings_b, cat_b).size == 7
    note = latest(consortium)
    assert size_of(note) == 7
    assert sorted(c.name for c in cosignatures(note, [cosigner(consortium, A), cosigner(consortium, B)])) == [B, A]
    assert [r[:2] for r in stored_cosignatures(consortium)] == [(3, A), (7, B), (7, A)]

    # The export carries the checkpoints as served, cosignatures included.
    from dedup.coordinator.export import export_log

    export_log(consortium.server.core.store, tmp_path / "export", consortium.log_signer.verifier().to_string())
    exported = (tmp_path / "export" / "checkpoints" / f"{7:012d}").read_text()
    assert sorted(c.name for c in cosignatures(exported, [cosigner(consortium, A), cosigner(consortium, B)])) == [B, A]

    # Same size again: no proof needed, cosigned again (replacing, not adding).
    again = witness(settings, cat)
    assert (again.size, again.proof) == (7, "same checkpoint as last time")
    assert [r[:2] for r in stored_cosignatures(consortium)] == [(3, A), (7, B), (7, A)]


def test_consistency_proof_rpc(consortium):
    fp = fingerprint(2)
    submit(consortium, A, batch(consortium, A, [asset("a1", fp)]))            # size 4
    submit(consortium, B, batch(consortium, B, [asset("b1", near(fp, 3))]))   # size 7 (manifest, match, proposal)
    stub = consortium.log("university-library")
    resp = stub.GetConsistencyProof(log_pb2.GetConsistencyProofRequest(old_size=4, new_size=0), timeout=5)
    assert (resp.old_size, resp.new_size) == (4, 7)
    tree = consortium.server.core.log.tree
    verify_consistency(4, 7, list(resp.hashes), tree.root(4), tree.root(7))
    assert Checkpoint.parse(split_note(resp.signed_checkpoint)[0]).root_hash == tree.root(7)
    for old, new, code, text in (
        (7, 4, grpc.StatusCode.INVALID_ARGUMENT, "old_size 7 is larger than new_size 4"),
        (4, 8, grpc.StatusCode.OUT_OF_RANGE, "new_size 8 is beyond the latest checkpoint (size 7)"),
        (5, 7, grpc.StatusCode.NOT_FOUND, "old_size 5 is not the size of a published checkpoint"),
        (4, 6, grpc.StatusCode.NOT_FOUND, "new_size 6 is not the size of a published checkpoint"),
    ):
        with pytest.raises(grpc.RpcError) as info:
            stub.GetConsistencyProof(log_pb2.GetConsistencyProofRequest(old_size=old, new_size=new), timeout=5)
        assert (info.value.code(), info.value.details()) == (code, text)


# --- AddCosignature refusals ------------------------------------------------------------------


def _send(consortium, member, note):
    return consortium.log(member).AddCosignature(log_pb2.AddCosignatureRequest(cosigned_checkpoint=note), timeout=5)


def _refused(consortium, member, note, code, text):
    before = stored_cosignatures(consortium)
    with pytest.raises(grpc.RpcError) as info:
        _send(consortium, member, note)
    assert info.value.code() == code, info.value.details()
    assert text in info.value.details()
    assert stored_cosignatures(consortium) == before, "a refused cosignature was stored"


def test_add_cosignature_stores_one_per_member_and_refuses_everything_else(consortium):
    note = latest(consortium)
    text = split_note(note)[0]
    me = CosignatureSigner(A, consortium.parties[A].signer.private_key)
    now = int(time.time())
    assert _send(consortium, A, add_cosignature(note, me, now - 10)).tree_size == 3
    assert stored_cosignatures(consortium) == [(3, A, now - 10)]
    assert _send(consortium, A, add_cosignature(note, me, now)).tree_size == 3  # a later one replaces it
    assert stored_cosignatures(consortium) == [(3, A, now)]

    outsider = CosignatureSigner("outsider", consortium.parties["outsider"].signer.private_key)
    _refused(consortium, "outsider", add_cosignature(note, outsider), grpc.StatusCode.PERMISSION_DENIED,
             "TLS identity 'outsider' is not a member")
    _refused(consortium, A, "not a note", grpc.StatusCode.INVALID_ARGUMENT, "not a signed note")
    # B's cosignature sent over A's connection: A's own is missing.
    other = CosignatureSigner(B, consortium.parties[B].signer.private_key)
    _refused(consortium, A, add_cosignature(note, other), grpc.StatusCode.INVALID_ARGUMENT,
             f"no cosignature by {A}+{me.key_id.hex()}")
    _refused(consortium, A, note, grpc.StatusCode.INVALID_ARGUMENT, "no cosignature")
    # A's name with another key is not A's cosigner key either.
    _refused(consortium, A, add_cosignature(note, CosignatureSigner(A, NoteSigner.generate(A).private_key)),
             grpc.StatusCode.INVALID_ARGUMENT, "no cosignature")
    good = add_cosignature(note, me)
    head, _, line = good.rstrip("\n").rpartition("\n")
    name, b64 = line.rsplit(" ", 1)
    raw = bytearray(base64.b64decode(b64))
    raw[-1] ^= 1
    _refused(consortium, A, f"{head}\n{name} {base64.b64encode(bytes(raw)).decode()}\n",
             grpc.StatusCode.UNAUTHENTICATED, f"invalid cosignature by {A}+{me.key_id.hex()}")
    _refused(consortium, A, add_cosignature(note, me, now + 3600), grpc.StatusCode.INVALID_ARGUMENT,
             "ahead of the coordinator's clock")
    cp = Checkpoint.parse(text)
    unpublished = sign_note(Checkpoint(ORIGIN, 99, cp.root_hash).to_text(), [consortium.log_signer])
    _refused(consortium, A, add_cosignature(unpublished, me), grpc.StatusCode.NOT_FOUND,
             "published no checkpoint of size '99'")
    forged = sign_note(Checkpoint(ORIGIN, 3, bytes(32)).to_text(), [consortium.log_signer])
    _refused(consortium, A, add_cosignature(forged, me), grpc.StatusCode.NOT_FOUND,
             "is not the checkpoint this log published for size 3")
    _refused(consortium, A, add_cosignature(sign_note(text + "extra\n", [consortium.log_signer]), me),
             grpc.StatusCode.NOT_FOUND, "is not the checkpoint this log published for size 3")

    restart(consortium, members=[m.model_copy(update={"revoked": "key lost"}) if m.id == A else m
                                 for m in consortium.settings.members])
    _refused(consortium, A, add_cosignature(latest(consortium, B), me), grpc.StatusCode.PERMISSION_DENIED,
             "revoked (key lost)")


def test_cosignature_metrics(consortium):
    import urllib.request

    restart(consortium, metrics_listen="127.0.0.1:0")
    me = CosignatureSigner(A, consortium.parties[A].signer.private_key)
    _send(consortium, A, add_cosignature(latest(consortium), me))
    with pytest.raises(grpc.RpcError):
        _send(consortium, A, consortium.server.core.store.latest_checkpoint()[1])  # no cosignature at all
    body = urllib.request.urlopen(f"http://127.0.0.1:{consortium.server.metrics_port}/metrics", timeout=5).read().decode()
    metrics = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
               if line and not line.startswith("#")}
    assert metrics['dedup_cosignatures_total{outcome="accepted"}'] == 1
    assert metrics['dedup_cosignatures_total{outcome="refused"}'] == 1
    assert metrics['dedup_refusals_total{method="AddCosignature",reason="no_cosignature"}'] == 1


# --- a forked coordinator ---------------------------------------------------------------------


@pytest.mark.parametrize("fork, problem, with_proof", [
    ("same-size", "two checkpoints of size 4 with different roots", False),
    ("smaller", "the coordinator shows a checkpoint of size 3, smaller than size 4 this node verified", False),
    ("larger", "the consistency proof from size 4 to 5 fails", True),
])
def test_forked_coordinator_stops_the_node_with_evidence(consortium, tmp_path, fork, problem, with_proof):
    submit(consortium, A, batch(consortium, A, [asset("a1", fingerprint(1))]))
    cfg = node_config(consortium, A, tmp_path)
    first = dedup("node", "witness", "--config", cfg, "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["size"] == 4
    cat = Catalogue(tmp_path / f"{A}.sqlite")
    verified = cat.witness_state(ORIGIN)

    # Another history, shown at the same address with the same log key.
    restart(consortium, database=str(tmp_path / "fork.sqlite"))
    if fork in ("same-size", "larger"):
        submit(consortium, A, batch(consortium, A, [asset("other", fingerprint(50))]))
    if fork == "larger":
        submit(consortium, A, batch(consortium, A, [asset("more", fingerprint(51))], seq=2))
    shown = latest(consortium)

    out = dedup("node", "witness", "--config", cfg, "--json")
    assert out.returncode == 4, out.stderr
    result = json.loads(out.stdout)
    assert result["inconsistent"] is True and result["problem"].startswith(problem)
    assert "evidence written to" in out.stderr
    evidence = json.loads(Path(result["evidence"]).read_text())
    assert Path(result["evidence"]).parent == tmp_path / "evidence"
    assert evidence["verified_checkpoint"] == {"size": 4, "root_hash": base64.b64encode(verified[1]).decode(),
                                               "signed_note": verified[2]}
    assert evidence["presented_checkpoint"]["signed_note"] == shown
    assert evidence["presented_checkpoint"]["size"] == size_of(shown)
    if with_proof:
        proof = evidence["consistency_proof"]
        assert (proof["old_size"], proof["new_size"]) == (4, 5) and proof["hashes"]
    else:
        assert evidence["consistency_proof"] is None
    # Nothing remembered, nothing cosigned.
    assert cat.witness_state(ORIGIN) == verified
    assert stored_cosignatures(consortium) == []


def test_push_witnesses_at_its_end_and_stops_on_a_fork(consortium, tmp_path):
    from PIL import Image
    from skimage import data

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(data.camera()).save(photos / "camera.png")
    cfg = node_config(consortium, A, tmp_path, roots=[str(photos)])
    assert dedup("node", "scan", "--config", cfg, "--json").returncode == 0
    pushed = dedup("node", "push", "--config", cfg, "--json")
    assert pushed.returncode == 0, pushed.stderr
    out = json.loads(pushed.stdout)
    assert out["batches_sent"] == 1 and out["witness"]["size"] == 4 and out["witness"]["cosigned"] is True
    assert [r[:2] for r in stored_cosignatures(consortium)] == [(4, A)]

    restart(consortium, database=str(tmp_path / "fork.sqlite"))
    Image.fromarray(data.camera()).resize((256, 256)).save(photos / "small.png")
    assert dedup("node", "scan", "--config", cfg, "--json").returncode == 0
    forked = dedup("node", "push", "--config", cfg, "--json")
    assert forked.returncode == 4, forked.stderr
    assert json.loads(forked.stdout)["witness"]["inconsistent"] is True

    # Switched off: push does not witness.
    cfg_off = node_config(consortium, A, tmp_path, roots=[str(photos)], witness_after_push=False)
    quiet = dedup("node", "push", "--config", cfg_off, "--json")
    assert quiet.returncode == 0 and "witness" not in json.loads(quiet.stdout)


# --- log key rotation -------------------------------------------------------------------------


def test_node_follows_a_rotation_announced_by_the_old_key(consortium, tmp_path):
    settings, cat = node(consortium, A, tmp_path)
    assert witness(settings, cat).size == 3
    old = consortium.log_signer.verifier().to_string()
    port = consortium.server.port
    consortium.stop()
    cfg = coordinator_config(consortium)
    new_key = tmp_path / "keys" / "log-2.key"
    r = dedup("coordinator", "rotate-log-key", "--config", cfg, "--new-key", new_key, "--reason", "yearly", "--json")
    assert r.returncode == 0, r.stderr
    rotated = json.loads(r.stdout)
    new_signer = NoteSigner.from_string(new_key.read_text().strip())
    assert rotated["entry_index"] == 3 and rotated["generated"] is True
    assert (rotated["old_key"], rotated["new_key"]) == (old, new_signer.verifier().to_string())
    assert new_key.stat().st_mode & 0o777 == 0o600

    from dedup.config import load
    from dedup.coordinator.settings import CoordinatorSettings

    reloaded = load(cfg, CoordinatorSettings)
    assert reloaded.log_key == new_key.resolve()
    consortium.settings = reloaded.model_copy(update={"listen": f"127.0.0.1:{port}"})
    consortium.start()
    # The rotation entry is signed by the old key; its checkpoint by the new one only.
    entry = consortium.log(A).GetEntries(log_pb2.GetEntriesRequest(start=3, end=4), timeout=5).entries[0]
    from dedup.signing import parse_body, parse_entry, verify_statement

    stmt = parse_entry(entry)
    verify_statement(stmt, consortium.log_signer.verifier(), origin=ORIGIN)
    assert parse_body(stmt).reason == "yearly"
    note = latest(consortium)
    assert [s.key_id for s in split_note(note)[1]] == [new_signer.key_id]

    followed = witness(settings, cat)
    assert (followed.size, followed.learned_keys, followed.cosigned) == (4, [new_signer.verifier().to_string()], True)
    assert sorted(cat.log_keys()) == sorted([(old, "config", "LogKeyRotated at entry 3"),
                                             (new_signer.verifier().to_string(), "LogKeyRotated at entry 3", None)])
    # Later entries are signed by the new key, and witnessing goes on as usual.
    submit(consortium, A, batch(consortium, A, [asset("a1", fingerprint(3))]))
    later = witness(settings, cat)
    assert (later.size, later.learned_keys) == (5, []) and later.proof.startswith("consistent with size 4 (")
    assert sorted(r[:2] for r in stored_cosignatures(consortium)) == [(3, A), (4, A), (5, A)]

    # The old key may not sign again: the coordinator refuses to start with it.
    consortium.stop()
    consortium.settings = consortium.settings.model_copy(update={"log_key": consortium.root / "log.key"})
    from dedup.coordinator.log import LogKeyMismatch

    with pytest.raises(LogKeyMismatch, match="log_key must name the new key's file"):
        consortium.start()


def test_node_refuses_a_checkpoint_signed_by_a_key_nobody_announced(consortium, tmp_path, database):
    from dedup.coordinator.store import Store

    settings, cat = node(consortium, A, tmp_path)
    assert witness(settings, cat).size == 3
    verified = cat.witness_state(ORIGIN)
    port = consortium.server.port
    consortium.stop()
    # Append, behind the coordinator's back, a rotation "announced" by an impostor key of the log's
    # name and a checkpoint signed by the key it names.
    impostor, successor = NoteSigner.generate(ORIGIN), NoteSigner.generate(ORIGIN)
    stmt = sign_statement(impostor, statements_pb2.LogKeyRotated(
        old_verifier_key=consortium.log_signer.verifier().to_string(),
        new_verifier_key=successor.verifier().to_string(), reason="takeover", rotated_unix=1), origin=ORIGIN)
    entry = stmt.SerializeToString(deterministic=True)
    store = Store(database)
    tree = Tree.from_leaf_hashes(store.leaf_hashes())
    Store.add_log_entry(store._db, tree.size, entry, leaf_hash(entry))
    tree.append(entry)
    store.add_checkpoint(tree.size, sign_note(Checkpoint(ORIGIN, tree.size, tree.root()).to_text(), [successor]))
    store.close()
    consortium.settings = consortium.settings.model_copy(update={"listen": f"127.0.0.1:{port}"})
    consortium.start()
    assert size_of(latest(consortium)) == 4

    with pytest.raises(WitnessError, match="signed by no key this node trusts, and no LogKeyRotated entry after "
                                           "size 3 signed by a trusted key announces its key"):
        witness(settings, cat)
    r = dedup("node", "witness", "--config", tmp_path / f"{A}.toml")
    assert r.returncode == 1 and "signed by no key this node trusts" in r.stderr
    assert cat.witness_state(ORIGIN) == verified
    assert [k for k, _, _ in cat.log_keys()] == [consortium.log_signer.verifier().to_string()]
    assert [r[:2] for r in stored_cosignatures(consortium)] == [(3, A)]


def test_a_version_2_store_is_migrated(database):
    from dedup.coordinator.store import SCHEMA_VERSION, Store

    store = Store(database)
    store._db.execute("DROP TABLE cosignatures")
    store._db.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    store.close()
    store = Store(database)
    try:
        assert store.meta("schema_version") == str(SCHEMA_VERSION)
        store.put_cosignature(5, A, "line\n", 1)
        store.put_cosignature(5, A, "later\n", 2)
        assert store.cosignature_lines(5) == ["later\n"]
    finally:
        store.close()


def test_help_teaches_witnessing_and_rotation():
    node_help = dedup("node", "witness", "--help")
    assert node_help.returncode == 0 and node_help.stdout.startswith("usage: dedup node witness")
    for phrase in ("consistency proof", "cosignature/v1", "cosigner name = member id", "evidence/",
                   "4  the coordinator showed a log inconsistent"):
        assert phrase in node_help.stdout
    rotate = dedup("coordinator", "rotate-log-key", "--help")
    assert rotate.returncode == 0 and rotate.stdout.startswith("usage: dedup coordinator rotate-log-key")
    assert "LogKeyRotated" in rotate.stdout and "--new-key" in rotate.stdout
    assert "witness" in dedup("node", "--help").stdout
