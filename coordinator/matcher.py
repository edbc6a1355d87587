"""Cross-member matching and clustering, in memory, grown with each intake.

Candidates come from the shared candidate index; a candidate becomes a link only if the
shared matching rule accepts it; and a link joins an existing cluster only after
verification: the new asset must also match at least half of that cluster's representatives
(``dedup.clusters``: the rule loosened by ``VERIFY_SLACK``, against at most 16 of its versions,
the one holding its master first), so a single loose link cannot chain unrelated photographs
together. A new asset is compared with at most ``CLUSTER_COMPARISONS`` of the copies a cluster
offers it, representatives first: however many distinct versions of a picture are held, a new
one costs a bounded number of comparisons and log entries.

Versions and followers (SPEC.md section 6). A member's new copy that is the same picture
as one of its own indexed assets (the same file or pixel digest, or an upright ``dct256``
hash within ``FOLLOW_DISTANCE`` bits) *follows* that asset, its *version*: it is not put in
the candidate index, and it joins its version's cluster through one link to the copy its
version is linked to there. So the index holds each member's distinct versions of a
picture, not its every copy, and a photograph held thousands of times costs a new copy a
bounded search and a bounded number of comparisons and log entries.
"""

from __future__ import annotations

import hashlib
import heapq
import threading
from collections import OrderedDict, defaultdict
from typing import Callable
from dataclasses import dataclass

import numpy as np

from dedup.candidates import CandidateIndex
from dedup.clusters import REPRESENTATIVES, VERIFY_SLACK, majority
from dedup.fingerprint.distance import hamming, hamming_many
from dedup.fingerprint.wire import Hashes
from dedup.matching import PARSE, Link, Rule, compared_hashes, link
from dedup.policy import KEYS, POLICY_V1, Candidate as PolicyCandidate
from dedup.v1 import asset_pb2

Key = tuple[str, str]  # (member_id, asset_id)

#: A copy follows one of its member's versions whose upright dct256 hash is at most this many
#: bits away (of 256): the same picture, re-encoded, resized or faintly retouched. A quarter
#: of the rule's whole-picture distance, so whatever a follower would link to, its version is
#: close enough to link to as well.
FOLLOW_DISTANCE = 8

#: A new asset is compared with at most this many of the copies one cluster offers it (its
#: candidates there): the cluster's representatives among them first, then the rest by key.
#: Twice the representatives, so a picture's usual copies are all compared; the bound holds
#: for a picture held in thousands of distinct versions.
CLUSTER_COMPARISONS = 2 * REPRESENTATIVES

_EVIDENCE_RANK = KEYS[POLICY_V1]


@dataclass(frozen=True)
class Candidate:
    key: Key
    link: Link


