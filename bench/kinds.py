"""The other kinds of picture an archive holds, beyond photographs and painted artwork: flat
graphics, maps, photographs of other subjects, dark and low-contrast pictures, documents.

Each kind has its own sources, all from packages: Debian packages fetched with ``apt-get
download`` and unpacked with ``dpkg-deb`` (only the folders used; nothing is installed) and
one npm package fetched with ``npm pack``. Drawings (SVG) are rendered with resvg. A source
whose download or tool is missing is left out and the manifest says why, so the corpus can
still be built; its figures are then not comparable with a full build's.

The selection runs after the first 200 originals (bench/corpus.py), against everything kept
so far, with the same two pixel checks, so no two originals are copies or near-duplicates.
"""

from __future__ import annotations

import hashlib
import io
import random
import re
import shutil
import subprocess
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from bench import corpus
from bench.common import CACHE, log

Image.MAX_IMAGE_PIXELS = None  # the full-page score scans are 26 megapixels; all come from packages

#: Debian package -> (licence as its copyright file gives it for the files used, members unpacked).
DEBIAN = {
    "openclipart-svg": ("public domain", ["./usr/share/openclipart/svg/*"]),
    "kgeography-data": ("GPL-2+", ["./usr/share/kgeography/*.png"]),
    "marble-qt-data": ("LGPL-2.1+", ["./usr/share/marble/data/maps/earth/schagen1689/*",
                                     "./usr/share/marble/data/maps/earth/citylights/*"]),
    "freecol": ("GPL-2+ (doi.png: public domain)", ["./usr/share/games/freecol/base/resources/images/ui/map.jpg",
                                                   "./usr/share/games/freecol/default/resources/images/ui/*"]),
    "endless-sky-data": ("public domain or CC-BY-SA, per image", ["./usr/share/games/endless-sky/images/land/*"]),
    "opencv-doc": ("Apache-2.0 and BSD-3-Clause", ["./usr/share/doc/opencv-doc/examples/data/*"]),
    "tuxpaint-data": ("GPL-2+", ["./usr/share/tuxpaint/templates/*", "./usr/share/tuxpaint/starters/*"]),
    "stellarium-data": ("GPL-2+", ["./usr/share/stellarium/nebulae/default/*"]),
    "lilypond-doc": ("GFDL-1.3+", ["./usr/share/doc/lilypond/html/Documentation/ly-examples/*",
                                   "./usr/share/doc/lilypond/html/Documentation/pictures/*"]),
}
NPM = {"flag-icons": ("7.5.0", "MIT", "package/flags/4x3/")}

# Paths inside the packages.
OPENCLIPART = "/usr/share/openclipart/svg"
KGEOGRAPHY = "/usr/share/kgeography"
MARBLE = "/usr/share/marble/data/maps/earth"
FREECOL = "/usr/share/games/freecol"
ENDLESS_SKY = "/usr/share/games/endless-sky/images/land"
OPENCV = "/usr/share/doc/opencv-doc/examples/data"
TUXPAINT = "/usr/share/tuxpaint"
NEBULAE = "/usr/share/stellarium/nebulae/default"
LILYPOND = "/usr/share/doc/lilypond/html/Documentation"

#: Originals wanted of each kind, taken in this order.
QUOTAS = {"map": 30, "photo": 40, "dark": 30, "document": 25, "flat_graphic": 45}
#: Reserved sources for the must-not-match sets: the largest photographs and maps.
RESERVED_PHOTOS = 10
RESERVED_MAPS = 10

#: Drawings under 20 KB are mostly icons and single shapes; computer icons and web buttons
#: are icons at any size.
MIN_SVG_BYTES = 20_000
SKIP_CLIPART = ("computer", "buttons")
#: Drawings with text are left out: resvg would draw it with whatever fonts the machine has.
SVG_TEXT = re.compile(rb"<(svg:)?(text|flowRoot)\b|<(svg:)?image\b")
#: Flags of more than a few stripes: coats of arms and emblems.
MIN_FLAG_BYTES = 6_000
MAX_FLAGS = 8
#: A drawing whose content fills less than this share of its page in either direction
#: would need an enormous page rendering; none of these are worth it.
MIN_CONTENT_FRACTION = 0.12
#: Longer strips are left out (score lines are long; a drawing that long is a border or a frieze).
MAX_ASPECT = 4.0
MAX_DRAWING_ASPECT = 3.0

