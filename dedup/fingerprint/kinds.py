"""Registry of the fingerprint kinds parties may exchange, and their validation.

A kind is one exact computation, named by (algorithm, version); a value may hold several
fixed-size hashes ("parts"). Default match distances are per part and are justified by
the accuracy benchmark (bench/README.md); SPEC.md section 5 lists them.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import dct, points


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
    #: Whether an all-0 or all-1 part is refused.
    refuse_degenerate: bool = True
    #: For a kind whose value varies in length (keypoints), the check of its shape; ``size``
    #: is then its largest size.
    shape_check: object = None

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
KP64_V1 = FingerprintKind(
    name=points.ALGORITHM,
    version=points.VERSION,
    size=points.HEADER + points.POINT_BYTES * points.COUNT,
    threshold=10,
    parts=points.COUNT,
    refuse_degenerate=False,
    shape_check=points.check,
    description=(
        "up to 64 keypoints of the whole picture (scale-space blobs), each with a 64-bit hash of "
        "its patch, its position and its scale, strongest first: crops of any shape"
    ),
)

KINDS: dict[tuple[str, int], FingerprintKind] = {
    (k.name, k.version): k for k in (DCT256_V2, DCT64_V2, KP64_V1)
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
    if kind.shape_check is not None:
        try:
            kind.shape_check(raw)
        except ValueError as exc:
            raise FingerprintError(str(exc)) from None
        return kind
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
