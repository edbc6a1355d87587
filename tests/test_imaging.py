"""Reading image files on a node: formats, metadata, digests, refusals, robustness."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image, PngImagePlugin

from dedup.fingerprint import DCT256_V1, dct256, hamming
from dedup.node.imaging import ImageError, ImageFacts, estimate_jpeg_quality, luminance, read_image

THRESHOLD = DCT256_V1.threshold


def astronaut() -> Image.Image:
    return Image.fromarray(skimage.data.astronaut())


def camera() -> Image.Image:
    return Image.fromarray(skimage.data.camera())


def save(im: Image.Image, path: Path, fmt: str | None = None, **options) -> Path:
    im.save(path, fmt, **options)
    return path


def jpeg_bytes(im: Image.Image, **options) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", **options)
    return buf.getvalue()


def exif_bytes(date: str | None = None, orientation: int | None = None) -> bytes:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    if date is not None:
        exif.get_ifd(0x8769)[36867] = date
    return exif.tobytes()


def with_exif(jpeg: bytes, exif: bytes | None) -> bytes:
    """The same compressed image with its EXIF segment replaced (or removed)."""
    assert jpeg[:2] == b"\xff\xd8"
    segments, pos = [], 2
    while jpeg[pos + 1] != 0xDA:  # copy header segments up to start-of-scan
        length = int.from_bytes(jpeg[pos + 2 : pos + 4], "big")
        segment = jpeg[pos : pos + 2 + length]
        if not (segment[1] == 0xE1 and segment[4:10] == b"Exif\0\0"):
            segments.append(segment)
        pos += 2 + length
    if exif is not None:
        segments.insert(1 if segments and segments[0][1] == 0xE0 else 0,
                        b"\xff\xe1" + (len(exif) + 2).to_bytes(2, "big") + exif)
    return b"\xff\xd8" + b"".join(segments) + jpeg[pos:]


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG claiming huge dimensions: the classic decompression bomb shape."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunks = png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"")) + png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


# --- formats -----------------------------------------------------------------


def test_png_facts(tmp_path: Path) -> None:
    path = save(astronaut(), tmp_path / "a.png")
    facts = read_image(path)
    assert isinstance(facts, ImageFacts)
    assert facts.sha256 == hashlib.sha256(path.read_bytes()).digest()
    assert (facts.width, facts.height, facts.mode, facts.bit_depth) == (512, 512, "RGB", 8)
    assert (facts.format, facts.format_family) == ("PNG", "lossless")
    assert facts.jpeg_quality is None and facts.capture_date is None
    assert facts.file_size == path.stat().st_size
    assert not facts.low_information
    assert facts.fingerprints == (("dct256", 1, dct256(luminance(astronaut()))),)


def test_same_pixels_give_same_digest_across_containers(tmp_path: Path) -> None:
    im = astronaut()
    png = read_image(save(im, tmp_path / "a.png"))
    tif = read_image(save(im, tmp_path / "a.tif"))
    lzw = read_image(save(im, tmp_path / "lzw.tif", compression="tiff_lzw"))
    webp = read_image(save(im, tmp_path / "a.webp", lossless=True, exact=True))
    assert png.pixel_digest == tif.pixel_digest == lzw.pixel_digest == webp.pixel_digest
    assert len({png.sha256, tif.sha256, lzw.sha256, webp.sha256}) == 4
    assert lzw.format == "TIFF" and lzw.format_family == "lossless"
    assert png.fingerprints == lzw.fingerprints == webp.fingerprints


def test_16_bit_greyscale_tiff_and_png(tmp_path: Path) -> None:
    eight = camera()
    sixteen = Image.fromarray(np.asarray(eight, dtype=np.uint16) * 257)
    assert sixteen.mode == "I;16"
    reference = read_image(save(eight, tmp_path / "c8.png"))
    for name, options in (("c16.tif", {"compression": "tiff_lzw"}), ("c16.png", {})):
        facts = read_image(save(sixteen, tmp_path / name, **options))
        assert facts.mode == "I;16" and facts.bit_depth == 16 and facts.format_family == "lossless"
        assert facts.fingerprints == reference.fingerprints
        assert facts.pixel_digest != reference.pixel_digest


def test_16_bit_rgb_tiff_reports_its_stored_depth(tmp_path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    rgb16 = skimage.data.astronaut().astype(np.uint16) * 257
    tifffile.imwrite(tmp_path / "rgb16.tif", rgb16, photometric="rgb")
    facts = read_image(tmp_path / "rgb16.tif")
    assert facts.bit_depth == 16 and facts.format == "TIFF"
    reference = read_image(save(astronaut(), tmp_path / "a.png"))
    assert hamming(facts.fingerprints[0][2], reference.fingerprints[0][2]) <= 2


def test_webp_lossless_and_lossy(tmp_path: Path) -> None:
    im = astronaut()
    lossless = read_image(save(im, tmp_path / "a.webp", lossless=True))
    lossy = read_image(save(im, tmp_path / "b.webp", quality=80))
    with_alpha = im.convert("RGBA")
    extended = read_image(save(with_alpha, tmp_path / "c.webp", quality=80, exif=exif_bytes("2001:01:01 00:00:00")))
    assert (lossless.format, lossless.format_family) == ("WEBP", "lossless")
    assert (lossy.format, lossy.format_family) == ("WEBP", "lossy")
    assert extended.format_family == "lossy"
    assert hamming(lossless.fingerprints[0][2], lossy.fingerprints[0][2]) <= THRESHOLD


@pytest.mark.parametrize(
    ("mode", "suffix"),
    [
        ("P", ".png"), ("RGBA", ".png"), ("LA", ".png"), ("CMYK", ".jpg"),
        ("CMYK", ".tif"), ("L", ".jpg"), ("1", ".png"),
    ],
)
def test_pixel_modes(tmp_path: Path, mode: str, suffix: str) -> None:
    im = astronaut().convert(mode)
    facts = read_image(save(im, tmp_path / f"x{suffix}"))
    assert facts.mode == mode
    assert (facts.width, facts.height) == (512, 512)
    reference = read_image(save(astronaut(), tmp_path / "ref.png")).fingerprints[0][2]
    # Bilevel images lose most tones, so only require a valid fingerprint for them.
    assert len(facts.fingerprints) == 1
    if mode != "1":
        assert hamming(facts.fingerprints[0][2], reference) <= THRESHOLD


def test_transparency_is_composited_onto_white(tmp_path: Path) -> None:
    content = np.asarray(camera())
    rgba = np.zeros((512, 512, 4), dtype=np.uint8)  # transparent black
    rgba[128:384, 128:384, :3] = content[128:384, 128:384, None]
    rgba[128:384, 128:384, 3] = 255
    on_white = np.full((512, 512, 3), 255, dtype=np.uint8)
    on_white[128:384, 128:384] = content[128:384, 128:384, None]
    transparent = read_image(save(Image.fromarray(rgba), tmp_path / "t.png"))
    opaque = read_image(save(Image.fromarray(on_white), tmp_path / "w.png"))
    assert transparent.fingerprints == opaque.fingerprints
    assert transparent.pixel_digest != opaque.pixel_digest


def test_palette_reorder_is_not_a_pixel_change(tmp_path: Path) -> None:
    p = astronaut().convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    reordered = p.remap_palette(list(range(63, -1, -1)) + list(range(64, 256)))
    a = read_image(save(p, tmp_path / "a.png"))
    b = read_image(save(reordered, tmp_path / "b.png"))
    assert a.sha256 != b.sha256
    assert a.pixel_digest == b.pixel_digest


def test_large_image_is_reduced_before_hashing(tmp_path: Path) -> None:
    big = astronaut().resize((1900, 1900), Image.Resampling.LANCZOS)
    facts = read_image(save(big, tmp_path / "big.png", compress_level=1))
    reference = read_image(save(astronaut(), tmp_path / "a.png"))
    assert (facts.width, facts.height) == (1900, 1900)
    assert hamming(facts.fingerprints[0][2], reference.fingerprints[0][2]) <= THRESHOLD
    assert max(luminance(big).shape) <= 512


def test_tiny_and_flat_images_have_no_fingerprint(tmp_path: Path) -> None:
    tiny = read_image(save(camera().resize((20, 24)), tmp_path / "tiny.png"))
    flat = read_image(save(Image.new("RGB", (300, 200), (200, 40, 90)), tmp_path / "flat.png"))
    blank = np.clip(245 + np.random.default_rng(2).normal(0, 1.5, (400, 300)), 0, 255).astype(np.uint8)
    page = read_image(save(Image.fromarray(blank), tmp_path / "page.jpg", quality=85))
    assert tiny.fingerprints == () and tiny.low_information
    assert flat.fingerprints == () and flat.low_information
    assert page.low_information


# --- EXIF ----------------------------------------------------------------------


def test_jpeg_capture_date_and_orientation(tmp_path: Path) -> None:
    wide = Image.fromarray(skimage.data.astronaut()[:, :400])  # 400 x 512
    data = jpeg_bytes(wide, quality=90)
    plain = tmp_path / "plain.jpg"
    plain.write_bytes(data)
    turned = tmp_path / "turned.jpg"
    turned.write_bytes(with_exif(data, exif_bytes("1987:06:05 14:03:09", orientation=6)))

    upright = read_image(turned)
    assert upright.capture_date == "1987-06-05T14:03:09"
    assert (upright.width, upright.height) == (512, 400)

    # Orientation 6 means "turn 90 degrees clockwise to display".
    with Image.open(plain) as im:
        rotated = im.transpose(Image.Transpose.ROTATE_270)
    expected = read_image(save(rotated, tmp_path / "rotated.png"))
    assert upright.pixel_digest == expected.pixel_digest
    assert upright.fingerprints == expected.fingerprints
    assert read_image(plain).capture_date is None


@pytest.mark.parametrize("date", ["0000:00:00 00:00:00", "yesterday", "2001:13:45 99:00:00", "    "])
def test_garbled_capture_date_is_none(tmp_path: Path, date: str) -> None:
    path = tmp_path / "d.jpg"
    path.write_bytes(with_exif(jpeg_bytes(camera()), exif_bytes(date)))
    assert read_image(path).capture_date is None


def test_png_exif_capture_date(tmp_path: Path) -> None:
    path = save(camera(), tmp_path / "c.png", exif=exif_bytes("2003:04:05 06:07:08"))
    assert read_image(path).capture_date == "2003-04-05T06:07:08"


def test_metadata_only_edits_keep_the_pixel_digest(tmp_path: Path) -> None:
    data = jpeg_bytes(astronaut(), quality=85)
    variants = {
        "original": with_exif(data, exif_bytes("2001:02:03 04:05:06")),
        "edited": with_exif(data, exif_bytes("2011:12:13 14:15:16")),
        "stripped": with_exif(data, None),
    }
    facts = {}
    for name, blob in variants.items():
        (tmp_path / f"{name}.jpg").write_bytes(blob)
        facts[name] = read_image(tmp_path / f"{name}.jpg")
    assert len({f.sha256 for f in facts.values()}) == 3
    assert len({f.pixel_digest for f in facts.values()}) == 1
    assert facts["edited"].capture_date == "2011-12-13T14:15:16"

    first, second = PngImagePlugin.PngInfo(), PngImagePlugin.PngInfo()
    first.add_text("Title", "Harbour, 1931")
    second.add_text("Title", "Harbour at dusk")
    second.add_itxt("Description", "re-catalogued")
    a = read_image(save(astronaut(), tmp_path / "a.png", pnginfo=first))
    b = read_image(save(astronaut(), tmp_path / "b.png", pnginfo=second))
    assert a.sha256 != b.sha256
    assert a.pixel_digest == b.pixel_digest


# --- JPEG quality ----------------------------------------------------------------


@pytest.mark.parametrize("quality", [50, 75, 90])
@pytest.mark.parametrize("colour", ["RGB", "L"])
def test_jpeg_quality_estimate(tmp_path: Path, quality: int, colour: str) -> None:
    path = save(astronaut().convert(colour), tmp_path / "q.jpg", quality=quality)
    estimate = read_image(path).jpeg_quality
    assert estimate is not None and abs(estimate - quality) <= 3


def test_jpeg_quality_of_missing_tables() -> None:
    assert estimate_jpeg_quality(None) is None
    assert estimate_jpeg_quality({}) is None


# --- refusals ---------------------------------------------------------------------


def test_truncated_jpeg(tmp_path: Path) -> None:
    data = jpeg_bytes(astronaut())
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated"):
        read_image(tmp_path / "t.jpg")


def test_corrupt_png(tmp_path: Path) -> None:
    data = bytearray((save(astronaut(), tmp_path / "ok.png")).read_bytes())
    data[5000:5200] = bytes(200)
    (tmp_path / "bad.png").write_bytes(bytes(data))
    with pytest.raises(ImageError, match="corrupt"):
        read_image(tmp_path / "bad.png")


def test_garbage_after_jpeg_signature(tmp_path: Path) -> None:
    (tmp_path / "x.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(300))
    with pytest.raises(ImageError):
        read_image(tmp_path / "x.jpg")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        read_image(tmp_path / "e.jpg")


def test_text_file(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("Box 14: glass negatives, harbour, 1931–1933\n", encoding="utf-8")
    with pytest.raises(ImageError, match="not an image"):
        read_image(tmp_path / "notes.txt")


def test_binary_non_image(tmp_path: Path) -> None:
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ImageError, match="not an image"):
        read_image(tmp_path / "blob.bin")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="cannot open"):
        read_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageError, match="directory"):
        read_image(tmp_path)


@pytest.mark.parametrize("side", [10_000, 20_000])  # above Pillow's warning and error limits
def test_decompression_bomb(tmp_path: Path, side: int) -> None:
    (tmp_path / "bomb.png").write_bytes(png_header_only(side, side))
    with pytest.raises(ImageError, match="decompression bomb"):
        read_image(tmp_path / "bomb.png")


def test_custom_pixel_limit(tmp_path: Path) -> None:
    path = save(camera(), tmp_path / "c.png")
    with pytest.raises(ImageError, match="decompression bomb"):
        read_image(path, max_pixels=512 * 512 - 1)
    assert read_image(path, max_pixels=512 * 512).width == 512


def test_heic_without_plugin_gives_clear_error(tmp_path: Path) -> None:
    try:
        import pillow_heif  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("pillow-heif is installed, so HEIC files are readable")
    (tmp_path / "photo.heic").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))
    with pytest.raises(ImageError, match="pillow-heif"):
        read_image(tmp_path / "photo.heic")


# --- perceptual robustness ---------------------------------------------------------


def _variants(im: Image.Image, tmp_path: Path, stem: str) -> dict[str, Path]:
    half = im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS)
    return {
        "original": save(im, tmp_path / f"{stem}.png"),
        "jpeg q30": save(im.convert("RGB"), tmp_path / f"{stem}-q30.jpg", quality=30),
        "50% resize": save(half, tmp_path / f"{stem}-half.png"),
        "greyscale": save(im.convert("L"), tmp_path / f"{stem}-grey.jpg", quality=75),
    }


def test_variants_match_and_different_photographs_do_not(tmp_path: Path) -> None:
    hashes = {}
    for stem, im in (("camera", camera()), ("astronaut", astronaut())):
        for kind, path in _variants(im, tmp_path, stem).items():
            hashes[(stem, kind)] = read_image(path).fingerprints[0][2]
    for (stem, kind), value in hashes.items():
        assert hamming(value, hashes[(stem, "original")]) <= THRESHOLD, (stem, kind)
    for kind_a in ("original", "jpeg q30", "50% resize", "greyscale"):
        for kind_b in ("original", "jpeg q30", "50% resize", "greyscale"):
            assert hamming(hashes[("camera", kind_a)], hashes[("astronaut", kind_b)]) > 2 * THRESHOLD

    others = ["coffee", "chelsea", "rocket", "moon", "coins", "hubble_deep_field"]
    for name in others:
        img = getattr(skimage.data, name)()
        value = read_image(save(Image.fromarray(img), tmp_path / f"{name}.png")).fingerprints[0][2]
        for stem in ("camera", "astronaut"):
            assert hamming(value, hashes[(stem, "original")]) > THRESHOLD, (name, stem)
