"""C2SP tlog-witness (https://c2sp.org/tlog-witness), both ways, over real HTTP on loopback: a
member node serving add-checkpoint (`dedup node witness-serve`) driven by raw requests, and the
coordinator sending its checkpoints to witnesses named in its configuration, tested against a
reference witness written here from the spec text alone (hashlib and `cryptography`, none of
the project's log code)."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from dedup.checkpoint import Checkpoint
from dedup.cosignature import CosignatureVerifier, cosignatures
from dedup.note import NoteSigner, sign_note, split_note
from dedup.node.witness import witness
from dedup.node.witness_http import WitnessServer
from dedup.v1 import log_pb2

from conftest import ORIGIN, asset, fingerprint
from test_intake import A, B, batch, submit
from test_witness import cosigner, dedup, latest, node, node_config, restart, size_of

# --- a reference witness, from the spec text ---------------------------------------------------

EM_DASH = "\u2014"


def _leaf_count_split(n: int) -> int:
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def _consistent(old: int, new: int, proof: list[bytes], old_root: bytes, new_root: bytes) -> bool:
    """RFC 9162 2.1.4.2, as written there."""
    if old == new:
        return not proof and old_root == new_root
    if old == 0 or old > new or not proof:
        return False
    if old & (old - 1) == 0:  # a power of two: the old root starts the path
        proof = [old_root, *proof]
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = hashlib.sha256(b"\x01" + c + fr).digest()
            sr = hashlib.sha256(b"\x01" + c + sr).digest()
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = hashlib.sha256(b"\x01" + sr + c).digest()
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old_root and sr == new_root


class ReferenceWitness:
    """One log (origin and Ed25519 key), one record, a lock around check-and-record."""

    def __init__(self, name: str, origin: str, log_key: bytes, log_name: str) -> None:
        self.name, self.origin, self.log_key, self.log_name = name, origin, log_key, log_name
        self.key = Ed25519PrivateKey.generate()
        self.size, self.root = 0, None
        self.lock = threading.Lock()
        self.requests: list[int] = []  # statuses answered
        self.hostile = False  # answer 422 to everything (a witness that will not cosign)

    def vkey(self) -> str:
        pub = self.key.public_key().public_bytes_raw()
        key_id = hashlib.sha256(self.name.encode() + b"\n\x04" + pub).digest()[:4]
        key = base64.b64encode(b"\x04" + pub).decode()
        return f"{self.name}+{key_id.hex()}+{key}"

    def answer(self, body: bytes) -> tuple[int, str, bytes]:
        if self.hostile:
            return 422, "text/plain", b"no\n"
        text = body.decode()
        head, _, note = text.partition("\n\n")
        lines = head.split("\n")
        old = int(lines[0].removeprefix("old "))
        proof = [base64.b64decode(x) for x in lines[1:]]
        body_text, _, sigs = note.rpartition("\n\n")
        body_text += "\n"
        origin, size, root_b64 = body_text.split("\n")[:3]
        if origin != self.origin:
            return 404, "text/plain", b"unknown log\n"
        log_id = hashlib.sha256(self.log_name.encode() + b"\n\x01" + self.log_key).digest()[:4]
        good = False
        for line in sigs.rstrip("\n").split("\n"):
            _, name, sig = line.split(" ")
            raw = base64.b64decode(sig)
            if name == self.log_name and raw[:4] == log_id:
                try:
                    Ed25519PublicKey.from_public_bytes(self.log_key).verify(raw[4:], body_text.encode())
                    good = True
                except InvalidSignature:
                    pass
        if not good:
            return 403, "text/plain", b"no trusted signature\n"
        size, root = int(size), base64.b64decode(root_b64)
        with self.lock:
            if old > size:
                return 400, "text/plain", b"old size too large\n"
            if old != self.size:
                return 409, "text/x.tlog.size", f"{self.size}\n".encode()
            if old == size and self.root not in (None, root):
                return 409, "text/x.tlog.size", f"{self.size}\n".encode()
            if old and old != size and not _consistent(old, size, proof, self.root, root):
                return 422, "text/plain", b"bad proof\n"
            self.size, self.root = size, root
        t = int(time.time())
        msg = f"cosignature/v1\ntime {t}\n{body_text}".encode()
        pub = self.key.public_key().public_bytes_raw()
        key_id = hashlib.sha256(self.name.encode() + b"\n\x04" + pub).digest()[:4]
        sig = base64.b64encode(key_id + struct.pack(">Q", t) + self.key.sign(msg)).decode()
        return 200, "text/plain", f"{EM_DASH} {self.name} {sig}\n".encode()


def serve_reference(witness_: ReferenceWitness) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status, ctype, out = witness_.answer(body)
            witness_.requests.append(status)
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/add-checkpoint"


def with_witnesses(consortium, *entries):
    from dedup.coordinator.settings import WitnessSettings

    restart(consortium, witnesses=[WitnessSettings(url=u, key=k) for u, k in entries], witness_interval_seconds=3600)
    return consortium.server.witnesses


def grow(consortium, member=A, n=1, start=1):
    for i in range(start, start + n):
        submit(consortium, member, batch(consortium, member, [asset(f"g{member[:3]}{i}", fingerprint(900 + i))],
                                         seq=i))


# --- the coordinator as a client -----------------------------------------------------------------


@pytest.fixture
def reference(consortium):
    ref = ReferenceWitness("witness.example/w1", ORIGIN, consortium.log_signer.verifier().public_bytes(),
                           consortium.log_signer.name)
    httpd, url = serve_reference(ref)
    yield ref, url
    httpd.shutdown()


def test_the_coordinator_sends_checkpoints_and_serves_the_cosignatures(consortium, reference):
    ref, url = reference
    client = with_witnesses(consortium, (url, ref.vkey()))
    grow(consortium, A, 1)
    # It does not know the witness's size: asks with 0, which is right the first time.
    assert client.send_all() == {ref.name: "cosigned"}
    first = ref.size
    note = latest(consortium)
    assert Checkpoint.parse(split_note(note)[0]).size == first
    assert [c.name for c in cosignatures(note, [CosignatureVerifier.from_string(ref.vkey())])] == [ref.name]
    assert client.send_all() == {ref.name: "current"} and ref.requests == [200]

    # The log grows: old size and a consistency proof the reference checks itself.
    grow(consortium, B, 2)
    assert client.send_all() == {ref.name: "cosigned"} and ref.size > first
    # After a restart the client has forgotten the size: the witness's 409 says it, and it goes on.
    client = with_witnesses(consortium, (url, ref.vkey()))
    grow(consortium, A, 1, start=2)
    assert client.send_all() == {ref.name: "cosigned"}
    assert ref.requests == [200, 200, 409, 200]
    assert ref.size == Checkpoint.parse(split_note(latest(consortium))[0]).size

    # An export carries the cosignatures: the auditor counts the reference witness by its key.
    out = consortium.root / "export"
    assert dedup("coordinator", "export-log", "--config", _config(consortium), out).returncode == 0
    (consortium.root / "log.pub").write_text(consortium.log_signer.verifier().to_string() + "\n")
    v = dedup("audit", "verify", out, "--key", consortium.root / "log.pub", "--witness", ref.vkey(), "--quorum", "1",
              "--json")
    assert v.returncode == 0, v.stderr


def test_a_witness_that_refuses_stores_nothing_and_is_reported(consortium, reference):
    ref, url = reference
    ref.hostile = True
    client = with_witnesses(consortium, (url, ref.vkey()))
    grow(consortium, A, 1)
    assert client.send_all() == {ref.name: "HTTP 422: no"}
    assert consortium.query("SELECT COUNT(*) FROM cosignatures") == [(0,)]
    # Unreachable: said, nothing stored.
    client = with_witnesses(consortium, ("http://127.0.0.1:9/add-checkpoint", ref.vkey()))
    assert client.send_all()[ref.name].startswith("HTTP 0: unreachable")
    assert consortium.query("SELECT COUNT(*) FROM cosignatures") == [(0,)]


def test_witness_settings_are_checked(consortium, reference):
    from pydantic import ValidationError

    from dedup.coordinator.settings import WitnessSettings

    ref, url = reference
    with pytest.raises(ValidationError, match="is not an http:// or https:// URL"):
        WitnessSettings(url="ftp://x/add-checkpoint", key=ref.vkey())
    with pytest.raises(ValidationError, match="witness key"):
        WitnessSettings(url=url, key=consortium.parties[A].signer.verifier().to_string())  # a note key, not 0x04
    wrong = CosignatureVerifier(A, NoteSigner.generate(A).verifier().public_key).to_string()
    with pytest.raises(ValidationError, match=f"witness '{A}' is a member, but its key is not the member's"):
        consortium.settings.model_validate({**consortium.settings.model_dump(), "witnesses": [
            {"url": url, "key": wrong}]})


# --- a member node as the witness ---------------------------------------------------------------


def _post(url: str, body: bytes) -> tuple[int, str, bytes]:
    req = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()


def _request(old: int, proof: list[bytes], note: str) -> bytes:
    return ("\n".join([f"old {old}", *(base64.b64encode(h).decode() for h in proof)]) + "\n\n" + note).encode()


def _log_only(note: str) -> str:
    text, sigs = split_note(note)
    return text + "\n" + sigs[0].to_line()


@pytest.fixture
def node_witness(consortium, tmp_path):
    settings, cat = node(consortium, A, tmp_path)
    server = WitnessServer("127.0.0.1:0", settings)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, settings, cat
    server.shutdown()
    server.server_close()


def test_a_node_serves_add_checkpoint_as_the_spec_says(consortium, node_witness):
    server, settings, cat = node_witness
    url, me = server.url, cosigner(consortium, A)
    grow(consortium, B, 1)
    first = _log_only(latest(consortium, B))
    size1 = Checkpoint.parse(split_note(first)[0]).size

    status, ctype, body = _post(url, _request(0, [], first))
    assert status == 200 and ctype.startswith("text/plain")
    line = body.decode()
    assert line.startswith(f"{EM_DASH} {A} ") and line.endswith("\n") and line.count("\n") == 1
    assert [c.name for c in cosignatures(first + line, [me])] == [A]
    # The pull witness shares the record: nothing new to it.
    assert witness(settings, cat).proof == "same checkpoint as last time"

    # Asked again from 0: the node has cosigned size1, and says so.
    assert _post(url, _request(0, [], first)) == (409, "text/x.tlog.size", f"{size1}\n".encode())

    grow(consortium, B, 2, start=2)
    second = _log_only(latest(consortium, B))
    size2 = Checkpoint.parse(split_note(second)[0]).size
    proof = list(consortium.log(B).GetConsistencyProof(
        log_pb2.GetConsistencyProofRequest(old_size=size1, new_size=size2), timeout=5).hashes)
    bad = [bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:]]
    status, _, body = _post(url, _request(size1, bad, second))
    assert status == 422 and b"consistency proof" in body
    evidence = list((settings.catalogue.parent / "evidence").glob("inconsistent-log-*.json"))
    assert len(evidence) == 1 and json.loads(evidence[0].read_text())["presented_checkpoint"]["size"] == size2
    assert cat.witness_state(ORIGIN)[0] == size1  # nothing recorded
    status, _, body = _post(url, _request(size1, proof, second))
    assert status == 200 and cosignatures(second + body.decode(), [me])
    assert cat.witness_state(ORIGIN)[0] == size2

    # Another log, another key for this origin, a malformed body, an old size past the checkpoint.
    other = NoteSigner.generate("elsewhere.example/log")
    text = Checkpoint("elsewhere.example/log", 1, b"\x00" * 32).to_text()
    assert _post(url, _request(0, [], sign_note(text, [other])))[0] == 404
    forger = NoteSigner.generate(ORIGIN)
    forged = sign_note(Checkpoint(ORIGIN, size2 + 1, b"\x01" * 32).to_text(), [forger])
    assert _post(url, _request(size2, [], forged))[0] == 403
    assert _post(url, b"old 01\n\n" + second.encode())[0] == 400
    assert _post(url, b"no empty line")[0] == 400
    assert _post(url, _request(size2 + 5, [], second))[0] == 400
    # The same size with another root, signed by the real log key: a fork, kept as evidence.
    fork = sign_note(Checkpoint(ORIGIN, size2, b"\x02" * 32).to_text(), [consortium.log_signer])
    assert _post(url, _request(size2, [], fork)) == (409, "text/x.tlog.size", f"{size2}\n".encode())
    assert len(list((settings.catalogue.parent / "evidence").glob("inconsistent-log-*.json"))) == 2
    assert _post(url.replace("add-checkpoint", "other"), b"")[0] == 404


def test_two_requests_at_once_never_roll_the_record_back(consortium, node_witness):
    server, settings, cat = node_witness
    # A second server on the same catalogue (its own SQLite connection, as a second process would
    # have): only the catalogue's transaction orders the two.
    other = WitnessServer("127.0.0.1:0", settings)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        grow(consortium, B, 1)
        note = _log_only(latest(consortium, B))
        results = []
        barrier = threading.Barrier(8)

        def post(url):
            barrier.wait()
            results.append(_post(url, _request(0, [], note))[0])

        threads = [threading.Thread(target=post, args=(url,)) for url in [server.url, other.url] * 4]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        other.shutdown()
        other.server_close()
    # Each request compares with the record and advances it in one transaction: the first from 0
    # wins; the same checkpoint again from 0 is a stale old size.
    assert sorted(results) == [200] + [409] * 7
    assert cat.witness_state(ORIGIN)[0] == size_of(note)


def test_the_pull_witness_never_rolls_back_what_the_served_one_recorded(consortium, node_witness):
    from dedup.node.catalogue import WitnessRecordMoved

    server, settings, cat = node_witness
    grow(consortium, B, 1)
    first = _log_only(latest(consortium, B))
    assert _post(server.url, _request(0, [], first))[0] == 200
    recorded = cat.witness_state(ORIGIN)
    # A pull that checked its checkpoint against no record (before the served request) must not
    # save it over the served one.
    with pytest.raises(WitnessRecordMoved):
        cat.save_witness(ORIGIN, 1, b"\x00" * 32, first, [], expected=None)
    assert cat.witness_state(ORIGIN) == recorded
    # A pull that reaches the same checkpoint the served one recorded saves it (nothing changes).
    cat.save_witness(ORIGIN, recorded[0], recorded[1], recorded[2], [], expected=None)
    grow(consortium, B, 1, start=2)
    assert witness(settings, cat).previous_size == recorded[0]


def test_the_coordinator_pushes_to_a_member_serving_witness_serve(consortium, tmp_path):
    cfg = node_config(consortium, A, tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "dedup.cli.main", "node", "witness-serve", "--config", str(cfg),
                             "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        me = cosigner(consortium, A).to_string()
        assert first.startswith("serving tlog-witness at http://127.0.0.1:") and first.endswith(f" as {me}\n")
        url = first.split()[3]
        assert url.endswith("/add-checkpoint")
        client = with_witnesses(consortium, (url, me))
        grow(consortium, B, 1)
        assert client.send_all() == {A: "cosigned"}
        grow(consortium, B, 1, start=2)
        assert client.send_all() == {A: "cosigned"}
        note = latest(consortium, B)
        assert [c.name for c in cosignatures(note, [cosigner(consortium, A)])] == [A]
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_witness_serve_help_teaches_the_protocol():
    r = dedup("node", "witness-serve", "--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    for words in ("c2sp.org/tlog-witness", "add-checkpoint", "409", "422", "text/x.tlog.size", "[[witnesses]]",
                  "--listen"):
        assert words in text, words


def _config(consortium):
    from test_witness import coordinator_config

    return coordinator_config(consortium)


# --- the reference witness against the log's own proofs -------------------------------------------


def test_the_reference_witness_accepts_the_logs_proofs_and_refuses_a_bad_one(consortium, reference):
    """The coordinator's proofs, checked by a verifier written from RFC 9162 alone; a flipped
    hash is a 422, a stale old size a 409 that names the witness's size."""
    ref, url = reference
    grow(consortium, A, 1)
    first = _log_only(latest(consortium, B))
    size1 = size_of(first)
    assert _post(url, _request(0, [], first))[0] == 200
    grow(consortium, B, 3)
    second = _log_only(latest(consortium, B))
    size2 = size_of(second)
    proof = list(consortium.log(B).GetConsistencyProof(
        log_pb2.GetConsistencyProofRequest(old_size=size1, new_size=size2), timeout=5).hashes)
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 0x80]) + bad[i][1:]
        assert _post(url, _request(size1, bad, second))[0] == 422, i
    assert _post(url, _request(size1, proof[:-1], second))[0] == 422
    assert _post(url, _request(0, [], second)) == (409, "text/x.tlog.size", f"{size1}\n".encode())
    status, _, body = _post(url, _request(size1, proof, second))
    assert status == 200 and cosignatures(second + body.decode(), [CosignatureVerifier.from_string(ref.vkey())])
    assert ref.size == size2


