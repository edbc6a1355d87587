"""Writes the accuracy corpus to disk once and describes every file in a manifest.

The files only depend on the packages and on the generator code, so they are cached in
``bench/.cache/corpus`` and rebuilt when any generator module, Pillow or pillow-heif changes.
"""

from __future__ import annotations

import itertools
import json
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
from PIL import Image

from bench import corpus, hardcases, variants
from bench.common import BENCH, CACHE, log, sources_digest

CORPUS = CACHE / "corpus"
SEED = corpus.SEED


@dataclass
class Entry:
    """One file of the corpus and what it is."""

    file: str  # relative to the corpus folder
    group: str  # copies of one picture share a group
    family: str  # related pictures; cross-group pairs in a family are not scored unless a set names them
    role: str  # master | variant | must_not_match | low_information | derivative | version
    label: str  # variant class, or set name
    params: dict = field(default_factory=dict)
    kind: str = ""  # what the picture shows (its original's kind): photo, map, document, ...


@dataclass
class Corpus:
    root: Path
    entries: list[Entry]
    sets: dict[str, dict]  # must-not-match and informational sets: description, pairs (file names); a
    # set of versions of one picture lists its pairs as "versions" instead (counted, not scored)
    originals: list[dict]
    reserved: list[dict]
    dropped: list[dict]
    skipped_classes: dict[str, str]
    generator: str
    skipped_sources: dict[str, str] = field(default_factory=dict)

    def path(self, e: Entry) -> Path:
        return self.root / e.file


def _generator_key() -> str:
    here = BENCH
    files = [here / n for n in ("corpus.py", "kinds.py", "variants.py", "hardcases.py", "dataset.py")]
    vers = []
    for d in ("pillow", "pillow-heif", "tifffile", "numpy", "resvg-py"):
        try:
            vers.append(f"{d}={metadata.version(d)}")
        except metadata.PackageNotFoundError:
            vers.append(f"{d}=none")
    return sources_digest(*files) + ";" + ",".join(vers)


def _make_original(args: tuple[str, corpus.Source, list[str]]) -> list[Entry]:
    oid, src, classes = args
    out_dir = CORPUS / oid
    out_dir.mkdir(parents=True, exist_ok=True)
    im = corpus.load_normalised(src)
    im.save(out_dir / "master.png", "PNG")
    entries = [Entry(f"{oid}/master.png", oid, oid, "master", "master", {"size": list(im.size)}, src.kind)]
    for name in classes:
        vc = variants.CLASS_BY_NAME[name]
        path, params = vc.make(im, variants.rng_for(SEED, oid, name), out_dir / name.replace(".", "_"))
        entries.append(Entry(str(path.relative_to(CORPUS)), oid, oid, "variant", name, params, src.kind))
    return entries


def _save_png(im: Image.Image, rel: str) -> str:
    path = CORPUS / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, "PNG")
    return rel


