"""Send the catalogue's new and changed records to the coordinator as signed batches.

Each batch is signed and written to the catalogue before it is sent. Pending batches from an
earlier run (crash, timeout, coordinator down) are resent first with the same manifest, which
the coordinator acknowledges without storing anything twice; one whose signature no longer
verifies with the key and log in use (after a re-key, or from a release that signed for no
log) is signed again, manifest unchanged.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import time
import uuid
from dataclasses import dataclass, field

import grpc

from dedup.jsonlog import event
from dedup.note import NoteError, NoteSigner
from dedup.signing import SignatureError, pae, sign_statement, verify_statement
from dedup.v1 import asset_pb2, intake_pb2, intake_pb2_grpc, statement_pb2

from .catalogue import Batch, Catalogue
from .client import NotConfigured, channel
from .settings import NodeSettings

log = logging.getLogger("dedup.node")

#: Statuses after which the same batch may succeed later; anything else is a refusal.
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED,
             grpc.StatusCode.ABORTED, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}


#: Statuses worth resending the same batch for within this push, after a wait: the coordinator
#: is restarting, unreachable, or asks this member to slow down. A deadline may pass after the
#: batch was stored; the resend is then acknowledged as already stored.
BACKOFF = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
#: Longest single wait between resends.
MAX_BACKOFF_SECONDS = 30.0
_RETRY_IN = re.compile(r"retry in ([0-9.]+) s")


def backoff_waits(retries: int, base: float, rng: random.Random | None = None):
    """The waits before each resend: exponential, capped, each drawn uniformly from its upper
    half ("equal jitter"), so nodes cut off together do not come back in step."""
    rng = rng or random.Random()
    for k in range(retries):
        ceiling = min(MAX_BACKOFF_SECONDS, base * 2 ** k)
        yield ceiling / 2 + rng.uniform(0, ceiling / 2)


def _should_back_off(code: grpc.StatusCode, detail: str | None) -> float | None:
    """0 (use the backoff), a wait the coordinator asked for, or None (do not resend now)."""
    if code in BACKOFF:
        return 0.0
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and detail:
        m = _RETRY_IN.search(detail)
        if m:  # a rate limit names when a token is back; an oversized batch names nothing
            return float(m.group(1))
    return None


@dataclass
class PushSummary:
    batches_sent: int = 0
    assets_accepted: int = 0
    resent: int = 0  # batches an earlier push left pending, sent again (or tried) in this one
    retries: int = 0
    new_matches: int = 0
    refused: list[dict] = field(default_factory=list)
    unreachable: str | None = None
    #: Batches (and their assets) signed but not acknowledged: kept, and sent by the next push.
    pending: int = 0
    pending_assets: int = 0

    def as_dict(self) -> dict:
        return {"batches_sent": self.batches_sent, "assets_accepted": self.assets_accepted, "resent": self.resent,
                "retries": self.retries, "new_matches": self.new_matches, "refused": self.refused,
                "unreachable": self.unreachable, "pending": self.pending, "pending_assets": self.pending_assets}


class KeyProblem(Exception):
    """The member's signing key is missing, unreadable or not this member's."""


def load_signer(settings: NodeSettings) -> NoteSigner:
    if settings.signing_key is None or settings.member_id is None:
        raise KeyProblem("this command signs with the member's statement key, and member_id or signing_key is not "
                         "set: `dedup pki request MEMBER_ID --dir /etc/dedup` makes the key, `dedup pki install` "
                         "puts it in use with a node.toml naming it (see deploy/README.md)")
    try:
        signer = NoteSigner.from_string(settings.signing_key.read_text(encoding="utf-8").strip())
    except OSError as exc:
        raise KeyProblem(f"cannot read signing key {settings.signing_key}: {exc.strerror}") from exc
    except NoteError as exc:
        raise KeyProblem(f"{settings.signing_key} is not a signer key: {exc}") from exc
    if signer.name != settings.member_id:
        raise KeyProblem(f"signing key is named {signer.name!r} but member_id is {settings.member_id!r}")
    return signer


def make_batches(catalogue: Catalogue, signer: NoteSigner, member_id: str, batch_size: int, origin: str) -> list[Batch]:
    """Sign and store a batch for every ``batch_size`` unpushed records."""
    rows = catalogue.unpushed()
    out = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        listing = asset_pb2.AssetList()
        for _, record in chunk:
            listing.assets.add().ParseFromString(record)
        payload = listing.SerializeToString(deterministic=True)
        with catalogue.transaction() as db:
            seq = catalogue.next_sequence(db)
            manifest = asset_pb2.BatchManifest(
                member_id=member_id, batch_id=uuid.uuid4().hex, sequence=seq, asset_count=len(chunk),
                assets_sha256=hashlib.sha256(payload).digest(), created_unix=int(time.time()))
            stmt = sign_statement(signer, manifest, origin=origin)
            batch = Batch(manifest.batch_id, seq, stmt.SerializeToString(deterministic=True), payload,
                          [p for p, _ in chunk])
            catalogue.add_batch(db, batch)
        out.append(batch)
    return out


def signed_now(stored: bytes, signer: NoteSigner, origin: str) -> statement_pb2.SignedStatement:
    """A statement stored for a resend, signed again (same body bytes) if its signature is not
    that of the key and log in use: after a re-key, or made by a release that bound no log. The
    coordinator knows a resent batch or vote by its body."""
    stmt = statement_pb2.SignedStatement.FromString(stored)
    try:
        verify_statement(stmt, signer.verifier(), origin=origin)
        return stmt
    except SignatureError:
        # The body's bytes as they are: the coordinator compares them with those it stored.
        return statement_pb2.SignedStatement(type=stmt.type, body=stmt.body, signer=signer.name, key_id=signer.key_id,
                                             signature=signer.sign(pae(origin, stmt.type, stmt.body)))


def _records(batch: Batch) -> dict[str, bytes]:
    listing = asset_pb2.AssetList()
    listing.ParseFromString(batch.assets)
    return {p: a.SerializeToString(deterministic=True) for p, a in zip(batch.paths, listing.assets)}


def _submit(stub, request, settings: NodeSettings, summary: PushSummary, batch_id: str, sleep):
    """SubmitBatch, resent after a growing, jittered wait while the coordinator is unreachable,
    slow or rate-limiting; the last error is raised."""
    endpoint = settings.coordinator
    waits = backoff_waits(endpoint.retries, endpoint.retry_backoff_seconds)
    while True:
        try:
            return stub.SubmitBatch(request, timeout=endpoint.timeout_seconds, wait_for_ready=False)
        except grpc.RpcError as err:
            asked = _should_back_off(err.code(), err.details())
            wait = next(waits, None) if asked is not None else None
            if wait is None:
                raise
            wait = max(wait, asked)
            summary.retries += 1
            event(log, "push retry", logging.WARNING, member=settings.member_id, batch_id=batch_id,
                  code=err.code().name, detail=err.details(), wait_seconds=round(wait, 2))
            sleep(wait)


def push(settings: NodeSettings, catalogue: Catalogue, sleep=time.sleep) -> PushSummary:
    if settings.coordinator is None or settings.tls is None:
        raise NotConfigured("this node has no [coordinator] and [tls] settings; it can scan and report only")
    summary = PushSummary()
    signer = load_signer(settings)
    origin = settings.origin()
    resend = catalogue.pending_batches()
    summary.resent = len(resend)
    batches = resend + make_batches(catalogue, signer, settings.member_id, settings.batch_size, origin)
    if not batches:
        return summary
    with channel(settings) as ch:
        stub = intake_pb2_grpc.IntakeServiceStub(ch)
        for n, batch in enumerate(batches):
            stmt = signed_now(batch.manifest, signer, origin)
            try:
                resp = _submit(stub, intake_pb2.SubmitBatchRequest(manifest=stmt, assets=batch.assets), settings,
                               summary, batch.batch_id, sleep)
            except grpc.RpcError as err:
                code, detail = err.code(), err.details()
                if code in RETRYABLE:
                    # Leave this and later batches pending; the next push resends them.
                    summary.unreachable = f"{code.name}: {detail}"
                    summary.pending = len(batches) - n
                    summary.pending_assets = sum(len(b.paths) for b in batches[n:])
                    event(log, "push interrupted", logging.WARNING, member=settings.member_id,
                          batch_id=batch.batch_id, code=code.name, detail=detail)
                    break
                catalogue.refuse(batch, f"{code.name}: {detail}")
                summary.refused.append({"batch_id": batch.batch_id, "code": code.name, "detail": detail})
                event(log, "batch refused", logging.ERROR, member=settings.member_id, batch_id=batch.batch_id,
                      code=code.name, detail=detail)
                continue
            catalogue.acknowledge(batch, _records(batch), f"log_index={resp.log_index}")
            summary.batches_sent += 1
            summary.assets_accepted += resp.accepted
            summary.new_matches += resp.new_matches
    return summary