def test_a_refused_witness_is_asked_again_only_after_a_wait(consortium, reference):
    ref, url = reference
    ref.hostile = True
    client = with_witnesses(consortium, (url, ref.vkey()))
    now = [1000.0]
    client.clock = lambda: now[0]
    client.interval = 5.0
    grow(consortium, A, 1)
    assert client.send_all() == {ref.name: "HTTP 422: no"}
    # Not asked again at once: the wait doubles with each failure in a row.
    assert client.send_all() == {ref.name: "backing off for 5 s after 1 failure"}
    now[0] += 5
    assert client.send_all() == {ref.name: "HTTP 422: no"}
    now[0] += 5
    assert client.send_all() == {ref.name: "backing off for 5 s after 2 failures"}
    assert ref.requests == [422, 422]
    # Once it cosigns, the count starts again.
    ref.hostile = False
    now[0] += 5
    assert client.send_all() == {ref.name: "cosigned"}
    grow(consortium, B, 1)
    assert client.send_all() == {ref.name: "cosigned"} and ref.requests == [422, 422, 200, 200]


def test_a_cosignature_whose_answer_was_lost_is_asked_for_again(consortium, reference):
    """The witness recorded the checkpoint but the coordinator never stored its cosignature (the
    answer was lost): its 409 names this very size, and the same checkpoint is sent from there."""
    ref, url = reference
    grow(consortium, A, 1)
    note = _log_only(latest(consortium, B))
    assert _post(url, _request(0, [], note))[0] == 200  # someone else's request: nothing stored here
    assert consortium.query("SELECT COUNT(*) FROM cosignatures") == [(0,)]
    client = with_witnesses(consortium, (url, ref.vkey()))
    assert client.send_all() == {ref.name: "cosigned"}
    assert ref.requests == [200, 409, 200]
    by_ref = [CosignatureVerifier.from_string(ref.vkey())]
    assert [c.name for c in cosignatures(latest(consortium), by_ref)] == [ref.name]
    # Stored already: after a restart the 409 alone settles it.
    client = with_witnesses(consortium, (url, ref.vkey()))
    assert client.send_all() == {ref.name: "current"} and ref.requests == [200, 409, 200, 409]


