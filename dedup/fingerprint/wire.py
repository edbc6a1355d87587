"""The fingerprint set on the wire: (algorithm, version, value) records and back."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Iterable

from . import points as kp
from .suite import Suite

DCT256 = ("dct256", 2)
DCT64 = ("dct64", 2)
KP64 = (kp.ALGORITHM, kp.VERSION)

#: The kinds a complete record carries, in the order ``to_wire`` writes them. A record made
#: with another set (an earlier version) is not compared until its node fingerprints it again.
CURRENT = (DCT256, DCT64, KP64)


def to_wire(suite: Suite) -> list[tuple[str, int, bytes]]:
    return [
        (*DCT256, b"".join(suite.dihedral)),
        (*DCT64, suite.low + suite.low_whole),
        (*KP64, kp.to_bytes(suite.points)),
    ]


@dataclass(frozen=True)
class Hashes:
    """The perceptual fingerprints of one asset, split into their parts."""

    dihedral: tuple[bytes, ...]  # 8 x 32 bytes, upright first
    low: bytes  # 8 bytes: the frame
    low_whole: bytes  # 8 bytes: the whole picture before trimming
    points: bytes  # kp64 v1 value: keypoints of the whole picture

    @property
    def upright(self) -> bytes:
        return self.dihedral[0]

    @cached_property
    def ints(self) -> HashInts:
        """The parts as integers: the matching rule compares them many times per pair, and
        ``(x ^ y).bit_count()`` on ints is far cheaper than converting bytes each time."""
        big = int.from_bytes
        return HashInts(tuple(big(d, "big") for d in self.dihedral), big(self.low, "big"), big(self.low_whole, "big"))

    @cached_property
    def keypoints(self) -> kp.Points:
        return kp.from_bytes(self.points)


@dataclass(frozen=True)
class HashInts:
    """The global hashes as big-endian integers, part for part."""

    dihedral: tuple[int, ...]
    low: int
    low_whole: int


def from_wire(records: Iterable[tuple[str, int, bytes]]) -> Hashes | None:
    """The hashes of an asset's fingerprint records, or None when the set is incomplete."""
    got = {(name, version): value for name, version, value in records}
    d, low, p = got.get(DCT256), got.get(DCT64), got.get(KP64)
    if d is None or low is None or p is None or (len(d), len(low)) != (256, 16):
        return None
    try:
        kp.check(p)
    except kp.PointsError:
        return None
    return Hashes(tuple(d[i:i + 32] for i in range(0, 256, 32)), low[:8], low[8:], bytes(p))
