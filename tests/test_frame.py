"""The picture's frame: mattes trimmed exactly, natural flat regions kept, scanner skew
measured and undone, so every copy of a picture is fingerprinted over the same area."""

from __future__ import annotations

import io

import numpy as np
import pytest
import skimage.data
from PIL import Image

from dedup.fingerprint.frame import PAIR_TONE, Frame, flat_edges, frame, skew_angle, trim, trim_box

#: Photographs whose edges differ from white, black and mid-grey, so a matte of any of
#: those tones ends in a clear step.
PHOTOGRAPHS = ("camera", "astronaut", "coffee", "chelsea", "rocket")


def photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(skimage.data, name)()).convert("RGB")


def luma(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("L"), dtype=np.float32)


def jpeg(im: Image.Image, quality: int = 75) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf)


def with_matte(im: Image.Image, width: int, tone: int) -> Image.Image:
    out = Image.new("RGB", (im.width + 2 * width, im.height + 2 * width), (tone,) * 3)
    out.paste(im, (width, width))
    return out


def skewed(im: Image.Image, degrees: float, fill: str = "white") -> Image.Image:
    """A print laid askew on a scanner bed (Pillow: positive = counter-clockwise)."""
    return im.rotate(degrees, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=fill)


# --- trim -------------------------------------------------------------------------


@pytest.mark.parametrize("name", PHOTOGRAPHS)
def test_photographs_without_matte_are_not_trimmed(name: str) -> None:
    a = luma(photo(name))
    assert trim_box(a) == (0, 0, 0, 0)
    out, kept = trim(a)
    assert out.shape == a.shape and kept == 1.0


@pytest.mark.parametrize("tone", [255, 0, 128])
@pytest.mark.parametrize("name", PHOTOGRAPHS)
def test_matte_is_removed_exactly(name: str, tone: int) -> None:
    """A lossless matte of any tone comes off to the pixel, on every side."""
    im = photo(name)
    for width in (8, 30):
        out, kept = trim(luma(with_matte(im, width, tone)))
        assert out.shape == (im.height, im.width), width
        np.testing.assert_array_equal(out, luma(im))
        assert kept == pytest.approx(im.width * im.height / ((im.width + 2 * width) * (im.height + 2 * width)))


@pytest.mark.parametrize("tone", [255, 0, 128])
@pytest.mark.parametrize(("scale", "quality"), [(0.5, 75), (0.7, 90)])
def test_matte_is_removed_within_two_pixels_after_resizing_and_jpeg(tone: int, scale: float, quality: int) -> None:
    """Resampling ringing and JPEG blocks at the matte's edge cost at most a line or two."""
    for name in ("camera", "coffee", "chelsea"):
        im = photo(name)
        bordered = with_matte(im, round(0.06 * max(im.size)), tone)
        small = bordered.resize((round(bordered.width * scale), round(bordered.height * scale)),
                                Image.Resampling.LANCZOS)
        out, _ = trim(luma(jpeg(small, quality)))
        assert abs(out.shape[0] - im.height * scale) <= 2, (name, out.shape)
        assert abs(out.shape[1] - im.width * scale) <= 2, (name, out.shape)


