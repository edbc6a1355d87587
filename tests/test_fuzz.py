"""Bad input, fuzzed: every parser and handler that reads data from outside. Each must answer
with its own clear error (a gRPC status other than UNKNOWN, NoteError, CheckpointError,
ProofError, BundleError, ExportError or AuditFailure, ConfigError, ImageError) and the process
or server must live on.

`make test` runs DEDUP_FUZZ_EXAMPLES (default 40) examples per target; `make test-faults`
runs many more.
"""

from __future__ import annotations

import base64
import io
import os
import struct
import zlib
from pathlib import Path

import grpc
import pytest
import tomli_w
from hypothesis import HealthCheck, example, given, settings, strategies as st

from conftest import ORIGIN, asset, fingerprint
from test_intake import A, batch, rows

EXAMPLES = int(os.environ.get("DEDUP_FUZZ_EXAMPLES", "40"))
fuzz = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


def mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """``data`` with bytes flipped, cut and inserted at the given (kind, position, value)."""
    b = bytearray(data)
    for kind, pos, val in edits:
        if not b:
            b.append(val)
            continue
        pos %= len(b)
        if kind == 0:
            b[pos] ^= val or 1
        elif kind == 1:
            del b[pos:pos + 1 + val % 8]
        else:
            b[pos:pos] = bytes([val]) * (1 + val % 4)
    return bytes(b)


EDITS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=6)


# --- the coordinator's request handlers, over a real server --------------------------------------

METHODS = [
    "/dedup.v1.IntakeService/SubmitBatch", "/dedup.v1.IntakeService/WithdrawAssets",
    "/dedup.v1.IntakeService/ListMatches", "/dedup.v1.LogService/AddCosignature",
    "/dedup.v1.LogService/GetConsistencyProof", "/dedup.v1.LogService/GetInclusionProof",
    "/dedup.v1.LogService/GetEntries", "/dedup.v1.LogService/GetCheckpoint",
    "/dedup.v1.NegotiationService/Vote", "/dedup.v1.NegotiationService/CastBallot",
    "/dedup.v1.NegotiationService/Rule",
    "/dedup.v1.NegotiationService/ListProposals",
]


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_request_handlers_answer_any_bytes_with_a_clean_status(consortium):
    """Random and mutated protobuf bytes into every unary method: an answer or a status that
    names the problem, never UNKNOWN (an exception the handler did not expect); nothing from
    random bytes is stored; the server stays up."""
    ch = consortium.channel(A)
    calls = {m: ch.unary_unary(m, request_serializer=None, response_deserializer=None) for m in METHODS}
    valid = batch(consortium, A, [asset("seed", fingerprint(1))]).SerializeToString()
    tried = {"n": 0, "codes": {}}

    def call(method: str, body: bytes) -> None:
        tried["n"] += 1
        try:
            calls[method](body, timeout=10)
            code = grpc.StatusCode.OK
        except grpc.RpcError as err:
            code = err.code()
            assert code != grpc.StatusCode.UNKNOWN, (method, body[:80], err.details())
            assert code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), (method, err)
        tried["codes"][code.name] = tried["codes"].get(code.name, 0) + 1

    @fuzz
    @given(st.sampled_from(METHODS), st.binary(max_size=2048))
    def random_bytes(method, body):
        before = rows(consortium, "log_entries")
        call(method, body)
        assert rows(consortium, "log_entries") == before

    @fuzz
    @given(st.sampled_from(METHODS), EDITS)
    def mutated(method, edits):
        call(method, mutate(valid, edits))

    random_bytes()
    mutated()
    assert consortium.intake(A).ListMatches(__import__("dedup.v1.intake_pb2", fromlist=["x"]).ListMatchesRequest(),
                                            timeout=5) is not None
    assert tried["n"] >= 2 * min(EXAMPLES, 10)


# --- provenance lookups: the coordinator's LookupService and the node's reading of its answers --

