"""What the fault tests share: a consortium on disk whose coordinator is a real process that can
be SIGKILLed and restarted on the same port, node processes that push until told to stop, a
TCP proxy on loopback that can cut or blackhole connections, and the checks that nothing
acknowledged was lost or stored twice and that the log only ever grew."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import tomli_w
import tomllib

TESTS = Path(__file__).resolve().parent
DEDUP = [sys.executable, "-m", "dedup.cli.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def edit_toml(path: Path, **changes) -> None:
    cfg = tomllib.loads(path.read_text())
    for key, value in changes.items():
        *parents, leaf = key.split(".")
        d = cfg
        for p in parents:
            d = d.setdefault(p, {})
        d[leaf] = value
    path.write_text(tomli_w.dumps(cfg))


class CoordinatorProcess:
    """`dedup coordinator serve` on a fixed port, restartable after a SIGKILL."""

    def __init__(self, config: Path, port: int) -> None:
        self.config, self.port = config, port
        self.folder = config.parent
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self, timeout: float = 60) -> None:
        ready = self.folder / "coordinator.port"
        ready.unlink(missing_ok=True)
        log = (self.folder / "coordinator.log").open("ab")
        self.proc = subprocess.Popen([*DEDUP, "coordinator", "serve", "--config", str(self.config),
                                      "--ready-file", str(ready)], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while not (ready.exists() and ready.read_text().strip()):
            if self.proc.poll() is not None:
                raise RuntimeError(f"coordinator exited {self.proc.returncode}: {self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"coordinator not ready in {timeout} s: {self.tail()}")
            time.sleep(0.02)
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed or closed."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else 0

    def tail(self) -> str:
        return self.tail_all()[-3000:]

    def tail_all(self) -> str:
        """Everything every start of it has logged."""
        return (self.folder / "coordinator.log").read_text(errors="replace")


class Site:
    """A consortium written by the demo's own setup, with the coordinator on a fixed port."""

    def __init__(self, root: Path, n_members: int, *, node_settings: dict | None = None, **coordinator) -> None:
        from dedup.demo.setup import create

        self.root = root
        self.members = [f"member-{k:02d}" for k in range(1, n_members + 1)]
        self.layout = create(root, {m: m.title() for m in self.members}, {m: root / "photos" / m for m in self.members})
        self.port = free_port()
        edit_toml(self.layout.coordinator_config, listen=f"127.0.0.1:{self.port}",
                  deadline_check_seconds=3600.0, **coordinator)
        for m, cfg in self.layout.node_configs.items():
            edit_toml(cfg, **{"coordinator.address": f"127.0.0.1:{self.port}", "witness_after_push": False,
                              "workers": 1, **(node_settings or {})})
        self.coordinator = CoordinatorProcess(self.layout.coordinator_config, self.port)

    @property
    def database(self) -> Path:
        """The coordinator's SQLite file, as its configuration names it."""
        config = self.layout.coordinator_config
        path = Path(tomllib.loads(config.read_text()).get("database", "coordinator.sqlite"))
        return path if path.is_absolute() else config.parent / path

    def node_config(self, member: str) -> Path:
        return self.layout.node_configs[member]

    def catalogue(self, member: str) -> Path:
        return self.node_config(member).parent / "catalogue.sqlite"

    def log_verifier(self):
        from dedup.note import NoteVerifier

        return NoteVerifier.from_string(self.layout.log_public_key.read_text().strip())

    def log_stub(self, member: str | None = None):
        import grpc

        from dedup.transport import client_options
        from dedup.v1 import log_pb2_grpc

        member = member or self.members[0]
        ndir = self.node_config(member).parent
        creds = grpc.ssl_channel_credentials(
            root_certificates=(self.root / "pki" / "ca.pem").read_bytes(),
            private_key=(ndir / "tls.key").read_bytes(), certificate_chain=(ndir / "tls.pem").read_bytes())
        ch = grpc.secure_channel(f"127.0.0.1:{self.port}", creds, options=client_options("coordinator"))
        return log_pb2_grpc.LogServiceStub(ch), ch


def read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)


# --- checks ---------------------------------------------------------------------------------


def checkpoint(note: str, verifier):
    """The verified (size, root) of a signed checkpoint note."""
    from dedup.checkpoint import Checkpoint
    from dedup.note import open_note

    cp = Checkpoint.parse(open_note(note, [verifier]).text)
    return cp.size, cp.root_hash


def latest_checkpoint(site: Site, timeout: float = 5) -> tuple[int, bytes, str]:
    from dedup.v1 import log_pb2

    stub, ch = site.log_stub()
    try:
        note = stub.GetCheckpoint(log_pb2.GetCheckpointRequest(), timeout=timeout).signed_checkpoint
    finally:
        ch.close()
    size, root = checkpoint(note, site.log_verifier())
    return size, root, note


