"""Detect images with no picture to match, whose hashes collide with each other.

Two kinds. Near-blank images: the DCT band is (almost) empty.

Blank pages, grey cards, uniform colour and smooth ramps put (almost) no energy
into the DCT block that ``dct256`` thresholds, so their bits are decided by
noise and faint shading and two unrelated blank pages can look identical.

The score is the RMS amplitude, in grey levels of a 0-255 luminance scale, of
the image component that ``dct256`` sees: sqrt(sum of squared coefficients of
frequencies 1..16 on both axes of the orthonormal 64x64 DCT / 4096).

Measured (scikit-image 0.26 bundled images and generated arrays): photographs
and textures 4.1 (brick) to 52 (astronaut), moon 8.3, hubble_deep_field 7.7,
camera at 5% brightness 2.1, a white page with one line of text 3.1;
flat / linear or diagonal ramps 0.0, grey card with a 20-level radial vignette
0.7, noisy blank page 0.3 (0.4 after JPEG), white page with one small dot 1.6.

A few flat areas (a colour target, one flat shape on a plain ground): the hashes describe
only where the areas meet, which unrelated images of the kind share. Measured as areas of
constant tone on the 128 x 128 grid of the frame: connected cells that differ from their
right and lower neighbours by under one grey level, at least ``MIN_AREA`` cells, whose tone
varies by at most ``AREA_RANGE`` over the whole area (a smooth gradient is one connected run of
such cells, but not of one tone). An image is a few flat areas when such areas cover at least
``FEW_AREAS_COVER`` of the grid and number at most ``FEW_AREAS``, and what is left is their
edges: at most ``AWAY_FROM_AREAS`` of the grid lies more than ``EDGE_WIDTH`` cells from every
area (a textured object on plain ground, a nebula on black, is a picture). Measured: colour targets and single shapes on plain or transparent grounds
cover 0.95-0.99 in 1-6 areas; rendered vector artwork and clipart covers a median 0.63 in a
median of 17 areas, political maps 0.59-0.87 in 9-67, photographs and paintings at most 0.79;
smooth designed backgrounds (gradients and soft shapes) under 0.1. Posters, vector artwork
and maps are many flat areas, not a few: they are pictures to match.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from . import dct

#: Images scoring below this are treated as carrying no usable information.
LOW_INFORMATION_THRESHOLD = 2.0
MIN_AREA = 16
AREA_RANGE = 8.0
FEW_AREAS_COVER = 0.9
FEW_AREAS = 8
#: Cells within this many of an area are its edge.
EDGE_WIDTH = 2
#: Share of the grid that may lie beyond every area's edge in a picture of a few flat areas.
AWAY_FROM_AREAS = 0.01


def band_energy(block: np.ndarray) -> float:
    """RMS grey-level amplitude of an unquantised 16x16 ``dct256`` band."""
    return float(np.sqrt(np.sum(block * block) / (dct.GRID * dct.GRID)))


def information_score(gray: np.ndarray) -> float:
    """RMS grey-level amplitude of the band the ``dct256`` hash is built from."""
    return band_energy(dct.frequency_band(gray))


def is_low_information(gray: np.ndarray, threshold: float = LOW_INFORMATION_THRESHOLD) -> bool:
    """True for flat or near-blank images that must not be matched by a global hash."""
    return information_score(gray) < threshold


def few_flat_areas(grid: np.ndarray) -> bool:
    """Whether a picture is only a few flat areas and their edges (see the module's notes), on
    an area-average grid of it (0-255 scale)."""
    step = np.maximum(np.abs(np.diff(grid, axis=1))[:-1, :], np.abs(np.diff(grid, axis=0))[:, :-1])
    flat = step < 1.0
    if flat.mean() < FEW_AREAS_COVER:
        return False  # the areas could not cover enough: most pictures stop here, cheaply
    labels, n = ndimage.label(flat)
    tone = grid[:-1, :-1]
    idx = np.arange(1, n + 1)
    size = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    spread = np.asarray(ndimage.maximum(tone, labels, idx)) - np.asarray(ndimage.minimum(tone, labels, idx))
    constant = (size >= MIN_AREA) & (spread <= AREA_RANGE)
    if size[constant].sum() / step.size < FEW_AREAS_COVER or int(constant.sum()) > FEW_AREAS:
        return False
    # What is left must be the areas' edges, not a picture of its own on plain ground (a
    # nebula on black, an object on a backdrop): little of it lies away from every area.
    in_area = np.isin(labels, idx[constant])
    away = ~ndimage.binary_dilation(in_area, iterations=EDGE_WIDTH)
    return bool(away.mean() <= AWAY_FROM_AREAS)