LOOKUP = "/dedup.v1.LookupService/Lookup"
# The codes a lookup may be refused with: each names its reason in the details.
LOOKUP_REFUSALS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INTERNAL}


def _query(seed: int):
    a = asset("q", fingerprint(seed))
    a.asset_id = ""
    return a


def _odd_query(draw_ints, raw: bytes):
    """A queried record with its fields set to odd values: any width, height, depth, quality,
    enum value, fingerprint length and algorithm, digests of any length."""
    from dedup.v1 import asset_pb2

    a = _query(draw_ints[0] % 1000)
    e = a.evidence
    e.width, e.height, e.bit_depth, e.jpeg_quality, e.channels = draw_ints[1:6]
    e.jpeg_quality %= 128  # mostly in range, sometimes past 100
    e.frame_width, e.frame_height = draw_ints[6:8]
    e.format_family = draw_ints[8] % 7  # 3..6: values the schema does not name
    e.skew_centidegrees = draw_ints[9] - (1 << 31)
    e.capture_date = raw[:40].decode("utf-8", "replace")
    e.rights = raw[40:].decode("utf-8", "replace")
    kind = draw_ints[10] % 7
    if kind == 0:
        del a.fingerprints[:]
    elif kind == 1:
        a.fingerprints[0].value = raw
    elif kind == 2:
        a.fingerprints[0].algorithm = raw.decode("latin-1")
    elif kind == 3:
        a.fingerprints.extend([asset_pb2.Fingerprint(algorithm="x", version=draw_ints[11], value=raw)] * 3)
    elif kind == 4:
        a.sha256, a.pixel_digest = raw[:31], raw
    elif kind == 5:
        a.asset_id = "named"
    # kind 6: the fingerprints and digests as they were
    return a


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_lookup_answers_any_request_with_a_clean_status(consortium):
    """LookupService.Lookup fed random bytes, mutated serialisations of a valid request, records
    with odd field values, no files, one file over the limit and a request of the largest size
    the server takes: an answer with one result per file in order, or INVALID_ARGUMENT /
    RESOURCE_EXHAUSTED (INTERNAL only from gRPC's own parsing) naming the problem; never UNKNOWN;
    nothing stored but the per-member count of files looked up; the server stays up."""
    from dedup.v1 import lookup_pb2 as L, lookup_pb2_grpc

    from test_witness import restart

    # The fuzzing asks far more often than a member may: lift the rate limit, keep the file limit.
    restart(consortium, lookup=consortium.settings.lookup.model_copy(update={"rate": 1e9, "burst": 1_000_000_000}))
    limit = consortium.settings.lookup.max_files
    stored = ("batches", "assets", "log_entries", "matches", "clusters", "proposals")
    submit_seed = batch(consortium, A, [asset("held", fingerprint(7))])
    consortium.intake(A).SubmitBatch(submit_seed, timeout=10)
    before = {t: rows(consortium, t) for t in stored}
    ch = consortium.channel(A)
    raw_call = ch.unary_unary(LOOKUP, request_serializer=None, response_deserializer=None)
    valid = L.LookupRequest(files=[_query(7), _query(8)]).SerializeToString()
    tried = {"n": 0, "codes": {}}

    def call(body: bytes, files: int | None = None) -> None:
        tried["n"] += 1
        try:
            resp = L.LookupResponse.FromString(raw_call(body, timeout=20))
            code = grpc.StatusCode.OK
            if files is not None:
                assert [r.position for r in resp.results] == list(range(files))
        except grpc.RpcError as err:
            code = err.code()
            assert code in LOOKUP_REFUSALS, (code, body[:80], err.details())
            assert err.details(), code
        tried["codes"][code.name] = tried["codes"].get(code.name, 0) + 1

    @fuzz
    @given(st.binary(max_size=4096))
    def random_bytes(body):
        call(body)

    @fuzz
    @given(EDITS)
    def mutated(edits):
        call(mutate(valid, edits))

    @fuzz
    @given(st.lists(st.tuples(st.lists(st.integers(0, (1 << 32) - 1), min_size=12, max_size=12),
                              st.binary(max_size=300)), min_size=1, max_size=4))
    # Always tried: odd values the server answers, and one it refuses (JPEG quality 101).
    @example([([8, (1 << 32) - 1, 1, 65535, 100, 7, 0, (1 << 32) - 1, 6, 0, 6, 9], b"\xff" * 60)] * 2)
    @example([([7, 640, 480, 8, 101, 3, 640, 480, 1, 1 << 31, 5, 0], b"")])
    def odd_records(files):
        call(L.LookupRequest(files=[_odd_query(ints, raw) for ints, raw in files]).SerializeToString(), len(files))

    random_bytes()
    mutated()
    odd_records()
    # No files; one over the limit; the largest request taken: each refused or answered in full.
    for n, code in ((0, grpc.StatusCode.INVALID_ARGUMENT), (limit + 1, grpc.StatusCode.RESOURCE_EXHAUSTED)):
        with pytest.raises(grpc.RpcError) as info:
            raw_call(L.LookupRequest(files=[_query(i) for i in range(n)]).SerializeToString(), timeout=20)
        assert info.value.code() == code, info.value.details()
        assert ("at least one file" if n == 0 else f"a lookup of {n} files") in info.value.details()
    full = L.LookupResponse.FromString(raw_call(L.LookupRequest(files=[_query(7)] * limit).SerializeToString(),
                                                timeout=60))
    assert len(full.results) == limit and all(r.matched for r in full.results)
    assert {t: rows(consortium, t) for t in stored} == before
    # Still serving: the held picture is found.
    stub = lookup_pb2_grpc.LookupServiceStub(ch)
    assert stub.Lookup(L.LookupRequest(files=[_query(7)]), timeout=10).results[0].matched
    assert tried["n"] >= 3 * min(EXAMPLES, 10)
    assert "OK" in tried["codes"] and "INVALID_ARGUMENT" in tried["codes"], tried["codes"]


