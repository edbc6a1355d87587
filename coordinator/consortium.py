"""The coordinator's core: membership, batch intake, matching, master proposals, the log.

No gRPC here: the service layer maps requests in and Refusal out; this module decides.
One lock serialises intakes, which keeps the log, the store and the in-memory matcher in the
same order (the store has one writer anyway).
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import grpc

from dedup.candidates import PARTS, WHOLE, CandidateIndex
from dedup.fingerprint.wire import Hashes
from dedup.jsonlog import event
from dedup.matching import Rule, compared_hashes
from dedup.note import NoteVerifier
from dedup.policy import KEYS, POLICY_VERSION, Candidate as PolicyCandidate, choose_master, derived_copies
from dedup.signing import SignatureError, parse_body, verify_statement
from dedup.v1 import asset_pb2, intake_pb2, lookup_pb2, negotiation_pb2, statement_pb2, statements_pb2
from dedup.visibility import entry_readers
from dedup.wire_rules import is_asset_id

from . import snapshot
from .fairlock import FairLock
from .log import LogTransaction, TransparencyLog
from .matcher import BatchVersions, Candidate, Key, Matcher, new_cluster_id
from .lookup import Lookups
from .negotiation import LIVE, Negotiator
from .ratelimit import Limit, RateLimiter
from .refusal import Refusal
from .settings import CoordinatorSettings, MemberSettings
from .store import StoredMatch, Store
from .validation import check_fields, check_id, invalid, parse_assets


_DIRECTED = (statements_pb2.RELATION_CROPPED, statements_pb2.RELATION_BORDERED)
#: A follower tries at most this many of its version's anchors (SPEC section 6).
_ANCHORS = 4

#: Assets searched at a time: a batch's search holds one slice's candidates before the bound
#: on the whole batch's is checked again.
_SEARCH_SLICE = 100

log = logging.getLogger("dedup.coordinator")

#: Records parsed at a time when the index is rebuilt on start-up (parsed records are large;
#: the index keeps only their hashes).
_LOAD_CHUNK = 10_000


#: What a reader or auditor member is refused, by the statement it sent.
_READER_REFUSES = {
    asset_pb2.BatchManifest: "submit batches (it holds no collection)",
    asset_pb2.AssetsWithdrawn: "withdraw assets (it holds no collection)",
    statements_pb2.MasterVote: "vote on master proposals",
    statements_pb2.MasterBallot: "vote on master proposals",
    statements_pb2.MasterRuling: "rule on master proposals",
}


@dataclass(frozen=True)
class Member:
    settings: MemberSettings
    verifier: NoteVerifier
    #: Key ids of the keys it signed with before (``previous_keys``), to name them in refusals.
    replaced: frozenset[bytes] = frozenset()


def _member(m: MemberSettings) -> Member:
    verifier = NoteVerifier.from_string(m.public_key)
    if verifier.name != m.id:
        raise ValueError(f"member {m.id}: its public key is named {verifier.name!r}; key names must equal member ids")
    return Member(m, verifier, frozenset(NoteVerifier.from_string(k).key_id for k in m.previous_keys))


class Coordinator:
    def __init__(self, settings: CoordinatorSettings, store: Store, log: TransparencyLog, clock=time.time,
                 candidates: Callable[[Rule], CandidateIndex] = CandidateIndex) -> None:
        self.settings = settings
        self._candidates = candidates
        self.store = store
        self.log = log
        self.clock = clock
        self.members = {m.id: _member(m) for m in settings.members}
        log_key = log.signer.verifier().public_bytes()
        if any(m.verifier.public_bytes() == log_key for m in self.members.values()):
            raise ValueError("a member's public key is the log's own key: a member could sign as the coordinator")
        #: First come, first served: between a large batch's two turns, whoever waited goes first.
        self.lock = FairLock()
        #: Per-member flood control on intake (batches and withdrawals), checked before any work.
        self.limiter = RateLimiter({"intake": Limit(settings.intake_rate, settings.intake_burst)})
        #: Set when the matcher could not be reloaded after a failed write (the store was
        #: unreachable): the next intake reloads it first.
        self._matcher_stale = False
        self.matcher = self._load_matcher()
        self.negotiation = Negotiator(self)
        self._admit_members()
        #: Members admitted as arbiters in the log (the log, not the configuration, decides).
        self.arbiters = self.store.admitted_arbiters()
        #: Members admitted as readers: they look up, and send no batches, withdrawals or votes.
        self.readers = self.store.admitted_readers()
        #: Members admitted as auditors: they read every log entry, and send what readers send.
        self.auditors = self.store.admitted_auditors()
        self.lookups = Lookups(self)
        #: cluster -> its live proposal as ``_master_stands`` reads it, while it stays live.
        self._proposed: dict[str, _Proposed] = {}
        self._intake = _Intake()

    # --- start-up ----------------------------------------------------------------------

    def _new_matcher(self) -> Matcher:
        return Matcher(self.settings.match.rule(), self._record, candidates=self._candidates,
                       priority=lambda m: self.members[m].settings.custodial_priority if m in self.members else 0)

    def _load_matcher(self) -> Matcher:
        """The matcher for what the store holds: from the saved index when it stands for the
        store (``coordinator.snapshot``), else rebuilt from every stored record."""
        path = self.settings.snapshot_path()
        if path is not None and path.exists():
            started = time.perf_counter()
            try:
                matcher = self._matcher_from_snapshot(path)
            except snapshot.SnapshotUnusable as exc:
                event(log, "index_snapshot_unused", path=str(path), reason=str(exc))
            else:
                event(log, "index_snapshot_loaded", path=str(path), assets=len(matcher.index),
                      seconds=round(time.perf_counter() - started, 3))
                return matcher
        matcher = self._new_matcher()
        items = []
        for member_id, asset_id, record, cid, version in self.store.assets():
            member_id = sys.intern(member_id)  # one string per member, not one per asset
            key = (member_id, asset_id)
            if cid is not None:
                matcher.assign(key, cid)
            if version is not None:
                matcher.follow(key, (member_id, version))  # read, not indexed
                continue
            items.append((key, asset_pb2.Asset.FromString(record)))
            if len(items) == _LOAD_CHUNK:
                matcher.add_many(items, remember=False)
                items = []
        matcher.add_many(items, remember=False)
        return matcher

    def _matcher_from_snapshot(self, path) -> Matcher:
        header = snapshot.read_header(path)
        if header.log_size != self.log.size or header.log_root != self.log.tree.root().hex():
            raise snapshot.SnapshotUnusable(f"it was saved at log size {header.log_size}; the log has "
                                            f"{self.log.size} entries now (or another history)")
        rule = self.settings.match.rule()
        if header.rule != snapshot.rule_fields(rule):
            raise snapshot.SnapshotUnusable("it was saved under another matching rule")
        matcher = self._new_matcher()
        if not hasattr(matcher.index, "load"):
            raise snapshot.SnapshotUnusable("this candidate search cannot be loaded")
        indexed: set[Key] = set()
        for member_id, asset_id, cid, version in self.store.asset_keys():
            member_id = sys.intern(member_id)
            key = (member_id, asset_id)
            if cid is not None:
                matcher.assign(key, cid)
            if version is not None:
                matcher.follow(key, (member_id, version))
            else:
                indexed.add(key)
        keys, arrays = snapshot.load(path)
        live = [k for k in keys if k is not None]
        if len(live) != len(indexed) or indexed.difference(live):
            raise snapshot.SnapshotUnusable("its assets are not the ones the store holds")
        try:
            matcher.index.load(keys, arrays)
        except (ValueError, KeyError, IndexError) as exc:
            raise snapshot.SnapshotUnusable(f"it is damaged: {exc}") from exc
        return matcher

    def save_index(self) -> int | None:
        """Save the candidate index for the next start-up (when a file is configured);
        returns the file's size in bytes, or None when nothing was saved."""
        path = self.settings.snapshot_path()
        index = self.matcher.index
        if path is None or self._matcher_stale or not hasattr(index, "state"):
            return None
        with self.lock:
            keys, arrays = index.state()
            header = snapshot.Header(self.log.size, self.log.tree.root().hex(),
                                     snapshot.rule_fields(self.matcher.rule), len(index))
            return snapshot.save(path, header, keys, arrays)

    def _record(self, key: Key) -> asset_pb2.Asset | None:
        blob = self.store.asset(*key)
        return None if blob is None else asset_pb2.Asset.FromString(bytes(blob))

    def _admit_members(self) -> None:
        """Log a MemberAdmitted entry for each configured member not admitted yet."""
        admitted = self.store.admitted_members()
        new = [m for mid, m in sorted(self.members.items()) if mid not in admitted]
        replaced: list[tuple[Member, bytes]] = []
        for mid, key in admitted.items():
            if mid in self.members and self.members[mid].verifier.public_bytes() != bytes(key):
                m = self.members[mid]
                previous = m.settings.raw_previous_keys()
                if not previous or previous[-1] != bytes(key):
                    raise ValueError(f"member {mid}: configured key differs from the key admitted in the log, and "
                                     "the log's key is not the last of its previous_keys; a member's new key is "
                                     "admitted with `dedup pki issue --rekey`, which writes both (deploy/OPERATIONS.md)")
                if m.settings.revoked:
                    raise ValueError(f"member {mid}: a revoked member's key cannot be replaced")
                replaced.append((m, bytes(key)))
        for role, named in (("arbiter", self.store.admitted_arbiters()), ("reader", self.store.admitted_readers()),
                            ("auditor", self.store.admitted_auditors())):
            for mid in admitted:
                if mid in self.members and (configured := getattr(self.members[mid].settings, role)) != (mid in named):
                    raise ValueError(f"member {mid}: configured {role} = {configured}, but the log admitted it with"
                                     f" {role} = {mid in named}; {role}s are named when first admitted")
        revoked = self.store.revoked_keys()
        to_revoke = [m for _, m in sorted(self.members.items())
                     if m.settings.revoked and (m.settings.id, m.verifier.public_bytes()) not in revoked]
        if not new and not to_revoke and not replaced:
            return
        with self.log.transaction() as txn:
            for m, old_key in replaced:
                idx = txn.append_statement(statements_pb2.MemberKeyReplaced(
                    member_id=m.settings.id, old_public_key=old_key, new_public_key=m.verifier.public_bytes(),
                    replaced_unix=int(self.clock())))
                Store.replace_key(txn.db, m.settings.id, m.verifier.public_bytes())
            for m in new:
                idx = txn.append_statement(statements_pb2.MemberAdmitted(
                    member_id=m.settings.id,
                    display_name=m.settings.name,
                    public_key=m.verifier.public_bytes(),
                    custodial_priority=m.settings.custodial_priority,
                    admitted_unix=int(self.clock()),
                    arbiter=m.settings.arbiter,
                    reader=m.settings.reader,
                    auditor=m.settings.auditor,
                ))
                Store.add_member(txn.db, m.settings.id, m.verifier.public_bytes(), idx, m.settings.arbiter,
                                 m.settings.reader, m.settings.auditor)
            for m in to_revoke:
                idx = txn.append_statement(statements_pb2.MemberRevoked(
                    member_id=m.settings.id, public_key=m.verifier.public_bytes(), reason=m.settings.revoked,
                    revoked_unix=int(self.clock())))
                Store.add_revocation(txn.db, m.settings.id, m.verifier.public_bytes(), idx)

    # --- intake ------------------------------------------------------------------------

    def submit_batch(self, identity: str, stmt: statement_pb2.SignedStatement, payload: bytes) -> intake_pb2.SubmitBatchResponse:
        self.member(identity)
        self.limiter.take(identity, "intake")
        manifest = self.signed_body(identity, stmt, asset_pb2.BatchManifest, "manifest")
        check_id(manifest, "batch_id", "the manifest")
        # What needs no shared state is done before the lock: other members do not wait on it.
        assets = parse_assets(manifest, payload, self.settings.max_batch_assets)
        parsed = [compared_hashes(a) for a in assets]  # once per asset, for every comparison below

        # Two turns at the lock: the search, which changes nothing, then the store. Other
        # members' intakes may run between them (the lock is first come, first served), so a
        # large batch keeps each of them waiting for one half of its work, not for all of it.
        with self.lock:
            self._fresh_matcher()
            if (done := self._already_stored(identity, manifest, stmt)) is not None:
                return done
            m = self.matcher
            mark = m.index.mark()
            plan, found = self._plan(identity, assets, parsed)  # may refuse; changes nothing
            if len(assets) <= self.settings.one_turn_assets:
                # A small batch's search is short: stored in this turn, so it never waits
                # behind a large batch's second turn as well as its first.
                return self._store_turn(identity, stmt, manifest, assets, parsed, plan, found)
        with self.lock:
            self._fresh_matcher()
            if (done := self._already_stored(identity, manifest, stmt)) is not None:
                return done
            added = m.index.added_since(mark) if self.matcher is m else None
            if added is None or any(k[0] == identity for k in added):
                # The matcher was rebuilt, or this member's own assets changed: search again.
                plan, found = self._plan(identity, assets, parsed)
            elif added:
                found = self._search_added(assets, parsed, plan, found, added)
            return self._store_turn(identity, stmt, manifest, assets, parsed, plan, found)

    def _store_turn(self, identity, stmt, manifest, assets, parsed, plan, found) -> intake_pb2.SubmitBatchResponse:
        try:
            return self._store_batch(identity, stmt, manifest, assets, parsed, plan, found)
        except BaseException:
            # The transaction rolled back; the matcher may hold part of it.
            self._reload_matcher()
            raise

    def _already_stored(self, identity: str, manifest, stmt) -> intake_pb2.SubmitBatchResponse | None:
        """The answer to a batch resent after it was stored (None if it was not); refused if
        its id was used for another batch or its sequence is not after the member's last."""
        stored = self.store.find_batch(identity, manifest.batch_id)
        if stored is not None:
            if stored.manifest != stmt.body:
                raise Refusal(grpc.StatusCode.ALREADY_EXISTS, "batch_id_reused",
                              f"batch id {manifest.batch_id!r} was already used for a different batch")
            return intake_pb2.SubmitBatchResponse(batch_id=manifest.batch_id, accepted=stored.accepted,
                                                  already_stored=True, log_index=stored.log_index,
                                                  new_matches=stored.new_matches)
        last = self.store.last_sequence(identity)
        if manifest.sequence <= last:
            raise Refusal(grpc.StatusCode.FAILED_PRECONDITION, "replay",
                          f"batch sequence {manifest.sequence} is not after the last accepted sequence {last}:"
                          " replayed or out-of-order batch")
        return None

    def _search_added(self, assets, parsed, plan, found, added: list[Key]) -> list[set[Key]]:
        """``found`` completed with the assets other members' intakes indexed since it was
        searched: the batch's versions are searched against those alone."""
        m = self.matcher
        fresh = CandidateIndex(m.index.rule)
        items = [(k, c) for k in added if (c := m._cached(k)) is not None]
        fresh.add_many([(k, c[0]) for k, c in items], [c[1] for _, c in items])
        todo = [i for i, v in enumerate(plan) if v is None]
        more = fresh.candidates_many([assets[i] for i in todo], [parsed[i] for i in todo])
        for i, keys in zip(todo, more):
            found[i] = found[i] | keys
        if sum(len(f) for f in found) > self.settings.max_batch_candidates:
            raise self._too_large("")
        return found

    def _too_large(self, where: str) -> Refusal:
        return Refusal(grpc.StatusCode.RESOURCE_EXHAUSTED, "search_too_large",
                       f"the batch's candidate search passed {self.settings.max_batch_candidates:,} candidates{where}"
                       " (max_batch_candidates); nothing was stored: send it in smaller batches")

    def _reload_matcher(self) -> None:
        """Rebuild the matcher from the store after a failed write; if the store cannot be read
        either, say so and rebuild before the next intake."""
        self._matcher_stale = True
        try:
            self.matcher = self._load_matcher()
        except Exception:  # noqa: BLE001 - the write's own error is the one the caller sees
            return
        self._matcher_stale = False

    def _fresh_matcher(self) -> None:
        if self._matcher_stale:
            self.matcher = self._load_matcher()
            self._matcher_stale = False

    def withdraw(self, identity: str, stmt: statement_pb2.SignedStatement) -> intake_pb2.WithdrawAssetsResponse:
        """Tombstone a member's assets, by its own signed statement."""
        self.member(identity)
        self.limiter.take(identity, "intake")
        body = self.signed_body(identity, stmt, asset_pb2.AssetsWithdrawn, "withdrawal")
        check_id(body, "withdrawal_id", "the withdrawal")
        if not body.asset_ids or len(body.asset_ids) > self.settings.max_batch_assets:
            raise invalid("bad_withdrawal", f"a withdrawal names 1 to {self.settings.max_batch_assets} assets")
        with self.lock:
            self._fresh_matcher()
            stored = self.store.find_withdrawal(identity, body.withdrawal_id)
            if stored is not None:
                if stored[0] != stmt.body:
                    raise Refusal(grpc.StatusCode.ALREADY_EXISTS, "withdrawal_id_reused",
                                  f"withdrawal id {body.withdrawal_id!r} was already used for another withdrawal")
                return intake_pb2.WithdrawAssetsResponse(withdrawn=stored[1], already_stored=True, log_index=stored[2])
            unknown = [a for a in body.asset_ids if (identity, a) not in self.matcher]
            if unknown:
                # An id of another form is not quoted: it may be a path or a name, and refusals are logged.
                example = repr(unknown[0]) if is_asset_id(unknown[0]) else "one not of the form 'a-' and 24 hex digits"
                raise Refusal(grpc.StatusCode.NOT_FOUND, "unknown_asset",
                              f"{len(unknown)} asset(s) are not held by {identity!r} here, e.g. {example}")
            ids = sorted(set(body.asset_ids))
            try:
                touched: set[str] = set()
                with self.log.transaction() as txn:
                    idx = txn.append(stmt)
                    Store.withdraw(txn.db, identity, body.withdrawal_id, stmt.body, ids, idx)
                    for a in ids:
                        cid, (promoted, followers) = self.matcher.remove((identity, a))
                        if promoted is not None:
                            # A withdrawn version's first follower is indexed in its place.
                            Store.promote(txn.db, promoted, followers)
                        if cid is not None:
                            touched.add(cid)
                    for cid in sorted(touched):
                        # A master that left, or a cluster now held by one member, needs a new look.
                        self._repropose(txn, cid, "copy_withdrawn")
            except BaseException:
                self._reload_matcher()
                raise
        return intake_pb2.WithdrawAssetsResponse(withdrawn=len(ids), log_index=idx)

    def member(self, identity: str, refused: str = "nothing it sends is accepted") -> Member:
        """The member behind this connection; refused if unknown or revoked (``refused`` says
        what the revocation stops, for the message)."""
        member = self.members.get(identity)
        if member is None:
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED, "unknown_member",
                          f"TLS identity {identity!r} is not a member of this consortium")
        if member.settings.revoked:
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED, "revoked",
                          f"the key of member {identity!r} is revoked ({member.settings.revoked}); {refused}")
        return member

    def entry_reader(self, identity: str) -> Callable[[bytes], bool]:
        """Whether ``identity`` (a member in good standing) may read a log entry in full: an
        auditor reads all, anyone else the public entries and those about it (dedup.visibility)."""
        if identity in self.auditors:
            return lambda entry: True
        arbiter = identity in self.arbiters
        holders = functools.lru_cache(maxsize=1024)(self.store.proposal_holders)
        return lambda entry: entry_readers(entry, holders).allows(identity, arbiter=arbiter)

    def signed_body(self, identity: str, stmt: statement_pb2.SignedStatement, kind, noun: str,
                    field: str = "member_id", role: str = "member", then=None):
        """A member's signed statement of type ``kind``, checked (``_signer``, then ``then()`` if
        given) and parsed; its ``field`` must name the signer. ``noun`` names it in refusals."""
        self._signer(identity, stmt, kind)
        if then is not None:
            then()
        try:
            body = parse_body(stmt, kind)
        except SignatureError as exc:
            raise invalid(f"bad_{noun}", str(exc)) from exc
        check_fields(stmt, f"the signed {noun}")
        check_fields(body, f"the {noun}")
        named = getattr(body, field)
        if named != identity:
            raise invalid("member_mismatch", f"{noun} names {role} {named!r}, signer is {identity!r}")
        return body

    def _signer(self, identity: str, stmt: statement_pb2.SignedStatement, kind) -> Member:
        """The member behind this connection, having checked it signed ``stmt`` of type ``kind``."""
        member = self.member(identity)
        if identity in self.readers or identity in self.auditors:
            # Every statement a member sends is a batch, a withdrawal, a vote or a ruling.
            role = "reader" if identity in self.readers else "auditor"
            may = "look up" if role == "reader" else "read the log and look up"
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED, role,
                          f"{identity!r} is {'a reader' if role == 'reader' else 'an auditor'} member: it may {may}, "
                          f"but not {_READER_REFUSES.get(kind, 'sign statements')}")
        if stmt.type != kind.DESCRIPTOR.full_name:
            raise invalid("wrong_statement", f"expected a {kind.DESCRIPTOR.full_name} statement, got {stmt.type!r}")
        if stmt.signer != identity:
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED, "identity_mismatch",
                          f"statement is signed by {stmt.signer!r} but the connection is authenticated as {identity!r}")
        try:
            verify_statement(stmt, member.verifier, origin=self.log.origin)
        except SignatureError as exc:
            if stmt.key_id in member.replaced and stmt.key_id != member.verifier.key_id:
                raise Refusal(grpc.StatusCode.UNAUTHENTICATED, "replaced_key",
                              f"statement signed with a replaced key of {identity!r} ({stmt.key_id.hex()}); the "
                              f"log holds key {member.verifier.key_id.hex()} for it now (`dedup pki install` puts "
                              f"the new key in use)") from exc
            raise Refusal(grpc.StatusCode.UNAUTHENTICATED, "bad_signature", str(exc)) from exc
        return member

    def _search(self, assets: list[asset_pb2.Asset], parsed: list[Hashes | None], searches,
                found_before: int = 0) -> list[set[Key]]:
        """Each asset's index candidates by ``searches``, whoever holds them, searched a slice
        of the batch at a time so that the search's memory follows the bound: past
        ``max_batch_candidates`` (counting ``found_before``) the batch is refused before
        anything is stored."""
        bound = self.settings.max_batch_candidates
        out: list[set[Key]] = []
        total = found_before
        for lo in range(0, len(assets), _SEARCH_SLICE):
            found = self.matcher.index.candidates_many(assets[lo:lo + _SEARCH_SLICE], parsed[lo:lo + _SEARCH_SLICE],
                                                       searches)
            total += sum(len(f) for f in found)
            if total > bound:
                raise self._too_large(f" in its first {lo + len(found)} of {len(assets)} assets")
            out += found
        return out

    def _plan(self, member_id: str, assets: list[asset_pb2.Asset],
              parsed: list[Hashes | None]) -> tuple[list[Key | None], list[set[Key]]]:
        """Before anything is written: the version each of the batch's assets will follow
        (None for a version, ``KEPT`` for a copy declared again with its picture), in batch order,
        and each version's candidates.

        Whether a copy follows depends only on its digests and upright hash, its member's
        indexed versions and the batch's earlier versions, so the cheap whole-picture search
        decides it for the whole batch; only versions are then searched for parts (a local
        edit, a crop), which is most of a search's cost."""
        m = self.matcher
        # A copy declared again with the same picture keeps its place and its links.
        plan: list[Key | None] = [None] * len(assets)
        for n, a in enumerate(assets):
            if (old := m.record((member_id, a.asset_id))) is not None and not _changes_picture(old, a):
                plan[n] = KEPT
        position = {a.asset_id: i for i, a in enumerate(assets)}
        searched = [i for i, v in enumerate(plan) if v is None]
        whole: list[set[Key]] = [set() for _ in assets]
        for i, keys in zip(searched, self._search([assets[i] for i in searched], [parsed[i] for i in searched], WHOLE)):
            whole[i] = keys
        # The member's versions and followers as the batch goes, as if its copies came one by
        # one: a version whose picture changes leaves when the batch reaches it (earlier copies
        # may follow its old picture), and its first follower by key takes its place.
        fresh = BatchVersions()  # versions the batch makes (the index holds none of them yet)
        gone: set[Key] = set()  # indexed versions the batch has taken out so far
        followers: dict[Key, set[Key]] = {}  # version -> its followers, once the batch changes them
        following: dict[Key, Key] = {}  # follower -> version, where the batch changed it

        def followers_of(v: Key) -> set[Key]:
            if v not in followers:
                followers[v] = set(m.followers.get(v, ()))
            return followers[v]

        for n, (asset, h, keys) in enumerate(zip(assets, parsed, whole)):
            if plan[n] is KEPT:
                continue
            key = (member_id, asset.asset_id)
            if key in fresh or (key in m.index and key not in gone):  # a version changes its picture
                fresh.remove(key)
                gone.add(key)
                rest = sorted(followers_of(key))
                followers[key] = set()
                if rest:
                    new, rest = rest[0], rest[1:]
                    at = position.get(new[1])
                    at = at if at is not None and at < n else None  # declared earlier in this batch?
                    record = m.record(new) if at is None else assets[at]
                    fresh.add(new, record, compared_hashes(record) if at is None else parsed[at])
                    following.pop(new, None)
                    followers[new] = set(rest)
                    following.update(dict.fromkeys(rest, new))
            else:  # a follower changes its picture: it follows no longer
                was = following.pop(key, None) or m.version_of.get(key)
                if was is not None:
                    followers_of(was).discard(key)
            best = m.near_version(key, asset, h, keys - gone if gone else keys)
            near = fresh.nearest(key, asset, h)
            if near is not None and (best is None or near < best):
                best = near
            version = None if best is None else best[1]
            if version is None:
                fresh.add(key, asset, h)
            else:
                followers_of(version).add(key)
                following[key] = version
            plan[n] = version
        todo = [i for i, v in enumerate(plan) if v is None]
        parts = self._search([assets[i] for i in todo], [parsed[i] for i in todo], PARTS,
                             found_before=sum(len(k) for k in whole))
        for i, keys in zip(todo, parts):
            whole[i] |= keys
        return plan, whole

    def _store_batch(self, member_id: str, stmt, manifest, assets: list[asset_pb2.Asset], parsed: list[Hashes | None],
                     plan: list[Key | None], found: list[set[Key]]) -> intake_pb2.SubmitBatchResponse:
        """Store a batch ``_plan`` has planned. Other members' assets do not change during the
        batch, so all of its candidates were found before anything is written; clustering
        then goes asset by asset, in batch order, exactly as if the assets had come one by one."""
        # cluster -> why it is proposed again; a cluster that gained a copy says so, whatever else changed.
        touched: dict[str, str] = {}
        new_matches = 0
        m = self.matcher
        self._intake = _Intake()
        with self.log.transaction() as txn:
            batch_index = txn.append(stmt)
            # Each record as it was before the batch: a rescan is applied when the batch reaches it.
            before = [m.record((member_id, a.asset_id)) for a in assets]
            Store.put_assets(txn.db, member_id, [(a.asset_id, a.SerializeToString(deterministic=True)) for a in assets],
                             manifest.batch_id)
            versions = []
            for asset, h, keys, version, old in zip(assets, parsed, found, plan, before):
                key = (member_id, asset.asset_id)
                self._update(txn, key, old, asset, touched)
                m.add_many([(key, asset)], indexed=False, parsed=[h])
                if version is KEPT:  # its links and its place stand (new evidence is in ``touched``)
                    continue
                if version is not None:
                    if m.version_of.get(key) != version:
                        m.unfollow(key)
                        m.follow(key, version)
                        Store.set_followers(txn.db, member_id, version[1], [key[1]])
                    cid = m.cluster_of.get(version)
                    if cid is not None:
                        new_matches += self._join_follower(txn, key, asset, h, cid, touched)
                    continue
                if key in m.version_of:
                    m.unfollow(key)
                    Store.unfollow(txn.db, *key)
                if key not in m.index:
                    versions.append((key, asset, h))
                new_matches += self._match(txn, key, asset, m.linked(member_id, asset, h, keys), touched, h)
            m.index.add_many([(k, a) for k, a, _ in versions], [h for _, _, h in versions])
            Store.add_batch(txn.db, member_id, manifest.batch_id, manifest.sequence, stmt.body, len(assets),
                            new_matches, batch_index, int(self.clock()))
            for cid in sorted(touched):
                self._repropose(txn, cid, touched[cid])
        return intake_pb2.SubmitBatchResponse(batch_id=manifest.batch_id, accepted=len(assets),
                                              log_index=batch_index, new_matches=new_matches)

    def _update(self, txn: LogTransaction, key: Key, old: asset_pb2.Asset | None, asset: asset_pb2.Asset,
                touched: dict[str, str]) -> None:
        """A member declaring an asset again (a rescan; ``old`` is the record held until now).
        New evidence only: its cluster stays and gets a fresh proposal, since the master may
        change. New pixels or fingerprints: it leaves its cluster (which is proposed again
        without it) and is matched afresh; a version leaves the index too, its first follower
        taking its place."""
        m = self.matcher
        if old is None or old == asset:
            return
        if not _changes_picture(old, asset):
            if (cid := m.cluster_of.get(key)) is not None:
                self._altered(touched, cid)
            return
        if key in m.version_of:
            m.unfollow(key)
            Store.unfollow(txn.db, *key)
        elif key in m.index:
            promoted, followers = m.unindex(key)
            if promoted is not None:
                Store.promote(txn.db, promoted, followers)
        cid = m.cluster_of.get(key)
        if cid is None:
            return
        m.detach(key)
        Store.leave_cluster(txn.db, key[0], key[1])
        # Proposed again if still cross-member; closed (no more votes) if not.
        self._altered(touched, cid)

    def _anchors(self, db, version: Key, cluster_id: str) -> list[Key]:
        """The copies a version's followers link to in its cluster, best first, from the
        version's earliest matches there with other members' copies still in it: one that
        makes the version a crop or bordered copy (so its followers are derived as it is),
        then those of the same whole picture (the cheapest links to make), then the earliest;
        at most ``_ANCHORS``. Kept in memory until the version's matches change, so a restart
        finds the same ones."""
        m = self.matcher
        found = m.anchor.get(version)
        if found is None or found[0] != cluster_id:
            found = (cluster_id, self._anchor_order(db, version, cluster_id))
            m.anchor[version] = found
        return [k for k in found[1] if m.cluster_of.get(k) == cluster_id][:_ANCHORS]

    def _anchor_order(self, db, version: Key, cluster_id: str) -> tuple[Key, ...]:
        """Every copy of another member among the version's earliest matches in the cluster,
        in the order ``_anchors`` prefers them (whether each is still there is asked later)."""
        m = self.matcher
        rows = [r for r in Store.first_links(db, version[0], version[1], cluster_id) if r[0][0] != version[0]]
        mine = m.record(version)

        def derives(row) -> bool:
            other, relation, _, crop = row
            if relation not in _DIRECTED or mine is None or (theirs := m.record(other)) is None:
                return False
            return version in derived_copies({version: mine.evidence, other: theirs.evidence},
                                             [(version, other, relation, {1: version, 2: other}.get(crop))])

        ordered = [r for r in rows if derives(r)][:1] + [r for r in rows if r[2] == "dct256"] + rows
        return tuple(dict.fromkeys(r[0] for r in ordered))

    def _join_follower(self, txn: LogTransaction, key: Key, asset: asset_pb2.Asset, parsed: Hashes | None,
                       cluster_id: str, touched: dict[str, str], anchor: Key | None = None) -> int:
        """A follower joins its version's cluster through one match: with ``anchor`` if given,
        else (or if the rule does not link the two) with the first of its version's
        ``_anchors`` the rule links it to; with none, it stays out. Returns the matches
        recorded (0 or 1)."""
        m = self.matcher
        tried = [anchor] if anchor is not None else []
        for other in tried + [k for k in self._anchors(txn.db, m.version_of[key], cluster_id) if k != anchor]:
            found = m.link(other, asset, parsed)
            if found is not None:
                break
        else:
            return 0
        if m.cluster_of.get(key) != cluster_id:
            if (left := m.cluster_of.get(key)) is not None:
                self._altered(touched, left)
            m.assign(key, cluster_id)
            Store.set_cluster(txn.db, key[0], key[1], cluster_id)
            touched[cluster_id] = "copy_added"
            self._intake.added.setdefault(cluster_id, set()).add(key)
        else:
            self._altered(touched, cluster_id)
        self._record_match(txn, cluster_id, other, key, found)
        return 1

    def _pull_followers(self, txn: LogTransaction, version: Key, cluster_id: str, anchor: Key,
                        touched: dict[str, str]) -> int:
        """A version newly linked in a cluster (it joined it, or another copy linked to it)
        brings its followers that are in no cluster, each through its own match with
        ``anchor`` (the copy the version was just linked to) or another of its anchors."""
        m = self.matcher
        made = 0
        for f in sorted(m.followers.get(version, ())):
            if f in m.cluster_of:
                continue
            found = m._cached(f)
            if found is not None:
                made += self._join_follower(txn, f, found[0], found[1], cluster_id, touched, anchor)
        return made

    def _match(self, txn: LogTransaction, key: Key, asset: asset_pb2.Asset, candidates: list[Candidate],
               touched: dict[str, str], parsed: Hashes | None) -> int:
        m = self.matcher
        accepted = []
        verdicts: dict[str, bool] = {}  # one check per cluster, however many of its copies link
        for c in candidates:
            cid = m.cluster_of.get(c.key)
            if cid is not None and cid not in verdicts:
                verdicts[cid] = m.verified(asset, cid, parsed)
            if cid is None or verdicts[cid]:
                accepted.append(c)
        if not accepted:
            return 0
        existing = sorted({m.cluster_of[c.key] for c in accepted if c.key in m.cluster_of})
        if key in m.cluster_of:
            existing = sorted(set(existing) | {m.cluster_of[key]})
        if len(existing) > 1:
            # Two clusters meet in this copy: it joins the one it is held in, else the one with
            # most of its links; another merges in only if it also matches that one elsewhere.
            links_to = {cid: sum(1 for c in accepted if m.cluster_of.get(c.key) == cid) for cid in existing}
            home = m.cluster_of.get(key) or min(existing, key=lambda cid: (-links_to[cid], cid))
            joined_clusters = {home} | {cid for cid in existing if cid != home and m.bridged(home, cid)}
            accepted = [c for c in accepted if m.cluster_of.get(c.key, home) in joined_clusters]
            existing = sorted(joined_clusters)
        target = existing[0] if existing else new_cluster_id(accepted[0].key, key)
        if existing[1:]:
            self._altered(touched, target)
        for other in existing[1:]:
            Store.rename_cluster(txn.db, other, target)
            # Its proposals end with it; the merged cluster gets a proposal of its own.
            self.negotiation.supersede(txn.db, other, None)
            touched.pop(other, None)
            for k in list(m.members_of.get(other, ())):
                m.assign(k, target)
        joined = bool(existing[1:])
        linked = [(key, accepted[0].key), *((c.key, key) for c in accepted)]  # each version, a copy it links to
        for k, _ in linked:
            if m.cluster_of.get(k) != target:
                m.assign(k, target)
                Store.set_cluster(txn.db, k[0], k[1], target)
                joined = True
                self._intake.added.setdefault(target, set()).add(k)
        if joined:
            touched[target] = "copy_added"
        else:  # a copy declared again, its links found again
            self._altered(touched, target)
        for c in accepted:
            self._record_match(txn, target, c.key, key, c.link)
        made = len(accepted)
        for k, anchor in linked:
            made += self._pull_followers(txn, k, target, anchor, touched)
        return made

    def _record_match(self, txn: LogTransaction, cluster_id: str, a: Key, b: Key, lk) -> None:
        """Log and store the link ``lk`` = link(record of a, record of b)."""
        match_id = f"{cluster_id}/{a[0]}/{a[1]}/{b[0]}/{b[1]}"
        stmt = statements_pb2.MatchRecorded(
            match_id=match_id, cluster_id=cluster_id,
            a=statements_pb2.AssetRef(member_id=a[0], asset_id=a[1]),
            b=statements_pb2.AssetRef(member_id=b[0], asset_id=b[1]),
            relation=lk.relation, algorithm=lk.algorithm, distance=lk.distance,
            recorded_unix=int(self.clock()), kept_permille=round(lk.kept * 1000),
        )
        # side 1 of the link is a, side 2 is b.
        if lk.crop:
            stmt.crop.CopyFrom(stmt.a if lk.crop == 1 else stmt.b)
        idx = txn.append_statement(stmt)
        # A version's anchor is chosen from its matches: looked up again after a new one.
        self.matcher.anchor.pop(a, None)
        self.matcher.anchor.pop(b, None)
        if lk.relation in _DIRECTED:
            ra, rb = self.matcher.record(a), self.matcher.record(b)
            if ra is not None and rb is not None:
                made = derived_copies({a: ra.evidence, b: rb.evidence},
                                      [(a, b, lk.relation, a if lk.crop == 1 else b if lk.crop == 2 else None)])
            else:
                made = {a, b}
            self._intake.derived.setdefault(cluster_id, set()).update(made)
        Store.add_match(txn.db, StoredMatch(match_id, cluster_id, a[0], a[1], b[0], b[1], lk.relation, lk.algorithm,
                                            lk.distance, round(lk.kept * 1000), lk.crop), idx)

    def _altered(self, touched: dict[str, str], cluster_id: str) -> None:
        """A cluster changed otherwise than by gaining copies (a copy changed or left, or two
        clusters merged): it is proposed again, whatever its master."""
        touched.setdefault(cluster_id, "copy_changed")
        self._intake.altered.add(cluster_id)

    def _repropose(self, txn: LogTransaction, cluster_id: str, reason: str) -> None:
        """A changed cluster: proposed again while members still share it, unless it only gained
        copies that change neither its holders nor its master; otherwise its proposals are
        closed, as nothing is left to agree between members."""
        holders = {k[0] for k in self.matcher.members_of.get(cluster_id, ())}
        if len(holders) < 2:
            self.negotiation.supersede(txn.db, cluster_id, None)
        elif not (reason == "copy_added" and self._master_stands(txn.db, cluster_id, holders)):
            self._propose(txn, cluster_id, reason)

    def _master_stands(self, db, cluster_id: str, holders: set[str]) -> bool:
        """Does the cluster's live proposal still hold after this intake added copies to it:
        the same holders, its master still there and made derived by no new crop or border
        match, and no added copy ranked ahead of it by the proposal's policy? Then the policy would choose the
        same master again, and an agreement stands (a popular picture's every new copy would
        otherwise reopen it). Exact, not a guess: an added copy is ranked as if not derived,
        which can only put it further ahead, and a match that makes another copy derived only
        puts that copy further back."""
        if cluster_id in self._intake.altered:
            return False
        row = db.execute("SELECT proposal_id, proposal FROM negotiations WHERE cluster_id=? AND status IN (?, ?, ?)"
                         " ORDER BY log_index DESC LIMIT 1", (cluster_id, *LIVE)).fetchone()
        if row is None:
            return False
        known = self._proposed.get(cluster_id)
        if known is None or known.proposal_id != row[0]:
            known = _Proposed.of(statements_pb2.MasterProposed.FromString(bytes(row[1])), self._priority)
            self._proposed[cluster_id] = known
        m = self.matcher
        if (known.policy_version != POLICY_VERSION or known.holders != frozenset(holders)
                or m.cluster_of.get(known.master) != cluster_id
                or known.master in self._intake.derived.get(cluster_id, ())):
            return False
        rank = KEYS[known.policy_version]
        for k in self._intake.added.get(cluster_id, ()):
            record = m.record(k)
            if record is None or rank(PolicyCandidate(k[0], k[1], record.evidence, self._priority(k[0]), False)) < known.rank:
                return False
        return True

    def _priority(self, member_id: str) -> int:
        return self.members[member_id].settings.custodial_priority

    def _propose(self, txn: LogTransaction, cluster_id: str, reason: str) -> None:
        """Propose a master for the cluster by the current policy, superseding its open, disputed
        or agreed proposal; ``reason`` says what changed ("copy_added", "copy_changed",
        "copy_withdrawn"; "new_cluster" when the cluster was never proposed)."""
        keys = sorted(self.matcher.members_of[cluster_id])
        evidence = {k: self.matcher.record(k).evidence for k in keys}
        derived = derived_copies(evidence, Store.links_between(txn.db, keys))
        candidates = [
            PolicyCandidate(k[0], k[1], evidence[k], self.members[k[0]].settings.custodial_priority, k in derived)
            for k in keys
        ]
        decision = choose_master(candidates, POLICY_VERSION)
        n = txn.db.execute("SELECT COUNT(*) FROM proposals WHERE cluster_id=?", (cluster_id,)).fetchone()[0]
        proposal_id = f"{cluster_id}/p{n + 1}"
        supersedes = self.negotiation.supersede(txn.db, cluster_id, proposal_id)
        now = int(self.clock())
        master = statements_pb2.AssetRef(member_id=decision.master.member_id, asset_id=decision.master.asset_id)
        proposal = statements_pb2.MasterProposed(
            proposal_id=proposal_id, cluster_id=cluster_id,
            copies=[statements_pb2.Copy(ref=statements_pb2.AssetRef(member_id=c.member_id, asset_id=c.asset_id),
                                        evidence=c.evidence, derived=c.derived) for c in candidates],
            master=master, policy_version=POLICY_VERSION, deciding_rule=decision.deciding_rule,
            proposed_unix=now, supersedes=supersedes, reason=reason if n else "new_cluster",
            deadline_unix=now + self.settings.vote_deadline_seconds,
        )
        idx = txn.append_statement(proposal)
        Store.add_proposal(txn.db, proposal_id, cluster_id, master.member_id, master.asset_id, decision.deciding_rule, idx)
        self.negotiation.opened(txn.db, proposal, idx)

    # --- negotiation (coordinator/negotiation.py) ---------------------------------------------

    def vote(self, identity: str, stmt: statement_pb2.SignedStatement) -> negotiation_pb2.VoteResponse:
        return self.negotiation.vote(identity, stmt)

    def cast_ballot(self, identity: str, stmt: statement_pb2.SignedStatement) -> negotiation_pb2.CastBallotResponse:
        return self.negotiation.cast_ballot(identity, stmt)

    def rule(self, identity: str, stmt: statement_pb2.SignedStatement) -> negotiation_pb2.RuleResponse:
        return self.negotiation.rule(identity, stmt)

    def list_proposals(self, identity: str, statuses, page_size: int, page_token: str):
        return self.negotiation.list_proposals(identity, statuses, page_size, page_token)

    # --- provenance lookups (coordinator/lookup.py) -------------------------------------------

    def lookup(self, identity: str, files) -> lookup_pb2.LookupResponse:
        return self.lookups.lookup(identity, files)

    def expire_deadlines(self, now: int | None = None) -> list[tuple[str, int]]:
        """Agree the open proposals past their deadline (silence counts as acceptance)."""
        return self.negotiation.expire_deadlines(int(self.clock()) if now is None else int(now))

    # --- what a member may read ------------------------------------------------------------

    def list_matches(self, identity: str, page_size: int, page_token: str) -> intake_pb2.ListMatchesResponse:
        self.member(identity, "it may not list matches")
        try:
            offset = int(page_token) if page_token else 0
        except ValueError:
            raise invalid("bad_page_token", "page_token is not one this server issued") from None
        if offset < 0:
            raise invalid("bad_page_token", "page_token is not one this server issued")
        size = min(page_size or 100, 1000)
        rows = self.store.matches_for(identity, offset, size)
        out = intake_pb2.ListMatchesResponse()
        for r in rows:
            own, other = ((r.a_asset, (r.b_member, r.b_asset)) if r.a_member == identity
                          else (r.b_asset, (r.a_member, r.a_asset)))
            record = self.matcher.record(other)
            out.matches.append(intake_pb2.MemberMatch(
                cluster_id=r.cluster_id, own_asset_id=own, counterpart_member=other[0],
                counterpart_asset_id=other[1], relation=r.relation, distance=r.distance,
                kept_permille=r.kept_permille,
                counterpart_evidence=record.evidence if record is not None else None,
            ))
        if len(rows) == size:
            out.next_page_token = str(offset + size)
        return out


