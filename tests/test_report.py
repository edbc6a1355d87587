"""The node's audit report, from real image files through the real scanner into a real
catalogue, down to the HTML as headless Chromium renders it."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re
import subprocess
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
from PIL import Image, ImageStat
from skimage import data

from dedup.node.catalogue import Catalogue
from dedup.node.report import build_report, write_csv, write_html, write_json, write_plan, write_premis
from dedup.node.report.html import money, title
from dedup.node.report.model import Report, SourceSummary
from dedup.node.scan import scan

INC = "http://rightsstatements.org/vocab/InC/1.0/"
NOW = datetime(2025, 1, 31, 12, 0, tzinfo=timezone.utc)
CROP = 'crop <em>15% & "left".png'  # markup, an ampersand and quotes: must be escaped everywhere
INBOX = 'inbox <b> & "new"'  # a source folder whose name is markup too
CHROMIUM = Path("/usr/bin/chromium")


@dataclass
class Collection:
    root: Path
    archive: Path
    inbox: Path
    catalogue: Catalogue

    def path(self, name: str) -> str:
        for folder in (self.archive, self.inbox):
            if (folder / name).exists():
                return str(folder / name)
        raise KeyError(name)

    def size(self, name: str) -> int:
        return Path(self.path(name)).stat().st_size

    def asset(self, name: str) -> str:
        return self.catalogue.file(self.path(name)).asset_id

    def mark(self, a: str, b: str, note: str = "") -> None:
        x, y = sorted((self.asset(a), self.asset(b)))
        self.catalogue._db.execute("INSERT INTO not_duplicates VALUES (?, ?, ?, ?)", (x, y, 1700000000, note))

    def scan(self) -> None:
        scan(self.catalogue, [self.archive, self.inbox], workers=1, progress=False)

    def report(self) -> Report:
        return build_report(self.catalogue, member_id="city-museum", now=NOW)


def _dated(date: str) -> Image.Exif:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[36867] = date  # DateTimeOriginal
    return exif


@pytest.fixture
def collection(tmp_path) -> Collection:
    """Two scanned roots. archive: the master and three copies, a corrupt file, a blank
    image; inbox: a 50% copy, an unrelated photograph, and a look-alike pair that an
    archivist has marked as not duplicates."""
    archive, inbox = tmp_path / "archive", tmp_path / INBOX
    archive.mkdir()
    inbox.mkdir()
    master = Image.fromarray(data.astronaut())
    w, h = master.size
    master.save(archive / "master.png")
    master.save(archive / "copy-q60.jpg", quality=60, exif=_dated("1962:03:01 09:00:00"))
    master.convert("L").save(archive / "grey.png")
    master.crop((round(w * 0.15), 0, w, h)).save(archive / CROP)
    (archive / "broken.jpg").write_bytes((archive / "copy-q60.jpg").read_bytes()[:600])
    Image.new("RGB", (200, 150), (128, 128, 128)).save(archive / "blank.png")
    master.resize((w // 2, h // 2)).save(inbox / "half.jpg", quality=90, exif=_dated("1948:07:15 12:00:00"))
    Image.fromarray(data.coffee()).save(inbox / "coffee.jpg", quality=90)
    camera = Image.fromarray(data.camera())
    camera.save(inbox / "camera.tif")
    camera.save(inbox / "camera-copy.jpg", quality=85)

    c = Collection(tmp_path, archive, inbox, Catalogue(tmp_path / "catalogue.sqlite"))
    c.scan()
    c.catalogue._db.execute("UPDATE files SET rights_uri=? WHERE path=?", (INC, c.path("copy-q60.jpg")))
    return c


#: In the policy's ranking after the master: the crop last, below the smaller but whole half.jpg.
COPIES = ["grey.png", "copy-q60.jpg", "half.jpg", CROP]


def test_report_numbers(collection):
    c = collection
    before = c.report()
    assert before.totals.clusters == 2  # the look-alike pair is linked until it is marked
    c.mark("camera.tif", "camera-copy.jpg", "different negatives")
    r = c.report()

    # Sources and formats.
    src = {s.source: s for s in r.sources}
    assert list(src) == [str(c.archive), str(c.inbox)]
    assert (src[str(c.archive)].files, src[str(c.inbox)].files) == (6, 4)
    assert {f.format: f.files for f in src[str(c.archive)].formats} == {"(unreadable)": 1, "JPEG": 1, "PNG": 4}
    assert {f.format: f.files for f in src[str(c.inbox)].formats} == {"JPEG": 3, "TIFF": 1}
    pngs = ["master.png", "grey.png", CROP, "blank.png"]
    assert {f.format: f.bytes for f in src[str(c.archive)].formats}["PNG"] == sum(c.size(n) for n in pngs)
    every = [f for folder in (c.archive, c.inbox) for f in folder.iterdir()]
    assert (r.totals.files, r.totals.bytes) == (10, sum(p.stat().st_size for p in every))

    # The one cluster, its keeper and why.
    assert r.totals.clusters == 1 and len(r.clusters) == 1
    cl = r.clusters[0]
    assert [m.file.name for m in cl.members] == ["master.png", *COPIES]
    assert cl.keeper == c.path("master.png") and [m.keeper for m in cl.members] == [True] + [False] * 4
    assert cl.deciding_rule == "colour" and cl.runner_up == c.path("grey.png")
    assert "colour" in cl.reason and "grey.png" in cl.reason
    rel = {m.file.name: m.relation_to_keeper for m in cl.members}
    assert rel == {"master.png": "", "grey.png": "greyscale", "copy-q60.jpg": "reencoded", CROP: "cropped",
                   "half.jpg": "reencoded"}
    crop = next(m for m in cl.members if m.file.name == CROP)
    assert 0.8 <= crop.kept <= 0.9
    assert all(lk.kept is not None for lk in cl.links if lk.relation == "cropped")
    assert len(cl.links) == 10  # every pair of the five copies is linked

    # Storage and cost.
    reclaimable = sum(c.size(n) for n in COPIES)
    assert cl.reclaimable_bytes == r.totals.reclaimable_bytes == reclaimable
    assert src[str(c.archive)].reclaimable_bytes == reclaimable - c.size("half.jpg")
    assert src[str(c.inbox)].reclaimable_bytes == c.size("half.jpg")
    gb = reclaimable / 1e9
    assert r.totals.cost_low.per_month == pytest.approx(gb * 0.08)
    assert r.totals.cost_low.per_year == pytest.approx(gb * 0.08 * 12)
    assert r.totals.cost_high.per_month == pytest.approx(gb * 0.25)
    assert r.totals.cost_high.per_year == pytest.approx(gb * 0.25 * 12)
    assert r.totals.currency == "HK$"

    # Rankings.
    assert [m.file.name for m in r.oldest_duplicates] == ["half.jpg", "copy-q60.jpg"]
    assert r.oldest_duplicates[0].file.capture_date == "1948-07-15T12:00:00"
    assert [m.file.name for m in r.lowest_quality] == ["half.jpg", CROP, "copy-q60.jpg", "grey.png"]

    # Rights.
    assert [f.path for f in r.rights_restricted] == [c.path("copy-q60.jpg")]
    assert r.mixed_rights_clusters == [1] and cl.rights_statuses == [INC, "unknown"]

    # Unreadable and low-information files.
    assert [(u.path, u.size) for u in r.unreadable] == [(c.path("broken.jpg"), 600)]
    assert r.unreadable[0].reason.startswith("corrupt or truncated image file")
    assert [f.name for f in r.low_information] == ["blank.png"]

    # The marked pair is out of the clusters, listed as such, and stays out after rescans.
    assert [(x.a, x.b, x.relation, x.note) for x in r.excluded_links] == [
        (c.path("camera-copy.jpg"), c.path("camera.tif"), "reencoded", "different negatives")]
    Image.fromarray(data.camera()).save(c.path("camera-copy.jpg"), quality=70)  # changed: read again
    c.scan()
    again = c.report()
    assert len(again.clusters) == 1 and [m.file.name for m in again.clusters[0].members] == ["master.png", *COPIES]
    assert len(again.excluded_links) == 1


def test_marks_split_clusters(collection):
    """Marking every link between two groups splits the cluster; the keepers follow."""
    c = collection
    c.mark("camera.tif", "camera-copy.jpg")
    for a in ("master.png", "copy-q60.jpg", "grey.png"):
        for b in (CROP, "half.jpg"):
            c.mark(a, b)
    r = c.report()
    # The crop has more pixels than half.jpg, but half.jpg is the whole picture: it is kept.
    assert [[m.file.name for m in cl.members] for cl in r.clusters] == [
        ["master.png", "grey.png", "copy-q60.jpg"], ["half.jpg", CROP]]
    assert [cl.deciding_rule for cl in r.clusters] == ["colour", "not_derived"]
    assert r.clusters[1].reason == ("it is the full picture; the next best copy (crop <em>15% & \"left\".png) is a "
                                    "crop of another copy or in a mat/border")
    assert r.totals.reclaimable_bytes == sum(c.size(n) for n in ("grey.png", "copy-q60.jpg", CROP))
    assert r.mixed_rights_clusters == [1]
    assert len(r.excluded_links) == 7

    # Marking a member against all the others takes it out altogether.
    c.mark(CROP, "half.jpg")
    assert [[m.file.name for m in cl.members] for cl in c.report().clusters] == [
        ["master.png", "grey.png", "copy-q60.jpg"]]


def test_tables_plan_and_json(collection):
    c = collection
    c.mark("camera.tif", "camera-copy.jpg")
    r = c.report()

    write_csv(r, c.root / "clusters.csv")
    with open(c.root / "clusters.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(x["cluster"], Path(x["path"]).name, x["keeper"], x["relation_to_keeper"]) for x in rows] == [
        ("1", "master.png", "yes", ""), ("1", "grey.png", "no", "greyscale"),
        ("1", "copy-q60.jpg", "no", "reencoded"), ("1", "half.jpg", "no", "reencoded"), ("1", CROP, "no", "cropped")]
    # Beside the machine names, the same words as the page.
    assert [x["description"] for x in rows][:4] == [
        "", "greyscale copy", "recompressed (JPEG quality 60; the keeper is lossless)", "smaller copy (256 px of 512)"]
    assert re.fullmatch(r"cropped, keeps \d\d%", rows[4]["description"])
    q60 = rows[2]
    assert (q60["asset_id"], q60["size"], q60["format"], q60["width"], q60["height"], q60["rights"],
            q60["rights_uri"]) == (c.asset("copy-q60.jpg"), str(c.size("copy-q60.jpg")), "JPEG", "512", "512",
                                   "In Copyright", INC)

    write_plan(r, c.root / "plan.csv")
    with open(c.root / "plan.csv", newline="", encoding="utf-8") as f:
        plan = list(csv.DictReader(f))
    assert [x["path"] for x in plan] == [c.path(n) for n in COPIES]
    assert all(x["keeper_path"] == c.path("master.png") and x["cluster"] == "1" for x in plan)
    assert [int(x["size"]) for x in plan] == [c.size(n) for n in COPIES]
    assert [x["asset_id"] for x in plan] == [c.asset(n) for n in COPIES]
    assert all("colour" in x["reason"] for x in plan) and "greyscale" in plan[0]["reason"]
    assert plan[0]["reason"] == ("greyscale copy, against the keeper master.png; keep master.png: it is in colour; "
                                 "the next best copy (grey.png) is otherwise as good but greyscale")
    assert all(Path(c.path(n)).exists() for n in COPIES)  # a plan only

    write_json(r, c.root / "report.json")
    first = (c.root / "report.json").read_bytes()
    doc = json.loads(first)
    assert list(doc)[:4] == ["schema", "member_id", "generated_at", "policy_version"]
    assert doc["totals"]["reclaimable_bytes"] == sum(c.size(n) for n in COPIES)
    assert doc["clusters"][0]["members"][0]["file"]["name"] == "master.png"
    assert doc["clusters"][0]["deciding_rule"] == "colour"
    write_json(c.report(), c.root / "again.json")
    assert (c.root / "again.json").read_bytes() == first


def test_premis_fixity(collection):
    c = collection
    write_premis(c.catalogue, c.root / "fixity.jsonl", now=NOW)
    events = [json.loads(line) for line in (c.root / "fixity.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(events) == 10
    assert all(e["eventType"] == "fixity check" for e in events)
    by_path = {e["linkingObjectIdentifier"][1]["linkingObjectIdentifierValue"]: e for e in events}
    scanned = dict(c.catalogue._db.execute("SELECT path, scanned_unix FROM files"))
    for path, e in by_path.items():
        ids = {i["objectIdentifierType"]: i["objectIdentifierValue"] for i in e["object"]["objectIdentifier"]}
        assert ids == {"asset_id": c.catalogue.file(path).asset_id, "path": path}
        assert e["eventDateTime"] == datetime.fromtimestamp(scanned[path], timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        if Path(path).name == "broken.jpg":
            assert e["eventOutcomeInformation"]["eventOutcome"] == "fail"
            assert "corrupt" in e["eventOutcomeInformation"]["eventOutcomeDetail"]["eventOutcomeDetailNote"]
            assert "fixity" not in e["object"]
        else:
            assert e["eventOutcomeInformation"]["eventOutcome"] == "pass"
            assert e["object"]["fixity"] == {"messageDigestAlgorithm": "SHA-256",
                                             "messageDigest": hashlib.sha256(Path(path).read_bytes()).hexdigest()}
    assert sum(e["eventOutcomeInformation"]["eventOutcome"] == "pass" for e in events) == 9


def _thumbnails(page: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(b64)))
            for b64 in re.findall(r'src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)"', page)]


def test_html_is_self_contained_and_escaped(collection):
    c = collection
    c.mark("camera.tif", "camera-copy.jpg")
    r = c.report()
    out = c.root / "report.html"
    write_html(r, out)
    page = out.read_text(encoding="utf-8")
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert all(v.startswith(("data:", "#")) for v in re.findall(r'(?:src|href)="([^"]*)"', page))
    assert "<em>" not in page and "crop &lt;em&gt;15% &amp; &quot;left&quot;.png" in page
    assert "<b>" not in page and "inbox &lt;b&gt; &amp; &quot;new&quot;" in page
    assert "never deletes or moves files" in page
    assert page.count('data-keeper="yes"') == 1
    # Five copies in the cluster and the blank image, each at most 160 px.
    previews = _thumbnails(page)
    assert len(previews) == 6 and all(max(p.size) <= 160 and p.format == "JPEG" for p in previews)
    for cost in (r.totals.cost_low, r.totals.cost_high):
        for value in (cost.price_per_gb_month, cost.per_month, cost.per_year):
            assert money(value, "HK$") in page
    assert money(4.4e-05, "HK$") == "HK$\u00a00.000044"  # small sums stay readable
    assert "<svg" in page and "Reclaimable storage per source" in page

    # A copy that has gone since the scan gets a placeholder, not a failure.
    Path(c.path("half.jpg")).rename(c.root / "half-moved.jpg")
    write_html(r, c.root / "moved.html")
    moved = (c.root / "moved.html").read_text(encoding="utf-8")
    assert len(_thumbnails(moved)) == 5 and moved.count('class="placeholder"') == 1
    write_html(r, c.root / "capped.html", max_thumbnails=2)
    capped = (c.root / "capped.html").read_text(encoding="utf-8")
    assert len(_thumbnails(capped)) == 2 and capped.count("preview limit reached") == 4
    write_html(r, c.root / "plain.html", thumbnails=False)
    assert not _thumbnails((c.root / "plain.html").read_text(encoding="utf-8"))


def _visible(page: str) -> str:
    """The page's text as a reader sees it: no markup, attributes, styles or previews."""
    import html

    page = re.sub(r"<(style|title)>.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def test_html_speaks_plain_words(collection):
    """The page says which copy to keep and what every other copy is in words; rule ids, asset
    ids, relation names and distances are left to data attributes, report.json and the CSVs."""
    c = collection
    c.mark("camera.tif", "camera-copy.jpg", "different negatives")
    r = c.report()
    write_html(r, c.root / "report.html")
    page = (c.root / "report.html").read_text(encoding="utf-8")
    text = _visible(page)
    assert ("Keep master.png (512\u00d7512, lossless, colour): it is in colour; the next best copy (grey.png) is "
            "otherwise as good but greyscale.") in text
    cards = {m.file.name: m.description for m in r.clusters[0].members}
    crop = round(next(m.kept for m in r.clusters[0].members if m.file.name == CROP) * 100)
    assert cards == {"master.png": "", "grey.png": "greyscale copy",
                     "copy-q60.jpg": "recompressed (JPEG quality 60; the keeper is lossless)",
                     "half.jpg": "smaller copy (256 px of 512)", CROP: f"cropped, keeps {crop}%"}
    for words in cards.values():
        assert words in text
    # Each match, the second copy against the first.
    assert "copy-q60.jpg master.png recompressed (JPEG quality 60; master.png is lossless)" in text
    assert "half.jpg copy-q60.jpg smaller copy (256 px of 512)" in text
    # The pair marked as not duplicates.
    assert "camera-copy.jpg: recompressed (JPEG quality 85; camera.tif is lossless) different negatives" in text
    for jargon in ("reencoded", "identical_pixels", "rule colour", "deciding rule", "distance", "kp64", "dct256"):
        assert jargon not in text, jargon
    for asset_id in (m.file.asset_id for m in r.clusters[0].members):
        assert asset_id not in text and f'data-asset="{asset_id}"' in page
    assert 'data-rule="colour"' in page and 'data-relation="reencoded"' in page


def test_empty_catalogue(tmp_path):
    cat = Catalogue(tmp_path / "empty.sqlite")
    r = build_report(cat, member_id="city-museum", now=NOW)
    assert (r.totals.files, r.totals.clusters, r.totals.reclaimable_bytes, r.totals.cost_high.per_year) == (0, 0, 0, 0)
    write_html(r, tmp_path / "r.html")
    write_csv(r, tmp_path / "r.csv")
    write_plan(r, tmp_path / "p.csv")
    write_json(r, tmp_path / "r.json")
    write_premis(cat, tmp_path / "f.jsonl")
    assert "No duplicate clusters." in (tmp_path / "r.html").read_text(encoding="utf-8")
    assert (tmp_path / "p.csv").read_text().splitlines() == ["path,asset_id,size,cluster,keeper_path,reason"]
    assert (tmp_path / "f.jsonl").read_text() == ""
    with pytest.raises(ValueError):
        build_report(cat, member_id="city-museum", price_low=0.3, price_high=0.1)


def test_title_names_the_member_or_else_what_was_scanned(tmp_path):
    cat = Catalogue(tmp_path / "empty.sqlite")
    assert title(build_report(cat, member_id="city-museum", now=NOW)) == "Duplicate audit: city-museum"
    assert title(build_report(cat, member_id=None, now=NOW)) == "Duplicate audit"
    r = build_report(cat, member_id=None, now=NOW)
    one = SourceSummary(source="/srv/photos", files=1, bytes=1, formats=[], duplicate_files=0, reclaimable_bytes=0)
    assert title(replace(r, sources=[one])) == "Duplicate audit of /srv/photos"
    assert title(replace(r, sources=[one, replace(one, source="/srv/scans")])) == "Duplicate audit of 2 sources"


def _need_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"headless Chromium not found at {CHROMIUM}: as root, apt-get update && apt-get install -y chromium")


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
           f"--user-data-dir={tmp / 'chromium-profile'}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_html_in_headless_chromium(collection):
    _need_chromium()
    c = collection
    c.mark("camera.tif", "camera-copy.jpg")
    out = c.root / "report.html"
    write_html(c.report(), out)

    shot = c.root / "shot.png"
    _chromium(c.root, f"--screenshot={shot}", "--window-size=1280,2000", out.as_uri())
    assert shot.exists() and shot.stat().st_size > 10_000
    with Image.open(shot) as img:
        assert img.size == (1280, 2000)
        rgb = img.convert("RGB")
        assert min(ImageStat.Stat(rgb).var) > 100  # not a blank page
        assert len(rgb.getcolors(maxcolors=1 << 20) or []) > 500  # text, chart and decoded previews

    dom = _chromium(c.root, "--dump-dom", out.as_uri()).stdout
    for name in ["master.png", "grey.png", "copy-q60.jpg", "half.jpg"]:
        assert name in dom
    assert "crop &lt;em&gt;15% &amp; \"left\".png" in dom and "<em>" not in dom
    assert "inbox &lt;b&gt; &amp; \"new\"" in dom and "<b>" not in dom
    keepers = re.findall(r'<figure class="copy keeper" data-keeper="yes"[^>]*>(.*?)</figure>', dom, re.S)
    assert len(keepers) == 1 and "master.png" in keepers[0] and "Suggested keeper" in keepers[0]
    assert len(re.findall(r'data-keeper="no"', dom)) == 4
    assert "never deletes or moves files" in dom