#: kgeography maps that are another division of a map kept (same outline, other borders).
#: (italy.png is under 300 px, so italyprovince.png has no pair left.)
KGEOGRAPHY_SKIP = {"greece_prefectures.png"}
#: Photographs in opencv-doc's sample data; calibration boards, synthetic shapes, blurred
#: test images and the pairs below are left out.
OPENCV_PHOTOS = ("baboon.jpg", "fruits.jpg", "building.jpg", "home.jpg", "messi5.jpg", "apple.jpg",
                 "orange.jpg", "squirrel_cls.jpg", "smarties.png", "butterfly.jpg", "board.jpg", "stuff.jpg",
                 "box_in_scene.png", "ela_original.jpg")
#: Two views of one scene (stereo, another viewpoint, another exposure): must not match.
#: The optical-flow pairs (basketball, rubberwhale) and the mirrored Suzanne renders are
#: near-identical; the pixel check puts them aside and says so. ela_modified.jpg is an
#: edited copy of ela_original.jpg, so it is not used at all.
OPENCV_PAIRS = (("aloeL.jpg", "aloeR.jpg"), ("left.jpg", "right.jpg"), ("graf1.png", "graf3.png"),
                ("leuvenA.jpg", "leuvenB.jpg"), ("aero1.jpg", "aero3.jpg"),
                ("basketball1.png", "basketball2.png"), ("rubberwhale1.png", "rubberwhale2.png"),
                ("Blender_Suzanne1.jpg", "Blender_Suzanne2.jpg"))
#: Nebula fields that are tiles of one mosaic overlap their neighbours: a partial copy each.
NEBULA_TILES = re.compile(r"^(lmc_\d+|barnard_loop-\d|ic2118-\d|sh2-1-\d|smc29-\d)\.png$")
#: Below this spread of grey levels a nebula picture is an almost black frame.
MIN_NEBULA_STD = 6.0
#: A photograph is "dark" below this mean grey level, or low-contrast below this spread.
DARK_MEAN = 64.0
LOW_CONTRAST_STD = 20.0
#: Full scores and pages engraved in other editions: of each page shipped twice the larger copy,
#: and none of the translated annotated screenshots.
LILYPOND_PICTURES = ("baer-suite1-fullpage-hires.png", "henle-suite1-fullpage-hires.png", "bwv861-baer.png",
                     "bwv861-breitkopf.png", "bwv861-gesellschaft.png", "bwv861-lilypond-large.png",
                     "finale-sarabande-full.png", "bench-morgenlied.png", "Gonville_before.png")
#: FreeCol's engravings, woodcut and the Declaration of Independence.
FREECOL_DOCUMENTS = ("discovery.png", "landing.png", "meet_aztec.png", "meet_inca.png", "meet_natives.png",
                     "doi.png")
#: Tux Paint's colouring pages (line art on a transparent ground, shown on white).
TUXPAINT_LINE_ART = ("carcassone.png", "chicken.png", "frog.png", "nagasaki.png", "street.png",
                     "tux_farmer.png", "shipwreck.png", "pansy.png", "jetplane.png")
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)


def _root(package: str) -> Path:
    return CACHE / "packages" / package


def source_file(src: corpus.Source) -> Path:
    if src.package in NPM:
        return CACHE / "npm" / src.package / src.path
    return _root(src.package) / src.path.lstrip("/")


def _unpack(deb: Path, dest: Path, members: list[str]) -> None:
    """Only the folders used: stellarium-data alone unpacks to 390 MB."""
    marker = dest / ".unpacked"
    stamp = deb.name + "\n" + "\n".join(members)
    if marker.exists() and marker.read_text() == stamp:
        return
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    log(f"dpkg-deb --fsys-tarfile {deb.name} | tar -x {len(members)} folder(s)")
    deb_tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(dest), "--wildcards", *members], stdin=deb_tar.stdout, check=True)
    if deb_tar.wait() != 0:
        raise subprocess.CalledProcessError(deb_tar.returncode, "dpkg-deb")
    marker.write_text(stamp)


