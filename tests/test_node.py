"""The node: scanning real files into a real SQLite catalogue, local duplicates, and pushing to a
real coordinator over mutual TLS through the `dedup` command line."""

from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w
from PIL import Image
from skimage import data

from dedup import pki
from dedup.matching import link
from dedup.node.catalogue import Catalogue
from dedup.node.duplicates import duplicates_json, local_clusters
from dedup.node.scan import scan
from dedup.v1 import statements_pb2 as R

from conftest import ORIGIN
from test_intake import A, B
from test_matching import flip, keypoints, make, random_points


def dedup(*args, check=None):
    proc = subprocess.run([sys.executable, "-m", "dedup.cli.main", *map(str, args)], capture_output=True, text=True)
    if check is not None:
        assert proc.returncode == check, proc.stderr + proc.stdout
    return proc


@pytest.fixture
def collection(tmp_path):
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    astro = Image.fromarray(data.astronaut())
    astro.save(d / "astronaut.png")
    astro.resize((256, 256)).save(d / "sub" / "astronaut-small.jpg", quality=70)
    astro.convert("L").save(d / "sub" / "astronaut-grey.jpg", quality=85)
    Image.fromarray(data.camera()).save(d / "camera.tif")
    Image.fromarray(data.coffee()).save(d / "coffee.jpg", quality=90)
    (d / "notes.txt").write_text("not an image")
    (d / "broken.jpg").write_bytes((d / "coffee.jpg").read_bytes()[:500])
    os.symlink(d, d / "sub" / "loop")
    return d


def test_scan_records_every_file_and_rescan_reads_nothing(tmp_path, collection):
    cat = Catalogue(tmp_path / "cat.sqlite")
    s = scan(cat, [collection], workers=2, progress=False)
    assert (s.seen, s.read, s.failed, s.unchanged) == (7, 5, 2, 0)
    assert sorted(Path(p).name for p, _ in s.errors) == ["broken.jpg", "notes.txt"]
    assert [Path(p).name for p, _ in s.skipped] == ["loop"]
    assert cat.counts()["unreadable"] == 2
    again = scan(cat, [collection], workers=2, progress=False)
    assert (again.read, again.failed, again.unchanged) == (0, 0, 7)
    # A changed file is read again, under the same asset id.
    before = cat.file(str(collection / "camera.tif")).asset_id
    Image.fromarray(data.camera()[::2, ::2]).save(collection / "camera.tif")
    third = scan(cat, [collection], workers=1, progress=False)
    assert (third.read, third.unchanged) == (1, 6)
    assert cat.file(str(collection / "camera.tif")).asset_id == before


def test_duplicates_json_groups_variants(tmp_path, collection):
    cat = Catalogue(tmp_path / "cat.sqlite")
    scan(cat, [collection], workers=1, progress=False)
    out = duplicates_json(cat)
    assert len(out["clusters"]) == 1
    cluster = out["clusters"][0]
    assert sorted(Path(a["path"]).name for a in cluster["assets"]) == [
        "astronaut-grey.jpg", "astronaut-small.jpg", "astronaut.png"]
    relations = {(Path(l["a"]).name, Path(l["b"]).name): l["relation"] for l in cluster["links"]}
    assert relations[("astronaut.png", "astronaut-grey.jpg")] == "greyscale"
    assert relations[("astronaut.png", "astronaut-small.jpg")] == "reencoded"


def _catalogue_of(path: Path, records) -> Catalogue:
    """A catalogue holding ``records`` (path -> asset record) as a scan would have left them."""
    cat = Catalogue(path)
    with cat.transaction() as db:
        for name, record in records.items():
            cat.put_file(db, {"path": name, "size": 1, "mtime_ns": 0, "asset_id": record.asset_id, "scanned_unix": 0,
                              "record": record.SerializeToString(deterministic=True)})
    return cat


