"""Reading one image file into the facts a node keeps and shares (the I/O edge).

Each file is read once for its SHA-256 and decoded once. JPEGs are decoded at reduced
size (Pillow's ``draft``: libjpeg scales in the DCT domain, so most of the decoding work
is never done) and their pixel digest is taken over the coded image data instead of
decoded pixels; other formats are decoded in full, digested, then reduced. Everything
else (luminance for the fingerprints, tone statistics, EXIF facts) comes from that one
decoded image.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import stat
import struct
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dedup.fingerprint import dct
from dedup.fingerprint.suite import Suite, compute
from dedup.fingerprint.wire import to_wire

from .rights import rights_of

#: Longest side of the luminance array handed to the fingerprint code. The fingerprints
#: average it onto a 128x128 grid, so more resolution would only cost time.
LUMINANCE_MAX_SIDE = 320
#: A JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8) whose long side is at
#: least this.
DRAFT_MIN_SIDE = 320

_CHUNK = 1 << 20
_HEAD = 64
_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 36867
_LOSSY_FORMATS = frozenset({"JPEG", "MPO", "HEIF", "AVIF", "JPEG2000"})
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")
_PIXEL_DIGEST_TAG = b"dedup-pixels/1"
_JPEG_DIGEST_TAG = b"dedup-jpeg-coded/1"

# IJG (libjpeg) base tables, ITU T.81 Annex K, in natural (row-major) order.
_IJG_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
], dtype=np.int64)
_IJG_CHROMA = np.array([
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
] + [99] * 32, dtype=np.int64)


class ImageError(Exception):
    """The file cannot be used as an image; the message says why, for a person."""


@dataclass(frozen=True)
class ImageFacts:
    """What a node learns from one file. Only ``fingerprints`` ever leaves the node.

    ``width``/``height`` are of the upright image (EXIF orientation applied);
    ``mode`` is the Pillow mode the file decodes to. ``fingerprints`` is empty
    when no valid fingerprint exists (smaller than 32x32, or a flat image whose
    hash is degenerate); ``low_information`` images must not be matched.
    """

    sha256: bytes
    pixel_digest: bytes
    width: int
    height: int
    bit_depth: int
    mode: str
    format: str
    format_family: str
    jpeg_quality: int | None
    capture_date: str | None
    low_information: bool
    fingerprints: tuple[tuple[str, int, bytes], ...]
    file_size: int = 0
    information: float = 0.0
    channels: int = 3
    frame_width: int = 0
    frame_height: int = 0
    skew_degrees: float = 0.0
    luma_mean: int = 0
    luma_spread: int = 0
    saturation: int = 0
    cast_blue: int = 0
    cast_red: int = 0
    #: (top, bottom, left, right) flat runs at the edges, in thousandths of the height or width
    flat_edges: tuple[int, int, int, int] = (0, 0, 0, 0)
    page_count: int = 1
    #: (a wire value of dedup.rights, the file's own notice, the field that decided)
    rights: tuple[str, str, str] = ("unknown", "", "")


def read_image(path: Path, *, max_pixels: int | None = None) -> ImageFacts:
    """Read, decode and describe one image file, or raise ImageError.

    ``max_pixels`` defaults to Pillow's ``Image.MAX_IMAGE_PIXELS``; larger
    images are refused as decompression bombs.
    """
    _register_optional_plugins()
    path = Path(path)
    try:
        handle = path.open("rb")
    except IsADirectoryError:
        raise ImageError(f"{path} is a directory, not an image file") from None
    except OSError as exc:
        raise ImageError(f"cannot open file: {exc.strerror or exc}") from exc
    with handle:
        return read_stream(handle, max_pixels=max_pixels)


#: Files up to this size are read into memory once, then hashed and decoded from there.
IN_MEMORY_BYTES = 64 << 20


def read_stream(handle: BinaryIO, *, max_pixels: int | None = None) -> ImageFacts:
    """As read_image, from an open binary stream (a file, or an object store's body)."""
    _register_optional_plugins()
    size = _remaining(handle)
    if size is not None and size > _RAW_MIN_BYTES:
        # An uncompressed TIFF is streamed once from the file: each band of rows is read into
        # one small buffer, hashed for the file's SHA-256 and the pixel digest, and reduced.
        facts = _read_raw_tiff(handle, size, max_pixels)
        if facts is not None:
            return facts
    # Read exactly what there is: a larger request would allocate (and fault in) its size.
    data = handle.read(IN_MEMORY_BYTES + 1 if size is None or size > IN_MEMORY_BYTES else size + 1)
    if size is not None and size < len(data) <= IN_MEMORY_BYTES:
        data += handle.read(IN_MEMORY_BYTES + 1 - len(data))  # the file grew since its size was taken
    if len(data) <= IN_MEMORY_BYTES:
        if not data:
            raise ImageError("empty file (0 bytes)")
        buffer = io.BytesIO(data)
        image = _decode(buffer, data[:_HEAD], max_pixels)
        with image:
            return _describe(image, buffer, data[:_HEAD], hashlib.sha256(data).digest(), len(data))
    if not handle.seekable():
        raise ImageError(f"a stream over {IN_MEMORY_BYTES} bytes must be seekable")
    handle.seek(0)
    sha256, size, head = _hash_file(handle)
    handle.seek(0)
    image = _decode(handle, head, max_pixels)
    with image:
        return _describe(image, handle, head, sha256, size)


def _remaining(handle: BinaryIO) -> int | None:
    """Bytes from the position to the end of a regular file, None for anything else."""
    try:
        st = os.fstat(handle.fileno())
        return max(0, st.st_size - handle.tell()) if stat.S_ISREG(st.st_mode) and handle.seekable() else None
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


#: Regular files from this size on are tried on the streamed path for uncompressed TIFFs.
_RAW_MIN_BYTES = 1 << 20
#: File bytes per band on that path: small enough for each band to stay in the CPU cache
#: while it is hashed twice and reduced.
_RAW_BAND_BYTES = 1 << 20
#: (mode, Pillow's raw mode) of the uncompressed layouts streamed: bytes per pixel in the file.
#: 16-bit RGB decodes to 8-bit RGB (the high byte of each sample).
_RAW_LAYOUTS = {("L", "L"): 1, ("RGB", "RGB"): 3, ("RGBA", "RGBA"): 4, ("RGB", "RGB;16L"): 6, ("RGB", "RGB;16B"): 6}


def _read_raw_tiff(handle: BinaryIO, size: int, max_pixels: int | None) -> ImageFacts | None:
    """The facts of an uncompressed, chunky, upright TIFF whose rows lie in one run of the
    file, read in one pass without decoding the whole image; None for anything else (the
    handle is then back at the start).

    Each band of rows is read once into a small buffer and, while it is in the CPU cache,
    hashed for the file's SHA-256, hashed for the pixel digest (an 8-bit file's rows are
    exactly the decoded pixel bytes; for a 16-bit file, the high bytes Pillow decodes to),
    turned into a Pillow band as Pillow's own decoder does and box-reduced into the working
    image. The digest, the working image and so the fingerprints are the ones a full decode
    gives (tests compare the two paths).
    """
    if handle.tell() != 0:
        return None
    head = handle.read(_HEAD)
    handle.seek(0)
    if head[:4] not in (b"II*\0", b"MM\0*"):
        return None
    image = _open(handle, head, max_pixels)
    with image:
        with _decoding_errors(image):
            plan = _raw_plan(image, size)
        if plan is not None:
            streamed = _stream_raw(handle, image, plan)
            if streamed is not None:
                sha256, nbytes, digest, work = streamed
                return _describe(image, handle, head, sha256, nbytes, (digest, work))
    handle.seek(0)
    return None


def _raw_plan(image: Image.Image, size: int) -> tuple[int, int, str] | None:
    """(offset of the first row, bytes per row, Pillow's raw mode) when the first page's
    rows can be streamed straight from the file, else None."""
    if image.format != "TIFF" or not image.tile or getattr(image, "_im", None) is not None:
        return None
    rawmode = image.tile[0][3][0] if image.tile[0][3] else None
    per_pixel = _RAW_LAYOUTS.get((image.mode, rawmode))
    width, height = image.size
    if per_pixel is None or width == 0 or height == 0:
        return None
    row = width * per_pixel
    first = image.tile[0][2]
    y = 0
    for name, (x0, y0, x1, y1), offset, args in image.tile:
        if (name != "raw" or tuple(args) not in ((rawmode, 0, 1), (rawmode, row, 1))
                or (x0, x1, y0) != (0, width, y) or y1 <= y0 or offset != first + y0 * row):
            return None
        y = y1
    if y != height or first + height * row > size or _orientation(image) != 1:
        return None
    return first, row, rawmode


def _stream_raw(handle: BinaryIO, image: Image.Image, plan: tuple[int, int, str]
                ) -> tuple[bytes, int, bytes, Image.Image] | None:
    """(file SHA-256, file size, pixel digest, reduced image) in one pass over the file; None
    when the file turns out shorter than its layout (then the generic path says why)."""
    first, row, rawmode = plan
    sixteen = ";16" in rawmode
    mode = image.mode
    width, height = image.size
    factor = _reduce_factor(width, height)
    rows = max(1, _RAW_BAND_BYTES // row)
    rows = max(factor, rows - rows % factor)  # whole boxes per band: each band reduces alone
    work = Image.new(mode, (-(-width // factor), -(-height // factor)))
    file_digest = hashlib.sha256()
    pixels = hashlib.sha256(_pixel_header(mode, width, height))
    handle.seek(0)
    if _hash_span(handle, first, file_digest) != first:
        return None
    buffer = memoryview(bytearray(rows * row))
    for top in range(0, height, rows):
        n = min(rows, height - top)
        band = buffer[:n * row]
        if _read_into(handle, band) != len(band):
            return None
        file_digest.update(band)
        piece = Image.frombuffer(mode, (width, n), band, "raw", rawmode, 0, 1)
        if sixteen:
            _hash_encoded(pixels, piece)  # the 8-bit values, packed as tobytes() would
        else:
            pixels.update(band)  # already the decoded pixel bytes
        work.paste(piece.reduce(factor) if factor > 1 else piece, (0, top // factor))
    rest = _hash_span(handle, None, file_digest)
    return file_digest.digest(), first + height * row + rest, pixels.digest(), work


def _read_into(handle: BinaryIO, view: memoryview) -> int:
    done = 0
    while done < len(view):
        got = handle.readinto(view[done:])
        if not got:
            break
        done += got
    return done


def _hash_span(handle: BinaryIO, count: int | None, digest: "hashlib._Hash") -> int:
    """Hash the next ``count`` bytes (None: to the end of the file); how many there were."""
    done = 0
    while count is None or done < count:
        chunk = handle.read(_CHUNK if count is None else min(_CHUNK, count - done))
        if not chunk:
            break
        digest.update(chunk)
        done += len(chunk)
    return done


def luminance(image: Image.Image) -> np.ndarray:
    """Float32 luminance on a 0-255 scale, box-reduced to under 2 x LUMINANCE_MAX_SIDE a side.

    Transparent pixels are composited onto white; 16-bit images keep their
    precision until the final float conversion. Reduction uses Pillow's
    integer ``reduce`` so every node gets the same array from the same pixels.
    """
    im = image
    full_scale = 255.0
    if im.mode in ("P", "PA"):
        im = im.convert("RGBA")
    elif im.mode == "1":
        im = im.convert("L")
    elif im.mode.startswith("I;16"):
        im = im.convert("I")
        full_scale = 65535.0
    elif im.mode == "I":
        # 32-bit integer files rarely say their range; infer the container's.
        top = im.getextrema()[1]
        full_scale = 255.0 if top <= 255 else 65535.0 if top <= 65535 else 2.0**32 - 1
    if im.mode in ("RGBA", "LA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba).convert("RGB")
    factor = _reduce_factor(*im.size)
    if factor > 1:
        im = im.reduce(factor)
    if im.mode == "I":
        return (np.asarray(im, dtype=np.float64) * (255.0 / full_scale)).astype(np.float32)
    if im.mode == "F":
        arr = np.nan_to_num(np.asarray(im, dtype=np.float32))
        # Float images are usually 0..1; anything else is taken as already 0..255.
        return arr * 255.0 if arr.size and float(arr.max()) <= 1.0 else arr
    if im.mode == "LAB":
        return np.asarray(im.getchannel(0), dtype=np.float32)
    if im.mode != "L":
        im = (im if im.mode == "RGB" else im.convert("RGB")).convert("L")
    return np.asarray(im, dtype=np.float32)


def estimate_jpeg_quality(tables: dict[int, list[int]] | None) -> int | None:
    """IJG quality (1-100) whose scaled standard tables best fit ``tables``.

    Pillow gives tables in natural order. Files from encoders that do not use
    IJG scaling still get the nearest IJG quality, which is only indicative.
    """
    if not tables:
        return None
    actual = [np.asarray(tables[k], dtype=np.int64) for k in sorted(tables)[:2]]
    if any(t.shape != (64,) for t in actual):
        return None
    err = np.zeros(100, dtype=np.int64)
    for base, table in zip((_IJG_LUMA, _IJG_CHROMA), actual):
        expected = (base[None, :] * _IJG_SCALES[:, None] + 50) // 100
        err += np.minimum(np.abs(np.clip(expected, 1, 255) - table).sum(axis=1),
                          np.abs(np.clip(expected, 1, 32767) - table).sum(axis=1))
    best = np.flatnonzero(err == err.min()) + 1
    return int(best[len(best) // 2])


#: IJG scale factor (percent) for each quality 1..100.
_IJG_SCALES = np.array([5000 // q if q < 50 else 200 - 2 * q for q in range(1, 101)], dtype=np.int64)


def _hash_file(handle: BinaryIO) -> tuple[bytes, int, bytes]:
    digest = hashlib.sha256()
    size = 0
    head = b""
    while chunk := handle.read(_CHUNK):
        if size == 0:
            head = chunk[:_HEAD]
        digest.update(chunk)
        size += len(chunk)
    return digest.digest(), size, head


def _decode(handle: BinaryIO, head: bytes, max_pixels: int | None) -> Image.Image:
    image = _open(handle, head, max_pixels)
    with _decoding_errors(image):
        image.load()
    return image


def _open(handle: BinaryIO, head: bytes, max_pixels: int | None) -> Image.Image:
    """The opened image, its size checked, a JPEG set to decode at reduced size; nothing decoded."""
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    # The warnings filter (in _decoding_errors) turns Pillow's bomb warning into an error;
    # the explicit size check below does the same job when threads race on it.
    with _decoding_errors(None):
        try:
            image = Image.open(handle)
        except UnidentifiedImageError as exc:
            raise ImageError(_unidentified_reason(head)) from exc
    with _decoding_errors(image):
        width, height = image.size
        if limit and width * height > limit:
            raise ImageError(
                f"decompression bomb: {width}x{height} = {width * height} pixels "
                f"exceeds the limit of {limit}"
            )
        image.info["dedup_full_size"] = (width, height)
        if image.format in ("JPEG", "MPO"):
            # Decode at the smallest DCT scale that still leaves enough pixels.
            # The short side must stay well above the fingerprints' minimum too, or a
            # long thin picture would lose its fingerprints.
            k = max(DRAFT_MIN_SIDE / max(width, height), 2 * dct.MIN_SIDE / max(1, min(width, height)))
            if k < 0.5:
                image.draft(image.mode if image.mode in ("L", "RGB") else "RGB",
                            (math.ceil(width * k), math.ceil(height * k)))
    return image


@contextmanager
def _decoding_errors(image: Image.Image | None) -> Iterator[None]:
    """Pillow's many exception types for bad data, as ImageError (the image closed)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except ImageError:
        _close(image)
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        _close(image)
        raise ImageError(f"decompression bomb: {exc}") from exc
    except MemoryError as exc:
        _close(image)
        raise ImageError("not enough memory to decode this image") from exc
    except Exception as exc:  # Pillow's decoders raise many types for bad data
        _close(image)
        reason = str(exc) or type(exc).__name__
        raise ImageError(f"corrupt or truncated image file: {reason}") from exc


def _close(image: Image.Image | None) -> None:
    if image is not None:
        image.close()


def _unidentified_reason(head: bytes) -> str:
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return (
            "HEIC/HEIF image, which this node cannot decode: "
            "install the pillow-heif package (pip install pillow-heif)"
        )
    if _looks_like_text(head):
        return "not an image: the file contains text"
    return "not an image, or an image format this node cannot read"


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # The sample may end inside a multi-byte character.
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return all(ch.isprintable() or ch in "\t\r\n\f" for ch in text)


def _page_count(image: Image.Image) -> int:
    """How many pages (frames) the file holds. Counting walks every page's directory, so a
    damaged later page is found here, after the first decoded: the file is refused as corrupt
    rather than catalogued with a page count that is not true."""
    try:
        return int(getattr(image, "n_frames", 1) or 1)
    except Exception as exc:  # Pillow raises many types for a bad directory (TypeError, KeyError, OSError)
        raise ImageError(f"corrupt or truncated image file: a later page is unreadable ({exc or type(exc).__name__})") from exc


def _describe(image: Image.Image, handle: BinaryIO, head: bytes, sha256: bytes, size: int,
              streamed: tuple[bytes, Image.Image] | None = None) -> ImageFacts:
    """The facts of an opened image: decoded, or with ``streamed`` (pixel digest, reduced
    image) already taken from the file by _read_raw_tiff."""
    fmt = image.format or "UNKNOWN"
    mode = image.mode
    is_jpeg = fmt in ("JPEG", "MPO")
    quality = estimate_jpeg_quality(getattr(image, "quantization", None)) if is_jpeg else None
    family = _format_family(image, fmt, handle)
    depth = _bit_depth(image, fmt, head)
    captured = _capture_date(image)
    orientation = _orientation(image)
    pages = _page_count(image)
    found = rights_of(image)
    full_w, full_h = image.info.get("dedup_full_size", image.size)
    try:
        # In place: avoids a full-size copy when there is nothing to rotate. (A streamed
        # image is upright, and this would decode it.)
        if streamed is None:
            ImageOps.exif_transpose(image, in_place=True)
    except Exception:  # a garbled orientation tag must not make the pixels unusable
        orientation = 1
    if orientation in (5, 6, 7, 8):
        full_w, full_h = full_h, full_w
    if streamed is not None:
        digest, work = streamed
    else:
        digest = _jpeg_digest(handle, orientation) if is_jpeg else _pixel_digest(image)
        # Everything below works on one reduced copy (a no-op for a JPEG decoded at reduced size).
        work = _reduced(image)
    stats = _tone(work)
    channels = 1 if mode in _GREY_MODES or stats[3] else 3
    fingerprints: tuple[tuple[str, int, bytes], ...] = ()
    suite: Suite | None = None
    frame_w, frame_h = full_w, full_h
    if min(image.size) >= dct.MIN_SIDE:
        gray = luminance(work)
        suite = compute(gray)
        if not suite.low_information:
            fingerprints = tuple(to_wire(suite))
        # The frame in full-resolution pixels (mattes trimmed, skew undone).
        frame_h = round(full_h * suite.frame_shape[0] / gray.shape[0])
        frame_w = round(full_w * suite.frame_shape[1] / gray.shape[1])
    return ImageFacts(
        sha256=sha256,
        pixel_digest=digest,
        width=full_w,
        height=full_h,
        bit_depth=depth,
        mode=mode,
        format=fmt,
        format_family=family,
        jpeg_quality=quality,
        capture_date=captured,
        low_information=suite is None or suite.low_information,
        fingerprints=fingerprints,
        file_size=size,
        information=suite.information if suite else 0.0,
        channels=channels,
        frame_width=frame_w,
        frame_height=frame_h,
        skew_degrees=suite.skew_degrees if suite else 0.0,
        luma_mean=stats[0],
        luma_spread=stats[1],
        saturation=stats[2],
        cast_blue=stats[4],
        cast_red=stats[5],
        flat_edges=tuple(round(1000 * f) for f in suite.flat_edges) if suite else (0, 0, 0, 0),
        page_count=pages,
        rights=(found.uri, found.text, found.source),
    )


_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


def _orientation(image: Image.Image) -> int:
    try:
        value = int(image.getexif().get(0x0112, 1))
    except Exception:  # malformed EXIF must not make the image unreadable
        return 1
    return value if 1 <= value <= 8 else 1


def _tone(image: Image.Image) -> tuple[int, int, int, bool, int, int]:
    """(mean luma, luma standard deviation, mean saturation, colour image that is grey, mean
    blue-difference chroma, mean red-difference chroma).

    Taken on a 64x64 box reduction: enough to tell a tone or colour variant from a copy,
    too little to say anything about the picture.
    """
    im = image
    if im.mode in ("P", "PA", "RGBA", "LA", "La", "RGBa", "CMYK", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
    elif im.mode.startswith("I") or im.mode == "F" or im.mode == "1":
        im = Image.fromarray(luminance(im).astype(np.uint8))
    small = np.asarray(im.resize((64, 64), Image.BOX))
    if small.ndim == 2:
        grey = small.astype(np.float32)
        return int(round(float(grey.mean()))), int(round(float(grey.std()))), 0, False, 0, 0
    rgb = small[..., :3].reshape(-1, 3)
    luma = rgb.astype(np.float32) @ _LUMA_WEIGHTS
    spread = rgb.max(axis=1).astype(np.int16) - rgb.min(axis=1)
    # Saturation from 4x4 blocks of the reduction: grain and sensor noise add to every pixel's
    # max - min, and averaging takes most of that out, so a faint picture's saturation change
    # is not lost under the noise of a grainy copy.
    blocks = small[..., :3].astype(np.float32).reshape(16, 4, 16, 4, 3).mean(axis=(1, 3))
    saturation = float((blocks.max(axis=2) - blocks.min(axis=2)).mean())
    # ITU-R BT.601 colour differences, as JPEG defines them.
    cb = float(((rgb[:, 2] - luma) * 0.564).mean())
    cr = float(((rgb[:, 0] - luma) * 0.713).mean())
    # Grey: no colour at all, or chroma that is only noise (film grain, a scanner's colour noise
    # on a black-and-white print): faint everywhere and unbiased, so its mean cast is neutral.
    # A tint or a faded colour print is biased; a colour picture has some pixels far from grey.
    grey = int(spread.max()) <= 3 or (int(spread.max()) <= CHROMA_NOISE and float(spread.mean()) <= 4.0
                                      and abs(cb) < 1.0 and abs(cr) < 1.0)
    return (int(round(float(luma.mean()))), int(round(float(luma.std()))),
            int(round(saturation)), grey, int(round(cb)), int(round(cr)))


#: The largest colour spread (max - min of R, G, B) on the 64x64 reduction that noise alone
#: leaves on a grey picture; the least colourful colour pictures reach 25 or more somewhere.
CHROMA_NOISE = 12


_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


_JPEG_SKIP = set(range(0xE0, 0xF0)) - {0xEE} | {0xFE}  # APPn (except Adobe) and comments


def _jpeg_digest(handle: BinaryIO, orientation: int) -> bytes:
    """SHA-256 over what determines a JPEG's decoded pixels, without decoding it.

    Frame header, tables, restart interval, the Adobe colour transform and every scan
    (from the first SOS to the last EOI) are hashed; EXIF, XMP, ICC, IPTC and comment
    segments are not, so a metadata-only edit keeps the digest. The EXIF orientation is
    hashed too, since it changes the upright pixels.
    """
    # Files read into memory are digested in place; larger ones are read once more.
    if isinstance(handle, io.BytesIO):
        data = handle.getvalue()
    else:
        handle.seek(0)
        data = handle.read()
    digest = hashlib.sha256(_JPEG_DIGEST_TAG + b"\0" + str(orientation).encode() + b"\0")
    view = memoryview(data)
    pos = 2
    n = len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            break
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker == 0xDA:
            end = data.rfind(b"\xff\xd9")
            digest.update(view[pos:end + 2 if end >= pos else n])  # a view: no copy of the scans
            return digest.digest()
        if marker not in _JPEG_SKIP:
            digest.update(view[pos:pos + 2 + length])
        pos += 2 + length
    # No scan found: fall back to the whole file, which still identifies it.
    digest.update(view)
    return digest.digest()


def _pixel_digest(image: Image.Image) -> bytes:
    """SHA-256 of ``tag NUL mode NUL width NUL height NUL`` + pixel bytes.

    Palette images are expanded to RGB/RGBA (a palette re-ordering is not a
    pixel change) and 16-bit samples are hashed little-endian whatever the file
    byte order, so only real pixel differences change the digest. The bytes are
    those of ``tobytes()``, packed by Pillow's raw encoder a block at a time and
    hashed block by block, so no full-size copy is made.
    """
    im = image
    if im.mode in ("P", "PA"):
        has_alpha = im.mode == "PA" or "transparency" in im.info
        im = im.convert("RGBA" if has_alpha else "RGB")
    sixteen = im.mode.startswith("I;16")
    width, height = im.size
    digest = hashlib.sha256(_pixel_header("I;16" if sixteen else im.mode, width, height))
    if sixteen and im.mode not in ("I;16", "I;16L"):
        band = max(1, (1 << 20) // max(1, width))
        for top in range(0, height, band):
            part = im.crop((0, top, width, min(height, top + band)))
            digest.update(np.asarray(part).astype("<u2").tobytes())
        return digest.digest()
    _hash_encoded(digest, im)
    return digest.digest()


def _hash_encoded(digest: "hashlib._Hash", im: Image.Image) -> None:
    """Hash ``im.tobytes()`` without making it: Pillow's raw encoder packs a block at a time."""
    im.load()
    width, height = im.size
    if not width or not height:
        return
    encoder = Image._getencoder(im.mode, "raw", im.mode)
    try:
        encoder.setimage(im.im, (0, 0, width, height))
        while True:
            _, status, chunk = encoder.encode(max(1 << 16, 4 * width))
            digest.update(chunk)
            if status:
                break
        if status < 0:
            raise ImageError(f"cannot read the decoded pixels (encoder error {status})")
    finally:
        encoder.cleanup()


def _pixel_header(mode: str, width: int, height: int) -> bytes:
    return b"\0".join([_PIXEL_DIGEST_TAG, mode.encode(), str(width).encode(), str(height).encode(), b""])


def _reduced(image: Image.Image) -> Image.Image:
    factor = _reduce_factor(*image.size)
    if factor <= 1 or image.mode in ("P", "PA", "1", "I;16", "I;16B", "I;16L", "I;16N"):
        return image  # luminance() reduces these after converting them
    try:
        return image.reduce(factor)
    except (ValueError, NotImplementedError):
        return image


def _reduce_factor(width: int, height: int) -> int:
    # Keep the long side in [LUMINANCE_MAX_SIDE, 2 x LUMINANCE_MAX_SIDE) and the short
    # side >= 32 so the fingerprints can still be computed.
    by_long = max(width, height) // LUMINANCE_MAX_SIDE
    by_short = min(width, height) // dct.MIN_SIDE
    return max(1, min(by_long, by_short))


def _format_family(image: Image.Image, fmt: str, handle: BinaryIO) -> str:
    if fmt == "WEBP":
        return "lossless" if _webp_is_lossless(handle) else "lossy"
    if fmt == "TIFF" and "jpeg" in str(image.info.get("compression", "")).lower():
        return "lossy"
    return "lossy" if fmt in _LOSSY_FORMATS else "lossless"


def _webp_is_lossless(handle: BinaryIO) -> bool:
    """True when the first image chunk is VP8L (lossless) rather than VP8 (lossy)."""
    handle.seek(0)
    header = handle.read(12)
    if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WEBP":
        return False
    for _ in range(64):
        chunk = handle.read(8)
        if len(chunk) < 8:
            return False
        fourcc, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if fourcc == b"VP8L":
            return True
        if fourcc in (b"VP8 ", b"ANMF"):
            return False
        handle.seek(length + (length & 1), 1)
    return False


def _bit_depth(image: Image.Image, fmt: str, head: bytes) -> int:
    """Bits per channel as stored in the file (Pillow reads 16-bit RGB as 8-bit)."""
    if fmt == "PNG" and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" and len(head) >= 26:
        depth, colour_type = head[24], head[25]
        return 8 if colour_type == 3 else int(depth)
    if fmt == "TIFF":
        bits = getattr(image, "tag_v2", {}).get(258)
        if isinstance(bits, tuple | list) and bits:
            return int(max(bits))
        if isinstance(bits, int):
            return bits
    mode = image.mode
    if mode == "1":
        return 1
    if mode.startswith("I;16"):
        return 16
    if mode in ("I", "F"):
        return 32
    return 8


def _capture_date(image: Image.Image) -> str | None:
    """EXIF DateTimeOriginal as 'YYYY-MM-DDTHH:MM:SS', None if absent or garbled."""
    try:
        raw = image.getexif().get_ifd(_EXIF_IFD).get(_DATETIME_ORIGINAL)
    except Exception:  # malformed EXIF is common and must not make the image unreadable
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace")
    if not isinstance(raw, str):
        return None
    text = raw.strip("\x00 \t\r\n")[:19]
    for layout in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(text, layout).isoformat(timespec="seconds")
        except ValueError:
            continue
    return None


_plugins_lock = threading.Lock()
_plugins_done = False


def _register_optional_plugins() -> None:
    """Enable HEIC/HEIF when pillow-heif is installed; without it they get a clear error."""
    global _plugins_done
    with _plugins_lock:
        if _plugins_done:
            return
        _plugins_done = True
        try:
            import pillow_heif  # type: ignore[import-not-found]
        except ImportError:
            return
        pillow_heif.register_heif_opener()