def _fetch_npm(name: str, version: str, folder: str) -> Path:
    dest = CACHE / "npm" / name
    marker = dest / ".unpacked"
    if marker.exists() and marker.read_text() == version:
        return dest
    tgz_dir = CACHE / "npm"
    tgz_dir.mkdir(parents=True, exist_ok=True)
    tgz = tgz_dir / f"{name}-{version}.tgz"
    if not tgz.exists():
        log(f"npm pack {name}@{version}")
        subprocess.run(["npm", "pack", f"{name}@{version}", "--silent"], cwd=tgz_dir, check=True,
                       stdout=subprocess.DEVNULL)
    if dest.exists():
        shutil.rmtree(dest)
    with tarfile.open(tgz) as tf:
        wanted = [m for m in tf.getmembers() if m.isfile() and (m.name.startswith(folder) or m.name == "package/LICENSE")]
        tf.extractall(dest, members=wanted, filter="data")
    marker.write_text(version)
    return dest


def fetch(skipped: dict[str, str]) -> dict[str, str]:
    """Download and unpack every source once; returns package -> version. What cannot be had
    is left out, with the reason in `skipped`."""
    versions: dict[str, str] = {}
    debs = corpus.download_debs(list(DEBIAN), check=False)
    for pkg, (_, members) in DEBIAN.items():
        found = sorted(debs.glob(f"{pkg}_*.deb"))
        if not found:
            skipped[pkg] = "apt-get download failed"
            continue
        try:
            _unpack(found[-1], _root(pkg), members)
        except (OSError, subprocess.CalledProcessError) as exc:
            skipped[pkg] = f"could not unpack: {exc}"
            continue
        versions[pkg] = found[-1].name.split("_")[1].replace("%3a", ":")
    for name, (version, _, folder) in NPM.items():
        if shutil.which("npm") is None:
            skipped[name] = "npm not found"
            continue
        try:
            _fetch_npm(name, version, folder)
        except (OSError, subprocess.CalledProcessError, tarfile.TarError) as exc:
            skipped[name] = f"npm pack failed: {exc}"
            continue
        versions[name] = version
    why = svg_renderer_missing()
    if why:
        for pkg in ("openclipart-svg", "flag-icons"):
            if pkg in versions:
                del versions[pkg]
                skipped[pkg] = why
    for pkg, why in skipped.items():
        log(f"corpus: source {pkg} left out: {why}")
    return versions


def svg_renderer_missing() -> str | None:
    try:
        import resvg_py  # noqa: F401
    except Exception as exc:
        return f"resvg-py unavailable: {exc}"
    return None


# ---------------------------------------------------------------- drawings


class Unusable(ValueError):
    """A drawing that is not worth rendering; the message says why."""


def _rgba(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(bytes(data)))
    im.load()
    return im.convert("RGBA")


def _svg_png(path: Path, width: int, height: int) -> Image.Image:
    import resvg_py

    # dpi=96: pages measured in inches or millimetres have no size at resvg-py's default of 0.
    # Given both, resvg fits the page into width x height, keeping its proportions.
    return _rgba(resvg_py.svg_to_bytes(svg_path=str(path), width=width, height=height, dpi=96.0))


def render_svg(src: corpus.Source) -> Image.Image:
    """The drawing cropped to its content, with a margin, on the source's background, its long
    side src.render[0] px. Cached: a rendering only depends on the file and the parameters."""
    long_side, margin = src.render
    background = src.background or WHITE
    path = source_file(src)
    key = hashlib.sha256(f"{src.key}|{long_side}|{margin}|{background}".encode() + path.read_bytes()).hexdigest()[:20]
    cached = CACHE / "rendered" / f"{key}.png"
    if cached.exists():
        with Image.open(cached) as im:
            return im.convert("RGB")
    # First a small rendering to find where the drawing lies on its page, then one large
    # enough that the drawing alone is long_side px.
    probe = _svg_png(path, 512, 512)
    box = probe.getchannel("A").getbbox()
    if box is None:
        raise Unusable("empty drawing")
    frac = max((box[2] - box[0]) / probe.width, (box[3] - box[1]) / probe.height)
    if frac < MIN_CONTENT_FRACTION:
        raise Unusable(f"the drawing fills {frac:.0%} of its page")
    page = long_side / frac
    scale = page / max(probe.size)
    big = _svg_png(path, max(1, round(probe.width * scale)), max(1, round(probe.height * scale)))
    box = big.getchannel("A").getbbox()
    art = big.crop(box)
    if max(art.size) > long_side:
        s = long_side / max(art.size)
        art = art.resize((max(1, round(art.width * s)), max(1, round(art.height * s))), Image.Resampling.LANCZOS)
    m = round(margin * max(art.size))
    canvas = Image.new("RGBA", (art.width + 2 * m, art.height + 2 * m), background + (255,))
    canvas.alpha_composite(art, (m, m))
    out = canvas.convert("RGB")
    if max(out.size) > corpus.MAX_LONG_SIDE:
        s = corpus.MAX_LONG_SIDE / max(out.size)
        out = out.resize((max(1, round(out.width * s)), max(1, round(out.height * s))), Image.Resampling.LANCZOS)
    cached.parent.mkdir(parents=True, exist_ok=True)
    out.save(cached, "PNG")
    return out


