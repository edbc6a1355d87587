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

from dedup.fingerprint import hamming, validate
from dedup.fingerprint.suite import compute
from dedup.fingerprint.wire import to_wire
from dedup.matching import Link, link, relation_name
from dedup.node.imaging import ImageError, ImageFacts, estimate_jpeg_quality, luminance, read_image
from dedup.node.scan import to_record

#: (algorithm, version) of the three records every fingerprinted image has.
RECORDS = [("dct256", 2), ("dct64", 2), ("kp64", 1)]


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


def upright(facts: ImageFacts) -> bytes:
    """The upright dct256 hash (first 32 bytes of the dct256 v2 record)."""
    name, version, value = facts.fingerprints[0]
    assert (name, version) == ("dct256", 2)
    return value[:32]


def relation(a: ImageFacts, b: ImageFacts) -> str | None:
    """The matching rule's label for two files' records, or None when not linked."""
    found: Link | None = link(to_record("a", a), to_record("b", b))
    return None if found is None else relation_name(found.relation)


def shapes(facts: ImageFacts) -> list[tuple[str, int]]:
    """The records' kinds, each value first passed through the coordinator's validation (its
    size and, for keypoints, its shape)."""
    for n, v, value in facts.fingerprints:
        validate(n, v, value)
    return [(n, v) for n, v, _ in facts.fingerprints]


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
    assert shapes(facts) == RECORDS
    # The node hashes the luminance array it derives, through the shared suite.
    assert list(facts.fingerprints) == to_wire(compute(luminance(astronaut())))
    assert (facts.channels, facts.frame_width, facts.frame_height, facts.skew_degrees) == (3, 512, 512, 0.0)
    # Tone evidence, taken on a 64x64 box reduction (saturation on its 4x4 blocks).
    assert (facts.luma_mean, facts.luma_spread, facts.saturation) == (116, 71, 48)
    assert (facts.cast_blue, facts.cast_red) == (-11, 19)
    assert facts.flat_edges == (0, 0, 0, 0)
    ev = to_record("a", facts).evidence
    assert (ev.cast_blue, ev.cast_red) == (-11, 19)
    assert (ev.flat_top, ev.flat_bottom, ev.flat_left, ev.flat_right) == (0, 0, 0, 0)


def test_colour_cast_of_a_white_balanced_copy(tmp_path: Path) -> None:
    """Warming a picture (red up, blue down) moves both colour differences; a grey copy has none."""
    arr = np.asarray(astronaut(), dtype=np.int16) + np.array([12, 0, -12], dtype=np.int16)
    warm = read_image(save(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)), tmp_path / "warm.png"))
    assert (warm.cast_blue, warm.cast_red) == (-18, 25)
    grey = read_image(save(astronaut().convert("L"), tmp_path / "grey.png"))
    assert (grey.cast_blue, grey.cast_red) == (0, 0)


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
    assert relation(png, lzw) == "identical_pixels"


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
        assert facts.channels == 1
        assert (facts.luma_mean, facts.luma_spread) == (reference.luma_mean, reference.luma_spread)


