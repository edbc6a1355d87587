"""A checkpoint final for a node: cosigned by a quorum of the witnesses it lists, seen after a
push, and proofs re-anchored to it so `dedup audit check-proof --quorum N` passes on what the
node saves. Real coordinator, real mutual TLS, real node catalogues."""

from __future__ import annotations

import json
import threading
import time

import pytest
from pydantic import ValidationError

from dedup import pki
from dedup.cli.main import main
from dedup.config import load
from dedup.node.catalogue import Catalogue
from dedup.node.finality import anchor_proofs, await_quorum, quorum_words
from dedup.node.settings import NodeSettings
from dedup.node.witness import witness
from dedup.proofbundle import Bundle
from dedup.v1 import log_pb2

from conftest import asset, fingerprint
from test_intake import A, B, C, batch, submit
from test_witness import cosigner, dedup, node, node_config, size_of

WAIT = 20


def a_node(consortium, tmp_path, **extra) -> tuple[NodeSettings, Catalogue]:
    """A's node, counting B (by its statement key, as in its signing.pub) and C (by its
    cosigner key) as witnesses, a quorum of both."""
    pki.write_private(tmp_path / "b.pub", consortium.parties[B].signer.verifier().to_string().encode())
    cfg = node_config(consortium, A, tmp_path, witnesses=[str(tmp_path / "b.pub"), cosigner(consortium, C).to_string()],
                      witness_quorum=2, **extra)
    settings = load(cfg, NodeSettings)
    return settings, Catalogue(settings.catalogue)


def others_witness(consortium, tmp_path, delay=0.0):
    for member in (B, C):
        time.sleep(delay)
        witness(*node(consortium, member, tmp_path))


def test_push_sees_its_checkpoint_cosigned_by_the_quorum(consortium, tmp_path):
    settings, cat = a_node(consortium, tmp_path)
    submit(consortium, A, batch(consortium, A, [asset("a1", fingerprint(1))]))
    mine = witness(settings, cat)
    # Looked at once: only A has cosigned, and A is not one of its own witnesses.
    alone = await_quorum(settings, cat, wait=0)
    assert (alone.size, alone.cosigned_by, alone.final, alone.final_size) == (mine.size, [], False, None)
    assert quorum_words(alone) == (f"checkpoint {mine.size} has 0 of the 2 witness cosignatures needed: proofs "
                                   "citing it are not final yet (`dedup node witness` or the next push looks again)")
    # The other members witness while A waits.
    t = threading.Thread(target=others_witness, args=(consortium, tmp_path, 0.5))
    t.start()
    got = await_quorum(settings, cat, wait=WAIT)
    t.join()
    assert (got.size, got.cosigned_by, got.final, got.final_size) == (mine.size, [B, C], True, mine.size)
    assert got.waited_seconds < WAIT
    assert cat.final_checkpoint(consortium.log_signer.name)[0] == mine.size


def test_a_quorum_on_a_later_checkpoint_counts(consortium, tmp_path):
    settings, cat = a_node(consortium, tmp_path)
    submit(consortium, A, batch(consortium, A, [asset("a1", fingerprint(1))]))
    mine = witness(settings, cat).size
    submit(consortium, C, batch(consortium, C, [asset("c1", fingerprint(2))]))
    others_witness(consortium, tmp_path)  # they cosign the later checkpoint, never A's
    got = await_quorum(settings, cat, wait=0)
    assert got.final and got.size > mine and got.cosigned_by == [B, C]


