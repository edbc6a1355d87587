"""`dedup pki`: the material it writes, and a real coordinator and node talking with it over mutual TLS."""

from __future__ import annotations

import json
import tomllib
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


def enrol(pkidir: Path, nodes: Path, member: str, *extra: str, issue: tuple[str, ...] = (),
          request: tuple[str, ...] = ()) -> dict:
    """The whole flow for one member: request on its node, issue at the records service (from a
    copy of the request, as it would arrive), install on the node. Returns issue's JSON."""
    node = nodes / member
    dedup("pki", "request", member, "--dir", str(node), *request)
    inbox = pkidir.parent / "inbox"
    inbox.mkdir(exist_ok=True)
    (inbox / f"{member}.request").write_bytes((node / f"{member}.request").read_bytes())
    out = json.loads(dedup("pki", "issue", member, "--dir", str(pkidir), "--request",
                           str(inbox / f"{member}.request"), "--json", *extra, *issue).stdout)
    dedup("pki", "install", str(pkidir / "members" / member), "--dir", str(node))
    return out


@pytest.fixture
def pkidir(tmp_path) -> Path:
    d = tmp_path / "records" / "pki"
    out = json.loads(dedup("pki", "init", str(d), "--origin", "test.example.org/dedup-log", "--ip", "127.0.0.1",
                           "--json").stdout)
    assert out["log_origin"] == "test.example.org/dedup-log"
    for m in MEMBERS:
        enrol(d, tmp_path / "nodes", m, "--name", m.title(), "--coordinator", "127.0.0.1:1")
    return d


def node_config(pkidir: Path, member: str) -> Path:
    return pkidir.parent.parent / "nodes" / member / "node.toml"


def coordinator_config(tmp_path: Path, pkidir: Path) -> Path:
    members = "\n".join((pkidir / "members" / m / "member.toml").read_text() for m in MEMBERS)
    cfg = tmp_path / "coordinator.toml"
    cfg.write_text(f'listen = "127.0.0.1:0"\nhealth_listen = "127.0.0.1:0"\ndatabase = "coordinator.sqlite"\n'
                   f'log_key = "records/pki/coordinator/log.key"\nlog_origin = "test.example.org/dedup-log"\n'
                   f'[tls]\nca = "records/pki/ca.pem"\ncert = "records/pki/coordinator/tls.pem"\n'
                   f'key = "records/pki/coordinator/tls.key"\n\n{members}')
    return cfg


def private_material(root: Path) -> dict[Path, bytes]:
    """Every file under ``root`` that holds a private key (PEM or C2SP signer key), by content."""
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()
            and (b"PRIVATE KEY-----" in p.read_bytes() or p.read_bytes().startswith(b"PRIVATE+KEY+"))}


