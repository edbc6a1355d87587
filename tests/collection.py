"""A deterministic photograph collection with known copies, for end-to-end accuracy tests.

``build(folder)`` writes a few thousand small image files: 200 distinct pictures (the
photographs bundled with scikit-image, read straight from the installed package, and
procedurally generated scenes: smooth random colour fields under overlapping shapes of many
sizes, strokes, gradients, grain and text in Pillow's default font), each as a master and
15 real copies of the kinds archives hold (re-encodes, downscales, format changes,
greyscale, tone changes, crops, borders, rotations, a mirror image, a watermark, blur, grain,
a byte copy and a metadata-only change), plus a few files that are not images or are
truncated. It returns the ground truth: which picture each file shows.

The collection is large enough to carry a catalogue or a coordinator past the candidate
index's growth steps (1,024 and 1,536 assets, then x1.5), where a bug once scrambled the
index and silently lost most matches: only an end-to-end count of the pairs found against
the truth notices that. It is a pure function of its arguments (the same Pillow and numpy
write the same bytes), so measured figures can be pinned.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps, PngImagePlugin

#: Photographs bundled in ``skimage/data``, used whole. Left out: textures (brick, grass,
#: gravel), near-flat or synthetic images (chessboards, colour wheel, horse, logo, phantom),
#: the right half of the motorcycle stereo pair (the same scene as the left) and images too
#: small to copy meaningfully.
BUNDLED = ("astronaut.png", "camera.png", "cell.png", "chelsea.png", "clock_motion.png", "coffee.png", "coins.png",
           "hubble_deep_field.jpg", "ihc.png", "moon.png", "motorcycle_left.png", "page.png", "retina.jpg",
           "rocket.jpg", "text.png")

#: Every kind of copy; a picture gets the master, the byte copy, the metadata-only copy and
#: a seeded choice of the others.
ALWAYS = ("master", "bytecopy", "metadata")
OPTIONAL = ("jpeg90", "jpeg70", "jpeg40", "half", "quarter", "thumb256", "tiff", "webp", "grey", "brighter",
            "contrast", "gamma", "crop-side", "crop-centre", "border", "rotate", "mirror", "watermark", "blur", "grain")

WORDS = ("ARCHIVE", "harbour", "1936", "Kowloon", "festival", "No. 17", "survey", "river", "market", "station",
         "proof", "negative", "studio", "ferry", "lantern", "council", "plate 4", "east wing", "tram", "typhoon")

Manifest = list[tuple[str, str | None]]


def build(folder: Path, seed: int = 2024, *, procedural: int = 185, optional: int = 13) -> Manifest:
    """Write the collection into ``folder`` (replaced if it exists); return (relative POSIX
    path, picture id) for every file, the picture id None for the files that are not
    readable images. ``procedural`` generated pictures join the bundled photographs; each
    picture has ``3 + optional`` files."""
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    pictures: list[tuple[str, Image.Image]] = [(f"skimage-{Path(n).stem}", _bundled(n)) for n in BUNDLED]
    pictures += [(f"scene-{k:03d}", _scene(np.random.default_rng([seed, 1, k]))) for k in range(procedural)]

    jobs: list[tuple[str | None, str, Callable[[], bytes], str]] = []  # (picture, variant, bytes, extension)
    for n, (pid, master) in enumerate(pictures):
        rng = np.random.default_rng([seed, 2, n])
        picked = set(rng.choice(OPTIONAL, size=optional, replace=False).tolist())
        chosen = [v for v in OPTIONAL if v in picked]
        master_png = _png(master)
        for variant in (*ALWAYS, *chosen):
            make, ext = _variant(variant, master, master_png, rng)
            jobs.append((pid, variant, make, ext))
    # Not images, or cut short: a scan must record each as unreadable and go on.
    sample = _jpeg(pictures[0][1], 90)
    for variant, data, ext in (("notes", b"shelf list, box 12: not an image\n", "txt"),
                               ("garbage", np.random.default_rng([seed, 3]).bytes(4096), "jpg"),
                               ("truncated", sample[:len(sample) // 3], "jpg"),
                               ("truncated", master_png[:len(master_png) // 4], "png"),
                               ("empty", b"", "tif")):
        jobs.append((None, variant, lambda data=data: data, ext))

    # Files are numbered in a seeded order and spread over a few shelves, so neither names
    # nor folders group the copies of a picture.
    order = np.random.default_rng([seed, 4]).permutation(len(jobs))
    manifest: Manifest = []
    for number, (pid, variant, make, ext) in zip(order.tolist(), jobs):
        rel = f"shelf-{number % 7}/{number:05d}-{variant}.{ext}"
        (folder / rel).parent.mkdir(exist_ok=True)
        (folder / rel).write_bytes(make())
        manifest.append((rel, pid))
    return sorted(manifest)


def variant_of(path: str) -> str:
    """The kind of copy a manifest path holds ('master', 'jpeg40', 'crop-side', ...)."""
    return Path(path).stem.split("-", 1)[1]


# --- pictures ------------------------------------------------------------------------------------


def _bundled(name: str) -> Image.Image:
    import skimage

    with Image.open(Path(skimage.__file__).parent / "data" / name) as im:
        im.load()
        im = im.convert("L" if im.mode in ("L", "I;16", "I") else "RGB")
    return _fit(im, 320)


def _fit(im: Image.Image, long_side: int) -> Image.Image:
    scale = long_side / max(im.size)
    return im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.Resampling.LANCZOS)


def _smooth(rng: np.random.Generator, w: int, h: int, cells: int) -> np.ndarray:
    """A smooth random field (h, w) of about ``cells`` bumps across, roughly in [-1, 1]."""
    cw, ch = max(2, cells), max(2, round(cells * h / w))
    base = rng.normal(size=(ch, cw)).astype(np.float32)
    return np.asarray(Image.fromarray(base).resize((w, h), Image.Resampling.BICUBIC), dtype=np.float64)


def _scene(rng: np.random.Generator) -> Image.Image:
    """A generated picture with the structure of real content at every scale; each seed gives
    a different layout, palette and set of shapes."""
    long_side = int(rng.integers(260, 321))
    aspect = float(rng.choice([1.0, 1.25, 4 / 3, 1.5, 16 / 9]))
    w, h = long_side, round(long_side / aspect)
    if rng.random() < 0.35:
        w, h = h, w
    # Background: a few octaves of smooth noise mixed into colour, and a gradient.
    octaves = [(int(rng.integers(2, 5)) * 2 ** k, float(0.6 ** k * rng.uniform(0.6, 1.4))) for k in range(4)]
    channels = np.stack([sum(a * _smooth(rng, w, h, c) for c, a in octaves) for _ in range(3)], axis=-1)
    mix = rng.normal(size=(3, 3)) + np.eye(3) * rng.uniform(0.0, 2.0)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = ((np.cos(angle) * xs + np.sin(angle) * ys) / max(w, h))[..., None] * rng.normal(size=3) * 2.0
    bg = channels @ mix + ramp
    if rng.random() < 0.3:  # a horizon: two regions of their own colour, as in a landscape
        tilt = rng.uniform(-0.3, 0.3)
        below = ys > h * rng.uniform(0.3, 0.7) + tilt * (xs - w / 2)
        bg += below[..., None] * rng.normal(size=3) * 1.5
    bg = (bg - bg.min(axis=(0, 1))) / np.ptp(bg, axis=(0, 1)).clip(1e-6)
    # A key (dark, middle or light) and a range.
    lo = rng.uniform(0, 90) + rng.uniform(-20, 20, size=3)
    hi = np.minimum(255, lo + rng.uniform(110, 230) + rng.uniform(-20, 20, size=3))
    img = Image.fromarray((lo + bg * (hi - lo)).clip(0, 255).astype(np.uint8))

    # Overlapping shapes from tiny to half the picture, each filled with a gradient (drawn in
    # their bounding box only: whole-picture layers per shape would dominate the build time).
    for _ in range(int(rng.integers(8, 30))):
        size = min(w, h) * float(np.exp(rng.uniform(np.log(0.04), np.log(0.7))))
        cx, cy = rng.uniform(-0.1, 1.1) * w, rng.uniform(-0.1, 1.1) * h
        alpha = int(rng.integers(140, 256))
        kind = rng.choice(["ellipse", "box", "polygon", "ring"])
        rx, ry = size / 2, size / 2 * rng.uniform(0.3, 1.0)
        n = 4 if kind == "box" else int(rng.integers(3, 9))
        turn = rng.uniform(0, 2 * np.pi)
        radii = np.ones(n) if kind == "box" else rng.uniform(0.4, 1.0, size=n)
        c0, c1 = rng.uniform(0, 255, size=3), rng.uniform(0, 255, size=3)
        direction = rng.uniform(0, 2 * np.pi)
        x0, y0 = max(0, int(cx - size)), max(0, int(cy - size))
        x1, y1 = min(w, int(cx + size) + 1), min(h, int(cy + size) + 1)
        if x1 <= x0 or y1 <= y0:
            continue
        mask = Image.new("L", (x1 - x0, y1 - y0), 0)
        draw = ImageDraw.Draw(mask)
        ox, oy = cx - x0, cy - y0
        if kind == "ellipse":
            draw.ellipse([ox - rx, oy - ry, ox + rx, oy + ry], fill=alpha)
        elif kind == "ring":
            draw.ellipse([ox - rx, oy - ry, ox + rx, oy + ry], outline=alpha, width=max(2, int(size / 8)))
        else:
            draw.polygon([(ox + rx * r * np.cos(turn + 2 * np.pi * i / n), oy + ry * r * np.sin(turn + 2 * np.pi * i / n))
                          for i, r in enumerate(radii)], fill=alpha)
        by, bx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        t = np.clip((np.cos(direction) * (bx - cx) + np.sin(direction) * (by - cy)) / (2 * size) + 0.5, 0, 1)[..., None]
        img.paste(Image.fromarray((c0 + t * (c1 - c0)).clip(0, 255).astype(np.uint8)), (x0, y0), mask)

    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(0, 9))):  # strokes
        pts = [(float(rng.uniform(0, w)), float(rng.uniform(0, h))) for _ in range(int(rng.integers(2, 6)))]
        draw.line(pts, fill=tuple(int(v) for v in rng.integers(0, 256, 3)), width=int(rng.integers(1, 7)), joint="curve")
    for _ in range(int(rng.integers(0, 4))):  # captions and labels
        font = ImageFont.load_default(size=int(rng.integers(11, 34)))
        text = " ".join(rng.choice(WORDS, size=int(rng.integers(1, 4))))
        draw.text((float(rng.uniform(0, w * 0.7)), float(rng.uniform(0, h * 0.9))), text, font=font,
                  fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    pixels = np.asarray(img, dtype=np.float64)
    # Some muted, some black and white, as archives' photographs mostly are.
    grey = pixels @ [0.299, 0.587, 0.114]
    pixels = grey[..., None] + (pixels - grey[..., None]) * rng.uniform(0.25, 1.0)
    pixels += rng.normal(0, rng.uniform(1.5, 4), size=(h, w, 3))  # grain
    out = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    return out.convert("L") if rng.random() < 0.2 else out


# --- copies ----------------------------------------------------------------------------------------


def _save(im: Image.Image, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **kw)
    return out.getvalue()


def _png(im: Image.Image, **kw) -> bytes:
    # Fast compression: the collection is written on every test run.
    return _save(im, "PNG", compress_level=1, **kw)


def _jpeg(im: Image.Image, quality: int) -> bytes:
    return _save(im.convert("L" if im.mode == "L" else "RGB"), "JPEG", quality=quality)


def _tone(im: Image.Image, curve: Callable[[np.ndarray], np.ndarray]) -> Image.Image:
    return Image.fromarray(curve(np.asarray(im, dtype=np.float64)).clip(0, 255).astype(np.uint8))


def _variant(name: str, im: Image.Image, master_png: bytes,
             rng: np.random.Generator) -> tuple[Callable[[], bytes], str]:
    """How to make one copy (bytes, made when written) and its file extension. Every random
    choice is drawn here, in a fixed order, so the collection does not depend on when files
    are written."""
    w, h = im.size
    if name == "master":
        return lambda: master_png, "png"
    if name == "bytecopy":
        return lambda: master_png, "png"
    if name == "metadata":  # the same pixels, other bytes
        info = PngImagePlugin.PngInfo()
        info.add_text("Description", "scanned from the accession register, second copy")
        return lambda: _png(im, pnginfo=info), "png"
    if name.startswith("jpeg"):
        return lambda: _jpeg(im, int(name[4:])), "jpg"
    if name in ("half", "quarter"):
        f = 0.5 if name == "half" else 0.25
        return lambda: _jpeg(im.resize((round(w * f), round(h * f)), Image.Resampling.LANCZOS), 85), "jpg"
    if name == "thumb256":
        return lambda: _jpeg(_fit(im, 256), 80), "jpg"
    if name == "tiff":
        return lambda: _save(im, "TIFF", compression="tiff_lzw"), "tif"
    if name == "webp":
        return lambda: _save(im, "WEBP", quality=80), "webp"
    if name == "grey":
        return lambda: _jpeg(im.convert("L"), 85), "jpg"
    if name == "brighter":
        k = float(rng.uniform(1.12, 1.3))
        return lambda: _jpeg(ImageEnhance.Brightness(im).enhance(k), 88), "jpg"
    if name == "contrast":
        k = float(rng.choice([rng.uniform(0.65, 0.8), rng.uniform(1.2, 1.4)]))
        return lambda: _jpeg(ImageEnhance.Contrast(im).enhance(k), 88), "jpg"
    if name == "gamma":
        g = float(rng.choice([rng.uniform(0.6, 0.8), rng.uniform(1.25, 1.6)]))
        return lambda: _png(_tone(im, lambda a: 255.0 * (a / 255.0) ** g)), "png"
    if name == "crop-side":
        f, side = float(rng.uniform(0.10, 0.25)), int(rng.integers(4))
        box = [(round(w * f), 0, w, h), (0, 0, w - round(w * f), h), (0, round(h * f), w, h), (0, 0, w, h - round(h * f))][side]
        return lambda: _jpeg(im.crop(box), 90), "jpg"
    if name == "crop-centre":
        f = float(rng.uniform(0.05, 0.08))
        dx, dy = round(w * f), round(h * f)
        return lambda: _png(im.crop((dx, dy, w - dx, h - dy))), "png"
    if name == "border":
        f = float(rng.uniform(0.03, 0.08))
        fill = int(rng.choice([0, 255, 128, 238]))
        colour = fill if im.mode == "L" else (fill, fill, fill)
        return lambda: _jpeg(ImageOps.expand(im, border=round(max(w, h) * f), fill=colour), 90), "jpg"
    if name == "rotate":
        turn = [Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270][int(rng.integers(3))]
        return lambda: _jpeg(im.transpose(turn), 90), "jpg"
    if name == "mirror":
        return lambda: _png(ImageOps.mirror(im)), "png"
    if name == "watermark":
        corner = int(rng.integers(4))
        return lambda: _jpeg(_watermark(im, corner), 88), "jpg"
    if name == "blur":
        r = float(rng.uniform(0.8, 1.5))
        return lambda: _jpeg(im.filter(ImageFilter.GaussianBlur(r)), 88), "jpg"
    if name == "grain":
        sigma, noise_seed = float(rng.uniform(5, 10)), int(rng.integers(2**31))
        return lambda: _png(_tone(im, lambda a: a + np.random.default_rng(noise_seed).normal(0, sigma, a.shape))), "png"
    raise ValueError(name)


def _watermark(im: Image.Image, corner: int) -> Image.Image:
    """A small opaque box with a credit line in one corner (about 4% of the picture)."""
    out = im.copy()
    w, h = out.size
    bw, bh = round(w * 0.28), round(h * 0.12)
    x = 4 if corner in (0, 2) else w - bw - 4
    y = 4 if corner in (0, 1) else h - bh - 4
    draw = ImageDraw.Draw(out)
    draw.rectangle([x, y, x + bw, y + bh], fill=255 if out.mode == "L" else (250, 250, 250))
    draw.text((x + 3, y + 2), "(c) ARCHIVE", font=ImageFont.load_default(size=max(9, bh // 2)),
              fill=0 if out.mode == "L" else (20, 20, 20))
    return out