@pytest.mark.parametrize("linking_pairs", [1, 2])
def test_one_weak_link_does_not_merge_two_photographs(tmp_path, linking_pairs):
    """Two photographs, three copies each (whole-picture matches), and a copy of one whose
    keypoints agree with a copy of the other (a matte that resembles part of it): that one pair
    does not make them one cluster; a second such pair does."""
    rng = random.Random(11)
    shared = [[(rng.getrandbits(64), x, y) for x, y in ((0.1, 0.1), (0.9, 0.12), (0.5, 0.4), (0.15, 0.7),
                                                          (0.85, 0.7), (0.4, 0.6))] for _ in range(2)]
    records = {}
    for photo in ("p", "q"):
        up = rng.randbytes(32)
        for k in range(3):
            # p2 and q0 (and, for two pairs, p1 and q1) show the same keypoints, nothing else.
            pair = {("p", 2): 0, ("q", 0): 0, ("p", 1): 1, ("q", 1): 1}.get((photo, k))
            pts = random_points(rng, 6)
            if pair is not None and pair < linking_pairs:
                pts = shared[pair] + pts
            records[f"/archive/{photo}{k}.jpg"] = make(f"{photo}{k}", dihedral=[flip(up, 3 * k, seed=k)],
                                                       points=keypoints(pts))
    weak = link(records["/archive/p2.jpg"], records["/archive/q0.jpg"])
    assert (weak.relation, weak.algorithm) == (R.RELATION_EDITED, "kp64")
    cat = _catalogue_of(tmp_path / "cat.sqlite", records)
    clusters, links = local_clusters(cat)
    names = [[Path(p).stem for p in c] for c in clusters]
    relations = sorted((Path(lk.a).stem, Path(lk.b).stem, lk.link.algorithm) for lk in links)
    if linking_pairs == 1:
        assert names == [["p0", "p1", "p2"], ["q0", "q1", "q2"]]
        # The weak link is not reported inside either cluster.
        assert [r for r in relations if r[2] == "kp64"] == []
    else:
        assert names == [["p0", "p1", "p2", "q0", "q1", "q2"]]
        assert [r for r in relations if r[2] == "kp64"] == [("p1", "q1", "kp64"), ("p2", "q0", "kp64")]
    assert [r for r in relations if r[2] == "dct256"] == [
        (a, b, "dct256") for x in "pq" for a, b in itertools.combinations((f"{x}0", f"{x}1", f"{x}2"), 2)]


def node_config(consortium, member, tmp_path, collection) -> Path:
    party = consortium.parties[member]
    cfg = {
        "member_id": member, "catalogue": str(tmp_path / f"{member}.sqlite"),
        "signing_key": str(tmp_path / f"{member}.key"), "roots": [str(collection)], "log_origin": ORIGIN,
        "tls": {"ca": str(consortium.ca_pem), "cert": str(party.tls_cert), "key": str(party.tls_key)},
        "coordinator": {"address": f"127.0.0.1:{consortium.server.port}", "server_name": "coordinator",
                        "timeout_seconds": 10},
    }
    pki.write_private(tmp_path / f"{member}.key", party.signer.to_string().encode())
    path = tmp_path / f"{member}.toml"
    path.write_text(tomli_w.dumps(cfg))
    return path


def test_scan_push_and_resend_through_the_cli(consortium, tmp_path, collection):
    cfg = node_config(consortium, A, tmp_path, collection)
    scanned = json.loads(dedup("node", "scan", "--config", cfg, "--json", check=1).stdout)
    assert scanned["scan"]["read"] == 5 and scanned["scan"]["failed"] == 2
    pushed = json.loads(dedup("node", "push", "--config", cfg, "--json", check=0).stdout)
    assert (pushed["batches_sent"], pushed["assets_accepted"], pushed["refused"]) == (1, 5, [])
    # Nothing changed: nothing to send.
    again = json.loads(dedup("node", "push", "--config", cfg, "--json", check=0).stdout)
    assert again["batches_sent"] == 0
    dup = json.loads(dedup("node", "duplicates", "--config", cfg, "--json", check=0).stdout)
    assert len(dup["clusters"]) == 1

    # A second member holding a recompressed copy of the camera picture matches across members.
    other = tmp_path / "other"
    other.mkdir()
    Image.fromarray(data.camera()).save(other / "cam.jpg", quality=60)
    cfg_b = node_config(consortium, B, tmp_path, other)
    dedup("node", "scan", "--config", cfg_b, "--json", check=0)
    pushed_b = json.loads(dedup("node", "push", "--config", cfg_b, "--json", check=0).stdout)
    assert pushed_b["new_matches"] == 1


def test_pending_batch_is_resent_with_same_id(consortium, tmp_path, collection):
    """A batch written but never acknowledged (coordinator down) is resent as it was."""
    cfg = node_config(consortium, A, tmp_path, collection)
    dedup("node", "scan", "--config", cfg, "--json", check=1)
    port = consortium.server.port
    consortium.stop()
    down = dedup("node", "push", "--config", cfg, "--json", check=3)
    assert json.loads(down.stdout)["unreachable"].startswith("UNAVAILABLE")
    cat = Catalogue(tmp_path / f"{A}.sqlite")
    pending = cat.pending_batches()
    assert len(pending) == 1
    consortium.settings.listen = f"127.0.0.1:{port}"
    consortium.start()
    up = json.loads(dedup("node", "push", "--config", cfg, "--json", check=0).stdout)
    assert (up["resent"], up["batches_sent"], up["assets_accepted"]) == (1, 1, 5)
    assert cat.pending_batches() == []


