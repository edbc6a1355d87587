"""Scanning a generated tree with every supported format and every kind of trouble, into a
real SQLite catalogue; the catalogue's contents are checked exactly."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import skimage.data
from PIL import Image

from dedup.node.catalogue import Catalogue
from dedup.node.scan import FINGERPRINTS, scan
from dedup.v1 import asset_pb2

PHOTO = Image.fromarray(skimage.data.astronaut())
INC = "http://rightsstatements.org/vocab/InC/1.0/"
NOC_US = "http://rightsstatements.org/vocab/NoC-US/1.0/"


def dedup(*args):
    return subprocess.run([sys.executable, "-m", "dedup.cli.main", *map(str, args)], capture_output=True, text=True)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    (root / "a" / "b").mkdir(parents=True)
    PHOTO.save(root / "master.png")
    PHOTO.save(root / "a" / "copy.jpg", quality=80)
    PHOTO.save(root / "a" / "copy.webp", quality=80)
    PHOTO.convert("L").save(root / "a" / "grey16.tif")
    Image.fromarray((skimage.data.camera().astype("uint16") * 257)).save(root / "a" / "camera16.png")
    PHOTO.save(root / "a" / "lzw.tif", compression="tiff_lzw")
    PHOTO.save(root / "a" / "b" / "pages.tif", save_all=True,
               append_images=[PHOTO.rotate(90), PHOTO.convert("L")])
    PHOTO.convert("P").save(root / "a" / "b" / "anim.gif", save_all=True, append_images=[PHOTO.convert("P").rotate(180)])
    PHOTO.save(root / "a" / "b" / "old.bmp")
    import pillow_heif

    pillow_heif.register_heif_opener()
    PHOTO.save(root / "a" / "b" / "phone.heic", quality=80)
    exif = Image.Exif()
    exif[0x8298] = "(c) 1972 City Museum"
    PHOTO.save(root / "a" / "noticed.jpg", quality=90, exif=exif)
    (root / "tiny.gif").write_bytes(b"GIF89a")  # a header and nothing else
    (root / "notes.txt").write_text("shelf list")
    (root / "broken.jpg").write_bytes((root / "a" / "copy.jpg").read_bytes()[:700])
    (root / "empty.png").write_bytes(b"")
    os.symlink(root, root / "a" / "loop")  # a symlink loop: never followed
    os.symlink(tmp_path, root / "escape")  # a link out of the root: never followed
    return root


def rows(cat_path: Path) -> dict[str, dict]:
    db = sqlite3.connect(cat_path)
    db.row_factory = sqlite3.Row
    return {Path(r["path"]).name: dict(r) for r in db.execute("SELECT * FROM files")}


def test_every_file_recorded_with_its_facts(tmp_path: Path, tree: Path) -> None:
    cat_path = tmp_path / "cat.sqlite"
    summary = scan(Catalogue(cat_path), [tree], workers=2, progress=False)
    assert (summary.seen, summary.read, summary.failed) == (15, 11, 4)
    assert sorted(Path(p).name for p, _ in summary.skipped) == ["escape", "loop"]
    r = rows(cat_path)
    assert set(r) == {"master.png", "copy.jpg", "copy.webp", "grey16.tif", "camera16.png", "lzw.tif", "pages.tif",
                      "anim.gif", "old.bmp", "phone.heic", "noticed.jpg", "tiny.gif", "notes.txt", "broken.jpg",
                      "empty.png"}
    assert {n for n, x in r.items() if x["error"]} == {"tiny.gif", "notes.txt", "broken.jpg", "empty.png"}
    assert r["empty.png"]["error"] == "empty file (0 bytes)"
    assert r["notes.txt"]["error"] == "not an image: the file contains text"
    assert r["broken.jpg"]["error"].startswith("corrupt or truncated image file")
    assert (r["pages.tif"]["format"], r["pages.tif"]["page_count"]) == ("TIFF", 3)
    assert (r["anim.gif"]["format"], r["anim.gif"]["page_count"]) == ("GIF", 2)
    assert (r["old.bmp"]["format"], r["old.bmp"]["format_family"]) == ("BMP", "lossless")
    assert (r["phone.heic"]["format"], r["phone.heic"]["format_family"], r["phone.heic"]["width"]) == ("HEIF", "lossy", 512)
    assert (r["camera16.png"]["bit_depth"], r["camera16.png"]["width"]) == (16, 512)
    assert r["copy.jpg"]["format_family"] == "lossy" and 75 <= r["copy.jpg"]["jpeg_quality"] <= 85
    assert (r["noticed.jpg"]["rights_uri"], r["noticed.jpg"]["rights_text"], r["noticed.jpg"]["rights_source"]) == (
        INC, "(c) 1972 City Museum", "EXIF Copyright")
    assert r["master.png"]["rights_uri"] == "unknown"  # absent is unknown, never free
    for name, row in r.items():
        if not row["error"]:
            assert len(row["sha256"]) == 32 and len(row["pixel_digest"]) == 32, name


def test_sidecar_overrides_embedded_rights_and_survives_rescans(tmp_path: Path, tree: Path) -> None:
    cfg = tmp_path / "node.toml"
    cfg.write_text(f'member_id = "m"\ncatalogue = "cat.sqlite"\nsigning_key = "k"\nroots = ["{tree}"]\n')
    assert dedup("node", "scan", "--config", cfg, "--json").returncode == 1  # unreadable files were found
    csv = tmp_path / "catalogue.csv"
    csv.write_text("Accession Number,Rights,Title\nnoticed,NoC-US,Harbour 1972\nmaster,InC,Astronaut\n")
    out = dedup("node", "import-catalogue", csv, "--config", cfg, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"rows": 2, "files_changed": 2}
    r = rows(tmp_path / "cat.sqlite")
    assert (r["noticed.jpg"]["rights_uri"], r["noticed.jpg"]["rights_source"]) == (NOC_US, "sidecar")
    assert r["master.png"]["rights_uri"] == INC
    # A changed file is read again, and the catalogue's statement still wins.
    PHOTO.rotate(1).save(tree / "master.png")
    rescan = dedup("node", "scan", "--config", cfg, "--json")
    assert rescan.returncode == 0 and json.loads(rescan.stdout)["scan"]["read"] == 1
    assert rows(tmp_path / "cat.sqlite")["master.png"]["rights_uri"] == INC
    bad = tmp_path / "bad.csv"
    bad.write_text("Accession Number,Rights\nx,Maybe\n")
    refused = dedup("node", "import-catalogue", bad, "--config", cfg)
    assert refused.returncode == 1 and "line 2" in refused.stderr
    assert rows(tmp_path / "cat.sqlite")["master.png"]["rights_uri"] == INC  # nothing of it was stored


def test_not_duplicates_decision_kept_across_rescans(tmp_path: Path, tree: Path) -> None:
    cfg = tmp_path / "node.toml"
    cfg.write_text(f'member_id = "m"\ncatalogue = "cat.sqlite"\nsigning_key = "k"\nroots = ["{tree}"]\n')
    dedup("node", "scan", "--config", cfg)
    before = json.loads(dedup("node", "duplicates", "--config", cfg, "--json").stdout)["clusters"]
    names = sorted(Path(a["path"]).name for a in before[0]["assets"])
    assert "old.bmp" in names and "master.png" in names
    marked = dedup("node", "not-duplicates", tree / "master.png", tree / "a" / "b" / "old.bmp", "--config", cfg)
    assert marked.returncode == 0, marked.stderr
    (tree / "a" / "b" / "old.bmp").touch()  # changed mtime: read again, same asset id
    dedup("node", "scan", "--config", cfg)
    after = json.loads(dedup("node", "duplicates", "--config", cfg, "--json").stdout)["clusters"]
    pairs = {(Path(l["a"]).name, Path(l["b"]).name) for c in after for l in c["links"]}
    assert ("master.png", "old.bmp") not in pairs and ("old.bmp", "master.png") not in pairs


def test_decompression_bomb_is_recorded_and_scan_goes_on(tmp_path: Path) -> None:
    root = tmp_path / "bombs"
    root.mkdir()
    Image.new("L", (20000, 15000)).save(root / "bomb.png", optimize=True)  # 300 MP of nothing
    PHOTO.save(root / "fine.png")
    cat_path = tmp_path / "cat.sqlite"
    summary = scan(Catalogue(cat_path), [root], workers=1, progress=False)
    assert (summary.read, summary.failed) == (1, 1)
    assert rows(cat_path)["bomb.png"]["error"].startswith("decompression bomb")


@pytest.mark.skipif(os.geteuid() == 0, reason="running as root: file permissions do not deny root, so a "
                                                  "permission-denied folder cannot be made here")
def test_permission_denied_folder_is_listed(tmp_path: Path, tree: Path) -> None:
    locked = tree / "locked"
    locked.mkdir()
    PHOTO.save(locked / "hidden.png")
    locked.chmod(0)
    try:
        summary = scan(Catalogue(tmp_path / "cat.sqlite"), [tree], workers=1, progress=False)
    finally:
        locked.chmod(0o755)
    assert (str(locked), "cannot list folder: Permission denied") in summary.skipped


def test_report_command_writes_every_part(tmp_path: Path, tree: Path) -> None:
    cfg = tmp_path / "node.toml"
    cfg.write_text(f'member_id = "m"\ncatalogue = "cat.sqlite"\nsigning_key = "k"\nroots = ["{tree}"]\n'
                   'price_per_gb_month = [0.1, 0.2]\n')
    dedup("node", "scan", "--config", cfg)
    out = dedup("node", "report", "--config", cfg, "--out", tmp_path / "report", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["files"] == ["report.html", "clusters.csv", "report.json", "plan.csv", "masters.csv",
                                              "fixity.jsonl"]
    for name in json.loads(out.stdout)["files"]:
        assert (tmp_path / "report" / name).stat().st_size > 0, name
    html = (tmp_path / "report" / "report.html").read_text()
    assert "master.png" in html and "<script src" not in html and "<link " not in html
    fixity = [json.loads(line) for line in (tmp_path / "report" / "fixity.jsonl").read_text().splitlines()]
    assert len(fixity) == 15


def _kinds(record: bytes) -> list[tuple[str, int]]:
    a = asset_pb2.Asset()
    a.ParseFromString(record)
    return [(f.algorithm, f.version) for f in a.fingerprints]


def _as_before_keypoints(cat_path: Path) -> None:
    """Make the catalogue look like one an earlier version scanned: its meta names the
    fingerprint set with win64 windows, its records carry them, and they were pushed."""
    db = sqlite3.connect(cat_path)
    with db:
        for path, record in db.execute("SELECT path, record FROM files WHERE record IS NOT NULL").fetchall():
            a = asset_pb2.Asset()
            a.ParseFromString(record)
            del a.fingerprints[2:]
            a.fingerprints.add(algorithm="win64", version=2, value=bytes(range(8)) * 36)
            old = a.SerializeToString(deterministic=True)
            db.execute("UPDATE files SET record=?, pushed_record=? WHERE path=?", (old, old, path))
        db.execute("UPDATE meta SET value='dct256/2,dct64/2,win64/2' WHERE key='fingerprints'")
    db.close()


def test_a_catalogue_made_with_another_fingerprint_set_is_read_again(tmp_path: Path) -> None:
    """Records of an earlier fingerprint set are never compared, so the next scan reads every
    file again (unreadable ones too), under the same asset ids, and the next push sends them."""
    root = tmp_path / "photos"
    root.mkdir()
    PHOTO.resize((256, 256)).save(root / "a.png")
    PHOTO.resize((128, 128)).save(root / "b.jpg", quality=80)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff" + bytes(50))
    cat_path = tmp_path / "cat.sqlite"
    cat = Catalogue(cat_path)
    first = scan(cat, [root], workers=1, progress=False)
    assert (first.read, first.failed, first.refingerprinted) == (2, 1, 0)
    assert cat._db.execute("SELECT value FROM meta WHERE key='fingerprints'").fetchone() == (FINGERPRINTS,)
    assert FINGERPRINTS == "dct256/2,dct64/2,kp64/1"
    ids = {name: row["asset_id"] for name, row in rows(cat_path).items()}
    # Up to date: nothing is read again.
    again = scan(cat, [root], workers=1, progress=False)
    assert (again.read, again.failed, again.unchanged, again.refingerprinted) == (0, 0, 3, 0)
    cat.close()

    _as_before_keypoints(cat_path)
    cat = Catalogue(cat_path)
    assert cat.unpushed() == []
    redone = scan(cat, [root], workers=1, progress=False)
    assert (redone.read, redone.failed, redone.unchanged, redone.refingerprinted) == (2, 1, 0, 3)
    assert redone.as_dict()["refingerprinted"] == 3
    after = rows(cat_path)
    assert {name: row["asset_id"] for name, row in after.items()} == ids
    for name in ("a.png", "b.jpg"):
        assert _kinds(after[name]["record"]) == [("dct256", 2), ("dct64", 2), ("kp64", 1)], name
    assert sorted(Path(p).name for p, _ in cat.unpushed()) == ["a.png", "b.jpg"]
    assert cat._db.execute("SELECT value FROM meta WHERE key='fingerprints'").fetchone() == (FINGERPRINTS,)
    # Done once: the scan after that finds everything unchanged.
    last = scan(cat, [root], workers=1, progress=False)
    assert (last.read, last.unchanged, last.refingerprinted) == (0, 3, 0)


def test_a_catalogue_from_before_the_fingerprint_set_was_recorded_is_read_again(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    root.mkdir()
    PHOTO.resize((128, 128)).save(root / "a.png")
    cat = Catalogue(tmp_path / "cat.sqlite")
    scan(cat, [root], workers=1, progress=False)
    cat._db.execute("DELETE FROM meta WHERE key='fingerprints'")
    assert cat.refingerprint_if_outdated(FINGERPRINTS) == 1
    assert cat.refingerprint_if_outdated(FINGERPRINTS) == 0  # recorded at once
    assert scan(cat, [root], workers=1, progress=False).read == 1