@fuzz
@given(st.one_of(st.binary(max_size=2048),
                 st.builds(lambda ints, raw: (ints, raw),
                           st.lists(st.integers(0, (1 << 32) - 1), min_size=14, max_size=14), st.binary(max_size=200))))
def test_node_reads_any_lookup_answer(tmp_path_factory, data):
    """The node's side of a lookup, given any answer a coordinator might send (random bytes, or
    results with enum values the schema does not name, odd numbers and text): it parses the
    answer or gets protobuf's DecodeError, and turns each result into a row, a CSV line, a
    proof file and a table line without failing."""
    import contextlib

    from google.protobuf.message import DecodeError

    from dedup.node.lookup import print_table, result_dict, write_csv, write_proofs
    from dedup.v1 import lookup_pb2 as L

    if isinstance(data, bytes):
        try:
            resp = L.LookupResponse.FromString(data)
        except DecodeError:
            return
    else:
        ints, raw = data
        text = raw.decode("utf-8", "replace")
        r = L.LookupResult(position=ints[0], matched=bool(ints[1] & 1), cluster_id=text, distance=ints[2],
                           kept_permille=ints[3], master_is_crop=bool(ints[4] & 1), description=text,
                           proposal_id=text, copies=ints[5], holders=ints[6], outcome_log_index=ints[7],
                           inclusion_proof=text)
        r.master_status = ints[8] % 9  # 5..8: values the schema does not name
        r.relation = ints[9] % 20  # 12..19: values the schema does not name
        r.master.member_id, r.master.asset_id = text, text[::-1]
        r.master_evidence.width, r.master_evidence.height = ints[10], ints[11]
        r.master_evidence.format_family = ints[12] % 5
        r.agreed_master.member_id = text
        resp = L.LookupResponse(results=[r])
    out = tmp_path_factory.mktemp("answer")
    rows_ = [result_dict(f"/q/{i}.jpg", r) for i, r in enumerate(resp.results)]
    write_csv(rows_, out / "answer.csv")
    write_proofs(rows_, out / "proofs")
    with contextlib.redirect_stdout(io.StringIO()):
        print_table(rows_, "coordinator")
    assert all(p.parent == out / "proofs" for p in (out / "proofs").iterdir())


