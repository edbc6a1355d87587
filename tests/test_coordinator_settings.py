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
    cfg = tmp_path / "c.toml"
    member = '[[members]]\nid = "{}"\nname = "X"\npublic_key = "k"\n'
    cfg.write_text('database = "s.sqlite"\n' + BASE + member.format("a") + member.format("a"))
    with pytest.raises(ConfigError, match="member ids listed twice"):
        load(cfg, CoordinatorSettings)
    cfg.write_text('database = "s.sqlite"\n' + BASE + member.format("Bad Id"))
    with pytest.raises(ConfigError, match="member ids are 1-63 lowercase"):
        load(cfg, CoordinatorSettings)
