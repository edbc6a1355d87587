"""Small JPEG previews of the node's own files, embedded so the report needs nothing else."""

from __future__ import annotations

import base64
import io
import warnings

import numpy as np
from PIL import Image, ImageOps

MAX_SIDE = 160
_heif_checked = False


def _enable_heif() -> None:
    # Phones and many scanners write HEIC; without the plugin those get a placeholder.
    global _heif_checked
    if _heif_checked:
        return
    _heif_checked = True
    try:
        import pillow_heif  # type: ignore[import-not-found]
    except ImportError:
        return
    pillow_heif.register_heif_opener()


def _rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        # Wide greyscale would clip to white under a plain convert: scale to its own range.
        a = np.asarray(image, dtype=np.float64)
        hi = float(a.max()) or 1.0
        return Image.fromarray((a * (255.0 / hi)).clip(0, 255).astype(np.uint8), "L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


def data_uri(path: str, max_side: int = MAX_SIDE) -> str | None:
    """A base64 JPEG data URI at most ``max_side`` pixels on a side, or None when the file
    cannot be read now (moved, deleted, not local, or undecodable)."""
    if "://" in path:
        return None
    _enable_heif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                image.draft("RGB", (max_side, max_side))  # JPEG: decode at reduced DCT scale
                upright = ImageOps.exif_transpose(image)
                upright.thumbnail((max_side, max_side))
                small = _rgb(upright)
        buf = io.BytesIO()
        small.save(buf, "JPEG", quality=80)
    except Exception:  # any failure only costs the preview, never the report
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
