"""The copies an archive really holds of one photograph, one class per kind of change.

Every class writes a real file in the stated format, so each method reads what a node would
read. Random parameters come from a generator seeded by (original, class), so one class can
change without reshuffling the others.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, PngImagePlugin

Rng = np.random.Generator
#: (image, rng, output path without suffix) -> (file written, parameters used)
Maker = Callable[[Image.Image, Rng, Path], tuple[Path, dict]]

EDIT_QUALITY = 90  # edited copies are saved as JPEG q90, as an archive's derivative would be

REENCODED = frozenset({"reencoded"})
PIXELS = frozenset({"identical_pixels"})
TONE = frozenset({"tone_variant"})
CROPPED = frozenset({"cropped"})
ROTATED = frozenset({"rotated_mirrored"})
EDITED = frozenset({"edited"})
RESCANNED = frozenset({"rescanned"})
# Blur and grain change every pixel without changing the picture: either label is fair.
DEGRADED = frozenset({"reencoded", "edited"})


@dataclass(frozen=True)
class VariantClass:
    name: str
    group: str  # column group in the report
    expected: frozenset[str]  # relations accepted as the right label
    make: Maker
    label_reference: str = "master"  # the file whose link to this one carries the label


def rng_for(seed: int, original: str, cls: str) -> Rng:
    return np.random.default_rng([seed, zlib.crc32(original.encode()), zlib.crc32(cls.encode())])


def _save_jpeg(im: Image.Image, out: Path, quality: int, **kw) -> Path:
    path = out.with_suffix(".jpg")
    im.save(path, "JPEG", quality=quality, **kw)
    return path


def _jpeg(q: int) -> Maker:
    def make(im: Image.Image, rng: Rng, out: Path) -> tuple[Path, dict]:
        return _save_jpeg(im, out, q), {"quality": q}

    return make


def _scale(factor: float) -> Maker:
    def make(im: Image.Image, rng: Rng, out: Path) -> tuple[Path, dict]:
        size = (max(1, round(im.width * factor)), max(1, round(im.height * factor)))
        return _save_jpeg(im.resize(size, Image.Resampling.LANCZOS), out, 85), {"size": size, "quality": 85}

    return make


def _thumb(im: Image.Image, rng: Rng, out: Path) -> tuple[Path, dict]:
    t = im.copy()
    t.thumbnail((256, 256), Image.Resampling.LANCZOS)
    return _save_jpeg(t, out, 85), {"size": t.size, "quality": 85}


def _tiff16(im: Image.Image, rng: Rng, out: Path) -> tuple[Path, dict]:
    import tifffile

    path = out.with_suffix(".tif")
    # x257 maps 0..255 exactly onto 0..65535: the same picture, stored at 16 bits.
    tifffile.imwrite(path, np.asarray(im, dtype=np.uint16) * 257, photometric="rgb")
    return path, {"bits": 16, "compression": "none"}


def _tiff_lzw(im: Image.Image, rng: Rng, out: Path) -> tuple[Path, dict]:
    path = out.with_suffix(".tif")
    im.save(path, "TIFF", compression="tiff_lzw")
    return path, {"compression": "lzw"}


def _png(im: Image.Image, rng: Rng, out: Path) -> tuple[Path, dict]:
    path = out.with_suffix(".png")
    # Other compression level and a text chunk: other bytes, the same pixels.
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "archive export")
    im.save(path, "PNG", compress_level=1, pnginfo=info)
    return path, {"compress_level": 1}


def _webp(im: Image.Image, rng: Rng, out: Path) -> tuple[Path, dict]:
    path = out.with_suffix(".webp")
    im.save(path, "WEBP", quality=80)
    return path, {"quality": 80}


def heic_available() -> str | None:
    """None when HEIC can be written, else why not."""
    try:
        import pillow_heif  # noqa: F401
    except Exception as exc:  # an import error or a broken native library
        return f"pillow-heif unavailable: {exc}"
    return None


def _heic(im: Image.Image, rng: Rng, out: Path) -> tuple[Path, dict]:
    import pillow_heif

    pillow_heif.register_heif_opener()
    path = out.with_suffix(".heic")
    im.save(path, "HEIF", quality=80)
    return path, {"quality": 80}


def _exif_segment(fields: dict[int, str], exif_fields: dict[int, str]) -> bytes:
    e = Image.Exif()
    for k, v in fields.items():
        e[k] = v
    sub = e.get_ifd(0x8769)
    for k, v in exif_fields.items():
        sub[k] = v
    payload = e.tobytes()  # starts with b"Exif\0\0"
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def _splice(jpeg: bytes, segments: bytes) -> bytes:
    """Insert segments after SOI (and APP0 if present), leaving the coded image untouched."""
    pos = 2
    if jpeg[2:4] == b"\xff\xe0":
        pos = 4 + struct.unpack(">H", jpeg[4:6])[0]
    return jpeg[:pos] + segments + jpeg[pos:]


def _q90_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _jpeg_q90_exif(im: Image.Image, rng: Rng, out: Path) -> tuple[Path, dict]:
    seg = _exif_segment({0x010F: "Camera A", 0x0110: "Model 1", 0x0131: "Scanner 2.0"},
                        {36867: "1998:04:12 10:20:30"})
    path = out.with_suffix(".jpg")
    path.write_bytes(_splice(_q90_bytes(im), seg))
    return path, {"quality": 90, "exif": "A"}


def _metadata(im: Image.Image, rng: Rng, out: Path) -> tuple[Path, dict]:
    seg = _exif_segment({0x010F: "Camera B", 0x010E: "Catalogued copy", 0x013B: "Archive staff",
                         0x0131: "Catalogue 7.1"}, {36867: "2003:11:05 08:00:00"})
    comment = b"Digitised for the reading room"
    com = b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment
    path = out.with_suffix(".jpg")
    path.write_bytes(_splice(_q90_bytes(im), seg + com))
    return path, {"same_coded_image_as": "jpeg_q90", "exif": "B", "comment": comment.decode()}


def _greyscale(im: Image.Image, rng: Rng, out: Path) -> tuple[Path, dict]:
    return _save_jpeg(im.convert("L"), out, EDIT_QUALITY), {}


def _signed(rng: Rng, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi) * rng.choice([-1.0, 1.0]))


def _brightness_contrast(im: Image.Image, rng: Rng, out: Path) -> tuple[Path, dict]:
    b = 1 + _signed(rng, 0.10, 0.25)
    c = 1 + _signed(rng, 0.10, 0.25)
    e = ImageEnhance.Contrast(ImageEnhance.Brightness(im).enhance(b)).enhance(c)
    return _save_jpeg(e, out, EDIT_QUALITY), {"brightness": round(b, 3), "contrast": round(c, 3)}


def _white_balance(im: Image.Image, rng: Rng, out: Path) -> tuple[Path, dict]:
    a = float(rng.uniform(0.06, 0.15))
    warm = bool(rng.integers(2))
    gains = (1 + a, 1.0, 1 - a) if warm else (1 - a, 1.0, 1 + a)
    arr = np.asarray(im, dtype=np.float32) * np.array(gains, dtype=np.float32)
    e = Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8))
    return _save_jpeg(e, out, EDIT_QUALITY), {"gains": [round(g, 3) for g in gains]}


def _saturation(im: Image.Image, rng: Rng, out: Path) -> tuple[Path, dict]:
    f = float(rng.uniform(0.4, 0.7) if rng.integers(2) else rng.uniform(1.3, 1.7))
    return _save_jpeg(ImageEnhance.Color(im).enhance(f), out, EDIT_QUALITY), {"factor": round(f, 3)}


def _gamma(g: float) -> Maker:
    def make(im: Image.Image, rng: Rng, out: Path) -> tuple[Path, dict]:
        lut = [round(255 * (i / 255) ** g) for i in range(256)] * len(im.getbands())
        return _save_jpeg(im.point(lut), out, EDIT_QUALITY), {"gamma": g}

    return make


def _crop_centre(im: Image.Image, rng: Rng, out: Path) -> tuple[Path, dict]:
    w, h = im.size
    box = (round(w * 0.05), round(h * 0.05), round(w * 0.95), round(h * 0.95))
    return _save_jpeg(im.crop(box), out, EDIT_QUALITY), {"box": box}


def _crop_side(im: Image.Image, rng: Rng, out: Path) -> tuple[Path, dict]:
    w, h = im.size
    side = str(rng.choice(["left", "right", "top", "bottom"]))
    f = float(rng.uniform(0.10, 0.25))
    box = {
        "left": (round(w * f), 0, w, h), "right": (0, 0, round(w * (1 - f)), h),
        "top": (0, round(h * f), w, h), "bottom": (0, 0, w, round(h * (1 - f))),
    }[side]
    return _save_jpeg(im.crop(box), out, EDIT_QUALITY), {"side": side, "fraction": round(f, 3)}


BORDER_COLOURS = {"white": (255, 255, 255), "black": (0, 0, 0), "grey": (128, 128, 128), "cream": (255, 253, 208)}


def _border(im: Image.Image, rng: Rng, out: Path) -> tuple[Path, dict]:
    f = float(rng.uniform(0.03, 0.08))
    name = str(rng.choice(list(BORDER_COLOURS)))
    m = max(1, round(min(im.size) * f))
    canvas = Image.new("RGB", (im.width + 2 * m, im.height + 2 * m), BORDER_COLOURS[name])
    canvas.paste(im, (m, m))
    return _save_jpeg(canvas, out, EDIT_QUALITY), {"fraction_of_short_side": round(f, 3), "colour": name}


def _skew_image(im: Image.Image, angle: float, fill) -> Image.Image:
    return im.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=fill)


def _skew(im: Image.Image, rng: Rng, out: Path) -> tuple[Path, dict]:
    a = _signed(rng, 1.0, 4.0)
    return _save_jpeg(_skew_image(im, a, (255, 255, 255)), out, EDIT_QUALITY), {"degrees": round(a, 3)}


def _transpose(op: Image.Transpose) -> Maker:
    def make(im: Image.Image, rng: Rng, out: Path) -> tuple[Path, dict]:
        return _save_jpeg(im.transpose(op), out, EDIT_QUALITY), {"transpose": op.name}

    return make


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=max(8, size))


def _watermark(im: Image.Image, rng: Rng, out: Path) -> tuple[Path, dict]:
    w, h = im.size
    bw, bh = round(w * rng.uniform(0.28, 0.40)), round(h * rng.uniform(0.06, 0.09))
    margin = round(min(w, h) * 0.03)
    corner = str(rng.choice(["top-left", "top-right", "bottom-left", "bottom-right"]))
    x = margin if "left" in corner else w - margin - bw
    y = margin if "top" in corner else h - margin - bh
    layer = Image.new("RGBA", im.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    d.rectangle((x, y, x + bw, y + bh), fill=(255, 255, 255, 110))
    d.text((x + bw // 2, y + bh // 2), "\u00a9 City Archive 1987", fill=(0, 0, 0, 170),
           font=_font(int(bh * 0.55)), anchor="mm")
    e = Image.alpha_composite(im.convert("RGBA"), layer).convert("RGB")
    return _save_jpeg(e, out, EDIT_QUALITY), {"corner": corner, "box": [bw, bh], "alpha": 110 / 255}


def _overlay(im: Image.Image, rng: Rng, out: Path) -> tuple[Path, dict]:
    w, h = im.size
    e = im.copy()
    d = ImageDraw.Draw(e)
    area = float(rng.uniform(0.018, 0.024))
    if rng.integers(2):
        bh = max(4, round(h * area / 0.6))  # a caption bar across 60% of the width
        bw = round(w * 0.6)
        x, y = (w - bw) // 2, h - bh - round(h * 0.03)
        d.rectangle((x, y, x + bw, y + bh), fill=(20, 20, 20))
        d.text((x + bw // 2, y + bh // 2), "Harbour, 1932", fill=(240, 240, 240), font=_font(int(bh * 0.7)), anchor="mm")
        kind = "caption_bar"
    else:
        side = round((w * h * area) ** 0.5)
        x, y = w - side - round(w * 0.03), round(h * 0.03)
        d.rectangle((x, y, x + side, y + side), fill=(180, 30, 40))
        d.ellipse((x + side // 5, y + side // 5, x + 4 * side // 5, y + 4 * side // 5), fill=(250, 250, 250))
        kind = "logo"
    return _save_jpeg(e, out, EDIT_QUALITY), {"kind": kind, "area": round(area, 4)}


def _blur(im: Image.Image, rng: Rng, out: Path) -> tuple[Path, dict]:
    r = max(im.size) * float(rng.uniform(0.002, 0.004))
    return _save_jpeg(im.filter(ImageFilter.GaussianBlur(r)), out, EDIT_QUALITY), {"radius_px": round(r, 2)}


def _grain(im: Image.Image, rng: Rng, out: Path) -> tuple[Path, dict]:
    s = float(rng.uniform(10, 14))
    arr = np.asarray(im, dtype=np.float32) + rng.normal(0, s, (im.height, im.width, 3)).astype(np.float32)
    e = Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8))
    return _save_jpeg(e, out, EDIT_QUALITY), {"sigma": round(s, 2)}


def _rescan(im: Image.Image, rng: Rng, out: Path) -> tuple[Path, dict]:
    a = _signed(rng, 1.0, 3.0)
    c = float(rng.uniform(1.2, 1.3))
    f = float(rng.uniform(0.5, 0.7))
    g = ImageEnhance.Contrast(_skew_image(im.convert("L"), a, 255)).enhance(c)
    g = g.resize((max(1, round(g.width * f)), max(1, round(g.height * f))), Image.Resampling.LANCZOS)
    return _save_jpeg(g, out, 80), {"degrees": round(a, 3), "contrast": round(c, 3), "scale": round(f, 3), "quality": 80}


def _crop_box(im: Image.Image, cuts: dict[str, float]) -> tuple[int, int, int, int]:
    """The box left after cutting each named side by that fraction of the picture's size."""
    w, h = im.size
    return (round(w * cuts.get("left", 0.0)), round(h * cuts.get("top", 0.0)),
            round(w * (1 - cuts.get("right", 0.0))), round(h * (1 - cuts.get("bottom", 0.0))))


