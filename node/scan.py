"""Walk the member's storage, fingerprint what is new or changed, record it in the catalogue.

Unchanged files (same size and mtime as recorded) are not opened. Files are read in a
process pool with a bounded number in flight, so memory stays flat however large the
collection. A file that cannot be read is recorded with the reason and the scan goes on.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from dedup.v1 import asset_pb2

from .catalogue import Catalogue
from .imaging import ImageError, ImageFacts, read_image

@dataclass
class ScanSummary:
    seen: int = 0
    unchanged: int = 0
    read: int = 0
    failed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why) not even attempted
    errors: list[tuple[str, str]] = field(default_factory=list)   # (path, reason) read and refused
    bytes_read: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "seen": self.seen, "unchanged": self.unchanged, "read": self.read, "failed": self.failed,
            "bytes_read": self.bytes_read, "seconds": round(self.seconds, 3),
            "errors": [{"path": p, "reason": r} for p, r in self.errors],
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
        }


def walk(roots: Iterable[Path], skipped: list[tuple[str, str]]) -> Iterator[tuple[Path, os.stat_result]]:
    """Regular files under ``roots``; never follows a symbolic link, so never loops or escapes."""
    for root in roots:
        stack = [root]
        while stack:
            d = stack.pop()
            try:
                entries = sorted(os.scandir(d), key=lambda e: e.name)
            except OSError as exc:
                skipped.append((str(d), f"cannot list folder: {exc.strerror}"))
                continue
            for e in entries:
                try:
                    if e.is_symlink():
                        skipped.append((e.path, "symbolic link (not followed)"))
                    elif e.is_dir(follow_symlinks=False):
                        stack.append(Path(e.path))
                    elif e.is_file(follow_symlinks=False):
                        yield Path(e.path), e.stat(follow_symlinks=False)
                    else:
                        skipped.append((e.path, "not a regular file"))
                except OSError as exc:
                    skipped.append((e.path, f"cannot stat: {exc.strerror}"))


def _read(path: str) -> ImageFacts | str:
    """Worker: the facts of one file, or the reason it cannot be read."""
    try:
        return read_image(Path(path))
    except ImageError as exc:
        return str(exc)
    except OSError as exc:
        return f"cannot read file: {exc.strerror or exc}"


def to_record(asset_id: str, facts: ImageFacts, rights: str = "unknown") -> asset_pb2.Asset:
    family = asset_pb2.FORMAT_FAMILY_LOSSLESS if facts.format_family == "lossless" else asset_pb2.FORMAT_FAMILY_LOSSY
    return asset_pb2.Asset(
        asset_id=asset_id,
        sha256=facts.sha256,
        pixel_digest=facts.pixel_digest,
        fingerprints=[asset_pb2.Fingerprint(algorithm=n, version=v, value=val) for n, v, val in facts.fingerprints],
        evidence=asset_pb2.Evidence(
            width=facts.width, height=facts.height, bit_depth=facts.bit_depth, format_family=family,
            jpeg_quality=facts.jpeg_quality or 0, capture_date=facts.capture_date or "", rights=rights,
            channels=facts.channels, frame_width=facts.frame_width, frame_height=facts.frame_height,
            skew_centidegrees=round(facts.skew_degrees * 100), luma_mean=facts.luma_mean,
            luma_spread=facts.luma_spread, saturation=facts.saturation,
        ),
        low_information=facts.low_information,
    )


def scan(catalogue: Catalogue, roots: list[Path], workers: int = 0, progress: bool | None = None) -> ScanSummary:
    started = time.monotonic()
    summary = ScanSummary()
    known = catalogue.stat_index()
    todo: list[tuple[str, int, int, str]] = []
    for path, st in walk([r.resolve() for r in roots], summary.skipped):
        summary.seen += 1
        key = str(path)
        prev = known.get(key)
        if prev is not None and prev[0] == st.st_size and prev[1] == st.st_mtime_ns:
            summary.unchanged += 1
            continue
        asset_id = prev[2] if prev else "a-" + secrets.token_hex(12)
        todo.append((key, st.st_size, st.st_mtime_ns, asset_id))

    if progress is None:
        progress = sys.stderr.isatty()
    n_workers = workers or os.cpu_count() or 1
    bar = tqdm(total=sum(t[1] for t in todo), unit="B", unit_scale=True, desc="scanning",
               disable=not progress, file=sys.stderr)
    with ProcessPoolExecutor(max_workers=n_workers) as pool:
        in_flight: list[tuple[tuple[str, int, int, str], Future]] = []
        pending = iter(todo)

        def fill() -> None:
            for item in pending:
                in_flight.append((item, pool.submit(_read, item[0])))
                if len(in_flight) >= n_workers * 4:
                    return

        fill()
        while in_flight:
            item, fut = in_flight.pop(0)
            _record(catalogue, item, fut.result(), summary)
            bar.update(item[1])
            fill()
    bar.close()
    summary.seconds = time.monotonic() - started
    return summary


def _record(catalogue: Catalogue, item: tuple[str, int, int, str], result: ImageFacts | str, summary: ScanSummary) -> None:
    path, size, mtime_ns, asset_id = item
    row: dict = {"path": path, "size": size, "mtime_ns": mtime_ns, "asset_id": asset_id, "scanned_unix": int(time.time())}
    if isinstance(result, str):
        summary.failed += 1
        summary.errors.append((path, result))
        row.update(error=result, sha256=None, width=None, height=None, bit_depth=None, mode=None, format=None,
                   format_family=None, jpeg_quality=None, capture_date=None, low_information=None, record=None)
    else:
        summary.read += 1
        summary.bytes_read += size
        f = result
        row.update(error=None, sha256=f.sha256, width=f.width, height=f.height, bit_depth=f.bit_depth, mode=f.mode,
                   format=f.format, format_family=f.format_family, jpeg_quality=f.jpeg_quality,
                   capture_date=f.capture_date, low_information=int(f.low_information),
                   record=to_record(asset_id, f).SerializeToString(deterministic=True))
    with catalogue.transaction() as db:
        catalogue.put_file(db, row)