def _changes_picture(old: asset_pb2.Asset, new: asset_pb2.Asset) -> bool:
    """Does a record declared again describe other pixels or fingerprints (not only new evidence)?"""
    return not (old.sha256 == new.sha256 and old.pixel_digest == new.pixel_digest
                and old.low_information == new.low_information and list(old.fingerprints) == list(new.fingerprints))


#: In a batch's plan: the asset is declared again with the picture it had (new evidence, or none).
KEPT: Key = ("", "")


@dataclass
class _Intake:
    """What one intake did to clusters, for ``_master_stands``."""

    added: dict[str, set[Key]] = field(default_factory=dict)  # cluster -> copies that joined it
    derived: dict[str, set[Key]] = field(default_factory=dict)  # cluster -> copies a new match makes derived
    altered: set[str] = field(default_factory=set)  # clusters changed otherwise


@dataclass(frozen=True)
class _Proposed:
    """What ``_master_stands`` needs of a cluster's live proposal."""

    proposal_id: str
    policy_version: str
    master: Key
    rank: tuple
    holders: frozenset[str]

    @classmethod
    def of(cls, p: "statements_pb2.MasterProposed", priority: Callable[[str], int]) -> "_Proposed":
        master = (p.master.member_id, p.master.asset_id)
        copy = next(c for c in p.copies if (c.ref.member_id, c.ref.asset_id) == master)
        rank = KEYS[p.policy_version](PolicyCandidate(master[0], master[1], copy.evidence, priority(master[0]),
                                                      copy.derived))
        return cls(p.proposal_id, p.policy_version, master, rank, frozenset(c.ref.member_id for c in p.copies))
