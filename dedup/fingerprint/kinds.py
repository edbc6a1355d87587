"""Registry of the fingerprint kinds parties may exchange, and their validation.

``dct256`` v1 default threshold (match when Hamming distance <= 32 of 256 bits)
was chosen from the 23 images bundled with scikit-image 0.26 (photographs plus a
few test patterns), hashed as 8-bit luminance at full size:

* same photograph, edited: JPEG q75 <= 8, JPEG q30 <= 10 for photographs (30 for
  two tiny or synthetic patterns), 50% downscale <= 8, 50% downscale + JPEG q75
  <= 8 (22 for the colour test pattern), greyscale JPEG q75 <= 10;
* different photographs: >= 86 (the left and right frames of a stereo pair),
  otherwise >= 102, also when any of the 8 orientations is allowed.
* crops are not caught: keeping 92% of each side already gives 44-136.

Every dct256 value has exactly 128 bits set when its coefficients are distinct,
so distances are almost always even. 32 sits far from the unrelated-photo
floor and matches PDQ's customary 31/256.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import dct


class FingerprintError(ValueError):
    """A fingerprint that must not be stored or compared (the message says why)."""


@dataclass(frozen=True)
class FingerprintKind:
    """One (algorithm, version) pair: its value size and default match distance."""

    name: str
    version: int
    size: int
    threshold: int
    description: str = ""

    @property
    def bits(self) -> int:
        return self.size * 8


DCT256_V1 = FingerprintKind(
    name=dct.ALGORITHM,
    version=dct.VERSION,
    size=dct.HASH_BYTES,
    threshold=32,
    description=(
        "PDQ-style hash: 64x64 area-averaged luminance, DCT-II frequencies 1..16, "
        "median threshold, 256 bits (dedup.fingerprint.dct)"
    ),
)

KINDS: dict[tuple[str, int], FingerprintKind] = {
    (DCT256_V1.name, DCT256_V1.version): DCT256_V1,
}


def get_kind(name: str, version: int) -> FingerprintKind:
    """The registered kind, or FingerprintError naming what is unknown."""
    kind = KINDS.get((name, version))
    if kind is not None:
        return kind
    versions = sorted(v for (n, v) in KINDS if n == name)
    if not versions:
        known = ", ".join(sorted({n for (n, _) in KINDS}))
        raise FingerprintError(f"unknown fingerprint algorithm {name!r} (known: {known})")
    raise FingerprintError(
        f"unknown version {version!r} of fingerprint algorithm {name!r} "
        f"(known: {', '.join(map(str, versions))})"
    )


def validate(name: str, version: int, value: bytes) -> FingerprintKind:
    """Check a received fingerprint and return its kind.

    Degenerate values (all bits 0 or all 1) come from flat images and would match
    every other flat image, so they are refused rather than stored.
    """
    kind = get_kind(name, version)
    if not isinstance(value, bytes | bytearray | memoryview):
        raise FingerprintError(f"{name} v{version} fingerprint must be bytes, got {type(value).__name__}")
    raw = bytes(value)
    if len(raw) != kind.size:
        raise FingerprintError(
            f"{name} v{version} fingerprint must be {kind.size} bytes, got {len(raw)}"
        )
    if raw == bytes(kind.size):
        raise FingerprintError(f"degenerate {name} v{version} fingerprint: all bits are 0 (flat image?)")
    if raw == b"\xff" * kind.size:
        raise FingerprintError(f"degenerate {name} v{version} fingerprint: all bits are 1")
    return kind