def _poster_look(key: str, flag: bool = False) -> tuple[tuple[int, int, int], tuple[int, float]]:
    """(background, (long side, margin)) for one drawing, from a generator seeded by its key:
    white paper, a light tint, or a coloured poster ground."""
    rng = random.Random(f"{corpus.SEED}:{key}")
    long_side = rng.randint(800, 1600)
    margin = 0.0 if flag else round(rng.uniform(0.04, 0.12), 3)
    u = rng.random()
    if u < 0.35:
        bg = WHITE
    elif u < 0.7:
        bg = tuple(rng.randint(225, 250) for _ in range(3))
    else:
        import colorsys

        r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.45, 0.9), rng.uniform(0.3, 0.85))
        bg = (round(r * 255), round(g * 255), round(b * 255))
    return bg, (long_side, margin)


# ---------------------------------------------------------------- candidates


def _size(path: Path) -> tuple[int, int] | None:
    try:
        with Image.open(path) as im:
            return im.size
    except Exception:
        return None


def _raster(pkg: str, versions: dict[str, str], rel: str, kind: str, layout: str = "full_frame",
            background: tuple[int, int, int] | None = None) -> corpus.Source | None:
    """A raster picture from a package, if it is at least MIN_SHORT_SIDE on its short side and
    not a long strip."""
    size = _size(_root(pkg) / rel.lstrip("/"))
    if size is None:
        return None
    w, h = size
    if min(w, h) < corpus.MIN_SHORT_SIDE or max(w, h) > MAX_ASPECT * min(w, h):
        return None
    return corpus.Source(pkg, versions[pkg], rel, layout, w, h, kind, DEBIAN[pkg][0], background)


def _grey_stats(path: Path) -> tuple[float, float]:
    with Image.open(path) as im:
        im.draft("L", (256, 256))
        a = np.asarray(im.convert("L").resize((128, 128), Image.Resampling.BOX), dtype=np.float64)
    return float(a.mean()), float(a.std())


def _photo_kind(path: Path) -> str:
    mean, std = _grey_stats(path)
    return "dark" if mean < DARK_MEAN or std < LOW_CONTRAST_STD else "photo"


def _seeded(items: list, tag: str) -> list:
    out = list(items)
    random.Random(f"{corpus.SEED}:{tag}").shuffle(out)
    return out


def _files(pkg: str, folder: str, pattern: str) -> list[Path]:
    return sorted((_root(pkg) / folder.lstrip("/")).glob(pattern))


def _rel(pkg: str, f: Path) -> str:
    return "/" + str(f.relative_to(_root(pkg)))


def photographs(versions: dict[str, str]) -> list[tuple[str, corpus.Source]]:
    """(group, source) for every photograph, each labelled photo or dark by its grey levels."""
    out = []
    if "opencv-doc" in versions:
        for name in OPENCV_PHOTOS:
            s = _raster("opencv-doc", versions, f"{OPENCV}/{name}", "photo")
            if s:
                out.append(("opencv-doc", replace(s, kind=_photo_kind(source_file(s)))))
    if "tuxpaint-data" in versions:
        for f in _files("tuxpaint-data", f"{TUXPAINT}/templates", "*.jpg"):
            s = _raster("tuxpaint-data", versions, _rel("tuxpaint-data", f), "photo")
            if s:
                out.append(("tuxpaint-data", replace(s, kind=_photo_kind(f))))
    if "endless-sky-data" in versions:
        for f in _seeded(_files("endless-sky-data", ENDLESS_SKY, "*.jpg"), "endless-sky"):
            s = _raster("endless-sky-data", versions, _rel("endless-sky-data", f), "photo")
            if s:
                out.append(("endless-sky-data", replace(s, kind=_photo_kind(f))))
    return out