# --- signed notes, checkpoints, proofs, bundles ------------------------------------------------


def _signed():
    from dedup.checkpoint import Checkpoint
    from dedup.merkle import Tree
    from dedup.note import NoteSigner, sign_note

    signer = NoteSigner.generate("fuzz.example/log")
    tree = Tree()
    for i in range(7):
        tree.append(b"entry %d" % i)
    note = sign_note(Checkpoint("fuzz.example/log", tree.size, tree.root()).to_text(), [signer])
    return signer, tree, note


SIGNER, TREE, NOTE = _signed()


@fuzz
@given(st.one_of(st.text(max_size=600), st.binary(max_size=600), EDITS.map(lambda e: mutate(NOTE.encode(), e))))
@example(NOTE.replace("\n\n", "\n"))
@example("\u2014 x\n\n\u2014 a b\n")
def test_signed_note_and_checkpoint_parsers(text):
    from dedup.checkpoint import Checkpoint, CheckpointError
    from dedup.note import NoteError, open_note, split_note

    for f in (lambda: split_note(text), lambda: open_note(text, [SIGNER.verifier()])):
        try:
            f()
        except NoteError:
            pass
    body = text if isinstance(text, str) else text.decode("utf-8", "replace")
    try:
        Checkpoint.parse(body)
    except CheckpointError:
        pass


@fuzz
@given(st.integers(-3, 40), st.integers(-3, 40), st.integers(-3, 40),
       st.lists(st.binary(min_size=0, max_size=40), max_size=12), st.binary(max_size=40), st.binary(max_size=40))
def test_proof_verifiers(index, size1, size2, proof, root1, root2):
    from dedup.merkle import ProofError, verify_consistency, verify_inclusion

    for f in (lambda: verify_inclusion(root1, index, size1, proof, root2),
              lambda: verify_consistency(size1, size2, proof, root1, root2)):
        try:
            f()
        except ProofError:
            pass


def _bundle() -> str:
    from dedup.proofbundle import Bundle

    return Bundle(b"entry 3", 3, tuple(TREE.inclusion_proof(3)), NOTE).to_text()


BUNDLE = _bundle()


@fuzz
@given(st.one_of(st.binary(max_size=800), st.text(max_size=800), EDITS.map(lambda e: mutate(BUNDLE.encode(), e))))
@example(BUNDLE)
def test_proof_bundle_reader(data):
    from dedup.proofbundle import BundleError, verify_bundle

    try:
        verify_bundle(data, [SIGNER.verifier()])
    except BundleError:
        pass


# --- the log export reader and the auditor -------------------------------------------------------


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """A real export: a coordinator log with admissions, a batch and a checkpoint."""
    from dedup.coordinator.server import build_core

    from conftest import MEMBERS  # noqa: F401 - the fixture's members

    root = tmp_path_factory.mktemp("export")
    from dedup.coordinator.export import export_log
    from dedup.coordinator.settings import CoordinatorSettings
    from dedup.note import NoteSigner
    from dedup import pki

    log_signer = NoteSigner.generate(ORIGIN)
    pki.write_private(root / "log.key", log_signer.to_string().encode())
    member = NoteSigner.generate(A)
    settings = CoordinatorSettings(database=str(root / "c.sqlite"), log_key=root / "log.key",
                                   log_origin=ORIGIN, tls={"ca": root, "cert": root, "key": root},
                                   members=[{"id": A, "name": "A", "public_key": member.verifier().to_string()}])
    core = build_core(settings)

    class C:
        parties = {A: type("P", (), {"signer": member})}
    core.submit_batch(A, batch(C, A, [asset("a1", fingerprint(1)), asset("a2", fingerprint(2))]).manifest,
                      batch(C, A, [asset("a1", fingerprint(1)), asset("a2", fingerprint(2))]).assets)
    export_log(core.store, root / "out", log_signer.verifier().to_string())
    core.store.close()
    return root / "out", log_signer.verifier()


