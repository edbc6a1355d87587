"""The node as a witness of the coordinator's log (C2SP tlog-witness style; SPEC.md 8.2).

Fetch the latest checkpoint, check the log's signature with a key this node trusts, check that it
extends the last checkpoint this node verified (consistency proof), remember it, and cosign it.
A checkpoint that contradicts the one remembered is never cosigned: the node writes both signed
checkpoints and the proof to an evidence file and stops, because a log that shows two histories
is exactly what witnesses exist to catch.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from dedup.checkpoint import Checkpoint, CheckpointError
from dedup.cosignature import CosignatureSigner, add_cosignature
from dedup.jsonlog import event
from dedup.merkle import ProofError, verify_consistency
from dedup.note import NoteError, NoteVerifier, split_note, open_note
from dedup.signing import SignatureError, parse_body, parse_entry, unbound_pae, verify_statement
from dedup.v1 import log_pb2, log_pb2_grpc, statements_pb2

from .catalogue import Catalogue, WitnessRecordMoved
from .client import NotConfigured, channel
from .push import load_signer
from .settings import NodeSettings

log = logging.getLogger("dedup.node")

_ROTATED = statements_pb2.LogKeyRotated.DESCRIPTOR.full_name
#: Checks of the latest checkpoint before giving up when the record keeps moving under them.
SAVE_ATTEMPTS = 3


class WitnessError(Exception):
    """The checkpoint could not be verified or cosigned; nothing was recorded or cosigned."""


class Inconsistent(Exception):
    """The coordinator showed a checkpoint that contradicts one this node verified."""

    def __init__(self, problem: str, evidence: Path) -> None:
        super().__init__(f"{problem}; evidence written to {evidence}")
        self.problem = problem
        self.evidence = evidence


@dataclass
class WitnessResult:
    origin: str
    size: int
    root_hash: bytes
    previous_size: int | None
    proof: str
    cosigned: bool = False
    learned_keys: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"origin": self.origin, "size": self.size, "root_hash": base64.b64encode(self.root_hash).decode(),
                "previous_size": self.previous_size, "proof": self.proof, "cosigned": self.cosigned,
                "learned_keys": self.learned_keys}


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def evidence_dir(settings: NodeSettings) -> Path:
    """Where evidence of an inconsistent log goes: beside the catalogue."""
    return settings.catalogue.parent / "evidence"


def _write_evidence(settings: NodeSettings, problem: str, origin: str, state: tuple[int, bytes, str],
                    presented: str, cp: Checkpoint, proof: log_pb2.GetConsistencyProofResponse | None) -> Path:
    now = int(time.time())
    doc = {
        "problem": problem,
        "origin": origin,
        "member_id": settings.member_id,
        "coordinator": settings.coordinator.address if settings.coordinator else None,
        "detected_unix": now,
        "verified_checkpoint": {"size": state[0], "root_hash": _b64(state[1]), "signed_note": state[2]},
        "presented_checkpoint": {"size": cp.size, "root_hash": _b64(cp.root_hash), "signed_note": presented},
        "consistency_proof": None if proof is None else {
            "old_size": proof.old_size, "new_size": proof.new_size, "hashes": [_b64(h) for h in proof.hashes],
            "signed_checkpoint": proof.signed_checkpoint},
    }
    d = evidence_dir(settings)
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"inconsistent-log-{now}-{state[0]}-{cp.size}.json"
    n = 1
    while path.exists():
        n += 1
        path = d / f"inconsistent-log-{now}-{state[0]}-{cp.size}-{n}.json"
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def trusted_keys(settings: NodeSettings, catalogue: Catalogue) -> tuple[str, list[NoteVerifier]]:
    """(the log's origin, the log keys this node trusts now): the configured key and those it
    learned from rotations announced by a trusted key, none retired."""
    configured = NoteVerifier.from_string(settings.log_verifier_key)
    keys = {configured.to_string(): configured}
    for vkey, _, retired in catalogue.log_keys():
        if retired is None and vkey.startswith(configured.name + "+"):
            keys[vkey] = NoteVerifier.from_string(vkey)
    return configured.name, list(keys.values())


def _signed_by(note: str, verifiers: list[NoteVerifier]) -> bool:
    """Whether ``note`` carries a line by one of ``verifiers`` (checked or not)."""
    known = {(v.name, v.key_id) for v in verifiers}
    return any((s.name, s.key_id) in known for s in split_note(note)[1])


def _entries(stub, start: int, end: int, timeout: float):
    """(index, entry) for [start, end), in as many calls as the coordinator needs."""
    i = start
    while i < end:
        got = stub.GetEntries(log_pb2.GetEntriesRequest(start=i, end=end), timeout=timeout).entries
        if not got:
            raise WitnessError(f"the coordinator returned no entries from index {i}")
        for e in got:
            yield i, e
            i += 1


def _follow_rotations(stub, origin: str, active: dict[str, NoteVerifier], start: int, end: int,
                      timeout: float) -> list[tuple[str, str, str]]:
    """Key rotations in entries [start, end), each announced by a key trusted at that point.

    ``active`` (vkey -> verifier) is updated in place; returns (old, new, source) per rotation.
    A LogKeyRotated entry by any other key is ignored.
    """
    rotations = []
    for index, entry in _entries(stub, start, end, timeout):
        try:
            stmt = parse_entry(entry)
        except SignatureError:
            continue
        if stmt.type != _ROTATED:
            continue
        by = next((v for v in active.values() if (v.name, v.key_id) == (stmt.signer, stmt.key_id)), None)
        if by is None:
            continue
        try:
            try:
                verify_statement(stmt, by, origin=origin)
            except SignatureError:
                # Or a rotation logged by a release before statements were bound to their log (it
                # is signed by this log's own key all the same).
                if not by.verify(unbound_pae(stmt.type, stmt.body), stmt.signature):
                    raise
            body = parse_body(stmt, statements_pb2.LogKeyRotated)
            new = NoteVerifier.from_string(body.new_verifier_key)
        except (SignatureError, NoteError):
            continue
        if body.old_verifier_key != by.to_string() or new.name != origin:
            continue
        source = f"LogKeyRotated at entry {index}"
        del active[by.to_string()]
        active[new.to_string()] = new
        rotations.append((by.to_string(), new.to_string(), source))
    return rotations


def witness(settings: NodeSettings, catalogue: Catalogue, clock=time.time) -> WitnessResult:
    if not settings.log_verifier_key:
        raise NotConfigured("set log_verifier_key (the coordinator's log verifier key, or the file holding it, "
                            "e.g. log.pub) to witness the log")
    if settings.coordinator is None or settings.tls is None:
        raise NotConfigured("this node has no [coordinator] and [tls] settings; it can scan and report only")
    configured = NoteVerifier.from_string(settings.log_verifier_key)
    origin = configured.name
    catalogue.trust_log_key(configured.to_string(), "config")
    cosigner = CosignatureSigner(settings.member_id, load_signer(settings).private_key)
    timeout = settings.coordinator.timeout_seconds
    with channel(settings) as ch:
        stub = log_pb2_grpc.LogServiceStub(ch)
        for attempt in range(1, SAVE_ATTEMPTS + 1):
            note, cp, state, rotations, how = _check_latest(settings, catalogue, stub, origin, timeout)
            try:
                catalogue.save_witness(origin, cp.size, cp.root_hash, note, rotations,
                                       expected=state[:2] if state else None)
                break
            except WitnessRecordMoved as moved:
                # `dedup node witness-serve` cosigned a checkpoint while this one was checked: check
                # the latest again against that record rather than roll it back.
                if attempt == SAVE_ATTEMPTS:
                    raise WitnessError(f"the witness record kept moving while checking ({moved}); nothing recorded "
                                       "or cosigned, run again") from None
        result = WitnessResult(origin, cp.size, cp.root_hash, state[0] if state else None, how,
                               learned_keys=[new for _, new, _ in rotations])
        cosigned = add_cosignature(note, cosigner, int(clock()))
        stub.AddCosignature(log_pb2.AddCosignatureRequest(cosigned_checkpoint=cosigned), timeout=timeout)
        result.cosigned = True
    event(log, "witnessed", member=settings.member_id, size=cp.size, previous_size=result.previous_size,
          learned_keys=len(rotations))
    return result


def _check_latest(settings: NodeSettings, catalogue: Catalogue, stub, origin: str, timeout: float):
    """Fetch the latest checkpoint and check it against the record: (note, checkpoint, record it
    was checked against, key rotations learned, how it was proved); WitnessError or Inconsistent."""
    note = stub.GetCheckpoint(log_pb2.GetCheckpointRequest(), timeout=timeout).signed_checkpoint
    if not note:
        raise WitnessError("the coordinator has no checkpoint to show")
    try:
        cp = Checkpoint.parse(split_note(note)[0])
    except (NoteError, CheckpointError) as exc:
        raise WitnessError(f"the coordinator's checkpoint is malformed: {exc}") from exc
    if cp.origin != origin:
        raise WitnessError(f"the checkpoint is for log {cp.origin!r}, not {origin!r} (the log key's name)")
    state = catalogue.witness_state(origin)
    active = {k: NoteVerifier.from_string(k) for k, _, retired in catalogue.log_keys()
              if retired is None and k.startswith(origin + "+")}
    rotations: list[tuple[str, str, str]] = []
    if not _signed_by(note, list(active.values())):
        # Perhaps the key was rotated: only an announcement by a key already trusted counts.
        start = state[0] if state else 0
        rotations = _follow_rotations(stub, origin, active, start, cp.size, timeout)
        if not _signed_by(note, list(active.values())):
            raise WitnessError(f"the checkpoint of size {cp.size} is signed by no key this node trusts, and no "
                               f"LogKeyRotated entry after size {start} signed by a trusted key announces its "
                               "key; not cosigned")
    try:
        open_note(note, list(active.values()))
    except NoteError as exc:
        raise WitnessError(f"the checkpoint's log signature does not verify: {exc}") from exc

    how = ("first checkpoint seen" if state is None
           else check_extends(settings, stub, origin, state, note, cp, timeout))
    return note, cp, state, rotations, how


def check_extends(settings: NodeSettings, stub, origin: str, state: tuple[int, bytes, str], note: str,
                  cp: Checkpoint, timeout: float) -> str:
    """How ``cp`` extends the checkpoint this node verified (``state``), in words; if it does
    not, the log showed two histories: evidence is written and Inconsistent raised."""
    if cp.size < state[0]:
        _inconsistent(settings, f"the coordinator shows a checkpoint of size {cp.size}, smaller than size "
                                f"{state[0]} this node verified", origin, state, note, cp, None)
    if cp.size == state[0]:
        if cp.root_hash != state[1]:
            _inconsistent(settings, f"two checkpoints of size {cp.size} with different roots", origin, state,
                          note, cp, None)
        return "same checkpoint as last time"
    if state[0] == 0:
        return "first entries (nothing to prove from the empty tree)"
    proof = stub.GetConsistencyProof(log_pb2.GetConsistencyProofRequest(old_size=state[0], new_size=cp.size),
                                     timeout=timeout)
    try:
        verify_consistency(state[0], cp.size, list(proof.hashes), state[1], cp.root_hash)
    except ProofError as exc:
        _inconsistent(settings, f"the consistency proof from size {state[0]} to {cp.size} fails: {exc}", origin,
                      state, note, cp, proof)
    return f"consistent with size {state[0]} ({len(proof.hashes)} proof hashes)"


def _inconsistent(settings, problem, origin, state, note, cp, proof) -> None:
    path = _write_evidence(settings, problem, origin, state, note, cp, proof)
    event(log, "inconsistent log", logging.ERROR, member=settings.member_id, problem=problem, evidence=str(path))
    raise Inconsistent(problem, path)
