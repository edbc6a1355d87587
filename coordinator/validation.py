"""Checks at the door: everything about a batch that can be refused before anything is stored."""

from __future__ import annotations

import hashlib

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from dedup import wire_rules
from dedup.fingerprint.kinds import FingerprintError, validate
from dedup.v1 import asset_pb2

from .refusal import Refusal

#: Longest value, in characters, of each string field a member sends; a field not named here
#: is an identifier and has ``ID_LIMIT``. A record is stored, signed and logged as sent, so a
#: bound is what keeps a member from filling the store or the log with text.
STRING_LIMITS = {
    "dedup.v1.Evidence.capture_date": 19,  # "YYYY-MM-DDTHH:MM:SS"
    "dedup.v1.Evidence.rights": 256,  # a rightsstatements.org or Creative Commons URI, or "unknown"
    "dedup.v1.Fingerprint.algorithm": 32,
    **{name: wire_rules.TEXT_LIMIT for name in wire_rules.FREE_TEXT},
}
ID_LIMIT = 128

#: The form a string field must have besides its bound (dedup.wire_rules), checked wherever
#: the field occurs (batches, lookups, votes, ballots, rulings): the refusal's reason and what
#: the form is. Messages never quote the value refused, as refusals are logged.
FORMATS = {
    "dedup.v1.Evidence.capture_date": (
        wire_rules.is_capture_date, "bad_capture_date",
        "is not a capture date: it is YYYY-MM-DDTHH:MM:SS (EXIF DateTimeOriginal, no zone), or empty when unknown"),
    "dedup.v1.Evidence.rights": (
        wire_rules.is_rights, "bad_rights",
        "is not a rights value: it is a rightsstatements.org or Creative Commons URI in its canonical form, "
        "'unknown', or empty"),
    "dedup.v1.MasterVote.claim_kind": (
        wire_rules.is_claim_kind, "bad_claim_kind",
        "is not a claim kind: one lowercase word of a-z 0-9 _ (at most 64), e.g. camera_original"),
    "dedup.v1.BatchManifest.batch_id": (
        wire_rules.is_random_id, "bad_batch_id", "is not a batch id: it is 32 lowercase hex digits, drawn at random"),
    "dedup.v1.AssetsWithdrawn.withdrawal_id": (
        wire_rules.is_random_id, "bad_withdrawal_id",
        "is not a withdrawal id: it is 32 lowercase hex digits, drawn at random"),
    "dedup.v1.AssetRef.asset_id": (
        wire_rules.is_asset_id, "bad_asset_id", "is not an asset id: it is 'a-' and 24 lowercase hex digits"),
}


def invalid(reason: str, message: str) -> Refusal:
    return Refusal(grpc.StatusCode.INVALID_ARGUMENT, reason, message)


def check_id(msg: Message, field: str, where: str) -> None:
    """Refuse ``msg`` unless its required identifier ``field`` has its form (an empty string is
    absent to protobuf, so ``check_fields`` never sees it)."""
    fd = msg.DESCRIPTOR.fields_by_name[field]
    check, reason, form = FORMATS[fd.full_name]
    if not check(getattr(msg, field)):
        raise invalid(reason, f"{where}: {field} {form}")


def check_fields(msg: Message, where: str) -> None:
    """Refuse a message (and any message inside it) that carries fields SPEC does not define,
    or a string past its bound. Unknown fields cannot be dropped quietly: what is stored is
    what was signed, so the record is refused instead."""
    unknown = UnknownFieldSet(msg)
    if len(unknown):
        numbers = sorted({f.field_number for f in unknown})
        raise invalid("unknown_fields", f"{where}: carries field number(s) {', '.join(map(str, numbers[:5]))} that "
                                        f"{msg.DESCRIPTOR.full_name} does not define; a record holds only what SPEC "
                                        "defines (update the node, or remove the extra fields)")
    for fd, value in msg.ListFields():
        values = value if fd.is_repeated else (value,)
        if fd.type == FieldDescriptor.TYPE_MESSAGE:
            for n, sub in enumerate(values):
                check_fields(sub, f"{where}.{fd.name}" + (f"[{n}]" if fd.is_repeated else ""))
        elif fd.type == FieldDescriptor.TYPE_STRING:
            limit = STRING_LIMITS.get(fd.full_name, ID_LIMIT)
            form = FORMATS.get(fd.full_name)
            for v in values:
                if len(v) > limit:
                    raise invalid("oversized_field", f"{where}: {fd.name} is {len(v)} characters long; "
                                                     f"{fd.full_name} holds at most {limit}")
                if form is not None and not form[0](v):
                    raise invalid(form[1], f"{where}: {fd.name} {form[2]}")
                if fd.full_name in wire_rules.FREE_TEXT and (problem := wire_rules.text_problem(v)):
                    raise invalid("bad_text", f"{where}: {fd.name} {problem}")


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
        if not wire_rules.is_asset_id(a.asset_id):
            # Named by position only: the id refused may be a path or a name, and refusals are logged.
            raise invalid("bad_asset_id", f"asset {i}: asset_id is not an asset id: it is 'a-' and 24 lowercase hex "
                                          "digits, opaque (never a path, file name or catalogue number)")
        where = f"asset {i} ({a.asset_id!r})"
        if a.asset_id in seen:
            raise invalid("duplicate_asset", f"{where}: asset id appears twice in the batch")
        seen.add(a.asset_id)
        check_record(a, where)
    return list(listing.assets)


def check_record(a: asset_pb2.Asset, where: str) -> None:
    """An asset record's digests, fingerprints and evidence (all but its id), as intake and
    lookup both require; ``where`` names the record in the refusal."""
    check_fields(a, where)
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
