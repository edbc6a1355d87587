"""The coordinator's signed append-only log: entries in the store, the Merkle tree in memory.

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
from dedup.merkle import Tree, leaf_hash
from dedup.note import NoteSigner, sign_note
from dedup.signing import sign_statement
from dedup.v1 import statement_pb2

from .database import Database
from .store import Store


@dataclass
class LogTransaction:
    """One store transaction that may append log entries."""

    db: Database
    first_index: int
    signer: NoteSigner
    pending: list[bytes] = field(default_factory=list)

    def append(self, stmt: statement_pb2.SignedStatement) -> int:
        entry = stmt.SerializeToString(deterministic=True)
        index = self.first_index + len(self.pending)
        h = leaf_hash(entry)
        Store.add_log_entry(self.db, index, entry, h)
        self.pending.append(h)
        return index

    def append_signed(self, message: Message) -> int:
        """Sign ``message`` with the coordinator's key and append it."""
        return self.append(sign_statement(self.signer, message))


class TransparencyLog:
    def __init__(self, store: Store, signer: NoteSigner, origin: str) -> None:
        self.store = store
        self.signer = signer
        self.origin = origin
        self.tree = Tree.from_leaf_hashes(store.leaf_hashes())
        latest = store.latest_checkpoint()
        if latest is None or latest[0] != self.tree.size:
            self.publish_checkpoint()

    @property
    def size(self) -> int:
        return self.tree.size

    @contextmanager
    def transaction(self) -> Iterator[LogTransaction]:
        with self.store.transaction() as db:
            txn = LogTransaction(db, self.tree.size, self.signer)
            yield txn
        # Only reached once COMMIT succeeded.
        for h in txn.pending:
            self.tree.append_leaf_hash(h)
        if txn.pending:
            self.publish_checkpoint()

    def checkpoint_note(self, size: int | None = None) -> str | None:
        """The published checkpoint of ``size`` entries (default: the latest) as a signed note,
        or None if no checkpoint of that size was published."""
        if size is None:
            latest = self.store.latest_checkpoint()
            return latest[1] if latest else None
        return self.store.checkpoint(size)

    def signed_checkpoint(self) -> str:
        cp = Checkpoint(self.origin, self.tree.size, self.tree.root())
        return sign_note(cp.to_text(), [self.signer])

    def publish_checkpoint(self) -> str:
        note = self.signed_checkpoint()
        self.store.add_checkpoint(self.tree.size, note)
        return note