class Matcher:
    """The index, the clusters, and the records the rule needs, read through ``fetch``.

    Records are not all held in memory (a parsed record costs kilobytes, and a coordinator
    holds millions): ``fetch(key)`` reads one from the store, and the most recently used
    are kept, each with its parsed hashes. ``fetch`` must see the current transaction's own
    writes.
    """

    def __init__(self, rule: Rule, fetch: Callable[[Key], asset_pb2.Asset | None], cache: int = 20_000,
                 candidates: Callable[[Rule], CandidateIndex] = CandidateIndex,
                 priority: Callable[[str], int] = lambda member_id: 0) -> None:
        """``candidates`` makes the candidate search; anything with ``CandidateIndex``'s methods
        will do (a reference that offers every stored asset checks the index's answers).
        ``priority`` gives a member's custodial priority (the master policy's tie-breaker)."""
        self.rule = rule
        self._priority = priority
        self.verify_rule = rule.loosened(VERIFY_SLACK)
        self.index = candidates(rule)
        self._fetch = fetch
        self._cache: OrderedDict[Key, tuple[asset_pb2.Asset, Hashes | None]] = OrderedDict()
        self._cache_size = cache
        self._cache_lock = threading.Lock()
        self.cluster_of: dict[Key, str] = {}
        self.members_of: dict[str, set[Key]] = defaultdict(set)
        #: follower -> its version (same member); version -> its followers.
        self.version_of: dict[Key, Key] = {}
        self.followers: dict[Key, set[Key]] = defaultdict(set)
        #: version -> (its cluster, the copies there its followers may link to, best first),
        #: once looked up (coordinator.consortium's ``_anchors``).
        self.anchor: dict[Key, tuple[str, tuple[Key, ...]]] = {}
        #: A cluster's representatives, kept until the cluster or its versions change.
        self._reps: dict[str, list[Key]] = {}
        #: version -> the master policy's evidence key of the best of its copies (it and its
        #: followers), once asked for.
        self._rank: dict[Key, tuple] = {}

    def __contains__(self, key: Key) -> bool:
        return key in self.index or key in self.version_of

    # --- versions and followers -------------------------------------------------------

    def follow(self, key: Key, version: Key) -> None:
        """Make ``key`` (not indexed) a follower of ``version`` (indexed, same member)."""
        self.version_of[key] = version
        self.followers[version].add(key)
        self._changed(self.cluster_of.get(key))
        rank = self._rank.get(version)
        if rank is not None and (mine := self._evidence_rank(key)) is not None and mine < rank:
            # A better copy of the version's picture: it may now hold the master.
            self._rank[version] = mine
            self._changed(self.cluster_of.get(version))

    def unfollow(self, key: Key) -> None:
        version = self.version_of.pop(key, None)
        if version is not None:
            self._rerank(version)
            self.followers[version].discard(key)
            if not self.followers[version]:
                del self.followers[version]
            self._changed(self.cluster_of.get(key))

    def promote(self, version: Key) -> tuple[Key | None, list[Key]]:
        """``version`` is leaving the index (withdrawn, or its picture changed): its first
        follower by key becomes a version in its place, indexed, and the others follow that
        one. Returns (the new version or None, the followers that now follow it)."""
        self._rerank(version)
        rest = sorted(self.followers.pop(version, ()))
        if not rest:
            return None, []
        new, rest = rest[0], rest[1:]
        found = self._cached(new)
        del self.version_of[new]
        for k in rest:
            self.version_of[k] = new
        if rest:
            self.followers[new] = set(rest)
        self.index.add_many([(new, found[0])], [found[1]])
        self._changed(self.cluster_of.get(new))
        return new, rest

    def unindex(self, key: Key) -> tuple[Key | None, list[Key]]:
        """Take a version out of the index (its record stays readable while the intake that
        changes it runs); ``promote`` its followers."""
        promoted = self.promote(key)
        self.index.remove(key)
        self._changed(self.cluster_of.get(key))
        return promoted

    def near_version(self, key: Key, asset: asset_pb2.Asset, parsed: Hashes | None,
                     keys) -> tuple[int, Key] | None:
        """The closest of ``keys`` (indexed versions of ``key``'s member) that ``asset`` would
        follow, as (distance, version), or None."""
        best = None
        for k in keys:
            if k == key or k[0] != key[0] or k not in self.index:
                continue
            found = self._cached(k)
            if found is None:
                continue
            d = follow_distance(found[0], found[1], asset, parsed)
            if d is not None and (best is None or (d, k) < best):
                best = (d, k)
        return best

    def _changed(self, cluster_id: str | None) -> None:
        if cluster_id is not None:
            self._reps.pop(cluster_id, None)

    def _rerank(self, version: Key) -> None:
        """The version's copies or their evidence changed: its rank is asked for again."""
        if self._rank.pop(version, None) is not None:
            self._changed(self.cluster_of.get(version))

    def _evidence_rank(self, key: Key) -> tuple | None:
        found = self._cached(key)
        if found is None:
            return None
        return _EVIDENCE_RANK(PolicyCandidate(key[0], key[1], found[0].evidence, self._priority(key[0])))

    def version_rank(self, version: Key) -> tuple:
        """The master policy's evidence key (policy 1: pixels, lossless, depth, colour, quality,
        date, rights, priority, then ids) of the best of the version's copies, itself and its
        followers: the version that holds a cluster's master ranks first unless the copies
        ahead of the master are derived ones (policy 2 ranks crops and bordered copies last)."""
        rank = self._rank.get(version)
        if rank is None:
            ranks = [r for k in (version, *sorted(self.followers.get(version, ())))
                     if (r := self._evidence_rank(k)) is not None]
            rank = min(ranks) if ranks else (1,)
            self._rank[version] = rank
        return rank

    def record(self, key: Key) -> asset_pb2.Asset | None:
        """The asset's current record, or None if it is not held here."""
        found = self._cached(key)
        return None if found is None else found[0]

    def _cached(self, key: Key) -> tuple[asset_pb2.Asset, Hashes | None] | None:
        """(record, its hashes), from the cache or the store."""
        with self._cache_lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
                return found
        if key not in self.index and key not in self.version_of:
            return None
        asset = self._fetch(key)
        if asset is None:
            return None
        return self._remember(key, asset, compared_hashes(asset))

    def _remember(self, key: Key, asset: asset_pb2.Asset, parsed: Hashes | None):
        entry = (asset, parsed)
        with self._cache_lock:  # readers of ListMatches share the cache with intake
            self._cache[key] = entry
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return entry

    def add(self, key: Key, asset: asset_pb2.Asset) -> None:
        """Make ``asset`` findable (replacing an earlier record under the same key)."""
        self.add_many([(key, asset)])

    def add_many(self, items: list[tuple[Key, asset_pb2.Asset]], *, indexed: bool = True,
                 remember: bool = True, parsed: list[Hashes | None] | None = None) -> None:
        """``indexed=False`` records the assets without making them findable yet (an intake
        adds a batch's assets to the index in one go, once its own search is done);
        ``remember=False`` indexes without caching the records (loading a whole store);
        ``parsed`` gives each record's hashes when the caller has them."""
        if parsed is None:
            parsed = [compared_hashes(asset) for _, asset in items]
        if remember:
            for (key, asset), h in zip(items, parsed):
                self._remember(key, asset, h)
                self._rerank(self.version_of.get(key, key))  # its evidence may have changed
        if indexed:
            self.index.add_many(items, parsed)

    def remove(self, key: Key) -> tuple[str | None, tuple[Key | None, list[Key]]]:
        """Forget a withdrawn asset; return the cluster it was in, if any, and what
        ``promote`` did if it was a version with followers."""
        if key not in self:
            return None, (None, [])
        promoted: tuple[Key | None, list[Key]] = (None, [])
        if key in self.version_of:
            self.unfollow(key)
        else:
            promoted = self.unindex(key)
        with self._cache_lock:
            self._cache.pop(key, None)
        self.anchor.pop(key, None)
        self._rank.pop(key, None)
        return self.detach(key), promoted

    def detach(self, key: Key) -> str | None:
        """Take an asset out of its cluster (it stays findable); return that cluster."""
        cid = self.cluster_of.pop(key, None)
        if cid is not None:
            self.members_of[cid].discard(key)
            self._changed_by(key, cid)
        return cid

    def assign(self, key: Key, cluster_id: str) -> None:
        old = self.cluster_of.get(key)
        if old is not None:
            self.members_of[old].discard(key)
            self._changed_by(key, old)
        self.cluster_of[key] = cluster_id
        self.members_of[cluster_id].add(key)
        self._changed_by(key, cluster_id)

    def _changed_by(self, key: Key, cluster_id: str) -> None:
        # A follower is never a representative: its coming or going leaves them as they were
        # (a popular picture's followers join by the thousand).
        if key not in self.version_of:
            self._changed(cluster_id)

    def candidates(self, member_id: str, asset: asset_pb2.Asset) -> list[Candidate]:
        """Links from ``asset`` to other members' assets, by the shared matching rule."""
        return self.candidates_many(member_id, [asset])[0]

    def candidates_many(self, member_id: str, assets: list[asset_pb2.Asset],
                        parsed: list[Hashes | None] | None = None) -> list[list[Candidate]]:
        """For each of one member's ``assets``, its links to other members' assets (one index
        search for them all; the member's own assets are never candidates)."""
        if parsed is None:
            parsed = [compared_hashes(a) for a in assets]
        return [self.linked(member_id, asset, h, keys)
                for asset, h, keys in zip(assets, parsed, self.index.candidates_many(assets, parsed))]

    def linked(self, member_id: str, asset: asset_pb2.Asset, parsed: Hashes | None, keys) -> list[Candidate]:
        """The links the rule makes from ``asset`` to those of ``keys`` (index candidates)
        that other members hold and are still indexed, by key: with every candidate in no
        cluster, and with at most ``CLUSTER_COMPARISONS`` of a cluster's (its representatives
        first, then by key)."""
        tried = []
        by_cluster: dict[str, list[Key]] = defaultdict(list)
        for key in sorted(keys):
            if key[0] == member_id or key not in self.index:
                continue
            cid = self.cluster_of.get(key)
            if cid is None:
                tried.append(key)
            else:
                by_cluster[cid].append(key)
        for cid, offered in by_cluster.items():
            if len(offered) > CLUSTER_COMPARISONS:
                among = set(offered)
                first = [k for k in self.representatives(cid) if k in among]
                chosen = set(first)
                offered = first + [k for k in offered if k not in chosen]
            tried += offered[:CLUSTER_COMPARISONS]
        links = []
        for key in sorted(tried):
            found = self.link(key, asset, parsed)
            if found is not None:
                links.append(Candidate(key, found))
        return links

    def link(self, key: Key, asset: asset_pb2.Asset, parsed: Hashes | None, rule: Rule | None = None) -> Link | None:
        """``link(record of key, asset)`` by ``rule`` (default: the matching rule), with the
        record's cached hashes and ``parsed`` = ``compared_hashes(asset)``; None if the key
        is not held here."""
        found = self._cached(key)
        if found is None:
            return None
        other, ho = found
        return link(other, asset, self.rule if rule is None else rule, ha=ho, hb=parsed)

    def representatives(self, cluster_id: str) -> list[Key]:
        """The copies a cluster is checked against: its first ``REPRESENTATIVES`` versions by
        ``version_rank`` (followers are their versions' copies), so the version holding the
        master comes first, and every replica and every replay picks the same ones from the
        same cluster."""
        reps = self._reps.get(cluster_id)
        if reps is None:
            members = self.members_of.get(cluster_id, ())
            reps = heapq.nsmallest(REPRESENTATIVES, (k for k in members if k not in self.version_of),
                                   key=lambda k: (self.version_rank(k), k))
            self._reps[cluster_id] = reps
        return reps

    def bridged(self, a: str, b: str) -> bool:
        """Does some copy of cluster ``a`` match some copy of cluster ``b`` (their first
        representatives, by the loosened rule)? Two clusters a new copy links to both are
        merged only then: one copy alone is one link, however many copies it matches."""
        left, right = self.representatives(a), self.representatives(b)
        for k in left:
            found = self._cached(k)
            if found is None:
                continue
            asset, h = found
            if any(self.link(r, asset, h, self.verify_rule) is not None for r in right if r[0] != k[0]):
                return True
        return False

    def verified(self, asset: asset_pb2.Asset, cluster_id: str, parsed: Hashes | None | object = PARSE) -> bool:
        """Does ``asset`` also match at least half of the cluster's representatives (its first
        ``dedup.clusters.REPRESENTATIVES`` copies, by key)? ``parsed`` may pass
        ``compared_hashes(asset)`` when the caller has it."""
        h = compared_hashes(asset) if parsed is PARSE else parsed
        return majority(asset, self.representatives(cluster_id),
                        lambda a, k: self.link(k, a, h, self.verify_rule) is not None)


