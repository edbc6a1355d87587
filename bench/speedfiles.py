"""The files `make bench-hash` times: large JPEG and TIFF masters, and small JPEGs for the scan.

Generated once from the accuracy corpus's largest originals and cached in bench/.cache/speed,
rebuilt when this module, bench/tiffwrite.py or the corpus generator changes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from bench import dataset, tiffwrite
from bench.common import CACHE, log, sources_digest

SPEED = CACHE / "speed"
N_JPEG = 40
#: TIFF masters as archives keep them; the files cycle through these kinds.
TIFF_KINDS = ("8bit", "16bit", "8bit_lzw", "16bit_lzw")
N_TIFF = 4 * len(TIFF_KINDS)
SMALL_SIDE = 400
SMALL_COUNT = 20000
SEED = 7321


def tiff_kind(p: Path) -> str:
    """The kind of a generated TIFF, from its name (large_NN_KIND.tif)."""
    return p.stem.split("_", 2)[2]


def _masters() -> list[Path]:
    """The corpus masters, largest first (building the corpus if needed)."""
    corpus = dataset.build()
    ms = [corpus.path(e) for e in corpus.entries if e.role == "master"]
    sizes = {p: Image.open(p).size for p in ms}
    return sorted(ms, key=lambda p: (-(sizes[p][0] * sizes[p][1]), str(p)))


def _upscale(src: Path, long_side: int, rng: np.random.Generator) -> Image.Image:
    """Lanczos upscale plus slight noise, so the file is not trivially compressible."""
    with Image.open(src) as im:
        im = im.convert("RGB")
        s = long_side / max(im.size)
        big = im.resize((round(im.width * s), round(im.height * s)), Image.Resampling.LANCZOS)
    arr = np.asarray(big, dtype=np.int16) + rng.normal(0, 3.0, (big.height, big.width, 1)).astype(np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def build_files() -> tuple[list[Path], list[Path], list[Path]]:
    """(large JPEGs, large TIFFs, small JPEGs for the scan), cached."""
    key = sources_digest(Path(__file__), Path(tiffwrite.__file__)) + dataset._generator_key()
    stamp = SPEED / "generator"
    jpegs = [SPEED / "large" / f"large_{i:02d}.jpg" for i in range(N_JPEG)]
    tiffs = [SPEED / "large" / f"large_{i:02d}_{TIFF_KINDS[i % len(TIFF_KINDS)]}.tif" for i in range(N_TIFF)]
    small = [SPEED / "small" / f"{i // 500:02d}" / f"s{i:05d}.jpg" for i in range(SMALL_COUNT)]
    if stamp.exists() and stamp.read_text() == key and all(p.exists() for p in jpegs + tiffs + small):
        log(f"speed files: reusing {SPEED}")
        return jpegs, tiffs, small
    import shutil

    import tifffile

    shutil.rmtree(SPEED, ignore_errors=True)
    (SPEED / "large").mkdir(parents=True)
    masters = _masters()
    rng = np.random.default_rng(SEED)
    log(f"speed files: {N_JPEG} JPEGs of 3000-4000 px from the largest originals")
    for i, p in enumerate(jpegs):
        _upscale(masters[i % len(masters)], int(rng.integers(3000, 4001)), rng).save(p, "JPEG", quality=90)
    log(f"speed files: {N_TIFF} TIFFs of 3000 px ({', '.join(TIFF_KINDS)})")
    for i, p in enumerate(tiffs):
        im = _upscale(masters[(N_JPEG + i) % len(masters)], 3000, rng)
        kind = tiff_kind(p)
        if kind.startswith("16bit"):
            # 16-bit with real low bits: x257 plus noise below one 8-bit step.
            arr = np.asarray(im, dtype=np.uint16) * 257 + rng.integers(0, 257, (im.height, im.width, 3), dtype=np.uint16)
            if kind.endswith("lzw"):
                tiffwrite.save_rgb16_lzw(p, arr)
            else:
                tifffile.imwrite(p, arr, photometric="rgb")
        else:
            im.save(p, "TIFF", **({"compression": "tiff_lzw"} if kind.endswith("lzw") else {}))
    log(f"speed files: {len(small)} JPEGs of {SMALL_SIDE} px for the scan")
    for i, p in enumerate(small):
        p.parent.mkdir(parents=True, exist_ok=True)
        src = masters[i % len(masters)]
        with Image.open(src) as im:
            w, h = im.size
            # A different window of the master for every file, so no two files are alike.
            f = rng.uniform(0.6, 1.0)
            cw, ch = int(w * f), int(h * f)
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            t = im.convert("RGB").crop((x, y, x + cw, y + ch))
        t.thumbnail((SMALL_SIDE, SMALL_SIDE), Image.Resampling.LANCZOS)
        t.save(p, "JPEG", quality=85)
    stamp.write_text(key)
    return jpegs, tiffs, small