def test_export_reader_and_auditor_on_corrupted_exports(export, tmp_path_factory):
    import shutil

    from dedup.audit.verify import AuditFailure, verify_export
    from dedup.export import ENTRIES, ExportError, read_entries

    good, verifier = export
    assert verify_export(good, verifier).entries == 2
    entries = (good / ENTRIES).read_bytes()
    cps = sorted((good / "checkpoints").iterdir())
    work = tmp_path_factory.mktemp("bad")
    counter = {"n": 0}

    @fuzz
    @given(st.sampled_from(["entries", "checkpoint", "random"]), EDITS, st.binary(max_size=400))
    def corrupted(part, edits, junk):
        counter["n"] += 1
        d = work / f"e{counter['n']}"
        shutil.copytree(good, d)
        if part == "entries":
            (d / ENTRIES).write_bytes(mutate(entries, edits))
        elif part == "checkpoint":
            target = d / "checkpoints" / cps[-1].name
            target.write_bytes(mutate(cps[-1].read_bytes(), edits))
        else:
            (d / ENTRIES).write_bytes(junk)
        try:
            list(read_entries(d))
        except ExportError:
            pass
        try:
            verify_export(d, verifier, workers=1)
        except (AuditFailure, ExportError):
            pass
        shutil.rmtree(d)

    corrupted()


# --- configuration files ---------------------------------------------------------------------------

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=True),
                    st.text(max_size=30))
TOML_VALUES = st.recursive(SCALARS.filter(lambda v: v is not None),
                           lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                   st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                           max_leaves=12)
KEYS = st.sampled_from(["member_id", "catalogue", "signing_key", "tls", "coordinator", "roots", "batch_size",
                        "workers", "database", "log_key", "log_origin", "listen", "members", "match",
                        "intake_rate", "max_batch_assets", "log_verifier_key", "auto_decisions", "x"])


@fuzz
@given(st.one_of(st.dictionaries(KEYS, TOML_VALUES, max_size=8).map(tomli_w.dumps),
                 st.text(max_size=300), st.binary(max_size=300)))
def test_config_files(tmp_path_factory, text):
    from dedup.config import ConfigError, load
    from dedup.coordinator.settings import CoordinatorSettings
    from dedup.node.settings import NodeSettings

    path = tmp_path_factory.getbasetemp() / "fuzz.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", errors="surrogatepass") if "\ud800" not in text else None
    for model in (NodeSettings, CoordinatorSettings):
        try:
            load(path, model, environ={})
        except ConfigError:
            pass


# --- the node's image reading -------------------------------------------------------------------------


