"""Detect near-blank images, whose global hashes collide with each other.

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
"""

from __future__ import annotations

import numpy as np

from . import dct

#: Images scoring below this are treated as carrying no usable information.
LOW_INFORMATION_THRESHOLD = 2.0


def band_energy(block: np.ndarray) -> float:
    """RMS grey-level amplitude of an unquantised 16x16 ``dct256`` band."""
    return float(np.sqrt(np.sum(block * block) / (dct.GRID * dct.GRID)))


def information_score(gray: np.ndarray) -> float:
    """RMS grey-level amplitude of the band the ``dct256`` hash is built from."""
    return band_energy(dct.frequency_band(gray))


def is_low_information(gray: np.ndarray, threshold: float = LOW_INFORMATION_THRESHOLD) -> bool:
    """True for flat or near-blank images that must not be matched by a global hash."""
    return information_score(gray) < threshold
