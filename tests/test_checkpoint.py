"""Tests for dedup.checkpoint: formatting, strict parsing, and use inside a signed note."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dedup.checkpoint import Checkpoint, CheckpointError
from dedup.merkle import EMPTY_ROOT, Tree, verify_inclusion
from dedup.note import NoteSigner, open_note, sign_note

ROOT = hashlib.sha256(b"root").digest()
ROOT_B64 = base64.b64encode(ROOT).decode()
URLSAFE_B64 = base64.urlsafe_b64encode(b"\xff" * 32).decode()  # '_' is not standard base64

# The example from c2sp.org/tlog-checkpoint.
SPEC_TEXT = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"


def test_spec_example() -> None:
    cp = Checkpoint.parse(SPEC_TEXT)
    assert cp.origin == "example.com/behind-the-sofa"
    assert cp.size == 20852163
    assert cp.root_hash == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert cp.extensions == ()
    assert cp.to_text() == SPEC_TEXT


def test_extensions_round_trip() -> None:
    cp = Checkpoint("log.example", 7, ROOT, ("ext one", "— two"))
    text = cp.to_text()
    assert text == f"log.example\n7\n{ROOT_B64}\next one\n— two\n"
    assert Checkpoint.parse(text) == cp


def test_empty_tree() -> None:
    cp = Checkpoint("log.example", 0, EMPTY_ROOT)
    assert Checkpoint.parse(cp.to_text()) == cp
    assert cp.to_text().split("\n")[1] == "0"


def test_extensions_become_a_tuple() -> None:
    cp = Checkpoint("log.example", 1, bytearray(ROOT), ["x"])  # type: ignore[arg-type]
    assert cp.extensions == ("x",) and isinstance(cp.root_hash, bytes)
    hash(cp)


@pytest.mark.parametrize(
    "text, match",
    [
        (f"log\n1\n{ROOT_B64}", "end with a newline"),
        ("", "end with a newline"),
        ("log\n1\n", "at least 3 lines"),
        (f"\n1\n{ROOT_B64}\n", "origin"),
        (f"log\n01\n{ROOT_B64}\n", "decimal"),
        (f"log\n00\n{ROOT_B64}\n", "decimal"),
        (f"log\n+1\n{ROOT_B64}\n", "decimal"),
        (f"log\n-1\n{ROOT_B64}\n", "decimal"),
        (f"log\n 1\n{ROOT_B64}\n", "decimal"),
        (f"log\n1_0\n{ROOT_B64}\n", "decimal"),
        (f"log\n\u0661\n{ROOT_B64}\n", "decimal"),  # Arabic-Indic digit one
        (f"log\n0x10\n{ROOT_B64}\n", "decimal"),
        (f"log\n\n{ROOT_B64}\n", "decimal"),
        (f"log\n{2**64}\n{ROOT_B64}\n", "outside"),
        ("log\n1\n\n", "want 32"),
        (f"log\n1\n{ROOT_B64.rstrip('=')}\n", "base64"),
        (f"log\n1\n{ROOT_B64[:-2]}!=\n", "base64"),
        (f"log\n1\n{ROOT_B64} \n", "base64"),
        (f"log\n1\n{URLSAFE_B64}\n", "base64"),
        (f"log\n1\n{base64.b64encode(ROOT[:31]).decode()}\n", "want 32"),
        (f"log\n1\n{base64.b64encode(ROOT + b'x').decode()}\n", "want 32"),
        (f"log\n1\n{ROOT_B64}\n\n", "extension line 1"),
        (f"log\n1\n{ROOT_B64}\next\n\n", "extension line 2"),
        (f"log\r\n1\n{ROOT_B64}\n", "control character"),
        (f"log\n1\r\n{ROOT_B64}\n", "decimal"),
    ],
)
def test_parse_rejects(text: str, match: str) -> None:
    with pytest.raises(CheckpointError, match=match):
        Checkpoint.parse(text)


def test_non_canonical_base64_root() -> None:
    # 32 bytes leave 2 padding bits in the last character; setting them keeps
    # the decoded bytes but changes the text, which must be refused.
    last = ROOT_B64[-2]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    sloppy = ROOT_B64[:-2] + alphabet[alphabet.index(last) | 1] + "="
    assert base64.b64decode(sloppy) == ROOT and sloppy != ROOT_B64
    with pytest.raises(CheckpointError, match="canonical"):
        Checkpoint.parse(f"log\n1\n{sloppy}\n")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"origin": ""}, "origin"),
        ({"origin": "a\nb"}, "origin"),
        ({"size": -1}, "outside"),
        ({"size": 2**64}, "outside"),
        ({"size": True}, "int"),
        ({"size": 1.0}, "int"),
        ({"root_hash": ROOT[:31]}, "32 bytes"),
        ({"root_hash": ROOT_B64}, "32 bytes"),
        ({"extensions": ("",)}, "extension line 1"),
        ({"extensions": ("ok", "a\nb")}, "extension line 2"),
    ],
)
def test_constructor_rejects(kwargs: dict, match: str) -> None:
    args = {"origin": "log.example", "size": 1, "root_hash": ROOT} | kwargs
    with pytest.raises(CheckpointError, match=match):
        Checkpoint(**args)


@settings(max_examples=100, deadline=None)
@given(
    origin=st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40),
    size=st.integers(min_value=0, max_value=2**64 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(
        st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20),
        max_size=3,
    ),
)
def test_round_trip(origin: str, size: int, root: bytes, extensions: list[str]) -> None:
    cp = Checkpoint(origin, size, root, tuple(extensions))
    assert Checkpoint.parse(cp.to_text()) == cp


def test_signed_checkpoint_end_to_end() -> None:
    """A log signs its checkpoint; a verifier opens it and checks a proof against it."""
    log = NoteSigner.generate("log.example/consortium")
    tree = Tree()
    for i in range(10):
        tree.append(f"fingerprint {i}".encode())
    cp = Checkpoint(log.name, tree.size, tree.root())
    signed = sign_note(cp.to_text(), [log])

    note = open_note(signed, [log.verifier()])
    got = Checkpoint.parse(note.text)
    assert got == cp
    verify_inclusion(tree.leaf_hash_at(3), 3, got.size, tree.inclusion_proof(3), got.root_hash)