def stored_checkpoints(site: Site, after: int = 0) -> list[tuple[int, bytes]]:
    """The verified (size, root) of every checkpoint in the coordinator's store larger than ``after``."""
    db = read_only(site.database)
    try:
        notes = [n for (n,) in db.execute("SELECT note FROM checkpoints WHERE size > ? ORDER BY size", (after,))]
    finally:
        db.close()
    return [checkpoint(n, site.log_verifier()) for n in notes]


def check_consistent(site: Site, old: list[tuple[int, bytes]]) -> int:
    """Every checkpoint seen before is consistent with the coordinator's latest (RFC 6962
    consistency proofs served by the restarted coordinator, checked here); the latest size."""
    from dedup.merkle import verify_consistency
    from dedup.v1 import log_pb2

    new_size, new_root, _ = latest_checkpoint(site)
    stub, ch = site.log_stub()
    try:
        for size, root in old:
            assert size <= new_size, f"the log shrank from {size} to {new_size} entries"
            if size == new_size:
                assert root == new_root, f"two checkpoints of size {size} with different roots"
                continue
            resp = stub.GetConsistencyProof(log_pb2.GetConsistencyProofRequest(old_size=size, new_size=new_size),
                                            timeout=10)
            got_size, got_root = checkpoint(resp.signed_checkpoint, site.log_verifier())
            assert got_size == resp.new_size
            verify_consistency(size, got_size, list(resp.hashes), root, got_root)
    finally:
        ch.close()
    return new_size


def node_batches(site: Site, member: str) -> list[tuple[str, str, bytes]]:
    """(batch id, state, signed manifest) of every batch the node wrote."""
    db = read_only(site.catalogue(member))
    try:
        return [(b, s, bytes(m)) for b, s, m in db.execute("SELECT batch_id, state, manifest FROM batches")]
    finally:
        db.close()


def check_acknowledged_stored_once(site: Site) -> dict:
    """Every batch a node has as acknowledged is stored at the coordinator, and its signed
    manifest is in the log exactly once; no manifest is in the log twice."""
    db = read_only(site.database)
    try:
        entries = Counter(bytes(e) for (e,) in db.execute("SELECT entry FROM log_entries"))
        stored = {(m, b) for m, b in db.execute("SELECT member_id, batch_id FROM batches")}
    finally:
        db.close()
    twice = [n for n in entries.values() if n > 1]
    assert not twice, f"{len(twice)} log entries appear more than once"
    acknowledged = 0
    for member in site.members:
        if not site.catalogue(member).exists():
            continue
        for batch_id, state, manifest in node_batches(site, member):
            if state == "acknowledged":
                acknowledged += 1
                assert (member, batch_id) in stored, f"{member} batch {batch_id} acknowledged but not stored"
                assert entries[manifest] == 1, f"{member} batch {batch_id} is in the log {entries[manifest]} times"
            assert state != "refused", f"{member} batch {batch_id} was refused"
    return {"acknowledged": acknowledged, "stored_batches": len(stored), "log_entries": sum(entries.values())}


def check_final(site: Site) -> dict:
    """After every node has drained: each record a node holds is stored at the coordinator,
    once, as acknowledged; nothing is pending; every stored batch is one a node made."""
    db = read_only(site.database)
    try:
        stored_assets = {(m, a) for m, a in db.execute("SELECT member_id, asset_id FROM assets")}
        stored_batches = Counter(m for (m,) in db.execute("SELECT member_id FROM batches"))
    finally:
        db.close()
    held = set()
    for member in site.members:
        if not site.catalogue(member).exists():
            continue
        cat = read_only(site.catalogue(member))
        try:
            ids = [a for (a,) in cat.execute("SELECT asset_id FROM files WHERE record IS NOT NULL")]
            unpushed = cat.execute("SELECT COUNT(*) FROM files WHERE record IS NOT NULL AND"
                                   " (pushed_record IS NULL OR pushed_record != record)").fetchone()[0]
            states = Counter(s for (s,) in cat.execute("SELECT state FROM batches"))
        finally:
            cat.close()
        assert unpushed == 0, f"{member}: {unpushed} records never acknowledged"
        assert set(states) <= {"acknowledged"}, f"{member}: batches left {dict(states)}"
        assert stored_batches[member] == states["acknowledged"], \
            f"{member}: {stored_batches[member]} batches stored, {states['acknowledged']} made"
        held |= {(member, a) for a in ids}
    assert stored_assets == held, (f"{len(held - stored_assets)} records lost, "
                                   f"{len(stored_assets - held)} stored that no node holds")
    return {"assets": len(held), "batches": sum(stored_batches.values())}


