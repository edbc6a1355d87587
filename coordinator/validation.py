"""Checks at the door: everything about a batch that can be refused before anything is stored."""

from __future__ import annotations

import hashlib
import re

import grpc
from google.protobuf.message import DecodeError

from dedup.fingerprint.kinds import FingerprintError, validate
from dedup.v1 import asset_pb2

from .refusal import Refusal

BATCH_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
ASSET_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def invalid(reason: str, message: str) -> Refusal:
    return Refusal(grpc.StatusCode.INVALID_ARGUMENT, reason, message)


def check_batch_id(batch_id: str) -> None:
    if not BATCH_ID.match(batch_id):
        raise invalid("bad_batch_id", f"batch id {batch_id!r} must be 1-64 characters of A-Z a-z 0-9 . _ -")


def parse_assets(manifest: asset_pb2.BatchManifest, payload: bytes, max_assets: int) -> list[asset_pb2.Asset]:
    """Check the payload against the signed manifest and every asset in it."""
    if manifest.asset_count > max_assets:
        raise Refusal(grpc.StatusCode.RESOURCE_EXHAUSTED, "oversized_batch",
                      f"batch declares {manifest.asset_count} assets; this coordinator takes at most {max_assets} per batch")
    if hashlib.sha256(payload).digest() != manifest.assets_sha256:
        raise invalid("payload_digest", "the assets sent do not match the SHA-256 in the signed manifest")
    listing = asset_pb2.AssetList()
    try:
        listing.ParseFromString(payload)
    except DecodeError as exc:
        raise invalid("payload_parse", f"assets payload is not a dedup.v1.AssetList: {exc}") from exc
    if len(listing.assets) != manifest.asset_count:
        raise invalid("asset_count", f"manifest declares {manifest.asset_count} assets but {len(listing.assets)} were sent")
    seen: set[str] = set()
    for i, a in enumerate(listing.assets):
        where = f"asset {i} ({a.asset_id!r})"
        if not ASSET_ID.match(a.asset_id):
            raise invalid("bad_asset_id", f"{where}: asset ids are 1-128 characters of A-Z a-z 0-9 . _ : -")
        if a.asset_id in seen:
            raise invalid("duplicate_asset", f"{where}: asset id appears twice in the batch")
        seen.add(a.asset_id)
        check_record(a, where)
    return list(listing.assets)


def check_record(a: asset_pb2.Asset, where: str) -> None:
    """An asset record's digests, fingerprints and evidence (all but its id), as intake and
    lookup both require; ``where`` names the record in the refusal."""
    if len(a.sha256) != 32 or len(a.pixel_digest) != 32:
        raise invalid("bad_digest", f"{where}: sha256 and pixel_digest must be 32 bytes each")
    if not a.fingerprints and not a.low_information:
        # Only low-information images (no usable perceptual hash) may go without one.
        raise invalid("no_fingerprint", f"{where}: carries no fingerprint and is not marked low-information")
    kinds = set()
    for fp in a.fingerprints:
        try:
            validate(fp.algorithm, fp.version, fp.value)
        except FingerprintError as exc:
            raise invalid("bad_fingerprint", f"{where}: fingerprint {fp.algorithm} v{fp.version}: {exc}") from exc
        if (fp.algorithm, fp.version) in kinds:
            raise invalid("bad_fingerprint", f"{where}: fingerprint {fp.algorithm} v{fp.version} given twice")
        kinds.add((fp.algorithm, fp.version))
    e = a.evidence
    if e.width == 0 or e.height == 0:
        raise invalid("bad_evidence", f"{where}: evidence must give the pixel width and height")
    if e.jpeg_quality > 100:
        raise invalid("bad_evidence", f"{where}: jpeg_quality must be 0-100")
