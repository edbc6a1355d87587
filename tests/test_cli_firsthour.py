"""A records officer's first commands, run as real processes: a local audit with no
configuration and no keys, what the consortium commands ask for, honest answers when the
coordinator is down, help that fits 80 columns, usage errors from the command given, and
counts in words that agree with them."""

from __future__ import annotations

import argparse
import json
import tomllib
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tomli_w
from PIL import Image
from skimage import data

from dedup import pki
from dedup.cli.common import plural

from conftest import ORIGIN, make_party
from test_intake import A

CATALOGUE_NOTE = "catalogue: {} (no configuration given; --config FILE to use one)"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user who has set nothing up: no node configuration of any kind."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEDUP_NODE", "COLUMNS"))}
    env.update(extra)
    return env


def dedup(*args, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dedup.cli.main", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env if env is not None else clean_env())


def photos(folder: Path) -> Path:
    """Three photographs, one of them also as a half-size JPEG: one known duplicate pair."""
    folder.mkdir(parents=True)
    astro = Image.fromarray(data.astronaut())
    astro.save(folder / "astronaut.png")
    astro.resize((256, 256)).save(folder / "astronaut-small.jpg", quality=80)
    Image.fromarray(data.coffee()).save(folder / "coffee.jpg", quality=90)
    Image.fromarray(data.camera()).save(folder / "camera.png")
    return folder


@pytest.fixture
def folder(tmp_path) -> Path:
    return photos(tmp_path / "photos")


# --- a local audit needs no configuration ----------------------------------------------------


def test_a_local_audit_runs_with_no_configuration_at_all(tmp_path, folder):
    work = tmp_path / "audit"
    work.mkdir()
    catalogue = work / "dedup-catalogue.sqlite"
    note = CATALOGUE_NOTE.format(catalogue)

    # Reading a catalogue that was never made is refused, and makes none.
    early = dedup("node", "duplicates", cwd=work)
    assert early.returncode == 2
    assert early.stderr == (f"dedup: no catalogue here ({catalogue}): scan a folder first, from this folder "
                            "(`dedup node scan FOLDER`), or give the node's configuration with --config FILE\n")
    assert not catalogue.exists()

    scan = dedup("node", "scan", folder, "--quiet", cwd=work)
    assert scan.returncode == 0, scan.stderr
    assert scan.stderr == note + "\n"
    assert catalogue.is_file()
    assert scan.stdout.startswith("scanned 4 files in ")
    assert scan.stdout.splitlines()[-1].startswith("catalogue: 4 files, ")

    dup = dedup("node", "duplicates", "--json", cwd=work)
    assert dup.returncode == 0 and dup.stderr == note + "\n"
    clusters = [sorted(Path(a["path"]).name for a in c["assets"]) for c in json.loads(dup.stdout)["clusters"]]
    assert clusters == [["astronaut-small.jpg", "astronaut.png"]]

    report = dedup("node", "report", "--out", "report", cwd=work)
    assert report.returncode == 0 and report.stderr == note + "\n"
    for name in ("report.html", "clusters.csv", "report.json", "plan.csv", "masters.csv", "fixity.jsonl"):
        assert (work / "report" / name).is_file(), name
    doc = json.loads((work / "report" / "report.json").read_text())
    assert doc["member_id"] is None
    # With no member id the page is named for the folder scanned, not "Duplicate audit: ".
    page = (work / "report" / "report.html").read_text()
    assert f"<title>Duplicate audit of {folder}</title>" in page
    assert f"<h1>Duplicate audit of {folder}</h1>" in page

    # A local lookup answers from the same catalogue.
    look = dedup("node", "lookup", folder / "coffee.jpg", cwd=work)
    assert look.returncode == 0, look.stderr
    assert look.stdout.startswith("LOCAL ANSWER: no coordinator is configured; only this node's own catalogue")
    assert look.stdout.splitlines()[-1] == "1 file: 1 matched, 0 not matched, 0 unreadable"


def test_a_minimal_configuration_without_keys_scans_and_reports(tmp_path, folder):
    for name, text in (("bare.toml", 'catalogue = "bare.sqlite"\n'),
                       ("member.toml", 'member_id = "city-museum"\ncatalogue = "member.sqlite"\n')):
        cfg = tmp_path / name
        cfg.write_text(text)
        scan = dedup("node", "scan", folder, "--quiet", "--config", cfg, cwd=tmp_path)
        assert (scan.returncode, scan.stderr) == (0, ""), scan.stderr
        assert (tmp_path / name.replace(".toml", ".sqlite")).is_file()
        dup = dedup("node", "duplicates", "--json", "--config", cfg, cwd=tmp_path)
        assert dup.returncode == 0 and len(json.loads(dup.stdout)["clusters"]) == 1
        out = tmp_path / f"report-{name}"
        report = dedup("node", "report", "--out", out, "--config", cfg, cwd=tmp_path)
        assert report.returncode == 0, report.stderr
        assert (out / "report.html").is_file()
    assert not (tmp_path / "dedup-catalogue.sqlite").exists()


SIGNING = [("push",), ("withdraw", "x.jpg"), ("witness",), ("decisions", "--auto"), ("accept", "p1"),
           ("reject", "p1", "--reason", "no"), ("claim", "p1", "--asset", "a", "--kind", "other", "--evidence", "e"),
           ("rule", "p1", "--master", "m/a", "--reasoning", "r")]


@pytest.mark.parametrize("command", SIGNING, ids=[c[0] for c in SIGNING])
def test_commands_that_sign_say_what_they_need_and_how_to_get_it(tmp_path, command):
    r = dedup("node", *command, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr == (
        f"dedup: `dedup node {command[0]}` signs what it sends with this member's key and talks to the consortium's "
        "coordinator; it needs these settings, and no configuration was given (--config FILE or "
        "$DEDUP_NODE_CONFIG):\n"
        "  member_id      this institution's member id in the consortium\n"
        "  signing_key    the member's statement key, which signs what the node sends\n"
        "  [tls]          ca, cert and key: the member's certificate for mutual TLS\n"
        "  [coordinator]  address: where the consortium's coordinator listens\n"
        "A member gets them when the consortium admits it: `dedup pki request MEMBER_ID --dir /etc/dedup` makes "
        "the member's keys and a request for the records service, and `dedup pki install FOLDER --dir /etc/dedup` "
        "installs what the records service sends back, with a node.toml holding these settings (see "
        "deploy/README.md). scan, duplicates, report and a local lookup need none of them.\n")
    assert list(tmp_path.iterdir()) == []  # refused before a catalogue was made


def test_listing_proposals_needs_no_key_but_a_coordinator(tmp_path):
    cfg = tmp_path / "node.toml"
    cfg.write_text('member_id = "city-museum"\ncatalogue = "c.sqlite"\n')
    r = dedup("node", "decisions", "--config", cfg)
    assert r.returncode == 2
    assert r.stderr.startswith(f"dedup: `dedup node decisions` talks to the consortium's coordinator; it needs these "
                               f"settings, and {cfg} does not set them:\n"
                               "  [tls]          ca, cert and key: the member's certificate for mutual TLS\n"
                               "  [coordinator]  address: where the consortium's coordinator listens\nA member gets")


# --- the coordinator is down -----------------------------------------------------------------


@pytest.fixture
def down(tmp_path, folder):
    """A fully configured node whose coordinator address refuses connections (a port held bound,
    never listening), with its folder scanned."""
    ca = pki.new_ca("test CA")
    pki.write_cert(tmp_path / "ca.pem", ca[1])
    party = make_party(tmp_path, ca, A)
    pki.write_private(tmp_path / "signing.key", party.signer.to_string().encode())
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    address = f"127.0.0.1:{held.getsockname()[1]}"
    cfg = tmp_path / "node.toml"
    cfg.write_text(tomli_w.dumps({
        "member_id": A, "catalogue": "node.sqlite", "signing_key": "signing.key", "log_origin": ORIGIN,
        "tls": {"ca": "ca.pem", "cert": str(party.tls_cert), "key": str(party.tls_key)},
        "coordinator": {"address": address, "timeout_seconds": 5, "retries": 0}}))
    assert dedup("node", "scan", folder, "--quiet", "--config", cfg).returncode == 0
    yield cfg, address
    held.close()


def test_push_with_the_coordinator_down_says_nothing_was_sent(down):
    cfg, address = down
    for attempt in range(2):  # the second push tries the kept batch again, and says the same
        r = dedup("node", "push", "--config", cfg)
        assert r.returncode == 3, r.stderr
        assert r.stdout == ""
        said = r.stderr.splitlines()[-1]  # after the node's log lines
        assert said.startswith(f"dedup: nothing sent: the coordinator at {address} could not be reached "
                               "(UNAVAILABLE: "), r.stderr
        assert said.endswith("); 1 batch (4 assets) is kept, signed, and will be sent by the next push")
        assert "pushed" not in r.stderr
    j = dedup("node", "push", "--config", cfg, "--json")
    assert j.returncode == 3
    out = json.loads(j.stdout)
    assert (out["batches_sent"], out["pending"], out["pending_assets"], out["resent"]) == (0, 1, 4, 1)


def test_a_retry_is_logged_with_its_fields_as_a_json_line(down):
    cfg, address = down
    settings = tomllib.loads(cfg.read_text())
    settings["coordinator"].update(retries=1, retry_backoff_seconds=0.1)
    cfg.write_text(tomli_w.dumps(settings))
    r = dedup("node", "push", "--config", cfg)
    assert r.returncode == 3
    *logged, said = r.stderr.splitlines()
    assert all(line.startswith("{") for line in logged), logged  # no bare last-resort lines
    events = [json.loads(line) for line in logged]
    assert [e["msg"] for e in events] == ["push retry", "push interrupted"]
    assert (events[0]["level"], events[0]["member"], events[0]["code"]) == ("warning", A, "UNAVAILABLE")
    assert said.startswith("dedup: nothing sent: ")


def test_lookup_with_the_coordinator_down_says_what_was_not_looked_up(down, folder):
    cfg, address = down
    r = dedup("node", "lookup", folder / "coffee.jpg", "--config", cfg)
    assert r.returncode == 3
    assert "not asked: coordinator unreachable" in r.stdout  # the file's row in the table
    assert r.stdout.splitlines()[-1] == "1 file: 0 matched, 0 not matched, 0 unreadable, 1 not looked up"
    assert r.stderr.startswith("dedup: 1 file not looked up: the coordinator could not be reached (UNAVAILABLE: ")
    assert r.stderr.endswith("); run the same command again later\n")
    out = json.loads(dedup("node", "lookup", folder, "--config", cfg, "--json").stdout)
    assert out["not_asked"] == 4 and not any(row["matched"] for row in out["results"])


# --- help, usage, words ----------------------------------------------------------------------


HELP_OF_EVERY_COMMAND = textwrap.dedent("""
    import argparse, contextlib, io, json, sys
    from dedup.cli.main import build_parser, main

    def walk(parser, path):
        yield path
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, path + [name])

    out = {}
    for path in walk(build_parser(), []):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            try:
                main(path + ["--help"])
            except SystemExit:
                pass
        out[" ".join(path)] = buf.getvalue()
    json.dump(out, sys.stdout)
""")


def test_a_command_loads_only_its_own_role():
    """`dedup node scan` starts without importing the coordinator's, the auditor's or the PKI
    modules (seconds of start-up on every scan); a word that names no role still hears of
    every role."""
    code = textwrap.dedent("""
        import contextlib, io, sys
        from dedup.cli.main import main
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                main(["node", "scan", "--help"])
            except SystemExit:
                pass
        print(sorted(m for m in ("dedup.node.cli", "dedup.coordinator.cli", "dedup.audit.cli", "dedup.cli.pki")
                     if m in sys.modules))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=clean_env())
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "['dedup.node.cli']"
    r = dedup("nod", "scan")
    assert r.returncode == 2
    assert "invalid choice: 'nod' (choose from 'node', 'coordinator', 'audit', 'demo', 'pki', 'config')" in r.stderr


@pytest.mark.parametrize("columns", ["80", "200"])
def test_every_help_fits_in_80_columns(columns):
    """`dedup ... --help` for every role and command, as `main` prints it."""
    r = subprocess.run([sys.executable, "-c", HELP_OF_EVERY_COMMAND], capture_output=True, text=True,
                       env=clean_env(COLUMNS=columns))
    assert r.returncode == 0, r.stderr
    helps = json.loads(r.stdout)
    for must in ("", "node", "node scan", "node push", "node lookup", "node report", "coordinator", "audit",
                 "audit verify", "pki", "pki check", "config", "demo"):
        assert helps[must].startswith("usage: dedup"), must
    assert len(helps) > 35
    wide = [(cmd, line) for cmd, text in helps.items() for line in text.splitlines() if len(line) > 80]
    assert wide == []


def test_node_help_lists_every_exit_code_and_readme_agrees():
    r = dedup("node", "--help", env=clean_env(COLUMNS="80"))
    epilog = r.stdout[r.stdout.index("exit codes:"):]
    codes = [line.split()[0] for line in epilog.splitlines()[1:] if line[:3].strip().isdigit()]
    assert codes == ["0", "1", "2", "3", "4"]
    assert "  4  the coordinator showed a log inconsistent with a checkpoint this node\n" in epilog
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for text in ("0\nsuccess", "1 the command found a failure", "2 bad arguments or configuration",
                 "3 coordinator\nunreachable", "4 the coordinator showed a log inconsistent"):
        assert " ".join(text.split()) in " ".join(readme.split()), text


@pytest.mark.parametrize("args,usage", [
    (("node", "scan", "--bogus"), "usage: dedup node scan "),
    (("node", "--bogus", "duplicates"), "usage: dedup node "),
    (("audit", "verify", "EXPORT", "--key", "K", "--bogus"), "usage: dedup audit verify "),
    (("pki", "check", "--bogus"), "usage: dedup pki check "),
    (("coordinator", "export-log", "OUT", "--bogus"), "usage: dedup coordinator export-log "),
])
def test_an_unknown_option_prints_the_usage_of_its_command(args, usage):
    r = dedup(*args)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith(usage)
    prog = usage.removeprefix("usage: ").strip()
    assert r.stderr.endswith(f"{prog}: error: unrecognized arguments: --bogus\n")


def test_plural():
    assert [plural(n, "batch", "batches") for n in (0, 1, 2)] == ["0 batches", "1 batch", "2 batches"]
    assert [plural(n, "file") for n in (0, 1, 2)] == ["0 files", "1 file", "2 files"]


def test_one_batch_is_one_batch(consortium, tmp_path):
    one = tmp_path / "one"
    one.mkdir()
    Image.fromarray(data.coffee()).save(one / "coffee.jpg", quality=90)
    party = consortium.parties[A]
    pki.write_private(tmp_path / "a.key", party.signer.to_string().encode())
    cfg = tmp_path / "a.toml"
    cfg.write_text(tomli_w.dumps({
        "member_id": A, "catalogue": "a.sqlite", "signing_key": "a.key", "log_origin": ORIGIN,
        "tls": {"ca": str(consortium.ca_pem), "cert": str(party.tls_cert), "key": str(party.tls_key)},
        "coordinator": {"address": f"127.0.0.1:{consortium.server.port}", "timeout_seconds": 10}}))
    scan = dedup("node", "scan", one, "--quiet", "--config", cfg)
    assert scan.stdout.startswith("scanned 1 file in ")
    assert scan.stdout.splitlines()[-1].startswith("catalogue: 1 file, ")
    push = dedup("node", "push", "--config", cfg)
    assert (push.returncode, push.stdout) == (0, "pushed 1 batch (1 asset); 0 new cross-member matches\n"), push.stderr
    again = dedup("node", "push", "--config", cfg)
    assert again.stdout == "nothing new to send: every catalogued file is already with the coordinator\n"


def test_the_parser_class_is_set_once_for_every_command():
    from dedup.cli.common import HelpFormatter, Parser
    from dedup.cli.main import build_parser

    def walk(parser):
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from walk(sub)

    parsers = list(walk(build_parser()))
    assert all(type(p) is Parser and p.formatter_class is HelpFormatter for p in parsers)
