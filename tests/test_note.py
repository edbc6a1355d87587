"""Tests for dedup.note: the public signed-note vectors, round trips, and each
way a note or key string can be malformed."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from dedup.checkpoint import Checkpoint
from dedup.merkle import leaf_hash
from dedup.note import (
    MAX_SIGNATURES,
    Note,
    NoteError,
    NoteSigner,
    NoteVerifier,
    Signature,
    add_signatures,
    key_id,
    open_note,
    sign_note,
)

VECTOR_FILE = Path(__file__).parent / "vectors" / "note" / "signed-note-vectors.json"
VECTORS = json.loads(VECTOR_FILE.read_text(encoding="utf-8"))
CASES = VECTORS["cases"]
# Every key the cases use; an unfamiliar key means the file grew a kind of
# check these tests do not perform yet.
CASE_KEYS = {
    "name", "verifier_key", "signer_key", "signed_note", "text",
    "want_valid", "want_valid_key", "note",
}
EM = "\u2014"


def test_vector_file_shape() -> None:
    assert set(VECTORS) == {"about", "cases", "tree_note"}
    assert len(CASES) == 4
    for case in CASES:
        assert set(case) <= CASE_KEYS, case["name"]
        # Every case must assert something.
        assert "want_valid" in case or "want_valid_key" in case, case["name"]
    assert (VECTOR_FILE.parent / "README.md").is_file()


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_note_vector(case: dict) -> None:
    if case.get("want_valid_key") is False:
        with pytest.raises(NoteError):
            NoteVerifier.from_string(case["verifier_key"])
        return
    verifier = NoteVerifier.from_string(case["verifier_key"])
    assert verifier.to_string() == case["verifier_key"]
    assert verifier.name == case["verifier_key"].split("+")[0]

    if case["want_valid"]:
        note = open_note(case["signed_note"], [verifier])
        assert note.text == case["text"]
        assert len(note.verified) == 1 and note.signatures == note.verified
        assert note.verified[0].name == verifier.name
        assert note.verified[0].key_id == verifier.key_id
        assert note.verified[0].to_line() == case["signed_note"].split("\n\n")[-1]
        # Bytes in, same note out.
        assert open_note(case["signed_note"].encode("utf-8"), [verifier]) == note
    else:
        with pytest.raises(NoteError):
            open_note(case["signed_note"], [verifier])

    if "signer_key" in case:
        signer = NoteSigner.from_string(case["signer_key"])
        assert signer.to_string() == case["signer_key"]
        assert signer.verifier().to_string() == case["verifier_key"]
        assert signer.key_id == verifier.key_id
        # Ed25519 is deterministic, so signing must reproduce the vector exactly.
        assert sign_note(case["text"], [signer]) == case["signed_note"]


def test_tree_note_vector() -> None:
    tree = VECTORS["tree_note"]
    cp = Checkpoint("go.sum database tree", tree["size"], leaf_hash(tree["record"].encode()))
    assert cp.to_text() == tree["formatted"]
    assert Checkpoint.parse(tree["formatted"]) == cp


def test_peter_neumann_cosigned_by_new_key() -> None:
    """The Go example: adding a second signature keeps the first line intact."""
    case = CASES[1]
    peter = NoteVerifier.from_string(case["verifier_key"])
    enoch = NoteSigner.generate("EnochRoot")
    both = add_signatures(case["signed_note"], [enoch])
    assert both.startswith(case["signed_note"])
    note = open_note(both, [peter, enoch.verifier()])
    assert [s.name for s in note.verified] == ["PeterNeumann", "EnochRoot"]
    # Either key alone still opens it; the other signature is just unknown.
    assert len(open_note(both, [enoch.verifier()]).signatures) == 2


# --- keys ------------------------------------------------------------------------


def test_key_strings_round_trip() -> None:
    signer = NoteSigner.generate("archive.example/log")
    again = NoteSigner.from_string(signer.to_string())
    assert again.key_id == signer.key_id and again.name == signer.name
    assert again.to_string() == signer.to_string()
    vkey = signer.verifier().to_string()
    assert vkey.startswith("archive.example/log+" + signer.key_id.hex() + "+")
    assert NoteVerifier.from_string(vkey).to_string() == vkey
    assert signer.to_string().startswith("PRIVATE+KEY+archive.example/log+")


def test_key_id_definition() -> None:
    import hashlib

    priv = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    signer = NoteSigner("a.example", priv)
    pub = signer.verifier().to_string().split("+", 2)[2]
    raw = base64.b64decode(pub)
    assert raw[0] == 1 and len(raw) == 33
    want = hashlib.sha256(b"a.example\n\x01" + raw[1:]).digest()[:4]
    assert signer.key_id == key_id("a.example", raw[1:]) == want


def test_signer_repr_hides_seed() -> None:
    signer = NoteSigner.generate("x.example")
    assert signer.to_string().split("+", 4)[4] not in repr(signer)


@pytest.mark.parametrize(
    "name",
    ["", "a b", "a+b", "a\u3000b", "a\u00a0b", "a\tb", "a\nb", "tab\x01", "bad\ud800"],
)
def test_bad_key_names(name: str) -> None:
    with pytest.raises(NoteError):
        NoteSigner(name, Ed25519PrivateKey.generate())
    with pytest.raises(NoteError):
        NoteVerifier(name, Ed25519PrivateKey.generate().public_key())


def _vkey_parts() -> list[str]:
    return NoteSigner.from_string(CASES[1]["signer_key"]).verifier().to_string().split("+", 2)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda n, h, k: f"{n}+{h}",  # missing key
        lambda n, h, k: f"+{h}+{k}",  # empty name
        lambda n, h, k: f"{n}+{h[:7]}+{k}",  # short key id
        lambda n, h, k: f"{n}+{h[:7]}g+{k}",  # non-hex key id
        lambda n, h, k: f"{n}+{h}+{k[:-4]}",  # truncated key
        lambda n, h, k: f"{n}+{h}+{k}AAAA",  # long key
        lambda n, h, k: f"{n}+{h}+{k[:-1]}",  # broken base64
        lambda n, h, k: f"{n}+{h}+" + base64.b64encode(b"\x02" + base64.b64decode(k)[1:]).decode(),
        lambda n, h, k: f"{n}x+{h}+{k}",  # name does not match key id
    ],
)
def test_bad_verifier_keys(mutate) -> None:
    with pytest.raises(NoteError):
        NoteVerifier.from_string(mutate(*_vkey_parts()))


def test_bad_signer_keys() -> None:
    skey = CASES[1]["signer_key"]
    rest = skey[len("PRIVATE+KEY+"):]
    for bad in [
        rest,
        "PRIVATE+KEYS+" + rest,
        "private+key+" + rest,
        skey.replace("c74f20a3", "c74f20a4"),
        skey.replace("PeterNeumann", "PeterNeumanm"),
        skey[:-4],
    ]:
        with pytest.raises(NoteError):
            NoteSigner.from_string(bad)
    # A verifier key is not a signer key and vice versa.
    with pytest.raises(NoteError):
        NoteSigner.from_string(CASES[1]["verifier_key"])
    with pytest.raises(NoteError):
        NoteVerifier.from_string(skey)


def test_verify_is_boolean() -> None:
    signer = NoteSigner.generate("x.example")
    v = signer.verifier()
    sig = signer.sign(b"msg\n")
    assert len(sig) == 64
    assert v.verify(b"msg\n", sig) is True
    assert v.verify(b"msg!\n", sig) is False
    assert v.verify(b"msg\n", sig[:-1]) is False


# --- signing and opening ---------------------------------------------------------


@pytest.fixture()
def log_key() -> NoteSigner:
    return NoteSigner.generate("log.example/one")


def test_round_trip_multiple_signers(log_key: NoteSigner) -> None:
    witness = NoteSigner.generate("witness.example")
    text = "line one\n\nline three after a blank line\n"
    msg = sign_note(text, [log_key, witness])
    lines = msg.split("\n")
    assert lines[-3].startswith(f"{EM} log.example/one ")
    assert lines[-2].startswith(f"{EM} witness.example ")
    note = open_note(msg, [log_key.verifier(), witness.verifier()])
    assert note == Note(text, note.signatures, note.signatures)
    assert len(note.signatures) == 2
    assert note.signatures[0].key_id == log_key.key_id


def test_unknown_signatures_are_kept_but_not_verified(log_key: NoteSigner) -> None:
    stranger = NoteSigner.generate("stranger.example")
    msg = sign_note("hello\n", [stranger, log_key])
    note = open_note(msg, [log_key.verifier()])
    assert [s.name for s in note.signatures] == ["stranger.example", "log.example/one"]
    assert [s.name for s in note.verified] == ["log.example/one"]


def test_same_name_other_key_is_unknown(log_key: NoteSigner) -> None:
    impostor = NoteSigner.generate(log_key.name)
    assert impostor.key_id != log_key.key_id
    msg = sign_note("hello\n", [impostor, log_key])
    assert len(open_note(msg, [log_key.verifier()]).verified) == 1
    with pytest.raises(NoteError, match="no known key"):
        open_note(sign_note("hello\n", [impostor]), [log_key.verifier()])


def test_same_key_id_other_name_is_unknown(log_key: NoteSigner) -> None:
    msg = sign_note("hello\n", [log_key])
    renamed = msg.replace(f"{EM} log.example/one ", f"{EM} log.example/two ")
    with pytest.raises(NoteError, match="no known key"):
        open_note(renamed, [log_key.verifier()])


def test_bad_signature_by_known_key_is_an_error(log_key: NoteSigner) -> None:
    good = sign_note("hello\n", [log_key])
    other = NoteSigner.generate("other.example")
    forged = Signature(log_key.name, log_key.key_id, other.sign(b"hello\n"))
    with pytest.raises(NoteError, match="invalid signature"):
        open_note(good + forged.to_line(), [log_key.verifier()])
    tampered = good.replace("hello", "jello")
    with pytest.raises(NoteError, match="invalid signature"):
        open_note(tampered, [log_key.verifier()])


def test_no_known_key(log_key: NoteSigner) -> None:
    msg = sign_note("hello\n", [log_key])
    with pytest.raises(NoteError, match="no known key signed this note"):
        open_note(msg, [])
    with pytest.raises(NoteError, match="no known key signed this note"):
        open_note(msg, [NoteSigner.generate("x.example").verifier()])


def test_ambiguous_verifiers(log_key: NoteSigner) -> None:
    msg = sign_note("hello\n", [log_key])
    with pytest.raises(NoteError, match="ambiguous"):
        open_note(msg, [log_key.verifier(), log_key.verifier()])


def test_add_signatures_replaces_same_key(log_key: NoteSigner) -> None:
    witness = NoteSigner.generate("witness.example")
    msg = sign_note("size 1\n", [log_key])
    once = add_signatures(msg, [witness])
    twice = add_signatures(once, [witness])
    assert twice == once  # deterministic re-signature replaces the old line
    note = open_note(twice, [log_key.verifier(), witness.verifier()])
    assert [s.name for s in note.verified] == [log_key.name, witness.name]
    with pytest.raises(NoteError):
        add_signatures("not signed\n", [witness])


def test_signature_limit(log_key: NoteSigner) -> None:
    msg = sign_note("hello\n", [log_key])
    junk = Signature("junk.example", b"\0\0\0\0", b"\1" * 64).to_line()
    ok = msg + junk * (MAX_SIGNATURES - 1)
    assert len(open_note(ok, [log_key.verifier()]).signatures) == MAX_SIGNATURES
    with pytest.raises(NoteError, match="more than 100"):
        open_note(ok + junk, [log_key.verifier()])
    with pytest.raises(NoteError, match="more than 100"):
        add_signatures(ok, [NoteSigner.generate("w.example")])


@pytest.mark.parametrize(
    "text", ["no newline", "", "cr\r\n", "lone \r in text\n", "tab\there\n", "nul\x00\n", "bad\ud800\n"]
)
def test_sign_rejects_bad_text(log_key: NoteSigner, text: str) -> None:
    with pytest.raises(NoteError):
        sign_note(text, [log_key])


def test_sign_needs_a_signer() -> None:
    with pytest.raises(NoteError):
        sign_note("hello\n", [])


def _sig_b64(signer: NoteSigner, text: str) -> str:
    return base64.b64encode(signer.key_id + signer.sign(text.encode())).decode()


def test_malformed_notes(log_key: NoteSigner) -> None:
    v = [log_key.verifier()]
    good = sign_note("hello\n", [log_key])
    b64 = _sig_b64(log_key, "hello\n")
    name = log_key.name
    cases = {
        "no signature block": ("hello\n" + f"{EM} {name} {b64}\n", "no signature block"),
        "empty signature block": ("hello\n\n", "no signature lines"),
        "missing trailing newline": (good[:-1], "does not end with a newline"),
        "not an em dash": (f"hello\n\n- {name} {b64}\n", "em dash"),
        "en dash": (f"hello\n\n\u2013 {name} {b64}\n", "em dash"),
        "no space after dash": (f"hello\n\n{EM}{name} {b64}\n", "em dash"),
        "no signature": (f"hello\n\n{EM} {name}\n", "no signature after"),
        "empty signature": (f"hello\n\n{EM} {name} \n", "no signature after"),
        "bad base64": (f"hello\n\n{EM} {name} {b64[:-2]}!!\n", "base64"),
        "base64 without padding": (f"hello\n\n{EM} {name} {b64.rstrip('=')}\n", "base64"),
        "non-canonical base64": (f"hello\n\n{EM} {name} {b64[:-2]}N=\n", "canonical"),
        "extra space": (f"hello\n\n{EM} {name}  {b64}\n", "base64"),
        "signature too short": (
            f"hello\n\n{EM} {name} {base64.b64encode(log_key.key_id).decode()}\n",
            "too short",
        ),
        "plus in name": (f"hello\n\n{EM} a+b {b64}\n", "signature line 1"),
        "blank line after signatures": (good + "\n", "no signature lines"),
        # The last blank line wins, so an earlier signature block becomes text.
        "signature block moved into text": (good + "\n" + good.split("\n\n")[1], "invalid signature"),
        "carriage return": (good.replace("hello\n", "hello\r\n"), "control character"),
        "crlf signature line": (good[:-1] + "\r\n", "control character"),
        "control character": (good.replace("hello", "hel\x07lo"), "control character"),
    }
    for label, (msg, match) in cases.items():
        with pytest.raises(NoteError, match=match):
            open_note(msg, v)
            pytest.fail(label)
    with pytest.raises(NoteError, match="UTF-8"):
        open_note(good.encode() + b"\xff", v)


def test_text_may_contain_blank_lines_and_signature_lookalikes(log_key: NoteSigner) -> None:
    """Only the last blank line splits text from signatures."""
    fake = Signature("fake.example", b"abcd", b"x" * 64).to_line()
    for text in ["\n", "a\n\n", "a\n\n\n", "a\n\n" + fake, "\n\nb\n"]:
        note = open_note(sign_note(text, [log_key]), [log_key.verifier()])
        assert note.text == text
        assert len(note.signatures) == 1


@settings(max_examples=60, deadline=None)
@given(
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc")) | st.just("\n"),
        max_size=200,
    )
)
def test_round_trip_any_valid_text(body: str) -> None:
    signer = NoteSigner.from_string(CASES[1]["signer_key"])
    text = body + "\n"
    note = open_note(sign_note(text, [signer]), [signer.verifier()])
    assert note.text == text