def test_16_bit_rgb_tiff_reports_its_stored_depth(tmp_path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    rgb16 = skimage.data.astronaut().astype(np.uint16) * 257
    tifffile.imwrite(tmp_path / "rgb16.tif", rgb16, photometric="rgb")
    facts = read_image(tmp_path / "rgb16.tif")
    assert facts.bit_depth == 16 and facts.format == "TIFF" and facts.channels == 3
    reference = read_image(save(astronaut(), tmp_path / "a.png"))
    assert hamming(upright(facts), upright(reference)) <= 2
    assert relation(facts, reference) is not None


def test_webp_lossless_and_lossy(tmp_path: Path) -> None:
    im = astronaut()
    lossless = read_image(save(im, tmp_path / "a.webp", lossless=True))
    lossy = read_image(save(im, tmp_path / "b.webp", quality=80))
    with_alpha = im.convert("RGBA")
    extended = read_image(save(with_alpha, tmp_path / "c.webp", quality=80, exif=exif_bytes("2001:01:01 00:00:00")))
    assert (lossless.format, lossless.format_family) == ("WEBP", "lossless")
    assert (lossy.format, lossy.format_family) == ("WEBP", "lossy")
    assert extended.format_family == "lossy"
    assert shapes(lossy) == shapes(extended) == RECORDS
    assert relation(lossless, lossy) == "reencoded"


@pytest.mark.parametrize(
    ("mode", "suffix", "expected"),
    [
        ("P", ".png", "similar"), ("RGBA", ".png", "similar"), ("LA", ".png", "greyscale"),
        ("CMYK", ".jpg", "reencoded"), ("CMYK", ".tif", "similar"), ("L", ".jpg", "greyscale"),
        ("1", ".png", "greyscale"),
    ],
)
def test_pixel_modes(tmp_path: Path, mode: str, suffix: str, expected: str) -> None:
    """Every pixel mode decodes to a full fingerprint set that still matches the original."""
    im = astronaut().convert(mode)
    facts = read_image(save(im, tmp_path / f"x{suffix}"))
    assert facts.mode == mode
    assert (facts.width, facts.height) == (512, 512)
    assert shapes(facts) == RECORDS
    assert facts.channels == (1 if mode in ("LA", "L", "1") else 3)
    reference = read_image(save(astronaut(), tmp_path / "ref.png"))
    assert relation(reference, facts) == expected


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
    # A surround leaving only a quarter of the area is not trimmed as a matte.
    assert (opaque.frame_width, opaque.frame_height) == (512, 512)


def test_palette_reorder_is_not_a_pixel_change(tmp_path: Path) -> None:
    p = astronaut().convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    reordered = p.remap_palette(list(range(63, -1, -1)) + list(range(64, 256)))
    a = read_image(save(p, tmp_path / "a.png"))
    b = read_image(save(reordered, tmp_path / "b.png"))
    assert a.sha256 != b.sha256
    assert a.pixel_digest == b.pixel_digest


@pytest.mark.parametrize(("suffix", "options"), [(".png", {"compress_level": 1}), (".jpg", {"quality": 90})])
def test_large_image_is_reduced_before_hashing(tmp_path: Path, suffix: str, options: dict) -> None:
    """A large file (a JPEG decoded at reduced DCT scale) still matches the small original."""
    big = astronaut().resize((1900, 1900), Image.Resampling.LANCZOS)
    facts = read_image(save(big, tmp_path / f"big{suffix}", **options))
    reference = read_image(save(astronaut(), tmp_path / "a.png"))
    assert (facts.width, facts.height) == (1900, 1900)
    assert (facts.frame_width, facts.frame_height) == (1900, 1900)
    assert hamming(upright(facts), upright(reference)) <= 4
    assert relation(reference, facts) == "reencoded"
    assert max(luminance(big).shape) <= 640


def test_tiny_and_flat_images_have_no_fingerprint(tmp_path: Path) -> None:
    tiny = read_image(save(camera().resize((20, 24)), tmp_path / "tiny.png"))
    flat = read_image(save(Image.new("RGB", (300, 200), (200, 40, 90)), tmp_path / "flat.png"))
    blank = np.clip(245 + np.random.default_rng(2).normal(0, 1.5, (400, 300)), 0, 255).astype(np.uint8)
    page = read_image(save(Image.fromarray(blank), tmp_path / "page.jpg", quality=85))
    assert tiny.fingerprints == () and tiny.low_information
    assert flat.fingerprints == () and flat.low_information
    assert page.fingerprints == () and page.low_information


def test_long_thin_jpeg_is_fingerprinted_like_its_png(tmp_path: Path) -> None:
    """A 3000x200 panorama: the PNG is fingerprinted, the JPEG decoded at 1/8 scale (375x25) is not."""
    strip = astronaut().resize((3000, 200), Image.Resampling.LANCZOS)
    png = read_image(save(strip, tmp_path / "strip.png"))
    jpg = read_image(save(strip, tmp_path / "strip.jpg", quality=90))
    assert shapes(png) == RECORDS
    assert shapes(jpg) == RECORDS


# --- new evidence fields --------------------------------------------------------


def test_channels_of_grey_files(tmp_path: Path) -> None:
    """A grey JPEG and an RGB file whose channels are equal are both one-channel pictures."""
    grey_jpeg = read_image(save(astronaut().convert("L"), tmp_path / "g.jpg", quality=85))
    equal_rgb = astronaut().convert("L").convert("RGB")
    equal_png = read_image(save(equal_rgb, tmp_path / "e.png"))
    equal_jpeg = read_image(save(equal_rgb, tmp_path / "e.jpg", quality=85))
    colour = read_image(save(astronaut(), tmp_path / "c.png"))
    assert (grey_jpeg.mode, grey_jpeg.channels) == ("L", 1)
    assert (equal_png.mode, equal_png.channels) == ("RGB", 1)
    assert (equal_jpeg.mode, equal_jpeg.channels) == ("RGB", 1)
    assert colour.channels == 3
    assert equal_png.saturation == 0 and colour.saturation > 20


def test_colour_noise_on_a_grey_picture_leaves_it_grey(tmp_path: Path) -> None:
    """Grain in each channel, or a scanner's colour noise on a black-and-white print, is faint
    and unbiased: the picture is still one-channel. A faint tint is biased, and a small
    coloured mark is far from grey: both are colour."""
    grey = np.asarray(astronaut().convert("L"), dtype=np.float32)[..., None]
    rng = np.random.default_rng(3)
    grain = grey + rng.normal(0, 12, grey.shape[:2] + (3,))
    tint = grey + np.array([4.0, 0.0, -4.0])  # a faint warm toning: spread 8 everywhere
    mark = np.repeat(grey, 3, axis=2)
    mark[20:92, 400:472] = (180, 30, 40)  # 2% of the picture
    facts = {name: read_image(save(Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8)), tmp_path / f"{name}.jpg",
                                   quality=90))
             for name, arr in (("grain", grain), ("tint", tint), ("mark", mark))}
    assert {name: f.channels for name, f in facts.items()} == {"grain": 1, "tint": 3, "mark": 3}
    # Saturation is taken on 4x4 blocks of the reduction, where the grain has averaged out.
    assert facts["grain"].saturation <= 1 and facts["tint"].saturation >= 6