def test_each_party_makes_and_keeps_its_own_private_keys(tmp_path, pkidir):
    from dedup.coordinator.settings import CoordinatorSettings
    from dedup.node.settings import NodeSettings
    from dedup.note import NoteSigner, NoteVerifier

    records, nodes = pkidir.parent, tmp_path / "nodes"
    # The records service holds its CA, the coordinator's TLS key and the log key, and nothing else secret.
    assert sorted(p.relative_to(records).as_posix() for p in private_material(records)) == [
        "pki/ca.key", "pki/coordinator/log.key", "pki/coordinator/tls.key"]
    for m in MEMBERS:
        node = nodes / m
        held = private_material(node)
        assert sorted(p.name for p in held) == ["signing.key", "tls.key"]
        for p in held:
            assert mode(p) == 0o600, p
        assert mode(node) == 0o700 and not (node / "pending").exists() and not (node / f"{m}.request").exists()
        # No byte string of the member's keys is anywhere in the records service's files.
        secret = NoteSigner.from_string((node / "signing.key").read_text().strip()).to_string().split("+", 4)[4]
        for p in records.rglob("*"):
            if p.is_file():
                assert secret.encode() not in p.read_bytes(), p
                assert (node / "tls.key").read_bytes() not in p.read_bytes(), p
    for d in (pkidir, pkidir / "coordinator", pkidir / "members", *(pkidir / "members" / m for m in MEMBERS)):
        assert mode(d) == 0o700, d
    log = NoteSigner.from_string((pkidir / "coordinator/log.key").read_text().strip())
    assert log.name == "test.example.org/dedup-log"
    assert NoteVerifier.from_string((pkidir / "log.pub").read_text().strip()).to_string() == log.verifier().to_string()
    # The installed node.toml and the issued member.toml load through the real settings models.
    for m in MEMBERS:
        node = load(node_config(pkidir, m), NodeSettings, environ={})
        assert node.member_id == m and node.tls.cert.exists() and node.log_verifier_key == log.verifier().to_string()
        signer = NoteSigner.from_string(node.signing_key.read_text().strip())
        assert signer.name == m
        assert (pkidir / "members" / m / "signing.pub").read_text().strip() == signer.verifier().to_string()
    settings = load(coordinator_config(tmp_path, pkidir), CoordinatorSettings, environ={})
    assert [m.id for m in settings.members] == list(MEMBERS)
    # Nothing is replaced by accident.
    again = dedup("pki", "init", str(pkidir), "--origin", "x.example/log", check=False)
    assert again.returncode == 2 and "already holds" in again.stderr
    again = dedup("pki", "request", MEMBERS[0], "--dir", str(nodes / MEMBERS[0]), check=False)
    assert again.returncode == 2 and "--renew" in again.stderr and "--rekey" in again.stderr
    bad = dedup("pki", "request", "Not_A_Member", "--dir", str(tmp_path / "x"), check=False)
    assert bad.returncode == 2 and not (tmp_path / "x").exists()


def test_requests_are_checked_before_anything_is_issued(tmp_path, pkidir):
    from dedup import pki
    from dedup.note import NoteSigner, sign_note

    node = tmp_path / "newcomer"
    dedup("pki", "request", "harbour-daily", "--dir", str(node))
    good = (node / "harbour-daily.request").read_text()
    text = good[: good.index("\n\n") + 1]
    lines = text.splitlines()
    csr = lines[3]
    other = pki.make_request("city-museum", pki.new_tls_key(), NoteSigner.generate("city-museum"))
    weak = "harbour-daily+" + "00000000+AQEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="  # the identity point
    cases = {
        "tampered": (good.replace(csr, other.splitlines()[3]),
                     "the request is not signed by its statement key"),
        "another member's": (other, "the request is 'city-museum''s, not 'harbour-daily''s"),
        "not a request": ("hello\n\n— x AAAA\n", "not a signed member request"),
        "weak key": (sign_note(text.replace(lines[2], f"statement-key {weak}"), [NoteSigner.generate("harbour-daily")]),
                     "the request's statement key is refused"),
        "csr for another member": (sign_note(text.replace(csr, other.splitlines()[3]),
                                             [_signer_of(node / "pending" / "signing.key")]),
                                   "the certificate signing request names ['city-museum'], not 'harbour-daily'"),
    }
    before = sorted(p for p in pkidir.rglob("*"))
    for name, (content, message) in cases.items():
        f = tmp_path / f"{name}.request"
        f.write_text(content)
        out = dedup("pki", "issue", "harbour-daily", "--dir", str(pkidir), "--request", str(f), check=False)
        assert out.returncode == 2, (name, out.stdout)
        assert message in out.stderr, (name, out.stderr)
        assert sorted(p for p in pkidir.rglob("*")) == before, name
    # A statement key other than the one recorded needs --rekey, and --rekey needs another key.
    dedup("pki", "request", "city-museum", "--dir", str(tmp_path / "stranger"))
    out = dedup("pki", "issue", "city-museum", "--dir", str(pkidir), "--request",
                str(tmp_path / "stranger" / "city-museum.request"), check=False)
    assert out.returncode == 2 and "pass --rekey to replace it" in out.stderr
    nodes = tmp_path / "nodes"
    dedup("pki", "request", "city-museum", "--dir", str(nodes / "city-museum"), "--renew")
    out = dedup("pki", "issue", "city-museum", "--dir", str(pkidir), "--request",
                str(nodes / "city-museum" / "city-museum.request"), "--rekey", check=False)
    assert out.returncode == 2 and "is the one city-museum already has" in out.stderr
    # A folder issued for another member's request is not installed, and nothing moves.
    pending = sorted((nodes / "city-museum" / "pending").iterdir())
    out = dedup("pki", "install", str(pkidir / "members" / "university-library"), "--dir",
                str(nodes / "city-museum"), check=False)
    assert out.returncode == 1 and "nothing installed: the certificate is not for the pending TLS key" in out.stderr
    assert sorted((nodes / "city-museum" / "pending").iterdir()) == pending


