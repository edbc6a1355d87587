"""Registry of the fingerprint kinds parties may exchange, and their validation.

A kind is one exact computation, named by (algorithm, version); a value may hold several
fixed-size hashes ("parts"). Default match distances are per part and are justified by
the accuracy benchmark (bench/README.md); SPEC.md section 5 lists them.
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
    parts: int = 1
    #: Whether an all-0 or all-1 part is refused (for windows it only means a flat strip).
    refuse_degenerate: bool = True

    @property
    def bits(self) -> int:
        return self.size * 8


DCT256_V2 = FingerprintKind(
    name="dct256",
    version=2,
    size=8 * dct.HASH_BYTES,
    threshold=32,
    parts=8,
    description=(
        "PDQ-style 256-bit DCT hash of the picture's frame (mattes trimmed, skew undone), "
        "and its 7 other dihedral variants from the same DCT, upright first"
    ),
)
DCT64_V2 = FingerprintKind(
    name="dct64",
    version=2,
    size=16,
    threshold=6,
    parts=2,
    description="64-bit hashes of DCT frequencies 1..8 of the frame and of the untrimmed picture",
)
WIN64_V2 = FingerprintKind(
    name="win64",
    version=2,
    size=8 * 36,
    threshold=6,
    parts=36,
    refuse_degenerate=False,
    description="64-bit low-frequency hashes of 36 fixed sub-windows of the untrimmed picture, for crops",
)

KINDS: dict[tuple[str, int], FingerprintKind] = {
    (k.name, k.version): k for k in (DCT256_V2, DCT64_V2, WIN64_V2)
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
    if kind.refuse_degenerate:
        part = kind.size // kind.parts
        for i in range(kind.parts):
            chunk = raw[i * part:(i + 1) * part]
            where = f" (part {i})" if kind.parts > 1 else ""
            if chunk == bytes(part):
                raise FingerprintError(f"degenerate {name} v{version} fingerprint{where}: all bits are 0 (flat image?)")
            if chunk == b"\xff" * part:
                raise FingerprintError(f"degenerate {name} v{version} fingerprint{where}: all bits are 1")
    return kind