@pytest.mark.parametrize("tone", [(255, 255, 255), (0, 0, 0), (128, 128, 128)])
def test_bordered_image_reports_its_frame(tmp_path: Path, tone: tuple[int, int, int]) -> None:
    """A matte is trimmed: the frame is the picture's own size, the image keeps the border."""
    im = Image.fromarray(skimage.data.coffee())  # 600 x 400
    b = 36  # 6% of the long side
    bordered = Image.new("RGB", (600 + 2 * b, 400 + 2 * b), tone)
    bordered.paste(im, (b, b))
    facts = read_image(save(bordered, tmp_path / "b.png"))
    assert (facts.width, facts.height) == (672, 472)
    assert (facts.frame_width, facts.frame_height) == (600, 400)
    assert facts.skew_degrees == 0.0
    # The border is flat on every edge, in thousandths of the height (top, bottom) or width.
    assert facts.flat_edges == (round(1000 * 36 / 472), round(1000 * 36 / 472), round(1000 * 36 / 672),
                                round(1000 * 36 / 672))


@pytest.mark.parametrize("angle", [3.0, -3.0, 1.5, -2.0])
def test_skewed_copy_reports_its_skew(tmp_path: Path, angle: float) -> None:
    """Pillow turns counter-clockwise for a positive angle; our positive skew is clockwise."""
    im = astronaut().rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor="white")
    facts = read_image(save(im, tmp_path / "s.jpg", quality=90))
    assert facts.skew_degrees == pytest.approx(-angle, abs=0.3)
    assert abs(facts.frame_width - 512) <= 3 and abs(facts.frame_height - 512) <= 3
    assert to_record("s", facts).evidence.skew_centidegrees == round(facts.skew_degrees * 100)


# --- EXIF ----------------------------------------------------------------------


def test_jpeg_capture_date_and_orientation(tmp_path: Path) -> None:
    wide = Image.fromarray(skimage.data.astronaut()[:, :400])  # 400 x 512
    data = jpeg_bytes(wide, quality=90)
    plain = tmp_path / "plain.jpg"
    plain.write_bytes(data)
    turned = tmp_path / "turned.jpg"
    turned.write_bytes(with_exif(data, exif_bytes("1987:06:05 14:03:09", orientation=6)))

    upright_facts = read_image(turned)
    assert upright_facts.capture_date == "1987-06-05T14:03:09"
    assert (upright_facts.width, upright_facts.height) == (512, 400)
    assert (upright_facts.frame_width, upright_facts.frame_height) == (512, 400)

    # Orientation 6 means "turn 90 degrees clockwise to display".
    with Image.open(plain) as im:
        rotated = im.transpose(Image.Transpose.ROTATE_270)
    expected = read_image(save(rotated, tmp_path / "rotated.png"))
    assert upright_facts.fingerprints == expected.fingerprints
    # A JPEG's pixel digest covers its coded data, not decoded pixels.
    assert upright_facts.pixel_digest != expected.pixel_digest
    plain_facts = read_image(plain)
    assert plain_facts.capture_date is None
    assert relation(plain_facts, upright_facts) == "rotated_mirrored"