def maps(versions: dict[str, str]) -> list[tuple[str, corpus.Source]]:
    out = []
    if "marble-qt-data" in versions:
        s = _raster("marble-qt-data", versions, f"{MARBLE}/schagen1689/schagen1689.jpg", "map")
        if s:
            out.append(("marble-qt-data", s))
    if "freecol" in versions:
        s = _raster("freecol", versions, f"{FREECOL}/base/resources/images/ui/map.jpg", "map")
        if s:
            out.append(("freecol", s))
    if "kgeography-data" in versions:
        for f in _seeded(_files("kgeography-data", KGEOGRAPHY, "*.png"), "kgeography"):
            if f.name in KGEOGRAPHY_SKIP:
                continue
            s = _raster("kgeography-data", versions, _rel("kgeography-data", f), "map", background=WHITE)
            if s:
                out.append(("kgeography-data", s))
    return out


def dark_pictures(versions: dict[str, str]) -> list[tuple[str, corpus.Source]]:
    """Night-sky and night-side pictures; dark photographs come from photographs()."""
    out = []
    if "marble-qt-data" in versions:
        s = _raster("marble-qt-data", versions, f"{MARBLE}/citylights/citylights.jpg", "dark")
        if s:
            out.append(("marble-qt-data", s))
    if "stellarium-data" in versions:
        for f in _seeded(_files("stellarium-data", NEBULAE, "*.png"), "nebulae"):
            if NEBULA_TILES.match(f.name):
                continue
            s = _raster("stellarium-data", versions, _rel("stellarium-data", f), "dark", background=BLACK)
            if s and _grey_stats(f)[1] >= MIN_NEBULA_STD:
                out.append(("stellarium-data", s))
    return out


def documents(versions: dict[str, str]) -> list[tuple[str, corpus.Source]]:
    out = []
    if "lilypond-doc" in versions:
        names = [f"ly-examples/{f.name}" for f in _files("lilypond-doc", f"{LILYPOND}/ly-examples", "*.png")
                 if not f.stem.endswith("-small")]
        names += [f"pictures/{n}" for n in LILYPOND_PICTURES]
        for n in _seeded(names, "lilypond"):
            s = _raster("lilypond-doc", versions, f"{LILYPOND}/{n}", "document", background=WHITE)
            if s:
                out.append(("lilypond-doc", s))
    if "freecol" in versions:
        for n in FREECOL_DOCUMENTS:
            s = _raster("freecol", versions, f"{FREECOL}/default/resources/images/ui/{n}", "document", background=WHITE)
            if s:
                out.append(("freecol", s))
    if "tuxpaint-data" in versions:
        for n in TUXPAINT_LINE_ART:
            s = _raster("tuxpaint-data", versions, f"{TUXPAINT}/starters/{n}", "document", "cutout", background=WHITE)
            if s:
                out.append(("tuxpaint-data", s))
    if "opencv-doc" in versions:
        s = _raster("opencv-doc", versions, f"{OPENCV}/sudoku.png", "document")
        if s:
            out.append(("opencv-doc", s))
    return out


def flat_graphics(versions: dict[str, str]) -> list[tuple[str, corpus.Source]]:
    """Detailed clip art in a seeded order that takes each subject folder in turn, then flags
    with emblems; each drawing with its own ground (white, light tint or poster colour)."""
    out = []
    if "openclipart-svg" in versions:
        root = _root("openclipart-svg") / OPENCLIPART.lstrip("/")
        by_folder: dict[str, list[Path]] = {}
        for f in sorted(root.rglob("*.svg")):
            parts = f.relative_to(root).parts
            if parts[0] in SKIP_CLIPART or f.stat().st_size < MIN_SVG_BYTES:
                continue
            if SVG_TEXT.search(f.read_bytes()):
                continue
            by_folder.setdefault("/".join(parts[:2]) if len(parts) > 2 else parts[0], []).append(f)
        queues = [_seeded(v, f"openclipart:{k}") for k, v in sorted(by_folder.items())]
        queues = _seeded(queues, "openclipart")
        while any(queues):
            for q in queues:
                if q:
                    f = q.pop(0)
                    rel = _rel("openclipart-svg", f)
                    bg, render = _poster_look(f"openclipart-svg:{rel}")
                    out.append(("openclipart-svg", corpus.Source(
                        "openclipart-svg", versions["openclipart-svg"], rel, "vector", 0, 0, "flat_graphic",
                        DEBIAN["openclipart-svg"][0], bg, render)))
    if "flag-icons" in versions:
        version, licence, folder = NPM["flag-icons"]
        seen: set[bytes] = set()
        flags = []
        for f in sorted((CACHE / "npm" / "flag-icons" / folder).glob("*.svg")):
            data = f.read_bytes()
            digest = hashlib.sha256(data).digest()
            # Territories that fly another country's flag ship it twice under two codes.
            if len(data) < MIN_FLAG_BYTES or digest in seen or SVG_TEXT.search(data):
                continue
            seen.add(digest)
            flags.append(f)
        for f in _seeded(flags, "flag-icons")[:MAX_FLAGS * 3]:
            rel = f"{folder}{f.name}"
            bg, render = _poster_look(f"flag-icons:{rel}", flag=True)
            out.append(("flag-icons", corpus.Source("flag-icons", version, rel, "vector", 0, 0, "flat_graphic",
                                                    licence, bg, render)))
    return out


