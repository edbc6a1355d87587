"""Walk the member's storage, fingerprint what is new or changed, record it in the catalogue.

Storage is local folders (and network shares mounted as folders) or S3-compatible object
stores (``s3://bucket/prefix``). Unchanged files (same size and mtime, or for objects the
same size, last-modified and ETag) are not read. Files are read in a process pool with a
bounded number in flight, and the walk itself is streamed, so memory stays flat however
large the collection. Each file's row is committed as soon as it is read, so an interrupted
scan resumes where it stopped. A file that cannot be read is recorded with the reason and
the scan goes on; anything not even attempted (links, special files, folders that cannot be
listed) is listed as skipped, never dropped silently.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from dedup.fingerprint.wire import CURRENT
from dedup.v1 import asset_pb2

from .catalogue import Catalogue
from .imaging import ImageError, ImageFacts, read_image, read_stream


#: The fingerprint kinds this version records, as the catalogue remembers them.
FINGERPRINTS = ",".join(f"{name}/{version}" for name, version in CURRENT)


@dataclass(frozen=True)
class Entry:
    """One file to consider: where it is, and what decides whether it changed."""

    locator: str  # local path, or s3://bucket/key
    source: str  # the root it was found under
    size: int
    mtime_ns: int
    version: str = ""  # an object's ETag: a change marker, never a content hash


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
    #: Files read again because their records were made with an earlier fingerprint set.
    refingerprinted: int = 0

    def as_dict(self) -> dict:
        return {
            "seen": self.seen, "unchanged": self.unchanged, "read": self.read, "failed": self.failed,
            "bytes_read": self.bytes_read, "seconds": round(self.seconds, 3),
            "refingerprinted": self.refingerprinted,
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


def local_entries(root: Path, skipped: list[tuple[str, str]]) -> Iterator[Entry]:
    source = str(root)
    for path, st in walk([root], skipped):
        yield Entry(str(path), source, st.st_size, st.st_mtime_ns)


_s3_sources: dict[tuple[str, str | None], object] = {}


def _s3(url: str, endpoint: str | None):
    """One S3Source per (url, endpoint) per process: workers reuse their connection pool."""
    from .s3source import S3Source

    key = (url, endpoint)
    if key not in _s3_sources:
        _s3_sources[key] = S3Source(url, endpoint_url=endpoint)
    return _s3_sources[key]


def _read(locator: str, s3_endpoint: str | None = None) -> ImageFacts | str:
    """Worker: the facts of one file or object, or the reason it cannot be read."""
    try:
        if locator.startswith("s3://"):
            from .s3source import SourceError

            bucket_url = "s3://" + locator[5:].split("/", 1)[0]
            try:
                with _s3(bucket_url, s3_endpoint).open(locator[5:].split("/", 1)[1]) as body:
                    return read_stream(body)
            except SourceError as exc:
                return f"cannot read object: {exc}"
        return read_image(Path(locator))
    except ImageError as exc:
        return str(exc)
    except OSError as exc:
        return f"cannot read file: {exc.strerror or exc}"


def rerecord_rights(record: bytes, rights: str) -> bytes:
    """The same record with another rights statement (after a sidecar import)."""
    a = asset_pb2.Asset()
    a.ParseFromString(record)
    a.evidence.rights = rights
    return a.SerializeToString(deterministic=True)


def to_record(asset_id: str, facts: ImageFacts, rights: str | None = None) -> asset_pb2.Asset:
    family = asset_pb2.FORMAT_FAMILY_LOSSLESS if facts.format_family == "lossless" else asset_pb2.FORMAT_FAMILY_LOSSY
    return asset_pb2.Asset(
        asset_id=asset_id,
        sha256=facts.sha256,
        pixel_digest=facts.pixel_digest,
        fingerprints=[asset_pb2.Fingerprint(algorithm=n, version=v, value=val) for n, v, val in facts.fingerprints],
        evidence=asset_pb2.Evidence(
            width=facts.width, height=facts.height, bit_depth=facts.bit_depth, format_family=family,
            jpeg_quality=facts.jpeg_quality or 0, capture_date=facts.capture_date or "",
            rights=rights or facts.rights[0],
            channels=facts.channels, frame_width=facts.frame_width, frame_height=facts.frame_height,
            skew_centidegrees=round(facts.skew_degrees * 100), luma_mean=facts.luma_mean,
            luma_spread=facts.luma_spread, saturation=facts.saturation,
            cast_blue=facts.cast_blue, cast_red=facts.cast_red, flat_top=facts.flat_edges[0],
            flat_bottom=facts.flat_edges[1], flat_left=facts.flat_edges[2], flat_right=facts.flat_edges[3],
        ),
        low_information=facts.low_information,
    )


def scan(catalogue: Catalogue, roots: list[Path | str], workers: int = 0, progress: bool | None = None,
         s3_endpoint: str | None = None) -> ScanSummary:
    """Scan local folders and ``s3://`` prefixes into the catalogue."""
    started = time.monotonic()
    summary = ScanSummary()
    summary.refingerprinted = catalogue.refingerprint_if_outdated(FINGERPRINTS)
    if progress is None:
        progress = sys.stderr.isatty()
    n_workers = workers or os.cpu_count() or 1
    bar = tqdm(unit="B", unit_scale=True, unit_divisor=1024, desc="scanning", disable=not progress,
               file=sys.stderr, bar_format="{desc}: {postfix} {n_fmt}B [{elapsed}, {rate_fmt}]")
    with ProcessPoolExecutor(max_workers=n_workers) as pool:
        in_flight: deque[tuple[Entry, str, Future]] = deque()
        for root in roots:
            # An object store's source is named by its normalised root (s3://b/p == s3://b/p/).
            s3_root = _s3(str(root), s3_endpoint).root if str(root).startswith("s3://") else None
            entries = _s3_entries(catalogue, str(root), s3_endpoint) if s3_root else local_entries(
                Path(root).resolve(), summary.skipped)
            for entry in entries:
                summary.seen += 1
                prev = catalogue.file_state(entry.locator)
                if prev is not None and prev[:3] == (entry.size, entry.mtime_ns, entry.version):
                    summary.unchanged += 1
                    _progress(bar, summary, 0)
                    continue
                asset_id = prev[3] if prev else "a-" + secrets.token_hex(12)
                in_flight.append((entry, asset_id, pool.submit(_read, entry.locator, s3_endpoint)))
                while len(in_flight) >= n_workers * 4:
                    _finish(catalogue, in_flight.popleft(), summary, bar)
            while in_flight:
                _finish(catalogue, in_flight.popleft(), summary, bar)
            if s3_root:
                catalogue.set_listing(s3_root, None, completed=True)
    bar.close()
    summary.seconds = time.monotonic() - started
    return summary


