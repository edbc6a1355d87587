"""The streamed path for uncompressed TIFFs gives exactly what a full decode gives.

read_image on a regular file takes the streamed path when it can; read_stream over an
in-memory copy (not a regular file) always decodes in full. Every fact, the pixel digest and
the fingerprints included, must be the same either way, and the digest must stay the one SPEC
defines.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, TiffImagePlugin

from bench.tiffwrite import save_rgb16_lzw
from dedup.node import imaging
from dedup.node.imaging import ImageError, read_image, read_stream


def _picture(height: int, width: int, seed: int = 1) -> np.ndarray:
    """Smooth shapes plus noise: a picture with fingerprints, not a flat or random field."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = 128 + 60 * np.sin(x / (width / 7)) * np.cos(y / (height / 5)) + 40 * ((x // 37 + y // 53) % 2)
    rgb = np.stack([base, 0.7 * base + 30, 255 - base], axis=-1) + rng.normal(0, 4, (height, width, 3))
    return np.clip(rgb, 0, 255).astype(np.uint8)


@pytest.fixture
def streamed(monkeypatch):
    """Small files stream too, in small bands (many bands, a short last one); records the calls."""
    monkeypatch.setattr(imaging, "_RAW_MIN_BYTES", 0)
    monkeypatch.setattr(imaging, "_RAW_BAND_BYTES", 4096)
    calls: list[str] = []
    real = imaging._stream_raw

    def spy(handle, image, plan):
        calls.append(plan[2])
        return real(handle, image, plan)

    monkeypatch.setattr(imaging, "_stream_raw", spy)
    return calls


def _both(path: Path):
    fast = read_image(path)
    full = read_stream(io.BytesIO(path.read_bytes()))
    return fast, full


def _expected_digest(mode: str, pixels: np.ndarray) -> bytes:
    h, w = pixels.shape[:2]
    return hashlib.sha256(b"\0".join([b"dedup-pixels/1", mode.encode(), str(w).encode(), str(h).encode(), b""])
                          + pixels.tobytes()).digest()


