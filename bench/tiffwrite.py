"""16-bit RGB TIFFs with LZW compression, which neither Pillow nor tifffile (without the
imagecodecs package) writes.

Pillow's libtiff encoder does write 16-bit greyscale with LZW, and TIFF compresses each strip
as one run of bytes whatever the samples mean, so a strip of a greyscale image three times as
wide holds exactly the bytes of the same rows in chunky RGB. Those strips are written again
under an RGB directory.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image

_SHORT, _LONG = 3, 4


def save_rgb16_lzw(path: Path, rgb16: np.ndarray) -> None:
    """Write an (height, width, 3) uint16 array as an LZW-compressed RGB TIFF, little-endian."""
    height, width, spp = rgb16.shape
    if spp != 3:
        raise ValueError("expected height x width x 3 samples")
    grey = Image.frombytes("I;16", (width * 3, height), np.ascontiguousarray(rgb16, dtype="<u2").tobytes())
    buffer = io.BytesIO()
    grey.save(buffer, "TIFF", compression="tiff_lzw")
    data = buffer.getvalue()
    with Image.open(io.BytesIO(data)) as made:
        offsets = made.tag_v2[273]
        counts = made.tag_v2[279]
        rows = int(made.tag_v2[278])
    strips = [data[o:o + n] for o, n in zip(offsets, counts)]
    write_strips(path, width, height, rows, strips, bits=(16, 16, 16), compression=5, photometric=2)


def write_strips(path: Path, width: int, height: int, rows_per_strip: int, strips: list[bytes], *,
                 bits: tuple[int, ...], compression: int, photometric: int) -> None:
    """A little-endian, single-page, chunky TIFF from already encoded strips."""
    out = bytearray(b"II*\0\0\0\0\0")
    offsets = []
    for strip in strips:
        offsets.append(len(out))
        out += strip
        if len(out) % 2:
            out += b"\0"

    def array(fmt: str, values: list[int]) -> int:
        at = len(out)
        out.extend(struct.pack(f"<{len(values)}{fmt}", *values))
        return at

    bits_at = array("H", list(bits)) if len(bits) > 2 else None
    offsets_at = array("I", offsets) if len(offsets) > 1 else None
    counts_at = array("I", [len(s) for s in strips]) if len(strips) > 1 else None
    entries = [
        (256, _LONG, 1, width), (257, _LONG, 1, height),
        (258, _SHORT, len(bits), bits_at if bits_at is not None else bits[0]),
        (259, _SHORT, 1, compression), (262, _SHORT, 1, photometric),
        (273, _LONG, len(offsets), offsets_at if offsets_at is not None else offsets[0]),
        (277, _SHORT, 1, len(bits)), (278, _LONG, 1, rows_per_strip),
        (279, _LONG, len(strips), counts_at if counts_at is not None else len(strips[0])),
        (284, _SHORT, 1, 1),
    ]
    if len(out) % 2:
        out += b"\0"
    ifd = len(out)
    out += struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        inline = kind == _SHORT and count == 1
        out += struct.pack("<HHI", tag, kind, count) + (struct.pack("<HH", value, 0) if inline else struct.pack("<I", value))
    out += struct.pack("<I", 0)
    out[4:8] = struct.pack("<I", ifd)
    Path(path).write_bytes(bytes(out))