# ---------------------------------------------------------------- selection


def _vectors(s: corpus.Source) -> tuple[corpus.Source, list[tuple[np.ndarray, np.ndarray]]]:
    """The source (a drawing with its rendered size) and the pixel-check vectors of its picture.
    A drawing also gets those of its bare rendering, on white with no margin: one drawing
    shipped twice would otherwise pass as two pictures on two grounds with two margins."""
    im = corpus.load_normalised(s)
    out = [(corpus.thumbnail_vector(im), corpus.highpass_vector(im))]
    if s.layout == "vector":
        s = replace(s, width=im.width, height=im.height)
        plain = corpus.load_normalised(replace(s, background=WHITE, render=(512, 0.0)))
        out.append((corpus.thumbnail_vector(plain), corpus.highpass_vector(plain)))
    return s, out


def _resembles(vecs: list[tuple[np.ndarray, np.ndarray]], kept: list) -> tuple[float, float, str]:
    return max((corpus.resembles(v, d, kept) for v, d in vecs), key=lambda b: (bool(b[2]),) + b[:2])


def _note(s: corpus.Source, best: tuple[float, float, str]) -> dict:
    return {"source": s.key, "near_duplicate_of": best[2], "correlation": round(best[0], 4),
            "detail_correlation": round(best[1], 4)}


def _round_robin(groups: list[tuple[str, corpus.Source]]) -> list[tuple[str, corpus.Source]]:
    """One from each group in turn, in the order the groups first appear."""
    queues: dict[str, list] = {}
    for g, s in groups:
        queues.setdefault(g, []).append((g, s))
    out = []
    while any(queues.values()):
        for q in queues.values():
            if q:
                out.append(q.pop(0))
    return out