def test_a_pending_batch_signed_for_no_log_is_signed_again_when_resent(consortium, tmp_path, collection):
    """A batch an earlier release signed (for no log) and never had acknowledged: resent with its
    manifest unchanged and a signature for this log; a node that knows no log signs nothing."""
    import sqlite3

    from dedup.signing import parse_entry, unbound_pae

    cfg = node_config(consortium, A, tmp_path, collection)
    dedup("node", "scan", "--config", cfg, "--json", check=1)
    port = consortium.server.port
    consortium.stop()
    dedup("node", "push", "--config", cfg, "--json", check=3)
    db = sqlite3.connect(tmp_path / f"{A}.sqlite")
    [(batch_id, stored)] = db.execute("SELECT batch_id, manifest FROM batches WHERE state='pending'").fetchall()
    stmt = parse_entry(stored)
    stmt.signature = consortium.parties[A].signer.sign(unbound_pae(stmt.type, stmt.body))
    with db:
        db.execute("UPDATE batches SET manifest=? WHERE batch_id=?", (stmt.SerializeToString(), batch_id))
    db.close()
    consortium.settings.listen = f"127.0.0.1:{port}"
    consortium.start()

    unbound = tmp_path / "unbound.toml"
    text = cfg.read_text()
    assert f'log_origin = "{ORIGIN}"\n' in text
    unbound.write_text(text.replace(f'log_origin = "{ORIGIN}"\n', ""))
    refused = dedup("node", "push", "--config", unbound, "--json", check=2)
    assert "does not know which: set log_verifier_key" in refused.stderr

    up = json.loads(dedup("node", "push", "--config", cfg, "--json", check=0).stdout)
    assert (up["resent"], up["batches_sent"], up["assets_accepted"], up["refused"]) == (1, 1, 5, [])
    [(body,)] = consortium.query("SELECT manifest FROM batches WHERE member_id=?", (A,))
    assert bytes(body) == stmt.body


def test_usage_errors_exit_2(tmp_path):
    r = dedup("node", "scan", "--config", tmp_path / "missing.toml", tmp_path)
    assert r.returncode == 2 and "does not exist" in r.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('member_id = "Bad Id"\ncatalogue = "c.sqlite"\nsigning_key = "k"\n')
    r = dedup("node", "scan", "--config", bad, tmp_path)
    assert r.returncode == 2 and "member_id" in r.stderr
    ok = tmp_path / "ok.toml"
    ok.write_text('member_id = "m"\ncatalogue = "c.sqlite"\nsigning_key = "k"\n')
    r = dedup("node", "push", "--config", ok)
    assert r.returncode == 2 and f"it needs these settings, and {ok} does not set them:\n" in r.stderr
    assert "  [coordinator]  address" in r.stderr and "member_id " not in r.stderr


def test_help_teaches_every_command():
    top = dedup("--help", check=0).stdout
    for word in ("node", "coordinator", "audit", "demo", "exit codes"):
        assert word in top
    for args in (("node", "--help"), ("node", "scan", "--help"), ("node", "push", "--help"),
                 ("node", "duplicates", "--help"), ("coordinator", "serve", "--help"),
                 ("coordinator", "export-log", "--help"), ("audit", "verify", "--help"), ("demo", "--help")):
        assert dedup(*args, check=0).stdout.startswith("usage: dedup")


def test_withdraw_through_the_cli(consortium, tmp_path, collection):
    cfg = node_config(consortium, A, tmp_path, collection)
    dedup("node", "scan", "--config", cfg, "--json", check=1)
    dedup("node", "push", "--config", cfg, "--json", check=0)
    out = dedup("node", "withdraw", collection / "coffee.jpg", "--reason", "deaccessioned", "--config", cfg, "--json",
                check=0)
    assert json.loads(out.stdout)["withdrawn"] == 1
    assert Catalogue(tmp_path / f"{A}.sqlite").asset_id_of(str(collection / "coffee.jpg")) is None
    assert consortium.query("SELECT COUNT(*) FROM tombstones") == [(1,)]
    missing = dedup("node", "withdraw", collection / "nothing.jpg", "--config", cfg)
    assert missing.returncode == 2 and "not in the catalogue" in missing.stderr