def _crop_cuts(im: Image.Image, out: Path, cuts: dict[str, float], extra: dict) -> tuple[Path, dict]:
    box = _crop_box(im, cuts)
    return _save_jpeg(im.crop(box), out, EDIT_QUALITY), extra | {"cuts": {k: round(v, 3) for k, v in cuts.items()}, "box": box}


ADJACENT = {"left": ("top", "bottom"), "right": ("top", "bottom"), "top": ("left", "right"), "bottom": ("left", "right")}


def _crop_two_sides(im: Image.Image, rng: Rng, out: Path) -> tuple[Path, dict]:
    # A print trimmed on one side and straightened on a neighbouring one: a window that no
    # single-side search finds.
    side = str(rng.choice(list(ADJACENT)))
    other = str(rng.choice(ADJACENT[side]))
    return _crop_cuts(im, out, {side: float(rng.uniform(0.15, 0.25)), other: float(rng.uniform(0.02, 0.06))}, {})


def _crop_corner(im: Image.Image, rng: Rng, out: Path) -> tuple[Path, dict]:
    corner = str(rng.choice(["top-left", "top-right", "bottom-left", "bottom-right"]))
    # Keeping a corner cuts the two sides opposite it.
    x = "right" if "left" in corner else "left"
    y = "bottom" if "top" in corner else "top"
    return _crop_cuts(im, out, {x: float(rng.uniform(0.08, 0.25)), y: float(rng.uniform(0.08, 0.25))},
                      {"corner_kept": corner})


