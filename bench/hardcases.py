"""Images that must not match each other, and low-information images.

Each is a picture in its own right: any link between two of them is a false match. The
crop and burst pairs are cut from sources that are not originals in the corpus, so a link
to an original's copies cannot be a real crop relation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance

Rng = np.random.Generator


def neighbouring_crops(im: Image.Image, rng: Rng) -> tuple[Image.Image, Image.Image, dict]:
    """Two windows side by side, each 55% of the width and the full height, overlapping by
    20-40% of a window's width (less than half): two photographs taken from one spot."""
    w, h = im.size
    ww = round(w * 0.55)
    ov = round(ww * rng.uniform(0.20, 0.40))
    span = 2 * ww - ov
    x0 = int(rng.integers(0, max(1, w - span + 1)))
    a = im.crop((x0, 0, x0 + ww, h))
    b = im.crop((x0 + ww - ov, 0, x0 + span, h))
    return a, b, {"window_width": ww, "overlap_fraction": round(ov / ww, 3), "x0": x0}


def burst_pair(im: Image.Image, rng: Rng) -> tuple[Image.Image, Image.Image, dict]:
    """Two 75% windows whose offsets differ by 15-25% in x and y, the second slightly
    brighter or darker: consecutive frames of a burst, neither containing the other."""
    w, h = im.size
    ww, wh = round(w * 0.75), round(h * 0.75)
    dx, dy = round(w * rng.uniform(0.15, 0.25)), round(h * rng.uniform(0.15, 0.25))
    ax = int(rng.integers(0, max(1, w - ww - dx + 1)))
    ay = int(rng.integers(0, max(1, h - wh - dy + 1)))
    # Random direction: the second window moves right or left, down or up.
    sx, sy = (ax, ax + dx) if rng.integers(2) else (ax + dx, ax)
    ty, uy = (ay, ay + dy) if rng.integers(2) else (ay + dy, ay)
    a = im.crop((sx, ty, sx + ww, ty + wh))
    exposure = float(rng.uniform(1.05, 1.12) if rng.integers(2) else rng.uniform(0.88, 0.95))
    b = ImageEnhance.Brightness(im.crop((sy, uy, sy + ww, uy + wh))).enhance(exposure)
    return a, b, {"window": [ww, wh], "offset_difference": [dx, dy], "exposure": round(exposure, 3)}


def _noise(rng: Rng, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    return rng.normal(0.0, sigma, shape).astype(np.float32)


def blank_page(rng: Rng) -> tuple[Image.Image, dict]:
    w, h = int(rng.integers(1000, 1400)), int(rng.integers(1400, 1800))
    base = float(rng.uniform(238, 250))
    slope = float(rng.uniform(2, 8))
    ramp = np.linspace(-slope / 2, slope / 2, h, dtype=np.float32)[:, None]
    tint = np.array([0.0, -0.5, -2.0], dtype=np.float32)  # paper is slightly warm
    sigma = float(rng.uniform(0.8, 2.0))
    arr = base + ramp[..., None] + tint + _noise(rng, (h, w, 3), sigma)
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8)), {"size": [w, h], "level": round(base, 1), "gradient": round(slope, 2), "noise": round(sigma, 2)}


def grey_card(rng: Rng) -> tuple[Image.Image, dict]:
    w, h = int(rng.integers(700, 1100)), int(rng.integers(500, 800))
    level = float(rng.uniform(60, 200))
    sigma = float(rng.uniform(0.5, 1.5))
    arr = level + _noise(rng, (h, w), sigma)
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8)).convert("RGB"), {"size": [w, h], "level": round(level, 1), "noise": round(sigma, 2)}


def colour_target(rng: Rng) -> tuple[Image.Image, dict]:
    cols, rows = int(rng.integers(2, 4)), int(rng.integers(1, 3))
    pw, ph = int(rng.integers(180, 260)), int(rng.integers(180, 260))
    im = Image.new("RGB", (cols * pw, rows * ph))
    d = ImageDraw.Draw(im)
    colours = []
    for r in range(rows):
        for c in range(cols):
            col = tuple(int(x) for x in rng.integers(20, 236, 3))
            colours.append(col)
            d.rectangle((c * pw, r * ph, (c + 1) * pw - 1, (r + 1) * ph - 1), fill=col)
    arr = np.asarray(im, dtype=np.float32) + _noise(rng, (im.height, im.width, 3), 1.0)
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8)), {"patches": [cols, rows], "colours": colours}


def clipart(rng: Rng) -> tuple[Image.Image, dict]:
    """One flat shape on a transparent background (saved as RGBA PNG)."""
    s = int(rng.integers(400, 700))
    im = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    col = tuple(int(x) for x in rng.integers(0, 256, 3)) + (255,)
    shape = str(rng.choice(["circle", "square", "triangle", "star"]))
    r = s * float(rng.uniform(0.25, 0.4))
    cx, cy = s / 2 + s * float(rng.uniform(-0.08, 0.08)), s / 2 + s * float(rng.uniform(-0.08, 0.08))
    if shape == "circle":
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=col)
    elif shape == "square":
        d.rectangle((cx - r, cy - r, cx + r, cy + r), fill=col)
    elif shape == "triangle":
        d.polygon([(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)], fill=col)
    else:
        pts = []
        for k in range(10):
            rr = r if k % 2 == 0 else r * 0.45
            ang = np.pi / 2 + k * np.pi / 5
            pts.append((cx + rr * np.cos(ang), cy - rr * np.sin(ang)))
        d.polygon(pts, fill=col)
    return im, {"shape": shape, "colour": col[:3], "size": s}


LOW_INFO_KINDS = {"blank_page": blank_page, "grey_card": grey_card, "colour_target": colour_target, "clipart": clipart}
LOW_INFO_PER_KIND = 8


def low_information_images(seed: int) -> Iterator[tuple[str, str, Image.Image, dict]]:
    """(name, kind, image, parameters), a fixed number of each kind from one seed."""
    for k_index, (kind, make) in enumerate(LOW_INFO_KINDS.items()):
        for i in range(LOW_INFO_PER_KIND):
            rng = np.random.default_rng([seed, 7919, k_index, i])
            im, params = make(rng)
            yield f"{kind}_{i}", kind, im, params


def save_low_info(im: Image.Image, kind: str, index: int, out: Path) -> Path:
    """Clipart stays PNG (it has transparency); scans of pages and cards alternate PNG / JPEG."""
    if kind == "clipart" or index % 2 == 0:
        path = out.with_suffix(".png")
        im.save(path, "PNG")
    else:
        path = out.with_suffix(".jpg")
        im.save(path, "JPEG", quality=90)
    return path