@pytest.fixture
def kinds(tmp_path):
    """A master and one copy of each kind an archive holds, scanned through the command line,
    with the institution's rights statement on the master alone (so the master outranks its
    byte copy and its metadata copy)."""
    import shutil
    import sqlite3

    from PIL import ImageOps, PngImagePlugin

    from dedup.note import NoteSigner

    d = tmp_path / "photos"
    d.mkdir()
    img = Image.fromarray(data.astronaut())
    w, h = img.size
    img.save(d / "master.png")
    shutil.copy(d / "master.png", d / "master-copy.png")
    note = PngImagePlugin.PngInfo()
    note.add_text("Comment", "access copy")
    img.save(d / "master-meta.png", pnginfo=note, compress_level=1)
    img.save(d / "recompressed.jpg", quality=60)
    img.resize((256, 256)).save(d / "small.jpg", quality=85)
    img.convert("L").save(d / "grey.png")
    img.crop((0, 0, int(w * 0.8), h)).save(d / "crop.png")
    img.rotate(90, expand=True).save(d / "turned.jpg", quality=90)
    ImageOps.mirror(img).save(d / "mirrored.jpg", quality=90)
    ImageOps.expand(img, border=60, fill=(240, 240, 240)).save(d / "matted.png")
    key = tmp_path / "k.key"
    key.write_text(NoteSigner.generate("solo").to_string())
    cfg = tmp_path / "node.toml"
    cfg.write_text(tomli_w.dumps({"member_id": "solo", "catalogue": str(tmp_path / "c.sqlite"),
                                  "signing_key": str(key), "workers": 1}))
    dedup("node", "scan", d, "--config", cfg, "--quiet", check=0)
    db = sqlite3.connect(tmp_path / "c.sqlite")
    with db:
        db.execute("UPDATE files SET rights_uri=? WHERE path=?",
                   ("http://rightsstatements.org/vocab/InC/1.0/", str(d / "master.png")))
    db.close()
    return d, cfg


def test_duplicates_in_plain_words(kinds):
    """`duplicates` says which copy to keep and why, and what every other copy is, in words; the
    machine names and distances stay in --json."""
    d, cfg = kinds
    text = dedup("node", "duplicates", "--config", cfg, check=0).stdout
    lines = text.splitlines()
    head = ("cluster 1: 10 copies; keep: master.png \u2014 its rights statement is known; the next best copy's "
            "(master-")
    assert lines[0].startswith(head) and lines[0].endswith(".png) is unknown")
    width = len(str(d / "recompressed.jpg"))
    row = {Path(line.split()[1]).name: line for line in lines[1:-1]}
    assert lines[1] == f"  keep  {str(d / 'master.png').ljust(width)}  512\u00d7512, lossless, colour"
    words = {"master-copy.png": "same file", "master-meta.png": "same pixels, other metadata",
             "grey.png": "greyscale copy", "mirrored.jpg": "mirrored", "turned.jpg": "turned a quarter",
             "recompressed.jpg": "recompressed (JPEG quality 60; the keeper is lossless)",
             "small.jpg": "smaller copy (256 px of 512)",
             "matted.png": "in a mat/border, larger (632 px against 512)", "crop.png": "cropped, keeps 80%"}
    assert set(row) == {"master.png", *words}
    for name, said in words.items():
        assert row[name] == f"  copy  {str(d / name).ljust(width)}  {said}"
    # The copies in the policy's order after the keeper: the bordered copy and the crop last
    # (never kept over the fuller picture). Copies with equal evidence tie, and the policy breaks
    # ties by asset id, which is random: only the order of unequal evidence is fixed.
    order = [Path(line.split()[1]).name for line in lines[4:]][:-1]
    assert order[-2:] == ["matted.png", "crop.png"]
    assert order.index("recompressed.jpg") < order.index("small.jpg")
    assert set(order[:-2]) == {"grey.png", "mirrored.jpg", "turned.jpg", "recompressed.jpg", "small.jpg"}
    assert lines[-1] == "1 duplicate cluster"
    for jargon in ("reencoded", "identical_pixels", "identical_bytes", "rotated_mirrored", "bordered", "distance",
                   "rights_known"):
        assert jargon not in text, jargon

    out = json.loads(dedup("node", "duplicates", "--config", cfg, "--json", check=0).stdout)
    c, = out["clusters"]
    relation = {(Path(lk["a"]).name, Path(lk["b"]).name): lk["relation"] for lk in c["links"]}
    assert relation[("master-copy.png", "master.png")] == "identical_bytes"
    assert relation[("master-meta.png", "master.png")] == "identical_pixels"
    assert relation[("master.png", "small.jpg")] == "reencoded"
    assert relation[("master.png", "turned.jpg")] == "rotated_mirrored"
    assert relation[("master.png", "matted.png")] == "bordered"
    assert all(isinstance(lk["distance"], int) for lk in c["links"])
    assert (Path(c["keeper"]).name, c["deciding_rule"]) == ("master.png", "rights_known")
    by = {Path(a["path"]).name: a for a in c["assets"]}
    assert [Path(a["path"]).name for a in c["assets"]] == sorted(by)  # the paths in order, as ever
    assert (by["small.jpg"]["relation_to_keeper"], by["small.jpg"]["description"]) == (
        "reencoded", "smaller copy (256 px of 512)")
    assert by["master.png"]["keeper"] and not by["small.jpg"]["keeper"]
