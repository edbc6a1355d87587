"""The coordinator's signed append-only log: entries in the store, the Merkle tree in memory.

The coordinator signs membership and key statements one by one; its matches, proposals,
outcomes and lookup counts are signed by the checkpoint that covers them (SPEC.md 5).

The tree is rebuilt from the stored leaf hashes at start-up and extended only after the
transaction that wrote the entries has committed, so it can never run ahead of the store.
A new checkpoint is signed after every committed change.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from google.protobuf.message import Message

from dedup.checkpoint import Checkpoint
from dedup.note import MAX_SIGNATURES, NoteSigner, split_note, sign_note
from dedup.merkle import Tree, leaf_hash
from dedup.signing import CHECKPOINTED_TYPES, checkpointed_statement, sign_statement
from dedup.v1 import statement_pb2, statements_pb2

from .database import Database, store_fault
from .store import Store


@dataclass
class LogTransaction:
    """One store transaction that may append log entries."""

    db: Database
    first_index: int
    signer: NoteSigner
    origin: str  # the log's: every statement is signed for it
    pending: list[bytes] = field(default_factory=list)

    def append(self, stmt: statement_pb2.SignedStatement) -> int:
        entry = stmt.SerializeToString(deterministic=True)
        index = self.first_index + len(self.pending)
        h = leaf_hash(entry)
        Store.add_log_entry(self.db, index, entry, h)
        self.pending.append(h)
        return index

    def append_statement(self, message: Message) -> int:
        """Append a coordinator statement: signed with the coordinator's key where it must stand
        on its own, else (``CHECKPOINTED_TYPES``) left for the next checkpoint to sign."""
        if message.DESCRIPTOR.full_name in CHECKPOINTED_TYPES:
            return self.append(checkpointed_statement(self.signer.name, self.signer.key_id, message))
        return self.append(sign_statement(self.signer, message, origin=self.origin))


def with_cosignatures(store: Store, size: int, note: str) -> str:
    """The published checkpoint ``note`` of ``size`` with the stored witness cosignatures appended."""
    text, sigs = split_note(note)
    lines = [s.to_line() for s in sigs]
    # A note carries at most MAX_SIGNATURES lines; the log's own come first.
    lines += store.cosignature_lines(size)[: MAX_SIGNATURES - len(lines)]
    return text + "\n" + "".join(lines)


#: meta key holding the verifier key the log currently signs with (set at first start and by rotations).
LOG_KEY_META = "log_verifier_key"


class LogKeyMismatch(ValueError):
    """The configured log key is not the one the log currently signs with."""


class TransparencyLog:
    def __init__(self, store: Store, signer: NoteSigner, origin: str) -> None:
        self.store = store
        self.signer = signer
        self.origin = origin
        current = store.meta(LOG_KEY_META)
        mine = signer.verifier().to_string()
        if current is None:
            store.set_meta(LOG_KEY_META, mine)
        elif current != mine:
            # Checked before anything is signed: after a rotation the old key must never sign again.
            raise LogKeyMismatch(f"the log signs with {current}, but log_key holds {mine}; after "
                                 "`dedup coordinator rotate-log-key`, log_key must name the new key's file")
        self.tree = Tree.from_leaf_hashes(store.leaf_hashes())
        latest = store.latest_checkpoint()
        if latest is None or latest[0] != self.tree.size:
            self.publish_checkpoint()

    @property
    def size(self) -> int:
        return self.tree.size

    @contextmanager
    def transaction(self) -> Iterator[LogTransaction]:
        try:
            with self.store.transaction() as db:
                txn = LogTransaction(db, self.tree.size, self.signer, self.origin)
                yield txn
        except BaseException:
            self._resync()
            raise
        # Only reached once COMMIT succeeded.
        for h in txn.pending:
            self.tree.append_leaf_hash(h)
        if txn.pending:
            try:
                self.publish_checkpoint()
            except Exception as exc:
                # The entries are stored; only their checkpoint is not (the disk filled up in
                # between). Reporting a failure would tell the sender nothing was stored. The
                # next change, or the next start, publishes a checkpoint covering them.
                if store_fault(exc) is None:
                    raise

    def _resync(self) -> None:
        """After a failed transaction: a COMMIT whose answer was lost (a dropped PostgreSQL
        connection) may still have stored the entries, so the tree follows the store, never
        its own guess. Nothing to do when the store cannot be read now: the next transaction
        fails the same way and comes back here."""
        try:
            row = self.store._db.execute("SELECT COUNT(*) FROM log_entries").fetchone()
            if row[0] != self.tree.size:
                self.tree = Tree.from_leaf_hashes(self.store.leaf_hashes())
                self.publish_checkpoint()
        except Exception:  # noqa: BLE001 - the transaction's own error is the one to report
            pass

    def checkpoint_note(self, size: int | None = None) -> str | None:
        """The published checkpoint of ``size`` entries (default: the latest) as a signed note,
        with every witness cosignature stored for it appended; None if no checkpoint of that
        size was published."""
        if size is None:
            latest = self.store.latest_checkpoint()
            if latest is None:
                return None
            size, note = latest
        else:
            note = self.store.checkpoint(size)
            if note is None:
                return None
        return with_cosignatures(self.store, size, note)

    def rotate_key(self, new: NoteSigner, reason: str, when: int) -> int:
        """Append a LogKeyRotated entry signed by the current key and publish its checkpoint with
        ``new``, all in one transaction; from then on everything is signed by ``new``.
        Returns the entry's index."""
        if new.name != self.signer.name:
            raise ValueError(f"the new log key is named {new.name!r}; it must keep the name {self.signer.name!r}")
        if new.key_id == self.signer.key_id:
            raise ValueError("the new log key is the current one")
        old = self.signer
        stmt = statements_pb2.LogKeyRotated(old_verifier_key=old.verifier().to_string(),
                                            new_verifier_key=new.verifier().to_string(), reason=reason,
                                            rotated_unix=when)
        try:
            with self.store.transaction() as db:
                txn = LogTransaction(db, self.tree.size, old, self.origin)
                index = txn.append_statement(stmt)
                for h in txn.pending:
                    self.tree.append_leaf_hash(h)
                cp = Checkpoint(self.origin, self.tree.size, self.tree.root())
                self.store.add_checkpoint(self.tree.size, sign_note(cp.to_text(), [new]))
                self.store.set_meta(LOG_KEY_META, new.verifier().to_string())
        except BaseException:
            # The tree may hold the rolled-back leaf.
            self.tree = Tree.from_leaf_hashes(self.store.leaf_hashes())
            raise
        self.signer = new
        return index

    def signed_checkpoint(self) -> str:
        cp = Checkpoint(self.origin, self.tree.size, self.tree.root())
        return sign_note(cp.to_text(), [self.signer])

    def publish_checkpoint(self) -> str:
        note = self.signed_checkpoint()
        self.store.add_checkpoint(self.tree.size, note)
        return note
