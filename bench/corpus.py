"""The originals: photographs bundled with scikit-image and artwork from Debian's Wesnoth packages,
then the other kinds of picture an archive holds (bench/kinds.py).

Everything comes from packages, so the corpus is the same on every machine: the .deb files
are fetched with ``apt-get download`` into ``bench/.cache`` and unpacked with ``dpkg -x``
(nothing is installed). Originals that are near-duplicates of one another are dropped by a
pixel check independent of every method under test, so the ground truth does not count a
real copy as a false match.
"""

from __future__ import annotations

import random
import re
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from bench.common import CACHE, log

WESNOTH_PACKAGES = (
    "wesnoth-1.16-data", "wesnoth-1.16-httt", "wesnoth-1.16-trow", "wesnoth-1.16-utbs",
    "wesnoth-1.16-low", "wesnoth-1.16-sota", "wesnoth-1.16-sof", "wesnoth-1.16-nr",
    "wesnoth-1.16-tsg", "wesnoth-1.16-did", "wesnoth-1.16-dm", "wesnoth-1.16-dw",
    "wesnoth-1.16-ei", "wesnoth-1.16-l", "wesnoth-1.16-sotbe", "wesnoth-1.16-thot",
    "wesnoth-1.16-ttb",
)

# Photographs in skimage/data that need no download. Left out: synthetic or tiny images
# (chessboards, phantom, color wheel, logo, horse silhouette, microaneurysms, the gif) and
# the motorcycle stereo pair, which is a must-not-match set of its own.
SKIMAGE_PHOTOS = (
    "astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "clock_motion.png",
    "coffee.png", "coins.png", "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png",
    "moon.png", "page.png", "retina.jpg", "rocket.jpg", "text.png",
)
STEREO_PAIR = ("motorcycle_left.png", "motorcycle_right.png")

#: Story frames that show one scene at different moments (same room, different figures).
STORY_FRAMES = re.compile(r"/Secrets_of_the_Ancients/images/story/room[1-4]\.jpg$")

#: Versions of one picture that the pixel checks below cannot see (each differs from the other
#: over much of its area), found by looking at the pictures: either one met after the other is
#: set aside as a derivative of it, as the checks set aside the versions they see. Path tails.
VERSIONS = (
    # One figure of flame, armour painted over it in the second.
    ("portraits/monsters/fire_guardian.png", "portraits/monsters/fire_wraith_A.png"),
    # One painted body in armour, another head and arm.
    ("portraits/lisar-glad.png", "portraits/lisar-defeat.png"),
    # The same bars of BWV 861 in two engravings (the manual sets them side by side).
    ("pictures/bwv861-breitkopf.png", "pictures/bwv861-baer.png"),
    # One ship sprite, alone on the sea and moored in a harbour scene.
    ("story/alduin-dock.jpg", "story/becalmed.jpg"),
)

MIN_SHORT_SIDE = 300
MAX_LONG_SIDE = 1600
NEAR_DUP_CORR = 0.95
DETAIL_CORR = 0.35
THUMB = 32
#: Transparent artwork is composited onto this plain mid-grey.
MATTE = (128, 128, 128)
TARGET_ORIGINALS = 200
RESERVED_SOURCES = 20  # largest full-frame images, kept out of the originals for crop/burst sets
SEED = 20240611


#: What each scikit-image photograph shows, for the per-kind figures.
SKIMAGE_KINDS = {"hubble_deep_field.jpg": "dark", "page.png": "document", "text.png": "document"}
WESNOTH_LICENCE = "GPL-2+"
SKIMAGE_LICENCE = "per image, as the skimage.data docstrings give it (mostly CC0 or public domain)"


@dataclass(frozen=True)
class Source:
    """One image file from a package."""

    package: str
    version: str
    path: str  # inside the package (Debian, npm) or site-packages (scikit-image)
    layout: str  # photo | full_frame | cutout | vector: how it is framed, which decides its priority
    width: int  # 0 for a drawing until it is rendered
    height: int
    kind: str = ""  # what it shows: photo | artwork | flat_graphic | map | dark | document | screenshot
    licence: str = ""
    #: Transparent areas are composited onto this colour (None: the mid-grey MATTE).
    background: tuple[int, int, int] | None = None
    #: Drawings: long side of the rendering in pixels, and the margin around the drawing
    #: as a fraction of its long side.
    render: tuple[int, float] = field(default=(0, 0.0))

    @property
    def key(self) -> str:
        return f"{self.package}:{self.path}"


