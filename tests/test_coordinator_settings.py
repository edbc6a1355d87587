from pathlib import Path

import pytest

from dedup.config import ConfigError, load
from dedup.coordinator.settings import CoordinatorSettings

BASE = '''log_key = "log.key"
log_origin = "test/log"
[tls]
ca = "ca.pem"
cert = "tls.pem"
key = "tls.key"
'''


def test_sqlite_path_is_relative_to_the_file_and_a_url_is_kept(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('database = "store.sqlite"\n' + BASE)
    assert load(cfg, CoordinatorSettings).database == str(tmp_path / "store.sqlite")
    cfg.write_text('database = "postgresql://dedup@db.records.example:5432/dedup"\n' + BASE)
    assert load(cfg, CoordinatorSettings).database == "postgresql://dedup@db.records.example:5432/dedup"


def test_duplicate_member_and_bad_id_refused(tmp_path: Path) -> None:
    from dedup.note import NoteSigner

    cfg = tmp_path / "c.toml"
    key = NoteSigner.generate("a").verifier().to_string()
    member = '[[members]]\nid = "{}"\nname = "X"\npublic_key = "{}"\n'
    cfg.write_text('database = "s.sqlite"\n' + BASE + member.format("a", key) + member.format("a", key))
    with pytest.raises(ConfigError, match="member ids listed twice"):
        load(cfg, CoordinatorSettings)
    cfg.write_text('database = "s.sqlite"\n' + BASE + member.format("Bad Id", key))
    with pytest.raises(ConfigError, match="member ids are 1-63 lowercase"):
        load(cfg, CoordinatorSettings)
    cfg.write_text('database = "s.sqlite"\n' + BASE + member.format("a", "k"))
    with pytest.raises(ConfigError, match="members.0.public_key: Value error, malformed verifier key"):
        load(cfg, CoordinatorSettings)


def test_match_settings_build_the_rule(tmp_path: Path) -> None:
    """[match] sets the keypoint distance and the agreeing keypoints a placement needs; the
    rest of the rule keeps its published defaults."""
    from dedup.matching import DEFAULT_RULE, Rule

    cfg = tmp_path / "c.toml"
    cfg.write_text('database = "s.sqlite"\n' + BASE + "[match]\nwhole = 30\npoints = 12\npoints_inliers = 7\n")
    rule = load(cfg, CoordinatorSettings).match.rule()
    assert rule == Rule(whole=30, points=12, points_inliers=7)
    assert (rule.whole_loose, rule.low, rule.points_tolerance) == (
        DEFAULT_RULE.whole_loose, DEFAULT_RULE.low, DEFAULT_RULE.points_tolerance)
    cfg.write_text('database = "s.sqlite"\n' + BASE)
    assert load(cfg, CoordinatorSettings).match.rule() == DEFAULT_RULE


@pytest.mark.parametrize(("line", "message"), [
    # The crop windows are gone: an old file's setting is refused, not silently ignored.
    ("window = 6", "match.window: Extra inputs are not permitted"),
    ("points = 25", "match.points: Input should be less than or equal to 24"),
    ("points_inliers = 2", "match.points_inliers: Input should be greater than or equal to 3"),
])
def test_match_settings_refused(tmp_path: Path, line: str, message: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('database = "s.sqlite"\n' + BASE + f"[match]\n{line}\n")
    with pytest.raises(ConfigError, match=message):
        load(cfg, CoordinatorSettings)