@pytest.mark.parametrize("name", ("camera", "coffee", "rocket"))
def test_bordered_copy_and_original_get_the_same_frame(name: str) -> None:
    """The bordered copy (half size, JPEG) and the original's own half-size copy: within 2 px."""
    im = photo(name)
    half = (im.width // 2, im.height // 2)
    original, _ = trim(luma(jpeg(im.resize(half, Image.Resampling.LANCZOS), 85)))
    b = with_matte(im, 40, 255)
    copy, _ = trim(luma(jpeg(b.resize((b.width // 2, b.height // 2), Image.Resampling.LANCZOS), 85)))
    assert abs(copy.shape[0] - original.shape[0]) <= 2 and abs(copy.shape[1] - original.shape[1]) <= 2


def test_matte_around_a_bordered_print_is_removed_too() -> None:
    """Trimming repeats: a grey mount around a white-bordered print leaves the picture."""
    im = photo("astronaut")
    out, _ = trim(luma(with_matte(with_matte(im, 12, 255), 20, 90)))
    assert out.shape == (512, 512)


def _fading_band(tone: float, flat: int, fade: int) -> np.ndarray:
    """Camera with a flat band of ``tone`` over its top ``flat`` rows, fading into the
    picture over the next ``fade`` rows: a plain sky, not an added border."""
    cam = skimage.data.camera().astype(np.float32)
    alpha = np.clip((np.arange(cam.shape[0]) - flat) / fade, 0.0, 1.0)[:, None]
    return ((1.0 - alpha) * tone + alpha * cam).astype(np.float32)


@pytest.mark.parametrize("tone", [200.0, 230.0, 60.0])
def test_flat_region_fading_into_the_picture_is_kept(tone: float) -> None:
    a = _fading_band(tone, flat=60, fade=120)
    assert trim_box(a) == (0, 0, 0, 0)
    assert trim(a)[0].shape == a.shape


def test_flat_region_with_noise_fading_into_the_picture_is_kept() -> None:
    a = _fading_band(200.0, flat=60, fade=120) + np.random.default_rng(0).normal(0, 1.5, (512, 512))
    assert trim_box(a.astype(np.float32)) == (0, 0, 0, 0)


def test_a_surround_leaving_less_than_half_the_area_is_not_trimmed() -> None:
    """Cutting away more than half would take the picture for its background."""
    cam = skimage.data.camera().astype(np.float32)
    page = np.full((512, 512), 255.0, dtype=np.float32)
    page[128:384, 128:384] = cam[128:384, 128:384]
    assert trim_box(page) == (0, 0, 0, 0)
    out, kept = trim(page)
    assert out.shape == (512, 512) and kept == 1.0


def test_a_single_flat_line_is_not_a_matte() -> None:
    a = luma(photo("camera"))
    a[0, :] = 255.0
    assert trim_box(a) == (0, 0, 0, 0)


# --- borders come in opposite pairs ------------------------------------------------------


def _camera() -> np.ndarray:
    return skimage.data.camera().astype(np.float32)


@pytest.mark.parametrize("side", ["top", "bottom", "left", "right"])
def test_a_flat_strip_on_one_side_is_kept(side: str) -> None:
    """Plain ground along one edge ending in a step (a wall behind a portrait) is the
    picture's own: only surrounds on opposite sides are trimmed."""
    a = _camera()
    cut = {"top": np.s_[:40, :], "bottom": np.s_[-40:, :], "left": np.s_[:, :40], "right": np.s_[:, -40:]}[side]
    a[cut] = 255.0
    assert trim_box(a) == (0, 0, 0, 0)
    assert frame(a).content_fraction == 1.0
    # flat_edges still reports it (labels tell a border from a crop by it).
    # 40 of 512 lines; camera's sky is flat for its top 38 rows unless a strip crosses them.
    expected = {"top": (40, 0, 0, 0), "bottom": (38, 40, 0, 0), "left": (0, 0, 40, 0), "right": (0, 0, 0, 40)}[side]
    assert flat_edges(a) == tuple(n / 512 for n in expected)


def test_letterbox_and_pillarbox_bars_are_trimmed_as_pairs() -> None:
    a = _camera()
    letterbox = np.pad(a, ((30, 30), (0, 0)), constant_values=0.0)
    assert trim_box(letterbox) == (30, 30, 0, 0)
    pillarbox = np.pad(a, ((0, 0), (50, 50)), constant_values=128.0)
    assert trim_box(pillarbox) == (0, 0, 50, 50)
    assert flat_edges(pillarbox) == pytest.approx((0.0, 0.0, 50 / 612, 50 / 612))


@pytest.mark.parametrize(("bottom", "trimmed"), [(240.0 - PAIR_TONE, True), (240.0 - PAIR_TONE - 1, False), (0.0, False)])
def test_opposite_bars_must_share_a_tone(bottom: float, trimmed: bool) -> None:
    """A white bar above and a black one below are two pieces of the picture, not one surround;
    a mat lit from one side differs by up to PAIR_TONE."""
    a = np.concatenate([np.full((30, 512), 240.0, np.float32), _camera(), np.full((30, 512), bottom, np.float32)])
    assert trim_box(a) == ((30, 30, 0, 0) if trimmed else (0, 0, 0, 0))


def test_flat_edges_of_a_bordered_picture() -> None:
    """How far in each edge is flat, as shares of the height or width: here the border."""
    a = np.pad(skimage.data.astronaut()[..., 1].astype(np.float32), ((16, 16), (32, 32)), constant_values=255.0)
    assert flat_edges(a) == pytest.approx((16 / 544, 16 / 544, 32 / 576, 32 / 576))
    assert flat_edges(skimage.data.astronaut()[..., 1].astype(np.float32)) == (0.0, 0.0, 0.0, 0.0)


# --- skew ----------------------------------------------------------------------------


@pytest.mark.parametrize("degrees", [1.0, -1.0, 2.0, -2.0, 3.0, -3.0, 4.0, -4.0])
@pytest.mark.parametrize("name", ("camera", "coffee", "chelsea"))
def test_skew_angle_is_recovered(name: str, degrees: float) -> None:
    """Positive skew = turned clockwise, i.e. Pillow's negative (counter-clockwise) angle."""
    found = skew_angle(luma(skewed(photo(name), degrees)))
    assert found is not None
    angle, background = found
    assert angle == pytest.approx(-degrees, abs=0.2)
    assert background == pytest.approx(255.0, abs=6)


@pytest.mark.parametrize("degrees", [1.5, -2.5, 4.0])
@pytest.mark.parametrize("name", ("astronaut", "rocket"))
def test_skew_angle_survives_jpeg(name: str, degrees: float) -> None:
    found = skew_angle(luma(jpeg(skewed(photo(name), degrees), 75)))
    assert found is not None and found[0] == pytest.approx(-degrees, abs=0.2)


def test_skew_angle_on_a_black_bed() -> None:
    found = skew_angle(luma(skewed(photo("camera"), 2.0, fill="black")))
    assert found is not None
    assert found[0] == pytest.approx(-2.0, abs=0.2) and found[1] == pytest.approx(0.0, abs=6)


@pytest.mark.parametrize("name", PHOTOGRAPHS)
def test_no_skew_on_an_unrotated_photograph(name: str) -> None:
    im = photo(name)
    assert skew_angle(luma(im)) is None
    # Laid square on the bed: a matte, not a skew.
    assert skew_angle(luma(with_matte(im, 20, 255))) is None


@pytest.mark.parametrize("name", ("camera", "astronaut", "coffee"))
def test_no_skew_when_content_touches_the_edges(name: str) -> None:
    """Rotated without expanding: the corners are background but the picture fills the edges."""
    im = photo(name).rotate(3.0, resample=Image.Resampling.BICUBIC, expand=False, fillcolor="white")
    assert skew_angle(luma(im)) is None


def test_angles_outside_the_handled_range_are_left_alone() -> None:
    im = photo("camera")
    assert skew_angle(luma(skewed(im, 0.2))) is None  # below MIN_SKEW
    assert skew_angle(luma(skewed(im, 10.0))) is None  # above MAX_SKEW


def test_tiny_arrays_have_no_skew() -> None:
    assert skew_angle(np.zeros((20, 40), dtype=np.float32)) is None


# --- frame ------------------------------------------------------------------------------


def test_frame_of_a_plain_photograph_is_the_photograph() -> None:
    a = luma(photo("coffee"))
    fr = frame(a)
    assert isinstance(fr, Frame)
    assert fr.gray.dtype == np.float32
    np.testing.assert_array_equal(fr.gray, a)
    assert (fr.content_fraction, fr.skew_degrees) == (1.0, 0.0)


def test_frame_of_a_bordered_copy() -> None:
    im = photo("coffee")
    fr = frame(luma(with_matte(im, 36, 255)))
    assert fr.gray.shape == (400, 600)
    assert fr.content_fraction == pytest.approx(600 * 400 / (672 * 472))
    assert fr.skew_degrees == 0.0


@pytest.mark.parametrize("degrees", [3.0, -2.0])
@pytest.mark.parametrize("name", ("camera", "coffee", "rocket"))
def test_frame_undoes_skew(name: str, degrees: float) -> None:
    """The deskewed frame has the print's size (within 2 px) and its content."""
    im = photo(name)
    fr = frame(luma(jpeg(skewed(im, degrees), 85)))
    assert fr.skew_degrees == pytest.approx(-degrees, abs=0.2)
    assert abs(fr.gray.shape[0] - im.height) <= 2 and abs(fr.gray.shape[1] - im.width) <= 2
    # Deskewing does not count as trimming: the copy is labelled as a rescan, not a border.
    assert fr.content_fraction == 1.0
    h, w = fr.gray.shape
    original = luma(im)
    oy, ox = (im.height - h) // 2, (im.width - w) // 2
    diff = np.abs(fr.gray - original[oy:oy + h, ox:ox + w])
    assert float(np.median(diff)) < 6.0


def test_frame_of_a_bordered_print_scanned_askew() -> None:
    """A white-bordered print laid askew on a black bed: deskewed, then the border trimmed."""
    im = photo("camera")
    fr = frame(luma(skewed(with_matte(im, 16, 255), -2.5, fill="black")))
    assert fr.skew_degrees == pytest.approx(2.5, abs=0.2)
    assert abs(fr.gray.shape[0] - 512) <= 2 and abs(fr.gray.shape[1] - 512) <= 2