def _hard_cases(sel: corpus.Selection, family_of: dict[str, str]) -> tuple[list[Entry], dict[str, dict]]:
    entries: list[Entry] = []
    sets: dict[str, dict] = {}

    def pairset(name: str, description: str) -> dict:
        return sets.setdefault(name, {"description": description, "images": [], "pairs": []})

    st = pairset("stereo_pair", "scikit-image motorcycle_left.png / motorcycle_right.png: two viewpoints of one scene")
    files = []
    for s in sel.stereo:
        side = "left" if "left" in s.path else "right"
        rel = _save_png(corpus.load_normalised(s), f"hard/stereo_{side}.png")
        entries.append(Entry(rel, f"stereo:{side}", "stereo", "must_not_match", "stereo_pair", {"source": s.key}, s.kind))
        files.append(rel)
    st["images"] += files
    st["pairs"].append(files)

    vp = [(a, b) for name, a, b in sel.pairs if name == "viewpoint_pairs"]
    if vp:
        view = pairset("viewpoint_pairs", "opencv-doc sample pairs: two views of one scene (stereo "
                       "aloeL/aloeR and left/right, another viewpoint graf1/graf3 and aero1/aero3, "
                       "another viewpoint and exposure leuvenA/leuvenB)")
        for i, (a, b) in enumerate(vp):
            files = []
            for s in (a, b):
                stem = Path(s.path).stem
                rel = _save_png(corpus.load_normalised(s), f"hard/viewpoint_{stem}.png")
                entries.append(Entry(rel, f"view:{stem}", f"view{i}", "must_not_match", "viewpoint_pairs",
                                     {"source": s.key}, s.kind))
                files.append(rel)
            view["images"] += files
            view["pairs"].append(files)

    nb = pairset("neighbouring_crops", "two side-by-side windows of one large picture, 55% of its width each, overlapping 20-40% of a window")
    bu = pairset("burst", "two 75% windows of one picture whose offsets differ by 15-25% in x and y, the second 5-12% brighter or darker")
    for k, (s, name) in enumerate(zip(sel.reserved, sel.reserved_use)):
        rid = f"r{k:02d}"
        im = corpus.load_normalised(s)
        rng = np.random.default_rng([SEED, 104729, k])
        target = nb if name == "neighbouring_crops" else bu
        maker = hardcases.neighbouring_crops if name == "neighbouring_crops" else hardcases.burst_pair
        a, b, params = maker(im, rng)
        pair = []
        for tag, part in (("a", a), ("b", b)):
            rel = f"hard/{name}_{rid}_{tag}.jpg"
            (CORPUS / "hard").mkdir(parents=True, exist_ok=True)
            part.save(CORPUS / rel, "JPEG", quality=95)
            entries.append(Entry(rel, f"{rid}:{tag}", rid, "must_not_match", name, params | {"source": s.key}, s.kind))
            pair.append(rel)
        target["images"] += pair
        target["pairs"].append(pair)

    fr = pairset("story_frames", "Secrets of the Ancients room1..room4: one painted room at four moments of the "
                 "story (figures move, appear, cast spells), each composed on one background plate and differing "
                 "from the others in 1-3% of its pixels, as an overlay does; versions of one picture, like the "
                 "derivatives: their pairs are neither positives nor negatives, links among them are only counted")
    frame_files = []
    for s in sel.story_frames:
        stem = Path(s.path).stem
        rel = _save_png(corpus.load_normalised(s), f"hard/story_frame_{stem}.png")
        entries.append(Entry(rel, f"frame:{stem}", "story_frames", "version", "story_frames", {"source": s.key}, s.kind))
        frame_files.append(rel)
    fr["images"] += frame_files
    fr["versions"] = [list(p) for p in itertools.combinations(frame_files, 2)]

    lo = pairset("low_information", "blank pages, grey cards, colour targets and clipart on transparent backgrounds, 8 of each")
    for name, kind, im, params in hardcases.low_information_images(SEED):
        index = int(name.rsplit("_", 1)[1])
        (CORPUS / "low").mkdir(parents=True, exist_ok=True)
        path = hardcases.save_low_info(im, kind, index, CORPUS / "low" / name)
        rel = str(path.relative_to(CORPUS))
        entries.append(Entry(rel, f"low:{name}", f"low:{name}", "low_information", kind, params, "low_information"))
        lo["images"].append(rel)
    lo["pairs"] += [list(p) for p in itertools.combinations(lo["images"], 2)]

    de = sets.setdefault("derivatives", {
        "description": "retouched or repainted versions of a kept picture (other season, expression, "
                       "lighting, figures removed) found by the pixel check; pairs with their kept "
                       "picture's copies are neither positives nor negatives, links are only counted",
        "images": [], "pairs": []})
    for k, (s, kept_key) in enumerate(sel.derivatives):
        family = family_of.get(kept_key)
        if family is None:
            continue
        rel = _save_png(corpus.load_normalised(s), f"hard/derivative_{k:02d}_{Path(s.path).stem}.png")
        entries.append(Entry(rel, f"deriv:{k:02d}", family, "derivative", "derivatives", {"source": s.key, "resembles": kept_key}, s.kind))
        de["images"].append(rel)
        master = f"{family}/master.png" if family.startswith("o") else None
        if master:
            de["pairs"].append([rel, master])
    return entries, sets


def build(workers: int = 2, force: bool = False) -> Corpus:
    """The corpus from cache when the generator is unchanged, else written anew."""
    key = _generator_key()
    manifest = CORPUS / "manifest.json"
    if not force and manifest.exists():
        data = json.loads(manifest.read_text())
        if data.get("generator") == key and all((CORPUS / e["file"]).exists() for e in data["entries"]):
            log(f"corpus: reusing {len(data['entries'])} files in {CORPUS}")
            return Corpus(CORPUS, [Entry(**e) for e in data["entries"]], data["sets"], data["originals"],
                          data["reserved"], data["dropped"], data["skipped_classes"], key,
                          data.get("skipped_sources", {}))
    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    CORPUS.mkdir(parents=True)
    wesnoth = corpus.fetch_wesnoth()
    sources = corpus.list_sources(wesnoth)
    log(f"corpus: {len(sources)} candidate images; selecting originals")
    sel = corpus.select(sources)
    skipped = {}
    classes = [c.name for c in variants.CLASSES]
    why = variants.heic_available()
    if why:
        skipped["heic"] = why
        classes.remove("heic")
    ids = [f"o{i:03d}" for i in range(len(sel.originals))]
    log(f"corpus: writing {len(ids)} originals x {len(classes)} classes with {workers} processes")
    entries: list[Entry] = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for n, part in enumerate(pool.map(_make_original, [(i, s, classes) for i, s in zip(ids, sel.originals)]), 1):
            entries += part
            if n % 20 == 0 or n == len(ids):
                log(f"corpus: {n}/{len(ids)} originals written")
    family_of = {s.key: i for i, s in zip(ids, sel.originals)}
    family_of |= {s.key: f"r{k:02d}" for k, s in enumerate(sel.reserved)}
    hard, sets = _hard_cases(sel, family_of)
    entries += hard
    originals = [{"id": i, **corpus.describe(s), "master_size": e.params["size"]}
                 for i, s, e in zip(ids, sel.originals, [e for e in entries if e.role == "master"])]
    reserved = [{"id": f"r{k:02d}", "used_for": use, **corpus.describe(s)}
                for k, (s, use) in enumerate(zip(sel.reserved, sel.reserved_use))]
    data = {"generator": key, "entries": [asdict(e) for e in entries], "sets": sets, "originals": originals,
            "reserved": reserved, "dropped": sel.dropped, "skipped_classes": skipped,
            "skipped_sources": sel.skipped_sources}
    manifest.write_text(json.dumps(data, indent=1))
    log(f"corpus: {len(entries)} files written")
    return Corpus(CORPUS, entries, sets, originals, reserved, sel.dropped, skipped, key, sel.skipped_sources)


if __name__ == "__main__":
    build(force=True)