@pytest.mark.parametrize("date", ["0000:00:00 00:00:00", "yesterday", "2001:13:45 99:00:00", "    "])
def test_garbled_capture_date_is_none(tmp_path: Path, date: str) -> None:
    path = tmp_path / "d.jpg"
    path.write_bytes(with_exif(jpeg_bytes(camera()), exif_bytes(date)))
    assert read_image(path).capture_date is None


def test_png_exif_capture_date(tmp_path: Path) -> None:
    path = save(camera(), tmp_path / "c.png", exif=exif_bytes("2003:04:05 06:07:08"))
    assert read_image(path).capture_date == "2003-04-05T06:07:08"


def with_comment(jpeg: bytes, text: bytes) -> bytes:
    """The same JPEG with a COM segment inserted right after SOI."""
    return jpeg[:2] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + jpeg[2:]


def test_metadata_only_edits_keep_the_pixel_digest(tmp_path: Path) -> None:
    """Same coded JPEG data with other EXIF, comment or no metadata: same pixel digest."""
    data = jpeg_bytes(astronaut(), quality=85)
    variants = {
        "original": with_exif(data, exif_bytes("2001:02:03 04:05:06")),
        "edited": with_exif(data, exif_bytes("2011:12:13 14:15:16")),
        "stripped": with_exif(data, None),
        "commented": with_comment(with_exif(data, exif_bytes("2001:02:03 04:05:06")), b"Harbour, 1931"),
        "pillow comment": jpeg_bytes(astronaut(), quality=85, comment=b"re-catalogued"),
    }
    facts = {}
    for name, blob in variants.items():
        (tmp_path / f"{name}.jpg").write_bytes(blob)
        facts[name] = read_image(tmp_path / f"{name}.jpg")
    assert len({f.sha256 for f in facts.values()}) == 5
    assert len({f.pixel_digest for f in facts.values()}) == 1
    assert len({f.fingerprints for f in facts.values()}) == 1
    assert facts["edited"].capture_date == "2011-12-13T14:15:16"
    assert relation(facts["original"], facts["edited"]) == "identical_pixels"

    first, second = PngImagePlugin.PngInfo(), PngImagePlugin.PngInfo()
    first.add_text("Title", "Harbour, 1931")
    second.add_text("Title", "Harbour at dusk")
    second.add_itxt("Description", "re-catalogued")
    a = read_image(save(astronaut(), tmp_path / "a.png", pnginfo=first))
    b = read_image(save(astronaut(), tmp_path / "b.png", pnginfo=second))
    assert a.sha256 != b.sha256
    assert a.pixel_digest == b.pixel_digest


def test_exif_orientation_changes_the_jpeg_pixel_digest(tmp_path: Path) -> None:
    """Orientation changes the upright pixels, so it is part of the digest (1 = no tag)."""
    data = jpeg_bytes(astronaut(), quality=85)
    digests = {}
    for orientation in (None, 1, 3, 6, 8):
        path = tmp_path / f"o{orientation}.jpg"
        path.write_bytes(with_exif(data, None if orientation is None else exif_bytes(orientation=orientation)))
        digests[orientation] = read_image(path).pixel_digest
    assert digests[None] == digests[1]
    assert len({digests[o] for o in (1, 3, 6, 8)}) == 4


def test_recompressed_jpeg_changes_the_pixel_digest(tmp_path: Path) -> None:
    a = read_image(save(astronaut(), tmp_path / "a.jpg", quality=85))
    b = read_image(save(astronaut(), tmp_path / "b.jpg", quality=84))
    assert a.pixel_digest != b.pixel_digest
    assert relation(a, b) == "reencoded"


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


def test_heic_is_read_and_matches_its_original(tmp_path: Path) -> None:
    import pillow_heif

    from dedup.matching import link, relation_name
    from dedup.node.scan import to_record

    pillow_heif.register_heif_opener()
    astronaut().save(tmp_path / "photo.heic", quality=80)
    facts = read_image(tmp_path / "photo.heic")
    assert (facts.format, facts.format_family, facts.width, facts.height) == ("HEIF", "lossy", 512, 512)
    original = to_record("a", read_image(save(astronaut(), tmp_path / "photo.png")))
    assert relation_name(link(original, to_record("b", facts)).relation) == "reencoded"


