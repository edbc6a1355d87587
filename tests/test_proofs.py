"""Inclusion proofs: LogService.GetInclusionProof over mutual TLS, c2sp.org/tlog-proof bundles,
and `dedup audit prove` / `check-proof`."""

from __future__ import annotations

import base64

import grpc
import pytest

from dedup.checkpoint import Checkpoint
from dedup.cli.main import main
from dedup.cosignature import CosignatureSigner, add_cosignature
from dedup.merkle import leaf_hash, verify_inclusion
from dedup.note import NoteSigner, open_note
from dedup.proofbundle import Bundle, BundleError, verify_bundle
from dedup.v1 import log_pb2

from conftest import asset, fingerprint, near
from test_audit import exported  # noqa: F401 - fixture
from test_intake import A, B, C, batch, submit


@pytest.fixture
def filled(consortium):
    fp = fingerprint(1)
    submit(consortium, A, batch(consortium, A, [asset("a1", fp, width=4000, height=3000)]))
    submit(consortium, B, batch(consortium, B, [asset("b1", near(fp, 5))]))
    return consortium


def proof(consortium, index, tree_size=0):
    """The proof as a member the entry is about reads it (A and B between them are party to every
    entry here; a member reads only the entries about it)."""
    request = log_pb2.GetInclusionProofRequest(index=index, tree_size=tree_size)
    mine = consortium.log(A).GetInclusionProof(request, timeout=10)
    return mine if mine.entry else consortium.log(B).GetInclusionProof(request, timeout=10)


def sizes(consortium):
    return [s for (s,) in consortium.query("SELECT size FROM checkpoints ORDER BY size")]


def test_inclusion_proof_of_every_entry(filled):
    latest = sizes(filled)[-1]
    assert sizes(filled) == [0, 3, 4, 7]
    for index in range(latest):
        r = proof(filled, index)
        assert (r.index, r.tree_size) == (index, latest)
        cp = Checkpoint.parse(open_note(r.signed_checkpoint, [filled.log_signer.verifier()]).text)
        assert cp.size == latest
        verify_inclusion(leaf_hash(r.entry), index, latest, list(r.hashes), cp.root_hash)
        assert r.entry == filled.query("SELECT entry FROM log_entries WHERE idx = ?", (index,))[0][0]


def test_inclusion_proof_against_an_earlier_checkpoint(filled):
    r = proof(filled, 2, tree_size=3)
    cp = Checkpoint.parse(open_note(r.signed_checkpoint, [filled.log_signer.verifier()]).text)
    assert (r.tree_size, cp.size, len(r.hashes)) == (3, 3, 1)
    verify_inclusion(leaf_hash(r.entry), 2, 3, list(r.hashes), cp.root_hash)


@pytest.mark.parametrize("index, tree_size, code, message", [
    (0, 8, grpc.StatusCode.OUT_OF_RANGE, "tree size 8 is beyond the latest checkpoint's size 7"),
    (0, 5, grpc.StatusCode.NOT_FOUND, "no checkpoint was published for tree size 5"),
    (3, 3, grpc.StatusCode.OUT_OF_RANGE, "entry index 3 is not inside the tree of size 3"),
    (7, 0, grpc.StatusCode.OUT_OF_RANGE, "entry index 7 is not inside the tree of size 7"),
])
def test_inclusion_proof_refusals(filled, index, tree_size, code, message):
    with pytest.raises(grpc.RpcError) as info:
        proof(filled, index, tree_size)
    assert (info.value.code(), info.value.details()) == (code, message)


def bundle_of(consortium, index, tree_size=0) -> Bundle:
    r = proof(consortium, index, tree_size)
    return Bundle(r.entry, r.index, tuple(r.hashes), r.signed_checkpoint)


def test_bundle_round_trip(filled):
    b = bundle_of(filled, 4)
    text = b.to_text()
    assert text.startswith("c2sp.org/tlog-proof@v1\nextra " + base64.b64encode(b.entry).decode() + "\nindex 4\n")
    assert Bundle.parse(text) == b
    v = verify_bundle(text, [filled.log_signer.verifier()])
    assert (v.entry, v.index, v.checkpoint.size) == (b.entry, 4, 7)


def _lines(text):
    return text.split("\n")