def test_lookup_proofs_are_anchored_to_the_final_checkpoint_and_pass_check_proof_quorum(consortium, tmp_path):
    settings, cat = a_node(consortium, tmp_path)
    submit(consortium, A, batch(consortium, A, [asset("a1", fingerprint(1))]))
    witness(settings, cat)
    others_witness(consortium, tmp_path)
    final = await_quorum(settings, cat, wait=0)
    assert final.final
    submit(consortium, A, batch(consortium, A, [asset("a2", fingerprint(3))], seq=2))
    latest = consortium.log(A).GetCheckpoint(log_pb2.GetCheckpointRequest(), timeout=5).signed_checkpoint
    assert size_of(latest) > final.size

    def bundle(index):
        r = consortium.log(A).GetInclusionProof(log_pb2.GetInclusionProofRequest(index=index), timeout=5)
        return Bundle(r.entry, index, tuple(r.hashes), r.signed_checkpoint).to_text()

    before, after = final.size - 1, size_of(latest) - 1  # A's first batch, and its second
    rows = [{"inclusion_proof": bundle(before)}, {"inclusion_proof": bundle(after)}, {"inclusion_proof": None}]
    anchor_proofs(settings, cat, rows)
    assert [(r.get("proof_final"), r.get("proof_cosigned_by")) for r in rows] == [
        (True, [B, C]), (False, []), (None, None)]
    anchored = Bundle.parse(rows[0]["inclusion_proof"])
    assert (anchored.index, size_of(anchored.signed_checkpoint)) == (before, final.size)

    folder = tmp_path / "proofs"
    folder.mkdir()
    log_pub = tmp_path / "log.pub"
    log_pub.write_text(consortium.log_signer.verifier().to_string() + "\n")
    witnesses = ["--witness", cosigner(consortium, B).to_string(), "--witness", cosigner(consortium, C).to_string()]
    for name, row in (("final", rows[0]), ("pending", rows[1])):
        (folder / name).write_text(row["inclusion_proof"])
    assert main(["audit", "check-proof", str(folder / "final"), "--key", str(log_pub), *witnesses,
                 "--quorum", "2"]) == 0
    assert main(["audit", "check-proof", str(folder / "pending"), "--key", str(log_pub), *witnesses,
                 "--quorum", "2"]) == 1  # fails: not cosigned by the quorum


def test_witness_command_reports_the_quorum(consortium, tmp_path):
    a_node(consortium, tmp_path)
    submit(consortium, A, batch(consortium, A, [asset("a1", fingerprint(1))]))
    cfg = tmp_path / f"{A}.toml"
    r = dedup("node", "witness", "--config", cfg, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["quorum"] == {"needed": 2, "size": out["size"], "cosigned_by": [], "final": False,
                             "waited_seconds": 0.0, "final_size": None}
    others_witness(consortium, tmp_path)
    r = dedup("node", "witness", "--config", cfg)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == (f"checkpoint {out['size']} is cosigned by 2 of the 2 witnesses needed "
                                         f"({B}, {C}): proofs citing it are final")


def test_witness_settings_are_checked(consortium, tmp_path):
    key_b = consortium.parties[B].signer.verifier().to_string()
    base = {"catalogue": "x.sqlite"}
    converted = NodeSettings(**base, witnesses=[key_b], witness_quorum=1)
    assert converted.witnesses == [cosigner(consortium, B).to_string()]
    with pytest.raises(ValidationError, match="witness_quorum = 2, but only 1 witnesses are listed"):
        NodeSettings(**base, witnesses=[key_b], witness_quorum=2)
    with pytest.raises(ValidationError, match="a witness is listed twice"):
        NodeSettings(**base, witnesses=[key_b, cosigner(consortium, B).to_string()], witness_quorum=1)
    with pytest.raises(ValidationError, match="neither a witness key nor a readable file"):
        NodeSettings(**base, witnesses=["no-such-file.pub"])


def test_push_waits_for_the_quorum_and_says_so(consortium, tmp_path):
    from PIL import Image
    from skimage import data

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(data.camera()).save(photos / "camera.png")
    a_node(consortium, tmp_path, roots=[str(photos)], quorum_wait_seconds=WAIT)
    cfg = tmp_path / f"{A}.toml"
    assert dedup("node", "scan", "--config", cfg, "--json").returncode == 0
    # B and C witness once A's batch is in the log, while A's push waits for them.
    entries_before = size_of(consortium.log(B).GetCheckpoint(log_pb2.GetCheckpointRequest(), timeout=5)
                             .signed_checkpoint)

    def when_pushed():
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and size_of(consortium.log(B).GetCheckpoint(
                log_pb2.GetCheckpointRequest(), timeout=5).signed_checkpoint) == entries_before:
            time.sleep(0.1)
        time.sleep(1.0)  # after A's own witnessing, most likely; either way the quorum is on a checkpoint >= A's
        others_witness(consortium, tmp_path)

    t = threading.Thread(target=when_pushed)
    t.start()
    pushed = dedup("node", "push", "--config", cfg)
    t.join()
    assert pushed.returncode == 0, pushed.stderr
    last = pushed.stdout.splitlines()[-1]
    assert last.startswith("checkpoint ") and last.endswith(f"is cosigned by 2 of the 2 witnesses needed ({B}, {C}): "
                                                            "proofs citing it are final"), pushed.stdout