def _signer_of(path: Path):
    from dedup.note import NoteSigner

    return NoteSigner.from_string(path.read_text().strip())


def test_renew_keeps_the_signing_key(tmp_path, pkidir):
    node = tmp_path / "nodes" / "city-museum"
    key = (node / "signing.key").read_text()
    cert, tls_key = (node / "tls.pem").read_text(), (node / "tls.key").read_text()
    out = enrol(pkidir, tmp_path / "nodes", "city-museum", request=("--renew",))
    assert out["renewed"] and not out["rekeyed"] and out["certificate"]["common_name"] == "city-museum"
    assert (node / "signing.key").read_text() == key
    assert (node / "tls.pem").read_text() != cert and (node / "tls.key").read_text() != tls_key
    assert "previous_keys" not in (pkidir / "members/city-museum/member.toml").read_text()


def witness_once(tmp_path: Path, pkidir: Path, member: str) -> None:
    """Start the coordinator on the current configuration; the member witnesses the log (a call
    signed with its statement key), and it stops."""
    from dedup.coordinator.server import start
    from dedup.coordinator.settings import CoordinatorSettings

    running = start(load(coordinator_config(tmp_path, pkidir), CoordinatorSettings, environ={}), workers=2)
    env = {"DEDUP_NODE__COORDINATOR__ADDRESS": f"127.0.0.1:{running.port}"}
    try:
        w = dedup("node", "witness", "--config", str(node_config(pkidir, member)), "--json", env=env, check=False)
        assert w.returncode == 0, w.stderr + w.stdout
    finally:
        running.stop(grace=None)


def test_a_member_rekeys_and_the_records_services_old_copies_are_deleted(tmp_path, pkidir):
    """The path for a consortium whose members' keys an earlier version made at the records
    service: each member re-keys; the coordinator logs the replacement and refuses the old key."""
    import tomllib

    from dedup import pki
    from dedup.coordinator.store import Store
    from dedup.signing import parse_entry

    m = "city-museum"
    mdir, node = pkidir / "members" / m, tmp_path / "nodes" / m
    # The records service still holds copies of the member's keys, as earlier versions left them.
    (mdir / "signing.key").write_bytes((node / "signing.key").read_bytes())
    (mdir / "tls.key").write_bytes((node / "tls.key").read_bytes())
    witness_once(tmp_path, pkidir, m)
    old = (node / "signing.pub").read_text().strip()

    out = enrol(pkidir, tmp_path / "nodes", m, issue=("--rekey",), request=("--rekey",))
    assert out["rekeyed"] and sorted(out["removed_private_keys"]) == [str(mdir / "signing.key"), str(mdir / "tls.key")]
    assert not private_material(mdir)
    entry = tomllib.loads((mdir / "member.toml").read_text())["members"][0]
    new = (node / "signing.pub").read_text().strip()
    assert (entry["public_key"], entry["previous_keys"]) == (new, [old]) and new != old

    witness_once(tmp_path, pkidir, m)
    store = Store(str(tmp_path / "coordinator.sqlite"))
    try:
        types = [parse_entry(bytes(e)).type for (e,) in store._db.execute("SELECT entry FROM log_entries ORDER BY idx")]
    finally:
        store.close()
    assert types.count("dedup.v1.MemberKeyReplaced") == 1
    assert pki.read_signer(node / "signing.key").verifier().to_string() == new