# --- perceptual robustness: the matching rule on real copies ----------------------


def _variants(im: Image.Image, tmp_path: Path, stem: str) -> dict[str, tuple[Path, str | None]]:
    """Copies of ``im`` written as files, with the relation label the rule should give."""
    w, h = im.size
    rgb = im.convert("RGB")
    grey_label = "reencoded" if im.mode == "L" else "greyscale"
    b = round(0.06 * max(w, h))
    bordered = Image.new("RGB", (w + 2 * b, h + 2 * b), "white")
    bordered.paste(rgb, (b, b))
    skewed = rgb.rotate(3, resample=Image.Resampling.BICUBIC, expand=True, fillcolor="white")
    return {
        "jpeg q30": (save(rgb, tmp_path / f"{stem}-q30.jpg", quality=30), "reencoded"),
        "50% resize": (save(im.resize((w // 2, h // 2), Image.Resampling.LANCZOS), tmp_path / f"{stem}-half.png"),
                       "reencoded"),
        "greyscale": (save(im.convert("L"), tmp_path / f"{stem}-grey.jpg", quality=75), grey_label),
        "rotated 90": (save(im.transpose(Image.Transpose.ROTATE_90), tmp_path / f"{stem}-rot.png"),
                       "rotated_mirrored"),
        "mirrored": (save(im.transpose(Image.Transpose.FLIP_LEFT_RIGHT), tmp_path / f"{stem}-mirror.png"),
                     "rotated_mirrored"),
        "cropped 15% right": (save(im.crop((0, 0, round(w * 0.85), h)), tmp_path / f"{stem}-cropr.png"), "cropped"),
        "cropped 15% top": (save(rgb.crop((0, round(h * 0.15), w, h)), tmp_path / f"{stem}-cropt.jpg", quality=90),
                            "cropped"),
        "6% white matte": (save(bordered, tmp_path / f"{stem}-matte.png"), "bordered"),
        "3 degree skew": (save(skewed, tmp_path / f"{stem}-skew.png"), "rescanned"),
    }


PHOTOGRAPHS = ("camera", "astronaut", "coffee")


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ImageFacts]:
    tmp = tmp_path_factory.mktemp("originals")
    return {name: read_image(save(Image.fromarray(getattr(skimage.data, name)()), tmp / f"{name}.png"))
            for name in PHOTOGRAPHS}


@pytest.mark.parametrize("stem", PHOTOGRAPHS)
def test_variants_are_linked_with_their_relation(tmp_path: Path, originals, stem: str) -> None:
    original = originals[stem]
    for kind, (path, expected) in _variants(Image.fromarray(getattr(skimage.data, stem)()), tmp_path, stem).items():
        copy = read_image(path)
        assert shapes(copy) == RECORDS, kind
        for a, b in ((original, copy), (copy, original)):
            found = link(to_record("a", a), to_record("b", b))
            assert found is not None, kind
            assert relation_name(found.relation) == expected, kind
            if expected == "cropped":
                assert found.algorithm == "kp64" and found.kept == pytest.approx(0.85, abs=0.02), kind
                # The link says which of its two records is the crop.
                assert found.crop == (2 if a is original else 1), kind
            else:
                assert found.kept == 1.0, kind


def test_different_photographs_are_not_linked(tmp_path: Path, originals) -> None:
    """No two files of different photographs are linked, whether whole, re-encoded or cropped."""
    others = ["chelsea", "rocket", "moon", "coins", "hubble_deep_field", "immunohistochemistry"]
    facts = dict(originals)
    for name in others:
        facts[name] = read_image(save(Image.fromarray(getattr(skimage.data, name)()), tmp_path / f"{name}.png"))
    for stem in PHOTOGRAPHS:
        im = Image.fromarray(getattr(skimage.data, stem)()).convert("RGB")
        facts[f"{stem} q30"] = read_image(save(im, tmp_path / f"{stem}-q30.jpg", quality=30))
        crop = im.crop((0, 0, round(im.width * 0.85), im.height))
        facts[f"{stem} crop"] = read_image(save(crop, tmp_path / f"{stem}-crop.png"))
    names = sorted(facts)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if a.split()[0] != b.split()[0]:
                assert relation(facts[a], facts[b]) is None, (a, b)