def follow_distance(version: asset_pb2.Asset, hv: Hashes | None, asset: asset_pb2.Asset,
                    h: Hashes | None) -> int | None:
    """How far ``asset`` is from ``version`` if it would follow it (0 for the same file or
    pixels; else the bits between their upright dct256 hashes, at most ``FOLLOW_DISTANCE``),
    or None."""
    if version.sha256 == asset.sha256 or version.pixel_digest == asset.pixel_digest:
        return 0
    if hv is None or h is None:
        return None
    d = hamming(hv.upright, h.upright)
    return d if d <= FOLLOW_DISTANCE else None


class BatchVersions:
    """One batch's versions so far (the batch's search ran before any of them was indexed):
    their digests and upright dct256 hashes, for the batch's later copies to follow."""

    def __init__(self) -> None:
        self.by_digest: dict[bytes, Key] = {}
        self._live: dict[Key, int] = {}  # version -> its row (-1 without a hash)
        self.rows = np.zeros((0, 32), dtype=np.uint8)
        self.row_keys: list[Key] = []

    def __contains__(self, key: Key) -> bool:
        return key in self._live

    def remove(self, key: Key) -> None:
        """``key`` is a version no longer (its picture changed)."""
        if self._live.pop(key, None) is None:
            return
        for d, k in list(self.by_digest.items()):
            if k == key:
                del self.by_digest[d]

    def add(self, key: Key, asset: asset_pb2.Asset, h: Hashes | None) -> None:
        self._live[key] = -1 if h is None else len(self.row_keys)
        for d in (bytes(asset.sha256), bytes(asset.pixel_digest)):
            self.by_digest.setdefault(d, key)
        if h is not None:
            if len(self.row_keys) == self.rows.shape[0]:
                grown = np.zeros((max(16, 2 * self.rows.shape[0]), 32), dtype=np.uint8)
                grown[:self.rows.shape[0]] = self.rows
                self.rows = grown
            self.rows[len(self.row_keys)] = np.frombuffer(h.upright, dtype=np.uint8)
            self.row_keys.append(key)

    def nearest(self, key: Key, asset: asset_pb2.Asset, h: Hashes | None) -> tuple[int, Key] | None:
        """The closest earlier version ``key`` would follow, as (distance, version), or None."""
        best = [(0, k) for d in (bytes(asset.sha256), bytes(asset.pixel_digest))
                if (k := self.by_digest.get(d)) is not None and k != key and k in self._live]
        if h is not None and self.row_keys:
            dist = hamming_many(self.rows[:len(self.row_keys)], h.upright)
            for i in np.flatnonzero(dist <= FOLLOW_DISTANCE).tolist():
                if self.row_keys[i] != key and self._live.get(self.row_keys[i]) == i:
                    best.append((int(dist[i]), self.row_keys[i]))
        return min(best) if best else None


def new_cluster_id(a: Key, b: Key) -> str:
    """Deterministic from the first link, so a replayed intake gives the same ids."""
    h = hashlib.sha256("\n".join((*a, *b)).encode()).hexdigest()
    return f"c-{h[:16]}"