def skimage_dir() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data"


def _skimage_version() -> str:
    from importlib import metadata

    return metadata.version("scikit-image")


def download_debs(packages: list[str] | tuple[str, ...], check: bool = True) -> Path:
    """`apt-get download` the packages not yet in bench/.cache/debs; returns that folder."""
    debs = CACHE / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    missing = [p for p in packages if not list(debs.glob(f"{p}_*.deb"))]
    if missing:
        log(f"apt-get download {len(missing)} packages into {debs}: {' '.join(missing)}")
        if subprocess.run(["apt-get", "download", *missing], cwd=debs).returncode != 0:
            # A fresh machine has no package lists yet.
            subprocess.run(["apt-get", "update", "-q"], check=check)
            subprocess.run(["apt-get", "download", *missing], cwd=debs, check=check)
    return debs


def fetch_wesnoth() -> dict[str, Path]:
    """Download and unpack the Wesnoth packages once; returns package -> unpacked root."""
    debs = download_debs(WESNOTH_PACKAGES)
    roots = CACHE / "wesnoth"
    roots.mkdir(parents=True, exist_ok=True)
    out = {}
    for p in WESNOTH_PACKAGES:
        deb = sorted(debs.glob(f"{p}_*.deb"))[-1]
        dest = roots / p
        marker = dest / ".unpacked"
        if not marker.exists() or marker.read_text() != deb.name:
            log(f"dpkg -x {deb.name}")
            subprocess.run(["dpkg", "-x", str(deb), str(dest)], check=True)
            marker.write_text(deb.name)
        out[p] = dest
    return out


def _deb_version(root: Path) -> str:
    name = (root / ".unpacked").read_text()
    return name.split("_")[1].replace("%3a", ":")


def _is_cutout(im: Image.Image) -> bool:
    """True when more than 2% of the picture is transparent (a portrait, not a full frame)."""
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode not in ("RGBA", "LA"):
        return False
    alpha = np.asarray(im.getchannel("A"))
    return float((alpha < 250).mean()) > 0.02


def _wesnoth_layout(rel: str) -> str | None:
    """Which wesnoth files are pictures worth using, by where they live."""
    if "/l10n/" in rel or "/transparent/" in rel:
        return None  # localised copies: same picture, other text
    if re.search(r"/images/(story|maps)/", rel) or rel.endswith("/low-map.png"):
        return "full_frame"
    if re.search(r"/doc/wesnoth-1\.16-data/images/[^/]+\.(jpg|png)$", rel):
        return "full_frame"  # screenshots; the language subfolders are localised copies
    if "/portraits/" in rel:
        return "cutout"
    return None


def _wesnoth_kind(rel: str) -> str:
    """What a Wesnoth picture shows: painted story scenes and portraits are artwork."""
    if re.search(r"/images/maps/", rel) or rel.endswith("/low-map.png"):
        return "map"  # painted campaign maps
    if "/doc/wesnoth-1.16-data/images/" in rel:
        return "screenshot"
    return "artwork"


def list_sources(wesnoth: dict[str, Path]) -> list[Source]:
    """Every usable scikit-image and Wesnoth candidate, in a fixed order."""
    out: list[Source] = []
    sk = skimage_dir()
    skv = _skimage_version()
    for name in SKIMAGE_PHOTOS:
        with Image.open(sk / name) as im:
            w, h = im.size
        if min(w, h) >= MIN_SHORT_SIDE:
            out.append(Source("scikit-image", skv, f"skimage/data/{name}", "photo", w, h,
                              SKIMAGE_KINDS.get(name, "photo"), SKIMAGE_LICENCE))
    for pkg, root in wesnoth.items():
        ver = _deb_version(root)
        for f in sorted(root.rglob("*")):
            if f.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp") or not f.is_file():
                continue
            rel = "/" + str(f.relative_to(root))
            layout = _wesnoth_layout(rel)
            if layout is None:
                continue
            try:
                with Image.open(f) as im:
                    w, h = im.size
                    if min(w, h) < MIN_SHORT_SIDE:
                        continue
                    if layout == "full_frame" and _is_cutout(im):
                        layout = "cutout"
            except Exception:
                continue
            out.append(Source(pkg, ver, rel, layout, w, h, _wesnoth_kind(rel), WESNOTH_LICENCE))
    return out