def test_a_node_refuses_what_is_not_a_checkpoint_and_a_proof_between_equal_sizes(consortium, node_witness):
    server, settings, cat = node_witness
    url = server.url
    assert _post(url, b"old 0\n\nnot a signed note\n")[0] == 400
    assert _post(url, b"old 0\nAAAA\n\n" + _log_only(latest(consortium)).encode())[0] == 400  # not 32 bytes
    assert _post(url, b"old 0\n" + b"".join(base64.b64encode(b"\x00" * 32) + b"\n" for _ in range(64)) + b"\n"
                 + _log_only(latest(consortium)).encode())[0] == 400  # more than 63 proof lines
    note = _log_only(latest(consortium))
    assert _post(url, _request(0, [b"\x00" * 32], note))[0] == 400  # a proof from 0
    assert _post(url, _request(0, [], note))[0] == 200
    size = size_of(note)
    assert _post(url, _request(size, [], note))[0] == 200  # the same checkpoint: cosigned again
    status, _, body = _post(url, _request(size, [b"\x00" * 32], note))
    assert status == 422 and b"must be empty" in body
    assert not (settings.catalogue.parent / "evidence").exists()  # a bad request, not a second history
    assert cat.witness_state(ORIGIN)[0] == size


def test_a_busy_catalogue_is_a_503_and_nothing_is_recorded(consortium, node_witness):
    import sqlite3

    server, settings, cat = node_witness
    note = _log_only(latest(consortium))
    holder = sqlite3.connect(settings.catalogue, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # a push holding the catalogue
    try:
        status, _, body = _post(server.url, _request(0, [], note))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert status == 503 and b"send again later" in body
    assert cat.witness_state(ORIGIN) is None
    assert _post(server.url, _request(0, [], note))[0] == 200


# --- end to end: the coordinator's own thread, a member's witness-serve, the auditor ------------


def test_the_coordinator_thread_gets_a_members_cosignature_that_the_auditor_counts(consortium, tmp_path):
    cfg = node_config(consortium, A, tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "dedup.cli.main", "node", "witness-serve", "--config", str(cfg),
                             "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().split()[3]
        me = cosigner(consortium, A)
        from dedup.coordinator.settings import WitnessSettings

        restart(consortium, witnesses=[WitnessSettings(url=url, key=me.to_string())], witness_interval_seconds=0.2)
        thread = consortium.server.witnesses._thread
        assert thread.is_alive()
        for n in range(1, 3):
            grow(consortium, B, 1, start=n)
            size = size_of(latest(consortium))
            deadline = time.monotonic() + 20
            while not cosignatures(latest(consortium), [me]) and time.monotonic() < deadline:
                time.sleep(0.1)
            note = latest(consortium)
            assert size_of(note) == size and [c.name for c in cosignatures(note, [me])] == [A], note

        out = consortium.root / "export"
        assert dedup("coordinator", "export-log", "--config", _config(consortium), out).returncode == 0
        (consortium.root / "log.pub").write_text(consortium.log_signer.verifier().to_string() + "\n")
        v = dedup("audit", "verify", out, "--key", consortium.root / "log.pub", "--witness", me.to_string(),
                  "--quorum", "1", "--json")
        assert v.returncode == 0, v.stdout + v.stderr
        assert json.loads(v.stdout)["ok"] is True
        # Stopping the coordinator stops its witness thread.
        consortium.stop()
        assert not thread.is_alive()
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