def test_rights_shown_by_name_with_the_files_own_notice(tmp_path):
    """One photograph under four rights: embedded CC licence, a claim of public domain, a plain
    notice, and a statement from the institution's catalogue over the file's own notice. Every
    table and card shows the same words: the statement's name and the file's notice."""
    from html import escape

    from PIL import PngImagePlugin

    from dedup.node.sidecar import read_sidecar

    def notice(text: str) -> Image.Exif:
        exif = Image.Exif()
        exif[0x8298] = text.encode()
        return exif

    folder = tmp_path / "photos"
    folder.mkdir()
    photo = Image.fromarray(data.astronaut())
    xmp = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
           'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:cc="http://creativecommons.org/ns#">'
           '<rdf:Description rdf:about=""><cc:license rdf:resource="http://creativecommons.org/licenses/by-nc/4.0/"/>'
           '<dc:rights><rdf:Alt><rdf:li xml:lang="x-default">\u00a9 2003 Jane Doe &amp; Sons</rdf:li></rdf:Alt>'
           "</dc:rights></rdf:Description></rdf:RDF></x:xmpmeta>")
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp)
    photo.save(folder / "master.png", pnginfo=info)
    photo.save(folder / "nasa.jpg", quality=90, exif=notice("(c) NASA - public domain"))
    photo.resize((256, 256)).save(folder / "jane.jpg", quality=85, exif=notice("\u00a9 2003 Jane Doe"))
    photo.save(folder / "catalogued.jpg", quality=70, exif=notice("\u00a9 1972 City Museum"))
    cat = Catalogue(tmp_path / "catalogue.sqlite")
    scan(cat, [folder], workers=1, progress=False)
    sidecar = tmp_path / "catalogue.csv"
    sidecar.write_text("path,rights\ncatalogued.jpg,No Copyright - United States\n", encoding="utf-8")
    cat.replace_sidecar([(x.key, x.accession, x.title, x.rights) for x in read_sidecar(sidecar)])
    assert cat.apply_sidecar() == 1

    r = build_report(cat, member_id="city-museum", now=NOW)
    shown = {
        "master.png": "CC BY-NC 4.0 \u2014 \u201c\u00a9 2003 Jane Doe & Sons\u201d",
        "nasa.jpg": "Unknown \u2014 \u201c(c) NASA - public domain\u201d",
        "jane.jpg": "In Copyright \u2014 \u201c\u00a9 2003 Jane Doe\u201d",
        "catalogued.jpg": "No Copyright - United States \u2014 \u201c\u00a9 1972 City Museum\u201d",
    }
    assert len(r.clusters) == 1
    files = {m.file.name: m.file for m in r.clusters[0].members}
    assert {name: f.rights_shown for name, f in files.items()} == shown
    assert {name: f.rights_label for name, f in files.items()} == {
        "master.png": "CC BY-NC 4.0", "nasa.jpg": "Unknown", "jane.jpg": "In Copyright",
        "catalogued.jpg": "No Copyright - United States"}
    assert files["nasa.jpg"].rights == "unknown" and not files["nasa.jpg"].rights_restricted
    assert files["master.png"].rights_notice == "\u00a9 2003 Jane Doe & Sons"
    # Restricted: no commercial use (NC), and In Copyright.
    assert sorted(f.name for f in r.rights_restricted) == ["jane.jpg", "master.png"]

    write_html(r, tmp_path / "report.html", thumbnails=False)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    for name, words in shown.items():
        assert f"<dt>rights</dt><dd>{escape(words)}</dd>" in page, name  # on the card
    assert page.count("<dt>reuse</dt><dd>restricted: review before reuse</dd>") == 2
    restricted_table = page[page.index("<h3>Rights-restricted files</h3>"):page.index("<h3>Clusters that mix")]
    for name in ("master.png", "jane.jpg"):
        assert f"{escape(str(folder / name))}</span></td><td>{escape(shown[name])}</td>" in restricted_table
    assert "<th>rights</th>" in restricted_table and "rightsstatements.org" not in restricted_table
    mixed = page[page.index("<h3>Clusters that mix"):]
    assert "In Copyright<br>No Copyright - United States<br>CC BY-NC 4.0<br>Unknown" in mixed
    for raw in ("http://rightsstatements.org", "https://creativecommons.org", ">InC<", "InC (restricted)"):
        assert raw not in page, raw

    write_csv(r, tmp_path / "clusters.csv")
    with open(tmp_path / "clusters.csv", newline="", encoding="utf-8") as f:
        rows = {Path(x["path"]).name: (x["rights"], x["rights_uri"]) for x in csv.DictReader(f)}
    assert rows == {
        "master.png": (shown["master.png"], "https://creativecommons.org/licenses/by-nc/4.0/"),
        "nasa.jpg": (shown["nasa.jpg"], "unknown"),
        "jane.jpg": (shown["jane.jpg"], INC),
        "catalogued.jpg": (shown["catalogued.jpg"], "http://rightsstatements.org/vocab/NoC-US/1.0/"),
    }
    write_json(r, tmp_path / "report.json")
    doc = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    first = doc["clusters"][0]["members"][0]["file"]
    assert (first["rights_label"], first["rights_notice"], first["rights_shown"]) == (
        files[first["name"]].rights_label, files[first["name"]].rights_notice, shown[first["name"]])
