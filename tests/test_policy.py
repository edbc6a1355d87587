import pytest

from dedup.policy import Candidate, choose_master
from dedup.v1 import asset_pb2

LOSSLESS, LOSSY = asset_pb2.FORMAT_FAMILY_LOSSLESS, asset_pb2.FORMAT_FAMILY_LOSSY


def c(member, asset="a", prio=100, **ev):
    base = dict(width=1000, height=800, bit_depth=8, format_family=LOSSY, jpeg_quality=80, channels=3, rights="unknown")
    base.update(ev)
    return Candidate(member, asset, asset_pb2.Evidence(**base), prio)


@pytest.mark.parametrize("winner_ev, loser_ev, rule", [
    (dict(width=2000), dict(), "pixel_count"),
    (dict(format_family=LOSSLESS, jpeg_quality=0), dict(), "lossless"),
    (dict(format_family=LOSSLESS, bit_depth=16), dict(format_family=LOSSLESS), "bit_depth"),
    (dict(), dict(channels=1), "colour"),
    (dict(jpeg_quality=95), dict(), "jpeg_quality"),
    (dict(capture_date="1971-05-01T10:00:00"), dict(capture_date="1980-01-01T00:00:00"), "capture_date"),
    (dict(capture_date="1999-01-01T00:00:00"), dict(), "capture_date"),
    (dict(rights="http://rightsstatements.org/vocab/InC/1.0/"), dict(), "rights_known"),
])
def test_each_rule_decides_in_order(winner_ev, loser_ev, rule):
    w, l = c("zz-winner", **winner_ev), c("aa-loser", **loser_ev)
    for order in ([w, l], [l, w]):
        d = choose_master(order)
        assert (d.master.member_id, d.deciding_rule) == ("zz-winner", rule)


def test_custodial_priority_then_tie_break():
    d = choose_master([c("b", prio=20), c("a", prio=10)])
    assert (d.master.member_id, d.deciding_rule) == ("a", "custodial_priority")
    d = choose_master([c("b", prio=20), c("a", prio=30)])
    assert d.master.member_id == "b"
    d = choose_master([c("b"), c("a", asset="z"), c("a", asset="y")])
    assert (d.master.member_id, d.master.asset_id, d.deciding_rule) == ("a", "y", "tie_break")


def test_pixel_count_outranks_lossless():
    d = choose_master([c("a", width=4000), c("b", format_family=LOSSLESS)])
    assert d.master.member_id == "a"


def test_single_and_empty():
    assert choose_master([c("a")]).deciding_rule == "only_copy"
    with pytest.raises(ValueError):
        choose_master([])


from hypothesis import given, settings, strategies as st  # noqa: E402

from dedup.policy import KEYS, POLICIES, master_of  # noqa: E402

_evidence = st.builds(
    asset_pb2.Evidence,
    width=st.integers(0, 9000), height=st.integers(0, 9000), bit_depth=st.sampled_from([0, 1, 8, 16]),
    channels=st.integers(0, 4), format_family=st.sampled_from([0, LOSSY, LOSSLESS]),
    jpeg_quality=st.integers(0, 100), capture_date=st.sampled_from(["", "1971-05-01T10:00:00", "1999-01-01"]),
    rights=st.sampled_from(["", "unknown", "http://rightsstatements.org/vocab/InC/1.0/"]))
_candidate = st.builds(Candidate, st.sampled_from(["a", "b", "c"]), st.sampled_from(["x", "y"]), _evidence,
                       st.integers(0, 200), st.booleans())


@settings(max_examples=500, deadline=None)
@given(_candidate)
def test_each_versions_whole_key_is_its_rules_keys_in_order(cand):
    # choose_master ranks by the whole key; the published rules are what it must equal.
    for version, rules in POLICIES.items():
        assert KEYS[version](cand) == tuple(rule(cand) for _, rule in rules)
    assert KEYS.keys() == POLICIES.keys()


@settings(max_examples=300, deadline=None)
@given(st.lists(_candidate, min_size=1, max_size=5, unique_by=lambda c: (c.member_id, c.asset_id)))
def test_master_of_is_choose_masters_master_and_rule(cands):
    for version in POLICIES:
        d = choose_master(cands, version)
        assert master_of(cands, version) == (d.master, d.deciding_rule)
