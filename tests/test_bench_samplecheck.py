"""The scale benchmark's reference (bench/samplecheck.py): its compiled brute force must give
exactly the tests' brute force (oracles.BruteForce) on records with every kind of near pair,
and its check must find a candidate index that misses one."""

from __future__ import annotations

from test_candidates import _records

from bench import samplecheck
from dedup.candidates import CandidateIndex
from dedup.matching import DEFAULT_RULE
from oracles import BruteForce


def test_compiled_brute_force_equals_the_oracle() -> None:
    records = _records(3, 400)
    keys = [("m", a.asset_id) for a in records]
    recs = samplecheck.Records(keys, records, DEFAULT_RULE)
    oracle = BruteForce(dict(zip(keys, records)), DEFAULT_RULE)
    found = 0
    for i, a in enumerate(records):
        want = oracle.candidates(a)
        assert recs.candidates(i) == want, a.asset_id
        found += len(want) - 1
    assert found > 200  # digests, whole pictures, turns, edits and keypoints all found pairs


def test_the_check_passes_the_index_and_catches_a_missing_row(tmp_path) -> None:
    from dedup.coordinator import snapshot

    records = _records(4, 300)
    members = ("a", "b", "c")
    keyed = {(members[i % 3], a.asset_id): a for i, a in enumerate(records)}
    index = CandidateIndex(DEFAULT_RULE, tail=16)
    index.add_many(list(keyed.items()))
    header = snapshot.Header(0, "", snapshot.rule_fields(DEFAULT_RULE), len(keyed))
    path = tmp_path / "index.snapshot"
    snapshot.save(path, header, *index.state())
    report = samplecheck.check(path, keyed, sample=300)
    assert report["equal"] is True and report["sample"] == 300 and report["cross_member_candidates"] > 50
    # A record the index lost (its rows withdrawn, the key kept) is still in brute force's view.
    lost = next(k for k, a in keyed.items() if any(
        o != k and o[0] != k[0] for o in BruteForce(keyed, DEFAULT_RULE).candidates(a)))
    for name in index._names:
        ix = getattr(index, name)
        for row in index._rows_of(index._number[lost], index._names.index(name)):
            ix.remove(row)
    snapshot.save(path, header, *index.state())
    report = samplecheck.check(path, keyed, sample=300)
    assert report["equal"] is False and report["mismatched"]