def select_more(sel: corpus.Selection, kept: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
    """Adds the viewpoint pairs, 20 reserved sources and the originals of each kind to `sel`,
    each checked against `kept` (which grows) as the first 200 were."""
    versions = fetch(sel.skipped_sources)
    must_not: set[str] = {f.key for f in sel.story_frames} | {r.key for r in sel.reserved}
    unusable: set[str] = set()

    def check(s: corpus.Source) -> tuple[corpus.Source, list] | None:
        """The source with its vectors if it is a picture of its own; else None, and why is noted."""
        try:
            s, vecs = _vectors(s)
        except Unusable as exc:
            sel.dropped.append({"source": s.key, "reason": str(exc)})
            return None
        except Exception as exc:  # a drawing resvg cannot render, a damaged file
            sel.dropped.append({"source": s.key, "reason": f"unreadable: {exc}"})
            return None
        if not vecs[0][0].any():
            sel.dropped.append({"source": s.key, "reason": "flat image"})
            return None
        if s.layout == "vector" and max(s.width, s.height) > MAX_DRAWING_ASPECT * min(s.width, s.height):
            sel.dropped.append({"source": s.key, "reason": f"a strip of {s.width}x{s.height}"})
            return None
        best = _resembles(vecs, kept)
        listed = corpus.known_version(s.key, (k for k, _, _ in kept))
        if listed:
            best = (0.0, 0.0, listed)
        if not best[2]:
            return s, vecs
        note = _note(s, best)
        if best[0] > 0.99 and best[1] > 0.9:
            sel.dropped.append(note | {"reason": "copy"})
        elif best[2] in must_not:
            # Reserved sources too: a version of one holds both windows of its pair.
            sel.dropped.append(note | {"reason": "resembles a must-not-match image"})
        else:
            sel.derivatives.append((s, best[2]))
            sel.dropped.append(note | {"reason": "derivative (listed in VERSIONS)" if listed else "derivative"})
        return None

    def keep(s: corpus.Source, vecs: list) -> None:
        kept.extend((s.key, v, d) for v, d in vecs)

    # Two views of one scene, unless they are near-identical or resemble a kept picture.
    if "opencv-doc" in versions:
        for a_name, b_name in OPENCV_PAIRS:
            a = _raster("opencv-doc", versions, f"{OPENCV}/{a_name}", "photo")
            b = _raster("opencv-doc", versions, f"{OPENCV}/{b_name}", "photo")
            if a is None or b is None:
                continue
            a, b = replace(a, kind=_photo_kind(source_file(a))), replace(b, kind=_photo_kind(source_file(b)))
            (_, [(va, da)]), (_, [(vb, db)]) = _vectors(a), _vectors(b)
            twin = corpus.resembles(vb, db, [(a.key, va, da)])
            if twin[2]:
                sel.dropped.append(_note(b, twin) | {"reason": "near-identical to the other image of its pair; "
                                                                "not a must-not-match pair"})
                continue
            clash = [corpus.resembles(v, d, kept) for v, d in ((va, da), (vb, db))]
            if any(c[2] for c in clash):
                sel.dropped.append({"source": f"{a.key} / {b.key}", "reason": "pair resembles a kept picture",
                                    "near_duplicate_of": [c[2] for c in clash if c[2]]})
                continue
            kept += [(a.key, va, da), (b.key, vb, db)]
            must_not |= {a.key, b.key}
            unusable |= {a.key, b.key}
            sel.pairs.append(("viewpoint_pairs", a, b))

    photos = photographs(versions)
    all_maps = maps(versions)
    # Reserved: the largest photographs and political maps, cut into neighbouring crops and
    # burst pairs (half of each).
    by_area = lambda gs: sorted(gs, key=lambda g: (-(g[1].width * g[1].height), g[1].key))  # noqa: E731
    reserved_photos = [s for g, s in by_area(photos) if s.kind == "photo"]
    reserved_maps = [s for g, s in by_area(all_maps) if g == "kgeography-data"]
    took: dict[str, list[corpus.Source]] = {"photo": [], "map": []}
    for kind, pool, n in (("photo", reserved_photos, RESERVED_PHOTOS), ("map", reserved_maps, RESERVED_MAPS)):
        for s in pool:
            if len(took[kind]) >= n:
                break
            unusable.add(s.key)
            got = check(s)
            if got:
                keep(*got)
                took[kind].append(got[0])
                must_not.add(got[0].key)
    half_p, half_m = RESERVED_PHOTOS // 2, RESERVED_MAPS // 2
    for use, part in (("neighbouring_crops", took["photo"][:half_p] + took["map"][:half_m]),
                      ("burst", took["photo"][half_p:] + took["map"][half_m:])):
        sel.reserved += part
        sel.reserved_use += [use] * len(part)

    pools = {
        "map": all_maps,
        "photo": [(g, s) for g, s in photos if s.kind == "photo"],
        "dark": dark_pictures(versions) + [(g, s) for g, s in photos if s.kind == "dark"],
        "document": documents(versions),
        "flat_graphic": flat_graphics(versions),
    }
    caps = {"flag-icons": MAX_FLAGS}
    for kind, quota in QUOTAS.items():
        taken: dict[str, int] = {}
        n = 0
        for group, s in _round_robin(pools[kind]):
            if n >= quota:
                break
            if s.key in unusable or taken.get(group, 0) >= caps.get(group, quota):
                continue
            unusable.add(s.key)
            got = check(s)
            if got is None:
                continue
            keep(*got)
            sel.originals.append(got[0])
            taken[group] = taken.get(group, 0) + 1
            n += 1
        log(f"corpus: {n} {kind} originals ({', '.join(f'{g} {k}' for g, k in taken.items())})")
        if n < quota:
            log(f"corpus: only {n} of {quota} {kind} originals: candidates ran out")