def _s3_entries(catalogue: Catalogue, url: str, endpoint: str | None) -> Iterator[Entry]:
    """Entries of an object store prefix, resuming an interrupted listing where it stopped."""
    from .s3source import SourceError

    source = _s3(url, endpoint)
    resume = catalogue.listing_resume(source.root)
    try:
        for e in source.entries(start_after=resume):
            yield Entry(e.locator, source.root, e.size, e.last_modified_ns, e.etag)
    except SourceError as exc:
        raise ScanError(str(exc)) from exc


class ScanError(Exception):
    """A whole source could not be scanned (an unreachable or forbidden bucket)."""


def _progress(bar: tqdm, summary: ScanSummary, nbytes: int) -> None:
    bar.set_postfix_str(f"{summary.seen} files, {summary.read} read, {summary.unchanged} unchanged, "
                        f"{summary.failed} unreadable", refresh=False)
    bar.update(nbytes)


def _finish(catalogue: Catalogue, item: tuple[Entry, str, Future], summary: ScanSummary, bar: tqdm) -> None:
    entry, asset_id, fut = item
    _record(catalogue, entry, asset_id, fut.result(), summary)
    if entry.locator.startswith("s3://"):
        # Results come back in listing order: everything up to here is recorded.
        catalogue.set_listing(entry.source, entry.locator[5:].split("/", 1)[1])
    _progress(bar, summary, entry.size)


def _record(catalogue: Catalogue, entry: Entry, asset_id: str, result: ImageFacts | str, summary: ScanSummary) -> None:
    row: dict = {"path": entry.locator, "source": entry.source, "size": entry.size, "mtime_ns": entry.mtime_ns,
                 "version": entry.version, "asset_id": asset_id, "scanned_unix": int(time.time())}
    if isinstance(result, str):
        summary.failed += 1
        summary.errors.append((entry.locator, result))
        row.update(error=result, sha256=None, pixel_digest=None, width=None, height=None, bit_depth=None, mode=None,
                   format=None, format_family=None, jpeg_quality=None, capture_date=None, low_information=None,
                   page_count=None, rights_uri=None, rights_text=None, rights_source=None, record=None)
    else:
        summary.read += 1
        summary.bytes_read += entry.size
        f = result
        override = catalogue.rights_override(entry.locator)
        # The catalogue's statement wins; the file's own notice is still kept, to be shown beside it.
        rights = (override[0], f.rights[1], override[2]) if override else f.rights
        row.update(error=None, sha256=f.sha256, pixel_digest=f.pixel_digest, width=f.width, height=f.height,
                   bit_depth=f.bit_depth, mode=f.mode, format=f.format, format_family=f.format_family,
                   jpeg_quality=f.jpeg_quality, capture_date=f.capture_date, low_information=int(f.low_information),
                   page_count=f.page_count, rights_uri=rights[0], rights_text=rights[1], rights_source=rights[2],
                   record=to_record(asset_id, f, rights[0]).SerializeToString(deterministic=True))
    with catalogue.transaction() as db:
        catalogue.put_file(db, row)