def source_file(src: Source) -> Path:
    if src.package == "scikit-image":
        return skimage_dir() / src.path.removeprefix("skimage/data/")
    if src.package in WESNOTH_PACKAGES:
        return CACHE / "wesnoth" / src.package / src.path.lstrip("/")
    from bench import kinds

    return kinds.source_file(src)


def _composite(im: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    rgba = im.convert("RGBA")
    base = Image.new("RGBA", rgba.size, background + (255,))
    return Image.alpha_composite(base, rgba).convert("RGB")


def load_normalised(src: Source) -> Image.Image:
    """RGB, transparency composited onto the source's background (mid-grey unless it names
    another), at most MAX_LONG_SIDE px on the long side. Drawings are rendered first."""
    if src.layout == "vector":
        from bench import kinds

        out = kinds.render_svg(src)
    else:
        with Image.open(source_file(src)) as im:
            im.load()
            if im.mode in ("P", "PA", "LA", "RGBA", "La", "RGBa") or "transparency" in im.info:
                out = _composite(im, src.background or MATTE)
            else:
                out = im.convert("RGB")
    if max(out.size) > MAX_LONG_SIDE:
        s = MAX_LONG_SIDE / max(out.size)
        out = out.resize((max(1, round(out.width * s)), max(1, round(out.height * s))), Image.Resampling.LANCZOS)
    return out


def thumbnail_vector(im: Image.Image) -> np.ndarray:
    """Zero-mean, unit-norm 32x32 greyscale thumbnail: dot product = Pearson correlation."""
    v = np.asarray(im.convert("L").resize((THUMB, THUMB), Image.Resampling.BOX), dtype=np.float64).ravel()
    v = v - v.mean()
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def highpass_vector(im: Image.Image) -> np.ndarray:
    """Zero-mean, unit-norm 64x64 detail (thumbnail minus its blur): repainted or retouched
    versions of one picture keep their edges, unrelated pictures with similar layouts do not."""
    g = im.convert("L").resize((2 * THUMB, 2 * THUMB), Image.Resampling.BOX)
    a = np.asarray(g, dtype=np.float64) - np.asarray(g.filter(ImageFilter.GaussianBlur(2)), dtype=np.float64)
    v = a.ravel() - a.mean()
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def _mirror(v: np.ndarray) -> np.ndarray:
    side = int(round(len(v) ** 0.5))
    return v.reshape(side, side)[:, ::-1].ravel()


@dataclass
class Selection:
    originals: list[Source]
    reserved: list[Source]  # sources for the neighbouring-crop and burst sets
    story_frames: list[Source]
    stereo: list[Source]
    derivatives: list[tuple[Source, str]]  # retouched/repainted versions, with the kept source's key
    dropped: list[dict]  # near-duplicates and flat images left out
    #: What each reserved source is cut into, in the order of `reserved`.
    reserved_use: list[str] = field(default_factory=list)
    #: Other must-not-match pairs: (set name, source a, source b).
    pairs: list[tuple[str, Source, Source]] = field(default_factory=list)
    #: Sources left out whole, with the reason (a tool or a download missing).
    skipped_sources: dict[str, str] = field(default_factory=dict)


def resembles(v: np.ndarray, d: np.ndarray, kept: list[tuple[str, np.ndarray, np.ndarray]]) -> tuple[float, float, str]:
    """(correlation, detail correlation, key) of the kept image this one resembles most by
    the two pixel checks, each also against the mirror; key "" when it resembles none."""
    best = (-1.0, -1.0, "")
    for key, kv, kd in kept:
        c = max(float(v @ kv), float(_mirror(v) @ kv))
        e = max(float(d @ kd), float(_mirror(d) @ kd))
        if (c > NEAR_DUP_CORR or e > DETAIL_CORR) and (c, e) > best[:2]:
            best = (c, e, key)
    return best


def known_version(key: str, kept_keys) -> str:
    """The kept source that ``key`` is a listed version of (``VERSIONS``), or ""."""
    for a, b in VERSIONS:
        for this, other in ((a, b), (b, a)):
            if key.endswith("/" + this):
                found = next((k for k in kept_keys if k.endswith("/" + other)), "")
                if found:
                    return found
    return ""


def select(sources: list[Source]) -> Selection:
    """Originals in priority order (largest full frames, photos, then portraits in seeded
    order), none a near-duplicate of another kept image.

    Two independent pixel checks, each also against the mirror image: 32x32 greyscale
    correlation > NEAR_DUP_CORR, or 64x64 detail correlation > DETAIL_CORR (unrelated
    pairs in this corpus stay below 0.2; retouched versions score 0.4 and up). Copies
    (> 0.99) are dropped; other near-duplicates are kept aside as derivatives.
    """
    rng = random.Random(SEED)
    frames = [s for s in sources if STORY_FRAMES.search(s.path)]
    rest = [s for s in sources if not STORY_FRAMES.search(s.path)]
    photos = [s for s in rest if s.layout == "photo"]
    full = sorted((s for s in rest if s.layout == "full_frame"), key=lambda s: (-(s.width * s.height), s.key))
    cutouts = [s for s in rest if s.layout == "cutout"]
    rng.shuffle(cutouts)
    ordered = full + photos + cutouts

    kept: list[tuple[str, np.ndarray, np.ndarray]] = []
    for f in frames:
        im = load_normalised(f)
        kept.append((f.key, thumbnail_vector(im), highpass_vector(im)))
    reserved: list[Source] = []
    originals: list[Source] = []
    derivatives: list[tuple[Source, str]] = []
    dropped: list[dict] = []
    for s in ordered:
        if len(originals) >= TARGET_ORIGINALS:
            break
        im = load_normalised(s)
        v, d = thumbnail_vector(im), highpass_vector(im)
        if not v.any():
            dropped.append({"source": s.key, "reason": "flat image"})
            continue
        best = resembles(v, d, kept)
        listed = known_version(s.key, (k for k, _, _ in kept))
        if listed:
            best = (0.0, 0.0, listed)
        if best[2]:
            note = {"source": s.key, "near_duplicate_of": best[2], "correlation": round(best[0], 4),
                    "detail_correlation": round(best[1], 4)}
            if best[0] > 0.99 and best[1] > 0.9:
                dropped.append(note | {"reason": "copy"})
            elif best[2] in {f.key for f in frames}:
                dropped.append(note | {"reason": "resembles a story frame"})
            elif best[2] in {r.key for r in reserved}:
                # Two windows of a reserved source are a must-not-match pair; a version of the
                # whole source holds both, so each is truly its crop and the pair would share
                # its cluster.
                dropped.append(note | {"reason": "resembles a reserved source"})
            else:
                derivatives.append((s, best[2]))
                dropped.append(note | {"reason": "derivative (listed in VERSIONS)" if listed else "derivative"})
            continue
        kept.append((s.key, v, d))
        if s.layout == "full_frame" and len(reserved) < RESERVED_SOURCES:
            reserved.append(s)
        else:
            originals.append(s)
    stereo = []
    sk = skimage_dir()
    for name in STEREO_PAIR:
        with Image.open(sk / name) as im:
            w, h = im.size
        stereo.append(Source("scikit-image", _skimage_version(), f"skimage/data/{name}", "photo", w, h,
                             "photo", SKIMAGE_LICENCE))
    # The first 10 reserved sources give neighbouring crops, the next 10 burst pairs.
    use = ["neighbouring_crops" if k < RESERVED_SOURCES // 2 else "burst" for k in range(len(reserved))]
    sel = Selection(originals, reserved, frames, stereo, derivatives, dropped, use)
    # The other kinds come after, checked against everything kept so far, so the first 200
    # originals and their seeds stay what they were.
    from bench import kinds

    kinds.select_more(sel, kept)
    return sel


def describe(src: Source) -> dict:
    return asdict(src)