def _write(kind: str, path: Path, rgb: np.ndarray) -> None:
    h, w = rgb.shape[:2]
    # Real low bits under each 8-bit value: the 8-bit pixels Pillow decodes are exactly rgb.
    wide = rgb.astype(np.uint16) * 256 + np.random.default_rng(5).integers(0, 256, rgb.shape, dtype=np.uint16)
    if kind == "rgb8":
        Image.fromarray(rgb).save(path, "TIFF")
    elif kind == "rgb8_strips":
        tifffile.imwrite(path, rgb, photometric="rgb", rowsperstrip=7)
    elif kind == "rgb16_le":
        tifffile.imwrite(path, wide, photometric="rgb", rowsperstrip=5)
    elif kind == "rgb16_be":
        tifffile.imwrite(path, wide, photometric="rgb", byteorder=">")
    elif kind == "grey8":
        tifffile.imwrite(path, rgb[..., 1], photometric="minisblack", rowsperstrip=3)
    elif kind == "rgba8":
        alpha = np.full((h, w, 1), 255, np.uint8)
        alpha[: h // 3, : w // 4] = 90
        tifffile.imwrite(path, np.concatenate([rgb, alpha], axis=-1), photometric="rgb", extrasamples=[2])
    elif kind == "multipage":
        with tifffile.TiffWriter(path) as tw:
            tw.write(rgb, photometric="rgb", rowsperstrip=11)
            tw.write(rgb[::-1].copy(), photometric="rgb")
    elif kind == "lzw8":
        Image.fromarray(rgb).save(path, "TIFF", compression="tiff_lzw")
    elif kind == "lzw16":
        save_rgb16_lzw(path, wide)
    elif kind == "tiled":
        tifffile.imwrite(path, rgb, photometric="rgb", tile=(32, 32))
    elif kind == "planar":
        tifffile.imwrite(path, rgb, photometric="rgb", planarconfig="separate")
    elif kind == "palette":
        Image.fromarray(rgb).quantize(64).save(path, "TIFF")
    elif kind == "grey16":
        tifffile.imwrite(path, wide[..., 0], photometric="minisblack")
    elif kind == "rotated":
        tifffile.imwrite(path, rgb, photometric="rgb", extratags=[(274, "H", 1, 6, True)])
    else:
        raise AssertionError(kind)


STREAMED = ("rgb8", "rgb8_strips", "rgb16_le", "rgb16_be", "grey8", "rgba8", "multipage")
DECODED = ("lzw8", "lzw16", "tiled", "planar", "palette", "grey16", "rotated")


@pytest.mark.parametrize("size", [(157, 203), (333, 250), (96, 641)])
@pytest.mark.parametrize("kind", STREAMED + DECODED)
def test_streamed_path_equals_full_decode(tmp_path, streamed, kind, size):
    path = tmp_path / f"{kind}.tif"
    _write(kind, path, _picture(*size))
    try:
        full = read_stream(io.BytesIO(path.read_bytes()))
    except ImageError as exc:  # a layout Pillow cannot read must fail alike on both paths
        with pytest.raises(ImageError) as again:
            read_image(path)
        assert str(again.value) == str(exc)
        assert not streamed
        return
    fast = read_image(path)
    assert bool(streamed) == (kind in STREAMED)
    assert fast == full
    assert fast.sha256 == hashlib.sha256(path.read_bytes()).digest()
    assert fast.fingerprints and not fast.low_information


def test_digest_is_unchanged_and_shared_by_identical_pixels(tmp_path, streamed):
    rgb = _picture(211, 307, seed=3)
    expected = _expected_digest("RGB", rgb)
    facts = {}
    for kind in ("rgb8", "rgb8_strips", "rgb16_le", "rgb16_be", "multipage", "lzw8", "lzw16", "tiled"):
        path = tmp_path / f"{kind}.tif"
        _write(kind, path, rgb)
        facts[kind] = read_image(path)
    Image.fromarray(rgb).save(tmp_path / "copy.png", compress_level=9)
    facts["png"] = read_image(tmp_path / "copy.png")
    assert {k: f.pixel_digest for k, f in facts.items()} == {k: expected for k in facts}
    assert len({f.fingerprints for f in facts.values()}) == 1
    grey = rgb[..., 1]
    _write("grey8", tmp_path / "grey.tif", rgb)
    assert read_image(tmp_path / "grey.tif").pixel_digest == _expected_digest("L", grey)


def test_large_file_streams_with_default_bands_and_never_decodes_in_full(tmp_path, monkeypatch):
    """At the sizes the path is for (over 1 MiB, bands of 1 MiB), without a full decode."""
    rgb = _picture(1213, 1601, seed=9)
    path8, path16 = tmp_path / "big8.tif", tmp_path / "big16.tif"
    Image.fromarray(rgb).save(path8, "TIFF")
    tifffile.imwrite(path16, rgb.astype(np.uint16) * 256 + 100, photometric="rgb")
    full = {p: read_stream(io.BytesIO(p.read_bytes())) for p in (path8, path16)}

    def no_load(self):
        raise AssertionError("decoded in full")

    monkeypatch.setattr(TiffImagePlugin.TiffImageFile, "load", no_load)
    for p in (path8, path16):
        assert read_image(p) == full[p]
    assert full[path8].pixel_digest == full[path16].pixel_digest == _expected_digest("RGB", rgb)


def test_truncated_file_fails_as_a_full_decode_does(tmp_path, streamed):
    path = tmp_path / "cut.tif"
    Image.fromarray(_picture(200, 180)).save(path, "TIFF")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 5000])
    with pytest.raises(ImageError) as full:
        read_stream(io.BytesIO(path.read_bytes()))
    with pytest.raises(ImageError) as fast:
        read_image(path)
    assert str(fast.value) == str(full.value)
    assert "truncated" in str(fast.value)