def test_round_trip_over_mutual_tls_and_a_foreign_ca_is_refused(tmp_path, pkidir):
    from dedup.coordinator.server import start
    from dedup.coordinator.settings import CoordinatorSettings

    cfg = coordinator_config(tmp_path, pkidir)
    running = start(load(cfg, CoordinatorSettings, environ={}), workers=2)
    try:
        env = {"DEDUP_NODE__COORDINATOR__ADDRESS": f"127.0.0.1:{running.port}",
               "DEDUP_NODE__COORDINATOR__SERVER_NAME": "coordinator"}
        for m in MEMBERS:
            node_cfg = node_config(pkidir, m)
            out = json.loads(dedup("pki", "check", "--config", str(node_cfg), "--json", env=env).stdout)
            assert out["ok"] and out["coordinator"]["status"] == "SERVING", out
            # A real signed call: the member witnesses (and cosigns) the log over mutual TLS.
            w = dedup("node", "witness", "--config", str(node_cfg), "--json", env=env, check=False)
            assert w.returncode == 0, w.stderr + w.stdout
        # The plaintext health port answers the same statuses.
        h = dedup("coordinator", "health", "--address", f"127.0.0.1:{running.health_port}", "--json")
        assert json.loads(h.stdout)["serving"] is True

        # A node with a certificate from another CA (same member id) cannot even connect.
        other = tmp_path / "other" / "pki"
        dedup("pki", "init", str(other), "--origin", "evil.example.org/log")
        enrol(other, tmp_path / "other" / "nodes", "city-museum", "--coordinator", "127.0.0.1:1")
        foreign = tmp_path / "other" / "nodes" / "city-museum" / "node.toml"
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


def test_check_names_a_statement_key_that_is_not_the_members(tmp_path, pkidir):
    from dedup.note import NoteSigner

    cfg = node_config(pkidir, MEMBERS[0])
    key = cfg.parent / "signing.key"
    assert json.loads(dedup("pki", "check", "--config", str(cfg), "--offline", "--json").stdout)["problems"] == []
    original = key.read_bytes()
    for signer, problem in (
        (NoteSigner.generate(MEMBERS[1]), f"{key} is {MEMBERS[1]!r}'s statement key, not member {MEMBERS[0]!r}'s"),
        (NoteSigner.generate(MEMBERS[0]), f"{key} is not the key of {cfg.parent / 'signing.pub'} "
                                          f"({(cfg.parent / 'signing.pub').read_text().strip()}): the statement key "
                                          "the records service admitted is the one in the .pub file; install the "
                                          "matching pair"),
    ):
        key.write_text(signer.to_string() + "\n")
        got = dedup("pki", "check", "--config", str(cfg), "--offline", "--json", check=False)
        assert got.returncode == 1 and json.loads(got.stdout)["problems"] == [problem]
    key.write_bytes(original)
    assert dedup("pki", "check", "--config", str(cfg), "--offline", "--json").returncode == 0


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
    for word in ("init", "request", "issue", "install", "revoke", "check", "0600", "member.toml", "typical use",
                 "ever sees a member's private key"):
        assert word in out


def test_issue_writes_the_auditor_and_reader_roles_into_member_toml(tmp_path, pkidir):
    for member, flag in (("heritage-audit-office", "--auditor"), ("harbour-daily", "--reader")):
        enrol(pkidir, tmp_path / "nodes", member, flag)
        entry, = tomllib.loads((pkidir / "members" / member / "member.toml").read_text())["members"]
        assert entry["id"] == member and entry[flag[2:]] is True
        assert set(entry) & {"auditor", "reader", "arbiter"} == {flag[2:]}
