"""`dedup pki`: the material it writes, and a real coordinator and node talking with it over mutual TLS."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from dedup.config import load

MEMBERS = ("city-museum", "university-library")


def dedup(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "dedup.cli.main", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})
    if check:
        assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def pkidir(tmp_path) -> Path:
    d = tmp_path / "pki"
    out = json.loads(dedup("pki", "init", str(d), "--origin", "test.example.org/dedup-log", "--ip", "127.0.0.1",
                           "--json").stdout)
    assert out["log_origin"] == "test.example.org/dedup-log"
    for m in MEMBERS:
        dedup("pki", "issue", m, "--dir", str(d), "--name", m.title(), "--coordinator", "127.0.0.1:1", "--json")
    return d


def coordinator_config(tmp_path: Path, pkidir: Path) -> Path:
    members = "\n".join((pkidir / "members" / m / "member.toml").read_text() for m in MEMBERS)
    cfg = tmp_path / "coordinator.toml"
    cfg.write_text(f'listen = "127.0.0.1:0"\nhealth_listen = "127.0.0.1:0"\ndatabase = "coordinator.sqlite"\n'
                   f'log_key = "pki/coordinator/log.key"\nlog_origin = "test.example.org/dedup-log"\n'
                   f'[tls]\nca = "pki/ca.pem"\ncert = "pki/coordinator/tls.pem"\nkey = "pki/coordinator/tls.key"\n\n'
                   f'{members}')
    return cfg


def test_init_and_issue_write_safe_files_in_the_formats_the_roles_read(tmp_path, pkidir):
    from dedup.coordinator.settings import CoordinatorSettings
    from dedup.node.settings import NodeSettings
    from dedup.note import NoteSigner, NoteVerifier

    for d in (pkidir, pkidir / "coordinator", pkidir / "members", *(pkidir / "members" / m for m in MEMBERS)):
        assert mode(d) == 0o700, d
    private = [pkidir / "ca.key", pkidir / "coordinator/tls.key", pkidir / "coordinator/log.key"]
    for m in MEMBERS:
        private += [pkidir / "members" / m / "tls.key", pkidir / "members" / m / "signing.key"]
    for p in private:
        assert mode(p) == 0o600, p
    log = NoteSigner.from_string((pkidir / "coordinator/log.key").read_text().strip())
    assert log.name == "test.example.org/dedup-log"
    assert NoteVerifier.from_string((pkidir / "log.pub").read_text().strip()).to_string() == log.verifier().to_string()
    # The generated node.toml and member.toml load through the real settings models.
    for m in MEMBERS:
        node = load(pkidir / "members" / m / "node.toml", NodeSettings, environ={})
        assert node.member_id == m and node.tls.cert.exists() and node.log_verifier_key == log.verifier().to_string()
        assert NoteSigner.from_string(node.signing_key.read_text().strip()).name == m
    settings = load(coordinator_config(tmp_path, pkidir), CoordinatorSettings, environ={})
    assert [m.id for m in settings.members] == list(MEMBERS)
    # Nothing is replaced by accident.
    again = dedup("pki", "init", str(pkidir), "--origin", "x.example/log", check=False)
    assert again.returncode == 2 and "already holds" in again.stderr
    again = dedup("pki", "issue", MEMBERS[0], "--dir", str(pkidir), check=False)
    assert again.returncode == 2 and "--renew" in again.stderr
    bad = dedup("pki", "issue", "Not_A_Member", "--dir", str(pkidir), check=False)
    assert bad.returncode == 2


def test_renew_keeps_the_signing_key(pkidir):
    key = (pkidir / "members/city-museum/signing.key").read_text()
    cert = (pkidir / "members/city-museum/tls.pem").read_text()
    out = json.loads(dedup("pki", "issue", "city-museum", "--dir", str(pkidir), "--renew", "--json").stdout)
    assert out["renewed"] and out["certificate"]["common_name"] == "city-museum"
    assert (pkidir / "members/city-museum/signing.key").read_text() == key
    assert (pkidir / "members/city-museum/tls.pem").read_text() != cert


def test_round_trip_over_mutual_tls_and_a_foreign_ca_is_refused(tmp_path, pkidir):
    from dedup.coordinator.server import start
    from dedup.coordinator.settings import CoordinatorSettings

    cfg = coordinator_config(tmp_path, pkidir)
    running = start(load(cfg, CoordinatorSettings, environ={}), workers=2)
    try:
        env = {"DEDUP_NODE__COORDINATOR__ADDRESS": f"127.0.0.1:{running.port}",
               "DEDUP_NODE__COORDINATOR__SERVER_NAME": "coordinator"}
        for m in MEMBERS:
            node_cfg = pkidir / "members" / m / "node.toml"
            out = json.loads(dedup("pki", "check", "--config", str(node_cfg), "--json", env=env).stdout)
            assert out["ok"] and out["coordinator"]["status"] == "SERVING", out
            # A real signed call: the member witnesses (and cosigns) the log over mutual TLS.
            w = dedup("node", "witness", "--config", str(node_cfg), "--json", env=env, check=False)
            assert w.returncode == 0, w.stderr + w.stdout
        # The plaintext health port answers the same statuses.
        h = dedup("coordinator", "health", "--address", f"127.0.0.1:{running.health_port}", "--json")
        assert json.loads(h.stdout)["serving"] is True

        # A node with a certificate from another CA (same member id) cannot even connect.
        other = tmp_path / "other"
        dedup("pki", "init", str(other), "--origin", "evil.example.org/log")
        dedup("pki", "issue", "city-museum", "--dir", str(other), "--coordinator", "127.0.0.1:1")
        foreign = other / "members/city-museum/node.toml"
        # ...even trusting the real CA for the server.
        fenv = {**env, "DEDUP_NODE__TLS__CA": str(pkidir / "ca.pem")}
        offline = dedup("pki", "check", "--config", str(foreign), "--offline", "--json", env=fenv, check=False)
        assert offline.returncode == 1 and "not issued by the CA" in offline.stdout
        refused = dedup("node", "witness", "--config", str(foreign), "--json", env=fenv, check=False)
        assert refused.returncode == 3, refused.stderr + refused.stdout
        # Its own CA does not trust the coordinator's certificate either.
        refused = dedup("pki", "check", "--config", str(foreign), "--json", env=env, check=False)
        assert refused.returncode == 3, refused.stdout
    finally:
        running.stop(grace=None)


def test_revoke_edits_the_configuration_and_the_coordinator_logs_and_enforces_it(tmp_path, pkidir):
    import grpc

    from dedup.coordinator.refusal import Refusal
    from dedup.coordinator.server import start
    from dedup.coordinator.settings import CoordinatorSettings
    from dedup.coordinator.store import Store

    cfg = coordinator_config(tmp_path, pkidir)
    cfg.write_text(cfg.read_text().replace('id = "university-library"', 'id = "university-library"  # the library'))
    before = cfg.read_text()
    dry = dedup("pki", "revoke", "university-library", "--config", str(cfg), "--reason", "key lost", "--dry-run")
    assert "would write" in dry.stdout and cfg.read_text() == before
    out = json.loads(dedup("pki", "revoke", "university-library", "--config", str(cfg), "--reason",
                           'key "lost"', "--json").stdout)
    assert out["changed"]
    text = cfg.read_text()
    assert "# the library" in text and text.count("revoked") == 1  # only the one line added
    settings = load(cfg, CoordinatorSettings, environ={})
    assert {m.id: m.revoked for m in settings.members} == {"city-museum": None, "university-library": 'key "lost"'}
    # Revoking again replaces the reason rather than adding a second line.
    dedup("pki", "revoke", "university-library", "--config", str(cfg), "--reason", "key lost")
    assert cfg.read_text().count("revoked") == 1
    assert dedup("pki", "revoke", "nobody", "--config", str(cfg), "--reason", "x", check=False).returncode == 2

    running = start(load(cfg, CoordinatorSettings, environ={}), workers=2)
    try:
        with pytest.raises(Refusal) as refused:
            running.core.member("university-library")
        assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED
        running.core.member("city-museum")
    finally:
        running.stop(grace=None)
    store = Store(str(tmp_path / "coordinator.sqlite"))
    try:
        assert {mid for mid, _ in store.revoked_keys()} == {"university-library"}
    finally:
        store.close()

    # A member entry written as an inline table cannot be edited safely: the exact edit is printed.
    inline = tmp_path / "inline.toml"
    settings_text = before.split("[[members]]")[0]
    key = (pkidir / "members/city-museum/signing.pub").read_text().strip()
    inline.write_text(settings_text.replace("[tls]", f'members = [{{id = "city-museum", name = "M", '
                                                     f'public_key = "{key}"}}]\n[tls]'))
    p = dedup("pki", "revoke", "city-museum", "--config", str(inline), "--reason", "gone", check=False)
    assert p.returncode == 1 and 'revoked = "gone"' in p.stdout


def test_help_teaches():
    out = dedup("pki", "--help").stdout
    for word in ("init", "issue", "revoke", "check", "0600", "member.toml", "typical use"):
        assert word in out
