"""When a checkpoint is final for this node: cosigned by a quorum of the witnesses it lists.

A proof this node hands out (an agreed master's inclusion proof, from `lookup --proofs`) is
only as good as the checkpoint it leads to. Signed by the coordinator alone, that checkpoint
could belong to a history shown to this node only; cosigned by `witness_quorum` of the node's
`witnesses`, each of which checked it extends what they saw before, it cannot. After a push the
node looks for such a checkpoint covering what it pushed (waiting up to
`quorum_wait_seconds`), remembers the largest it has seen, and re-anchors proofs to it
(SPEC.md 8.2).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import grpc

from dedup.checkpoint import Checkpoint, CheckpointError
from dedup.merkle import leaf_hash
from dedup.note import NoteError, NoteVerifier, open_note
from dedup.proofbundle import Bundle, BundleError
from dedup.quorum import count, parse_witness
from dedup.v1 import log_pb2, log_pb2_grpc

from .catalogue import Catalogue
from .client import channel
from .settings import NodeSettings
from .witness import WitnessError, check_extends, trusted_keys

#: Seconds between looks while waiting for cosignatures.
POLL_SECONDS = 1.0


@dataclass
class Finality:
    needed: int
    #: The checkpoint looked at last (the one closest to a quorum), and who cosigned it.
    size: int | None = None
    cosigned_by: list[str] = field(default_factory=list)
    final: bool = False
    waited_seconds: float = 0.0
    #: The largest checkpoint this node has seen final, this time or before.
    final_size: int | None = None

    def as_dict(self) -> dict:
        return {"needed": self.needed, "size": self.size, "cosigned_by": self.cosigned_by, "final": self.final,
                "waited_seconds": round(self.waited_seconds, 1), "final_size": self.final_size}


def await_quorum(settings: NodeSettings, catalogue: Catalogue, *, wait: float | None = None, clock=time.monotonic,
                 sleep=time.sleep) -> Finality:
    """Look for a checkpoint at least as large as the one this node last witnessed, cosigned by
    ``witness_quorum`` of ``witnesses``; wait up to ``wait`` seconds (default
    ``quorum_wait_seconds``) for one."""
    wait = settings.quorum_wait_seconds if wait is None else wait
    witnesses = [parse_witness(k) for k in settings.witnesses]
    origin, keys = trusted_keys(settings, catalogue)
    state = catalogue.witness_state(origin)
    result = Finality(settings.witness_quorum)
    started = clock()
    timeout = settings.coordinator.timeout_seconds
    with channel(settings) as ch:
        stub = log_pb2_grpc.LogServiceStub(ch)
        while True:
            notes = [stub.GetCheckpoint(log_pb2.GetCheckpointRequest(), timeout=timeout).signed_checkpoint]
            if state is not None:
                # Witnesses that ran before the next push cosigned the one this node witnessed.
                try:
                    notes.append(stub.GetConsistencyProof(log_pb2.GetConsistencyProofRequest(
                        old_size=state[0], new_size=state[0]), timeout=timeout).signed_checkpoint)
                except grpc.RpcError as err:
                    if err.code() != grpc.StatusCode.NOT_FOUND:
                        raise
                    # Not published here: the latest alone counts (and must extend it, below).
            for note in notes:
                cp = _checked(note, origin, keys)
                if cp is None or (state is not None and cp.size < state[0]):
                    continue
                q = count(note, witnesses, settings.witness_quorum)
                if result.size is None or len(q.cosigned_by) > len(result.cosigned_by):
                    result.size, result.cosigned_by = cp.size, list(q.cosigned_by)
                if q.reached:
                    if state is not None:
                        check_extends(settings, stub, origin, state, note, cp, timeout)  # or evidence, exit 4
                    catalogue.save_final(origin, cp.size, cp.root_hash, note)
                    result.size, result.cosigned_by, result.final = cp.size, list(q.cosigned_by), True
                    break
            result.waited_seconds = clock() - started
            if result.final or result.waited_seconds >= wait:
                break
            sleep(min(POLL_SECONDS, wait - result.waited_seconds))
    final = catalogue.final_checkpoint(origin)
    result.final_size = final[0] if final else None
    return result


def _checked(note: str, origin: str, keys: list[NoteVerifier]) -> Checkpoint | None:
    """The checkpoint if the log signed it with a key this node trusts, else None."""
    try:
        cp = Checkpoint.parse(open_note(note, keys).text)
    except (NoteError, CheckpointError):
        return None
    return cp if cp.origin == origin else None


def anchor_proofs(settings: NodeSettings, catalogue: Catalogue, rows: list[dict]) -> None:
    """Give each agreed master's proof in ``rows`` (``inclusion_proof``, a tlog-proof bundle) a
    checkpoint cosigned by the quorum where it lacks one: the same entry, proved into the largest
    checkpoint this node has seen final. Sets ``proof_final`` (and ``proof_cosigned_by``) per row."""
    witnesses = [parse_witness(k) for k in settings.witnesses]
    origin, keys = trusted_keys(settings, catalogue)
    final = catalogue.final_checkpoint(origin)
    pending = []
    for d in rows:
        if not d.get("inclusion_proof"):
            continue
        bundle = Bundle.parse(d["inclusion_proof"])
        q = count(bundle.signed_checkpoint, witnesses, settings.witness_quorum)
        d["proof_final"], d["proof_cosigned_by"] = q.reached, list(q.cosigned_by)
        if not q.reached and final is not None and final[0] > bundle.index:
            pending.append((d, bundle))
    if not pending:
        return
    with channel(settings) as ch:
        stub = log_pb2_grpc.LogServiceStub(ch)
        for d, bundle in pending:
            r = stub.GetInclusionProof(log_pb2.GetInclusionProofRequest(index=bundle.index, tree_size=final[0]),
                                       timeout=settings.coordinator.timeout_seconds)
            if r.leaf_hash != leaf_hash(bundle.entry):
                raise WitnessError(f"the coordinator proves a different entry at index {bundle.index} into the final "
                                   f"checkpoint of size {final[0]}")
            cp = _checked(r.signed_checkpoint, origin, keys)
            if cp is None or (cp.size, cp.root_hash) != (final[0], final[1]):
                raise WitnessError(f"the coordinator shows another checkpoint of size {final[0]} than the one this "
                                   "node saw final")
            try:
                # The checkpoint as it was when seen final, with its quorum; the proof against its root.
                anchored = Bundle(bundle.entry, bundle.index, tuple(r.hashes), final[2])
                anchored_text = anchored.to_text()
                Bundle.parse(anchored_text)
            except BundleError as exc:
                raise WitnessError(f"cannot re-anchor the proof of entry {bundle.index}: {exc}") from exc
            q = count(final[2], witnesses, settings.witness_quorum)
            d["inclusion_proof"], d["proof_final"], d["proof_cosigned_by"] = anchored_text, q.reached, list(
                q.cosigned_by)


def quorum_words(f: Finality) -> str:
    """One line for a person: is what was pushed final yet?"""
    if f.final:
        return (f"checkpoint {f.size} is cosigned by {len(f.cosigned_by)} of the {f.needed} witnesses needed "
                f"({', '.join(f.cosigned_by)}): proofs citing it are final")
    seen = (f"checkpoint {f.size} has {len(f.cosigned_by)} of the {f.needed} witness cosignatures needed"
            if f.size is not None else "no checkpoint covering this push is cosigned yet")
    waited = f" after {f.waited_seconds:.0f} s" if f.waited_seconds >= 1 else ""
    return (f"{seen}{waited}: proofs citing it are not final yet (`dedup node witness` or the next push looks "
            "again)")