def audit(site: Site, out: Path) -> object:
    """Export the stopped coordinator's log and verify all of it offline."""
    from dedup.audit.verify import verify_export

    subprocess.run([*DEDUP, "coordinator", "export-log", "--config", str(site.layout.coordinator_config), str(out)],
                   check=True, capture_output=True)
    return verify_export(out, site.log_verifier())


# --- nodes that keep pushing -------------------------------------------------------------------


class NodeProcess:
    """``tests/fault_node.py``: adds records and pushes until the stop file appears, then
    drains what is pending and exits, writing a JSON summary."""

    def __init__(self, site: Site, member: str, *, per_round: int, seed: int) -> None:
        self.member = member
        self.stop_file = site.root / f"stop-{member}"
        self.result = site.root / f"result-{member}.json"
        self.log = site.root / f"node-{member}.log"
        env = {**os.environ, "PYTHONPATH": str(TESTS) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(TESTS / "fault_node.py"), str(site.node_config(member)), str(self.stop_file),
                 str(self.result), str(per_round), str(seed), ",".join(site.members)],
                stdout=log, stderr=subprocess.STDOUT, env=env)

    def finish(self, timeout: float = 180) -> dict:
        self.stop_file.touch()
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"{self.member} did not drain in {timeout} s: {self.log.read_text()[-2000:]}")
        assert code == 0, f"{self.member} exited {code}: {self.log.read_text()[-3000:]}"
        return json.loads(self.result.read_text())


# --- a TCP proxy on loopback ----------------------------------------------------------------------


class Proxy:
    """Forwards 127.0.0.1:port to a target; ``cut()`` resets every open connection,
    ``blackhole(True)`` holds new and open connections without passing a byte either way."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._black = threading.Event()
        self._closed = False
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while not self._closed:
                r, _, _ = select.select([a, b], [], [], 0.1)
                if self._black.is_set():
                    continue  # hold the bytes: the peers see silence, not a reset
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        raise OSError("closed")
                    (b if s is a else a).sendall(data)
        except (OSError, ValueError):
            pass
        finally:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass
            with self._lock:
                if (a, b) in self._pairs:
                    self._pairs.remove((a, b))

    def cut(self) -> None:
        """Reset every open connection (RST, as a dropped link or a restarted middlebox gives)."""
        with self._lock:
            pairs = list(self._pairs)
        for a, b in pairs:
            for s in (a, b):
                try:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self.cuts += 1

    def blackhole(self, on: bool) -> None:
        (self._black.set if on else self._black.clear)()

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        self.cut()


# --- a PostgreSQL server of the test's own --------------------------------------------------------


class PrivatePostgres:
    """A PostgreSQL cluster made for one test (initdb in a temporary folder, a free port on
    loopback, its socket in that folder), run as the ``postgres`` user because PostgreSQL will
    not run as root; restarted and stopped with pg_ctl like any server."""

    def __init__(self) -> None:
        import glob
        import pwd
        import shutil
        import tempfile

        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not bins:
            raise RuntimeError("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin")
        self.bin = Path(bins[-1]).parent
        self.user = pwd.getpwnam("postgres")
        self.runas = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if not self.runas and os.geteuid() != self.user.pw_uid:
            raise RuntimeError("needs root (to run PostgreSQL as the postgres user) or to be that user")
        if self.runas and not shutil.which("runuser"):
            raise RuntimeError("runuser is missing")
        # Not under pytest's temporary folders: those are private to root.
        self.root = Path(tempfile.mkdtemp(prefix="dedup-pg-"))
        os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")

    def _run(self, tool: str, *args: str, timeout: float = 120) -> None:
        done = subprocess.run([*self.runas, str(self.bin / tool), *args], capture_output=True, text=True,
                              timeout=timeout, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed: {done.stderr.strip() or done.stdout.strip()}")

    def _pg_ctl(self, action: str, *extra: str) -> None:
        # fsync off: the test kills no machine, and the 2-core runners are slow enough.
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", action, "-D", str(self.data), "-w", "-t", "60", "-l", str(self.root / "server.log"),
                  "-o", opts, *extra)

    def start(self) -> None:
        self._pg_ctl("start")

    def stop(self) -> None:
        self._pg_ctl("stop", "-m", "fast")

    def restart(self) -> None:
        self._pg_ctl("restart", "-m", "fast")

    def close(self) -> None:
        import shutil

        try:
            self.stop()
        except Exception:  # noqa: BLE001 - already stopped
            pass
        shutil.rmtree(self.root, ignore_errors=True)


def intake_stub(site: Site, member: str):
    import grpc

    from dedup.transport import client_options
    from dedup.v1 import intake_pb2_grpc

    ndir = site.node_config(member).parent
    creds = grpc.ssl_channel_credentials(
        root_certificates=(site.root / "pki" / "ca.pem").read_bytes(),
        private_key=(ndir / "tls.key").read_bytes(), certificate_chain=(ndir / "tls.pem").read_bytes())
    ch = grpc.secure_channel(f"127.0.0.1:{site.port}", creds, options=client_options("coordinator"))
    return intake_pb2_grpc.IntakeServiceStub(ch), ch


def batch_id(member: str, seq: int) -> str:
    """The id of a member's seq-th test batch, in the wire's form (32 hex digits)."""
    import hashlib

    return hashlib.sha256(f"{member}-{seq}".encode()).hexdigest()[:32]


def signed_batch(site: Site, member: str, seq: int, assets: list):
    """A SubmitBatchRequest signed with the member's own key, as its node would send it."""
    import hashlib

    from dedup.config import load
    from dedup.node.push import load_signer
    from dedup.node.settings import NodeSettings
    from dedup.signing import sign_statement
    from dedup.v1 import asset_pb2, intake_pb2

    settings = load(site.node_config(member), NodeSettings)
    signer = load_signer(settings)
    payload = asset_pb2.AssetList(assets=assets).SerializeToString(deterministic=True)
    m = asset_pb2.BatchManifest(member_id=member, batch_id=batch_id(member, seq), sequence=seq, asset_count=len(assets),
                                assets_sha256=hashlib.sha256(payload).digest(), created_unix=1)
    return intake_pb2.SubmitBatchRequest(manifest=sign_statement(signer, m, origin=settings.origin()), assets=payload)