def _crop_offcentre(im: Image.Image, rng: Rng, out: Path) -> tuple[Path, dict]:
    return _crop_cuts(im, out, {s: float(rng.uniform(0.02, 0.15)) for s in ("left", "top", "right", "bottom")}, {})


MAT_COLOURS = {"off-white": (243, 240, 232), "cream": (238, 229, 206), "light grey": (206, 206, 203), "black": (22, 22, 22)}
SHADOW_SIDES = (("top", "left"), ("top", "right"), ("bottom", "left"), ("bottom", "right"))


def _noisy(size: tuple[int, int], colour: tuple[int, int, int], sigma: float, rng: Rng) -> np.ndarray:
    w, h = size
    return np.asarray(colour, dtype=np.float32) + rng.normal(0, sigma, (h, w, 1)).astype(np.float32)


def _matted_print(im: Image.Image, rng: Rng, out: Path) -> tuple[Path, dict]:
    # A print in a wide gallery mat, weighted at the bottom, with the bevel of the window cut.
    w, h = im.size
    short = min(w, h)
    f = float(rng.uniform(0.10, 0.20))
    m = max(2, round(short * f))
    weight = float(rng.uniform(1.2, 1.4))
    mb = round(m * weight)
    name = str(rng.choice(list(MAT_COLOURS)))
    colour = MAT_COLOURS[name]
    sigma = float(rng.uniform(1.0, 2.0))
    bevel = max(1, round(short * float(rng.uniform(0.005, 0.01))))
    sides = SHADOW_SIDES[int(rng.integers(len(SHADOW_SIDES)))]
    canvas = _noisy((w + 2 * m, h + m + mb), colour, sigma, rng)
    # The bevel shows the mat board's lighter core, on every mat colour.
    core = np.asarray(colour, dtype=np.float32) * 0.35 + 0.65 * 248
    x0, y0, x1, y1 = m - bevel, m - bevel, m + w + bevel, m + h + bevel
    canvas[y0:y1, x0:x1] = core + rng.normal(0, sigma, (y1 - y0, x1 - x0, 1)).astype(np.float32)
    pic = np.asarray(im, dtype=np.float32).copy()
    # The bevel's edge casts a thin shadow onto the print along two sides.
    s = max(1, bevel // 2 + 1)
    for side in sides:
        sl = {"top": np.s_[:s, :], "bottom": np.s_[-s:, :], "left": np.s_[:, :s], "right": np.s_[:, -s:]}[side]
        pic[sl] *= 0.6
    canvas[m:m + h, m:m + w] = pic
    e = Image.fromarray(np.clip(canvas + 0.5, 0, 255).astype(np.uint8))
    return _save_jpeg(e, out, EDIT_QUALITY), {"mat_fraction_of_short_side": round(f, 3), "bottom_weight": round(weight, 3),
                                              "colour": name, "noise": round(sigma, 2), "bevel_px": bevel,
                                              "shadow_sides": list(sides)}


#: The same stamp on every picture: unrelated pictures then carry an identical box.
CAPTION_TEXT = ("MUNICIPAL ARCHIVE", "Photographic collection  \u00b7  Inv. 1987/0214")


def _caption_box(im: Image.Image, rng: Rng, out: Path) -> tuple[Path, dict]:
    w, h = im.size
    bw, bh = round(w * 0.35), round(h * 0.09)
    x, y = round(w * 0.04), h - round(h * 0.04) - bh
    opacity = float(rng.uniform(0.85, 0.95))
    layer = Image.new("RGBA", im.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    d.rectangle((x, y, x + bw - 1, y + bh - 1), fill=(255, 255, 255, round(255 * opacity)))
    # Two lines sized to fill the box whatever its proportions.
    size = max(8, int(bh * 0.36))
    while size > 8:
        f = _font(size)
        if max(d.textlength(t, font=f) for t in CAPTION_TEXT) <= bw * 0.92:
            break
        size -= 1
    f = _font(size)
    d.text((x + bw // 2, y + round(bh * 0.30)), CAPTION_TEXT[0], fill=(25, 25, 25, 255), font=f, anchor="mm")
    f2 = _font(max(8, round(size * 0.8)))
    d.text((x + bw // 2, y + round(bh * 0.72)), CAPTION_TEXT[1], fill=(45, 45, 45, 255), font=f2, anchor="mm")
    e = Image.alpha_composite(im.convert("RGBA"), layer).convert("RGB")
    return _save_jpeg(e, out, EDIT_QUALITY), {"box": [x, y, bw, bh], "opacity": round(opacity, 3), "font_px": size}


def _scan_bed(im: Image.Image, rng: Rng, out: Path) -> tuple[Path, dict]:
    # A print laid askew and off-centre on a flatbed scanner, its shadow along two edges.
    w, h = im.size
    a = _signed(rng, 0.5, 4.0)
    print_ = im.convert("RGBA").rotate(a, resample=Image.Resampling.BICUBIC, expand=True)
    pw, ph = print_.size
    margins = {"left": float(rng.uniform(0.06, 0.15)), "right": float(rng.uniform(0.06, 0.15)),
               "top": float(rng.uniform(0.06, 0.15)), "bottom": float(rng.uniform(0.06, 0.15))}
    ml, mr = round(w * margins["left"]), round(w * margins["right"])
    mt, mb = round(h * margins["top"]), round(h * margins["bottom"])
    tone = float(rng.uniform(200, 235))
    sigma = float(rng.uniform(2.0, 3.0))
    bed = _noisy((pw + ml + mr, ph + mt + mb), (tone, tone, tone), sigma, rng)
    sides = SHADOW_SIDES[int(rng.integers(len(SHADOW_SIDES)))]
    off = max(1, round(min(w, h) * 0.01))
    dx = off if "right" in sides else -off
    dy = off if "bottom" in sides else -off
    alpha = np.zeros(bed.shape[:2], dtype=np.float32)
    pa = np.asarray(print_.getchannel("A"), dtype=np.float32) / 255
    alpha[mt + dy:mt + dy + ph, ml + dx:ml + dx + pw] = pa
    shadow = np.asarray(Image.fromarray((alpha * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(off / 2)),
                        dtype=np.float32) / 255
    bed *= (1 - 0.18 * shadow)[..., None]
    scan = Image.fromarray(np.clip(bed + 0.5, 0, 255).astype(np.uint8)).convert("RGBA")
    scan.alpha_composite(print_, (ml, mt))
    return _save_jpeg(scan.convert("RGB"), out, 85), {"degrees": round(a, 3), "margins": {k: round(v, 3) for k, v in margins.items()},
                                                      "bed_tone": round(tone, 1), "noise": round(sigma, 2),
                                                      "shadow_sides": list(sides), "quality": 85}


CLASSES: tuple[VariantClass, ...] = (
    VariantClass("jpeg_q95", "recompression", REENCODED, _jpeg(95)),
    VariantClass("jpeg_q75", "recompression", REENCODED, _jpeg(75)),
    VariantClass("jpeg_q50", "recompression", REENCODED, _jpeg(50)),
    VariantClass("jpeg_q20", "recompression", REENCODED, _jpeg(20)),
    VariantClass("scale_50", "scale", REENCODED, _scale(0.5)),
    VariantClass("scale_25", "scale", REENCODED, _scale(0.25)),
    VariantClass("thumb_256", "scale", REENCODED, _thumb),
    VariantClass("tiff_16bit", "format", PIXELS, _tiff16),
    VariantClass("tiff_lzw", "format", PIXELS, _tiff_lzw),
    VariantClass("png", "format", PIXELS, _png),
    VariantClass("webp_q80", "format", REENCODED, _webp),
    VariantClass("heic", "format", REENCODED, _heic),
    VariantClass("jpeg_q90_exif", "metadata", REENCODED, _jpeg_q90_exif),
    VariantClass("metadata", "metadata", PIXELS, _metadata, label_reference="jpeg_q90_exif"),
    VariantClass("greyscale", "tone", frozenset({"greyscale"}), _greyscale),
    VariantClass("brightness_contrast", "tone", TONE, _brightness_contrast),
    VariantClass("white_balance", "tone", TONE, _white_balance),
    VariantClass("saturation", "tone", TONE, _saturation),
    VariantClass("gamma_0.7", "tone", TONE, _gamma(0.7)),
    VariantClass("gamma_1.4", "tone", TONE, _gamma(1.4)),
    VariantClass("crop_centre_10", "crop", CROPPED, _crop_centre),
    VariantClass("crop_side", "crop", CROPPED, _crop_side),
    VariantClass("border", "border", frozenset({"bordered"}), _border),
    VariantClass("skew", "scan", RESCANNED, _skew),
    VariantClass("rotate_90", "orientation", ROTATED, _transpose(Image.Transpose.ROTATE_270)),
    VariantClass("rotate_180", "orientation", ROTATED, _transpose(Image.Transpose.ROTATE_180)),
    VariantClass("rotate_270", "orientation", ROTATED, _transpose(Image.Transpose.ROTATE_90)),
    VariantClass("mirror", "orientation", ROTATED, _transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
    VariantClass("watermark", "edit", EDITED, _watermark),
    VariantClass("overlay", "edit", EDITED, _overlay),
    VariantClass("blur", "degradation", DEGRADED, _blur),
    VariantClass("grain", "degradation", DEGRADED, _grain),
    VariantClass("rescan", "scan", RESCANNED, _rescan),
    VariantClass("crop_two_sides", "crop", CROPPED, _crop_two_sides),
    VariantClass("crop_corner", "crop", CROPPED, _crop_corner),
    VariantClass("crop_offcentre", "crop", CROPPED, _crop_offcentre),
    VariantClass("matted_print", "border", frozenset({"bordered"}), _matted_print),
    VariantClass("caption_box", "edit", EDITED, _caption_box),
    VariantClass("scan_bed", "scan", RESCANNED, _scan_bed),
)
CLASS_BY_NAME = {c.name: c for c in CLASSES}