def hostile_images(folder: Path) -> dict[str, str]:
    """Files a collection may hold that are not what they claim: name -> what is wrong."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    good = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 30, 200)).save(good, "JPEG", quality=90)
    jpeg = good.getvalue()
    tiff = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 200, 30)).save(tiff, "TIFF")
    tif = tiff.getvalue()
    png = io.BytesIO()
    Image.new("L", (16, 16), 7).save(png, "PNG")
    pngb = png.getvalue()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    # A PNG declaring 100000 x 100000 pixels over a tiny compressed stream.
    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 10_000)) + chunk(b"IEND", b""))
    # EXIF whose IFD points at itself (a loop), inside a valid JPEG.
    ifd = b"MM\x00\x2a\x00\x00\x00\x08" + b"\x00\x01" + b"\x87\x69\x00\x04\x00\x00\x00\x01\x00\x00\x00\x08" + b"\x00\x00\x00\x08"
    exif_loop = jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(ifd) + 8) + b"Exif\x00\x00" + ifd + jpeg[2:]
    # A TIFF whose first IFD offset points past the end, and one whose strip offsets do.
    bad_ifd = tif[:4] + struct.pack("<I", 10_000_000) + tif[8:]
    bad_strip = bytearray(tif)
    idx = bad_strip.find(struct.pack("<HH", 273, 4))  # StripOffsets, LONG
    if idx > 0:
        bad_strip[idx + 8:idx + 12] = struct.pack("<I", 0x7FFFFFF0)
    files = {
        "empty.jpg": (b"", "zero bytes"),
        "text.jpg": (b"not an image at all\n" * 10, "wrong extension (text)"),
        "png-as.jpg": (pngb, "a PNG named .jpg"),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "truncated JPEG"),
        "header-only.jpg": (jpeg[:20], "JPEG header only"),
        "bitflip.jpg": (jpeg[:200] + bytes(b ^ 0x5A for b in jpeg[200:260]) + jpeg[260:], "corrupted JPEG data"),
        "bad-ifd.tif": (bad_ifd, "TIFF IFD offset past the end"),
        "bad-strip.tif": (bytes(bad_strip), "TIFF strip offset past the end"),
        "bomb.png": (bomb, "huge declared dimensions (decompression bomb)"),
        "exif-loop.jpg": (exif_loop, "EXIF IFD pointing at itself"),
        "garbage.tif": (b"II*\x00" + os.urandom(300), "TIFF magic then garbage"),
        "zeros.png": (b"\x89PNG\r\n\x1a\n" + b"\0" * 200, "PNG signature then zeros"),
    }
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    return {name: why for name, (_, why) in files.items()}


def test_hostile_images_give_clear_errors(tmp_path):
    from dedup.node.imaging import ImageError, read_image

    corpus = hostile_images(tmp_path / "hostile")
    outcomes = {}
    for name in corpus:
        try:
            read_image(tmp_path / "hostile" / name)
            outcomes[name] = "read"
        except ImageError as exc:
            outcomes[name] = str(exc)
            assert str(exc), name
    # The EXIF loop and the mislabelled PNG are readable pictures; everything else is refused.
    refused = {n for n, o in outcomes.items() if o != "read"}
    assert refused >= set(corpus) - {"exif-loop.jpg", "png-as.jpg", "bitflip.jpg"}, outcomes


@fuzz
@given(st.sampled_from(["jpg", "png", "tif", "webp"]), EDITS)
@example("tif", [(0, 130, 0)])  # found by this test: a byte of the page directory zeroed; Pillow raised TypeError
def test_mutated_images_give_clear_errors(tmp_path_factory, fmt, edits):
    from PIL import Image

    from dedup.node.imaging import ImageError, read_image

    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (90, 140, 20)).save(buf, {"jpg": "JPEG", "tif": "TIFF"}.get(fmt, fmt.upper()))
    path = tmp_path_factory.getbasetemp() / f"mutated.{fmt}"
    path.write_bytes(mutate(buf.getvalue(), edits))
    try:
        read_image(path)
    except ImageError:
        pass


def test_a_scan_over_hostile_files_records_each_and_goes_on(tmp_path):
    from dedup.node.catalogue import Catalogue
    from dedup.node.scan import scan

    corpus = hostile_images(tmp_path / "hostile")
    from PIL import Image

    Image.new("RGB", (300, 200), (10, 90, 200)).save(tmp_path / "hostile" / "fine.png")
    cat = Catalogue(tmp_path / "cat.sqlite")
    summary = scan(cat, [tmp_path / "hostile"], workers=1, progress=False)
    assert summary.seen == len(corpus) + 1 and summary.read + summary.failed == summary.seen
    assert all(reason for _, reason in summary.errors)
    assert "fine.png" not in {Path(p).name for p, _ in summary.errors}