# --- an ext4 file system the kernel can turn read-only ------------------------------------------


class Ext4Image:
    """A small ext4 file system in an image file, on a loop device, mounted with
    ``errors=remount-ro``: after ``fail()`` (the kernel's own error path, as a failing disk takes
    it) the kernel refuses every write to it until it is unmounted; ``repair()`` then checks it
    with e2fsck and mounts it again at the same place, as an operator would."""

    TOOLS = ("mkfs.ext4", "losetup", "e2fsck", "mount", "umount")

    def __init__(self, root: Path, size_mib: int = 64) -> None:
        import shutil

        if os.geteuid() != 0:
            raise RuntimeError("needs root to make and mount an ext4 file system on a loop device")
        missing = [t for t in self.TOOLS if not shutil.which(t)]
        if missing:
            raise RuntimeError(f"missing {', '.join(missing)}")
        if not Path("/dev/loop-control").exists():
            raise RuntimeError("no loop devices (/dev/loop-control)")
        self.image, self.point = root / "store.img", root / "store"
        self.point.mkdir(parents=True)
        with self.image.open("wb") as f:
            f.truncate(size_mib << 20)
        self._run("mkfs.ext4", "-q", "-F", str(self.image))
        self.device: str | None = None
        self.mounted = False
        self.mount()

    @staticmethod
    def _run(*cmd: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode not in ok:
            raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr.strip() or done.stdout.strip()}")
        return done

    @property
    def sysfs(self) -> Path:
        return Path("/sys/fs/ext4") / Path(self.device).name

    def mount(self) -> None:
        self.device = self._run("losetup", "--find", "--show", str(self.image)).stdout.strip()
        self._run("mount", "-t", "ext4", "-o", "errors=remount-ro", self.device, str(self.point))
        self.mounted = True

    def fail(self) -> None:
        """Raise an ext4 error on the mounted file system: it aborts its journal and turns read-only."""
        (self.sysfs / "trigger_fs_error").write_text("1")

    def refuses_writes(self) -> bool:
        import errno

        try:
            fd = os.open(self.point, os.O_TMPFILE | os.O_WRONLY, 0o600)
        except OSError as exc:
            return exc.errno == errno.EROFS
        os.close(fd)
        return False

    def unmount(self) -> None:
        """Detach it from the tree at once (``umount -l``); the kernel lets go of it once the
        last file open on it is closed."""
        self._run("umount", "-l", str(self.point))
        self.mounted = False

    def released(self, timeout: float = 15) -> bool:
        deadline = time.monotonic() + timeout
        while self.sysfs.exists():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def repair(self) -> int:
        """e2fsck the image (the unmounted file system, released) and mount it again; e2fsck's
        exit status (0: clean, 1: errors corrected)."""
        self._run("losetup", "-d", self.device)
        code = self._run("e2fsck", "-f", "-y", str(self.image), ok=(0, 1)).returncode
        self.mount()
        return code

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.point)], capture_output=True)
            self.mounted = False
        if self.device:
            self.released(timeout=5)
            subprocess.run(["losetup", "-d", self.device], capture_output=True)