def test_bundle_tampering_is_refused(filled):
    key = [filled.log_signer.verifier()]
    text = bundle_of(filled, 4).to_text()
    lines = _lines(text)

    entry = bytearray(base64.b64decode(lines[1][6:]))
    entry[10] ^= 1
    bad_entry = "\n".join([lines[0], "extra " + base64.b64encode(bytes(entry)).decode()] + lines[2:])
    with pytest.raises(BundleError, match=r"^entry 4 is not proven included in the tree of size 7: inclusion proof "
                                          r"leads to root [0-9a-f]{64}, not [0-9a-f]{64}$"):
        verify_bundle(bad_entry, key)

    bad_index = "\n".join(lines[:2] + ["index 5"] + lines[3:])
    with pytest.raises(BundleError, match=r"^entry 5 is not proven included in the tree of size 7: "):
        verify_bundle(bad_index, key)

    h = bytearray(base64.b64decode(lines[3]))
    h[0] ^= 1
    bad_hash = "\n".join(lines[:3] + [base64.b64encode(bytes(h)).decode()] + lines[4:])
    with pytest.raises(BundleError, match=r"^entry 4 is not proven included in the tree of size 7: "):
        verify_bundle(bad_hash, key)

    cut = text.index("\n\n") + 2
    note = text[cut:]
    root_line = note.split("\n")[2]
    forged_root = base64.b64encode(bytes(32)).decode()
    with pytest.raises(BundleError, match=r"^checkpoint: invalid signature by known key test.dedup.local/log\+"):
        verify_bundle(text[:cut] + note.replace(root_line, forged_root, 1), key)

    rogue = NoteSigner.generate(filled.log_signer.name)
    with pytest.raises(BundleError, match="^checkpoint: no known key signed this note$"):
        verify_bundle(text, [rogue.verifier()])


@pytest.mark.parametrize("mutate, message", [
    (lambda t: t.replace("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2", 1), "line 1 must be"),
    (lambda t: t.replace("\nextra ", "\nextras ", 1), "line 2 must be 'extra <base64 entry>'"),
    (lambda t: t.replace("\nindex 4\n", "\nindex 04\n", 1), "line 3 must be 'index <N>'"),
    (lambda t: t.replace("\nindex 4\n", "\nindex 4\n\n", 1), "proof hash|checkpoint"),
    (lambda t: t.replace("\n\n", "\n", 1), "no empty line|proof hash on line"),
    (lambda t: t.split("\n\n")[0] + "\n\n", "no checkpoint after the empty line"),
])
def test_bundle_parser_is_strict(filled, mutate, message):
    text = bundle_of(filled, 4).to_text()
    with pytest.raises(BundleError, match=message):
        verify_bundle(mutate(text), [filled.log_signer.verifier()])


def test_bundle_quorum(filled):
    key = [filled.log_signer.verifier()]
    b = bundle_of(filled, 1)
    witnesses = [CosignatureSigner(m, filled.parties[m].signer.private_key) for m in (A, B, C)]
    note = b.signed_checkpoint
    for w in witnesses[:2]:
        note = add_cosignature(note, w, timestamp=1_700_000_000)
    cosigned = Bundle(b.entry, b.index, b.proof, note)
    verifiers = [w.verifier for w in witnesses]
    v = verify_bundle(cosigned, key, verifiers, quorum=2)
    assert sorted(c.name for c in v.cosignatures) == sorted([A, B])
    with pytest.raises(BundleError, match=r"^checkpoint \(size 7\) carries 2 valid cosignatures by the given witnesses,"
                                          r" fewer than the quorum of 3$"):
        verify_bundle(cosigned, key, verifiers, quorum=3)
    with pytest.raises(BundleError, match="fewer than the quorum of 1"):
        verify_bundle(b, key, verifiers, quorum=1)


def test_cli_prove_and_check_proof(exported, tmp_path, capsys):
    path, signer = exported
    out = tmp_path / "entry-6.tlog-proof"
    assert main(["audit", "prove", "6", "--export", str(path), "--out", str(out)]) == 0
    assert main(["audit", "check-proof", str(out), "--key", str(path / "log.pub")]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("proof verified: entry 6 is in test.dedup.local/log "
                                                               "at size 11, root ")
    assert main(["audit", "prove", "2", "--export", str(path), "--size", "4", "--out", str(out)]) == 0
    assert main(["audit", "check-proof", str(out), "--key", str(path / "log.pub"), "--json"]) == 0
    assert '"tree_size": 4' in capsys.readouterr().out
    assert main(["audit", "prove", "5", "--export", str(path), "--size", "4", "--out", str(out)]) == 1
    assert "entry 5 is not inside the tree of checkpoint 000000000004 (size 4)" in capsys.readouterr().err
    text = out.read_text()
    out.write_text(text.replace("index 2", "index 1"))
    assert main(["audit", "check-proof", str(out), "--key", str(path / "log.pub")]) == 1
    assert capsys.readouterr().err.startswith("proof NOT verified: entry 1 is not proven included in the tree of size 4")
    assert main(["audit", "check-proof", str(out), "--key", str(path / "log.pub"), "--quorum", "1"]) == 2
