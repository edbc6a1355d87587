"""Scanning an S3 bucket served by a real moto server on loopback, through the node's CLI and
scanner: catalogue contents, incremental rescans by ETag/size/last-modified, resumed listings."""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import boto3
import skimage.data
from PIL import Image

from dedup.node.catalogue import Catalogue
from dedup.node.scan import scan
from moto_server import s3_endpoint  # noqa: F401  (fixture)


def _jpeg(arr, **kw) -> bytes:
    b = io.BytesIO()
    Image.fromarray(arr).save(b, "JPEG", **kw)
    return b.getvalue()


def _bucket(endpoint: str, name: str) -> "boto3.client":
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="photos/astronaut.jpg", Body=_jpeg(skimage.data.astronaut(), quality=90))
    s3.put_object(Bucket=name, Key="photos/small/astronaut-web.jpg",
                  Body=_jpeg(skimage.data.astronaut()[::2, ::2], quality=60))
    s3.put_object(Bucket=name, Key="photos/coffee.jpg", Body=_jpeg(skimage.data.coffee(), quality=85))
    s3.put_object(Bucket=name, Key="photos/readme.txt", Body=b"catalogue notes")
    s3.put_object(Bucket=name, Key="photos/empty/", Body=b"")  # a folder marker, not a file
    s3.put_object(Bucket=name, Key="other/camera.jpg", Body=_jpeg(skimage.data.camera()))
    return s3


def rows(path: Path) -> dict[str, tuple]:
    db = sqlite3.connect(path)
    return {p: (src, size, version, error) for p, src, size, version, error
            in db.execute("SELECT path, source, size, version, error FROM files")}


def test_bucket_scanned_incrementally(tmp_path: Path, s3_endpoint: str) -> None:  # noqa: F811
    s3 = _bucket(s3_endpoint, "archive-a")
    cat_path = tmp_path / "cat.sqlite"
    summary = scan(Catalogue(cat_path), ["s3://archive-a/photos"], workers=2, progress=False, s3_endpoint=s3_endpoint)
    assert (summary.seen, summary.read, summary.failed) == (4, 3, 1)
    r = rows(cat_path)
    assert set(r) == {"s3://archive-a/photos/astronaut.jpg", "s3://archive-a/photos/small/astronaut-web.jpg",
                      "s3://archive-a/photos/coffee.jpg", "s3://archive-a/photos/readme.txt"}
    assert {v[0] for v in r.values()} == {"s3://archive-a/photos"}
    assert r["s3://archive-a/photos/readme.txt"][3] == "not an image: the file contains text"
    head = s3.head_object(Bucket="archive-a", Key="photos/coffee.jpg")
    assert r["s3://archive-a/photos/coffee.jpg"][1:3] == (head["ContentLength"], head["ETag"].strip('"'))
    # Nothing changed: nothing is read. A replaced object is read again.
    again = scan(Catalogue(cat_path), ["s3://archive-a/photos/"], workers=1, progress=False, s3_endpoint=s3_endpoint)
    assert (again.read, again.unchanged) == (0, 4)
    s3.put_object(Bucket="archive-a", Key="photos/coffee.jpg", Body=_jpeg(skimage.data.coffee(), quality=70))
    third = scan(Catalogue(cat_path), ["s3://archive-a/photos"], workers=1, progress=False, s3_endpoint=s3_endpoint)
    assert (third.read, third.unchanged) == (1, 3)


def test_interrupted_listing_resumes_after_the_last_recorded_key(tmp_path: Path, s3_endpoint: str) -> None:  # noqa: F811
    _bucket(s3_endpoint, "archive-b")
    cat = Catalogue(tmp_path / "cat.sqlite")
    # As an interrupted scan leaves it: the listing got as far as photos/coffee.jpg.
    cat.set_listing("s3://archive-b/photos", "photos/coffee.jpg")
    summary = scan(cat, ["s3://archive-b/photos"], workers=1, progress=False, s3_endpoint=s3_endpoint)
    assert sorted(Path(p).name for p in rows(tmp_path / "cat.sqlite")) == ["astronaut-web.jpg", "readme.txt"]
    assert summary.seen == 2
    # The listing completed, so the next scan starts from the beginning.
    assert cat.listing_resume("s3://archive-b/photos") is None


def test_cli_scans_a_bucket_and_finds_its_duplicates(tmp_path: Path, s3_endpoint: str) -> None:  # noqa: F811
    _bucket(s3_endpoint, "archive-c")
    cfg = tmp_path / "node.toml"
    cfg.write_text(f'member_id = "m"\ncatalogue = "cat.sqlite"\nsigning_key = "k"\n'
                   f'roots = ["s3://archive-c/photos"]\ns3_endpoint = "{s3_endpoint}"\n')
    run = subprocess.run([sys.executable, "-m", "dedup.cli.main", "node", "scan", "--config", str(cfg), "--json"],
                         capture_output=True, text=True)
    assert run.returncode == 1, run.stderr  # the text file is unreadable as an image
    assert json.loads(run.stdout)["scan"]["read"] == 3
    dup = subprocess.run([sys.executable, "-m", "dedup.cli.main", "node", "duplicates", "--config", str(cfg), "--json"],
                         capture_output=True, text=True)
    clusters = json.loads(dup.stdout)["clusters"]
    assert [sorted(a["path"] for a in c["assets"]) for c in clusters] == [
        ["s3://archive-c/photos/astronaut.jpg", "s3://archive-c/photos/small/astronaut-web.jpg"]]
    missing = subprocess.run([sys.executable, "-m", "dedup.cli.main", "node", "scan", "s3://no-such-bucket",
                              "--config", str(cfg)], capture_output=True, text=True)
    assert missing.returncode == 1 and "no-such-bucket" in missing.stderr and "rerun to resume" in missing.stderr
