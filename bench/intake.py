"""`python -m bench.intake`: how fast the coordinator takes in signed batches from concurrent nodes.

For each concurrency level (2 and 8 nodes by default) a fresh consortium is set up the way the
demo sets one up (``dedup.demo.setup``: a CA, a TLS certificate and an Ed25519 signing key per
member, every member admitted in the coordinator's configuration), and a real coordinator is
started as its own process with ``dedup coordinator serve`` (mutual TLS on 127.0.0.1, SQLite
in the level's folder). Each node is a process of its own: it loads its node.toml, writes its
records into a real node catalogue, and signs its batches with ``node.push.make_batches``,
all before the clock starts; it then opens its mutual-TLS channel (``node.client.channel``) and,
once every node is ready, sends its batches one after another with ``SubmitBatch``, as
``node.push.push`` does (the catalogue bookkeeping after each acknowledgement is left out).
The clock runs from the first send of any node to the last acknowledgement. Afterwards the
coordinator is stopped with SIGTERM and its database is checked: every asset sent is stored.

The records are made from real fingerprint sets: a few dozen crops and rescales of the
photographs bundled with scikit-image (the demo's), read with the node's ``read_image``.
Every asset XORs one such set with random masks of its own (one 256-bit mask for all eight
``dct256`` orientations, one 64-bit mask for every ``dct64`` hash and keypoint hash; keypoint
positions and scales are kept), which keeps
the set's internal structure (distances between its own orientations and keypoints) while
making unrelated assets as far apart as unrelated photographs are, and gets new random file
and pixel digests. A share of each node's assets (``--copy-share``) are copies of another
node's asset instead: its fingerprints with a few bits flipped per hash, as a re-encoded
copy gives, so the coordinator also records matches, clusters and master proposals.
(Flipping only a few bits of every asset would make every asset cut from one photograph a
copy of all the others, and the run would measure giant clusters, not intake.)

Nothing is written outside the work folder (a temporary folder unless ``--workdir``).
"""

from __future__ import annotations

import os

# The node processes and this one use numpy on tiny arrays: one BLAS thread each.
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse
import json
import multiprocessing as mp
import queue
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import asset_id, code_state, log, machine, now_iso, versions

#: Assets each level sends in all when ``assets_per_node`` is not given: split evenly over the
#: level's nodes, so every level ends with a store of the same size and the levels compare.
ASSETS_PER_LEVEL = 30_000
#: Share of each node's assets that copy an asset another node sends.
COPY_SHARE = 0.05
#: Variants cut from each bundled photograph for the base fingerprint sets.
VARIANTS_PER_PHOTO = 6
SEED = 20251125
READY_TIMEOUT = 300.0
COMMAND = ".venv/bin/python -m bench.intake"

WHAT = ("fingerprints = fingerprint records on the wire, the sum of len(asset.fingerprints) over the assets "
        "sent; one record is one (algorithm, version, value), and a value may hold several hashes (dct256 v2: "
        "8 orientations, dct64 v2: 2, kp64 v1: up to 64 keypoints). assets = asset records sent; batches = SubmitBatch "
        "calls; wall_seconds = first send of any node to the last acknowledgement")


def default_batch_size() -> int:
    """The node's own default (``batch_size`` in node.toml)."""
    from dedup.node.settings import NodeSettings

    return NodeSettings.model_fields["batch_size"].default


def coordinator_max_batch() -> int:
    """The largest batch the coordinator takes at its defaults (the level's configuration keeps them)."""
    from dedup.coordinator.settings import CoordinatorSettings

    return CoordinatorSettings.model_fields["max_batch_assets"].default


# --- the base fingerprint sets -----------------------------------------------------------


def base_records(folder: Path, seed: int = SEED) -> list[bytes]:
    """Serialised Asset records of crops and rescales of the demo's photographs, read by the
    node's own ``read_image`` (low-information images and incomplete sets left out)."""
    from PIL import Image

    from dedup.demo.samples import PHOTOGRAPHS, bundled_photograph
    from dedup.node.imaging import ImageError, read_image
    from dedup.node.scan import to_record

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    for name in PHOTOGRAPHS:
        photo = bundled_photograph(name).convert("RGB")
        for k in range(VARIANTS_PER_PHOTO):
            w, h = photo.size
            keep = 1.0 if k == 0 else rng.uniform(0.55, 0.95)
            cw, ch = round(w * keep), round(h * keep)
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            scale = rng.uniform(0.5, 1.0)
            im = photo.crop((x, y, x + cw, y + ch)).resize((max(64, round(cw * scale)), max(64, round(ch * scale))),
                                                          Image.Resampling.LANCZOS)
            if k % 2:
                path = folder / f"{name}-{k}.png"
                im.save(path, "PNG")
            else:
                path = folder / f"{name}-{k}.jpg"
                im.save(path, "JPEG", quality=int(rng.integers(70, 96)))
            try:
                facts = read_image(path)
            except ImageError as exc:
                log(f"base image {path.name} unreadable: {exc}")
                continue
            if facts.low_information or len(facts.fingerprints) != 3:
                continue
            out.append(to_record(path.stem, facts).SerializeToString(deterministic=True))
    if not out:
        raise RuntimeError("no usable base fingerprint set")
    return out


# --- the assets each node sends ------------------------------------------------------------


def _masked(value: bytes, mask: np.ndarray) -> bytes:
    """``value`` XOR ``mask`` repeated over it."""
    v = np.frombuffer(value, dtype=np.uint8)
    return (v ^ np.tile(mask, len(v) // len(mask))).tobytes()


def _points_masked(value: bytes, mask: np.ndarray) -> bytes:
    """A kp64 value with every keypoint hash XORed with ``mask`` (8 bytes); positions kept."""
    from dedup.fingerprint import points

    raw = np.frombuffer(value, dtype=np.uint8, offset=points.HEADER).reshape(-1, points.POINT_BYTES).copy()
    raw[:, :8] ^= mask
    return value[:points.HEADER] + raw.tobytes()


def _points_flipped(value: bytes, flips: tuple[int, int], rng: np.random.Generator) -> bytes:
    """A kp64 value with a few bits flipped in each keypoint hash; positions kept."""
    from dedup.fingerprint import points

    raw = np.frombuffer(value, dtype=np.uint8, offset=points.HEADER).reshape(-1, points.POINT_BYTES).copy()
    if raw.size:
        raw[:, :8] = np.frombuffer(_flipped(raw[:, :8].tobytes(), 8, flips, rng), dtype=np.uint8).reshape(-1, 8)
    return value[:points.HEADER] + raw.tobytes()


def _flipped(value: bytes, part_bytes: int, flips: tuple[int, int], rng: np.random.Generator) -> bytes:
    """``value`` with a few bits flipped in each of its parts (``flips`` = (low, high) per part)."""
    bits = np.unpackbits(np.frombuffer(value, dtype=np.uint8)).reshape(-1, part_bytes * 8)
    for part in bits:
        n = int(rng.integers(flips[0], flips[1] + 1))
        part[rng.choice(part.size, size=n, replace=False)] ^= 1
    return np.packbits(bits.ravel()).tobytes()


class AssetMaker:
    """Deterministic assets: node ``n``'s asset ``i`` is the same in every process."""

    def __init__(self, templates: list[bytes], members: list[str], seed: int, copy_share: float) -> None:
        from dedup.v1 import asset_pb2

        self._asset_pb2 = asset_pb2
        self.templates = templates
        self.members = members
        self.seed = seed
        # Every ``stride``-th asset of a node copies the next node's following asset, which is
        # never itself a copy, and no asset is copied twice: each copy gives exactly one match.
        self.stride = round(1 / copy_share) if copy_share > 0 and len(members) > 1 else 0

    def is_copy(self, i: int, count: int) -> bool:
        return bool(self.stride) and i % self.stride == 0 and i + 1 < count

    def asset(self, n: int, i: int, count: int):
        if self.is_copy(i, count):
            return self._copy(n, i)
        return self._original(n, i)

    def _new(self, n: int, i: int, template: bytes, rng: np.random.Generator):
        a = self._asset_pb2.Asset()
        a.ParseFromString(template)
        a.asset_id = asset_id(n, i)  # per node: a coordinator takes only opaque ids
        a.sha256 = rng.bytes(32)
        a.pixel_digest = rng.bytes(32)
        return a

    def _original(self, n: int, i: int):
        from dedup.fingerprint.kinds import FingerprintError, validate

        rng = np.random.default_rng((self.seed, n, i))
        a = self._new(n, i, self.templates[int(rng.integers(len(self.templates)))], rng)
        raw = {fp.algorithm: fp.value for fp in a.fingerprints}
        while True:
            m256 = np.frombuffer(rng.bytes(32), dtype=np.uint8)
            m64 = np.frombuffer(rng.bytes(8), dtype=np.uint8)
            for fp in a.fingerprints:
                if fp.algorithm == "kp64":
                    fp.value = _points_masked(raw[fp.algorithm], m64)
                else:
                    fp.value = _masked(raw[fp.algorithm], m256 if fp.algorithm == "dct256" else m64)
            try:  # a degenerate hash (all 0 or all 1) is astronomically unlikely; draw again if so
                for fp in a.fingerprints:
                    validate(fp.algorithm, fp.version, fp.value)
                return a
            except FingerprintError:
                continue

    def _copy(self, n: int, i: int):
        """A re-encoded web copy of the next node's asset ``i + 1``: half size, JPEG q75, its
        hashes a few bits off (well inside the whole-picture and dct64 distances)."""
        from dedup.fingerprint.kinds import FingerprintError, validate

        source = self._original((n + 1) % len(self.members), i + 1)
        rng = np.random.default_rng((self.seed, n, i, 1))
        a = self._new(n, i, source.SerializeToString(), rng)
        a.evidence.width = max(1, a.evidence.width // 2)
        a.evidence.height = max(1, a.evidence.height // 2)
        a.evidence.frame_width = max(1, a.evidence.frame_width // 2)
        a.evidence.frame_height = max(1, a.evidence.frame_height // 2)
        a.evidence.format_family = self._asset_pb2.FORMAT_FAMILY_LOSSY
        a.evidence.jpeg_quality = 75
        raw = {fp.algorithm: fp.value for fp in a.fingerprints}
        while True:
            for fp in a.fingerprints:
                if fp.algorithm == "dct256":
                    fp.value = _flipped(raw[fp.algorithm], 32, (1, 6), rng)
                elif fp.algorithm == "kp64":
                    fp.value = _points_flipped(raw[fp.algorithm], (0, 2), rng)
                else:
                    fp.value = _flipped(raw[fp.algorithm], 8, (0, 2), rng)
            try:
                for fp in a.fingerprints:
                    validate(fp.algorithm, fp.version, fp.value)
                return a
            except FingerprintError:
                continue


# --- one node (a process of its own) -----------------------------------------------------------


def _node_main(n: int, config: str, templates: list[bytes], members: list[str], count: int, batch_size: int,
               seed: int, copy_share: float, go, results) -> None:
    """Build and sign this node's batches, connect, wait for ``go``, send them all."""
    try:
        results.put(("done", n, _node(n, Path(config), templates, members, count, batch_size, seed, copy_share,
                                      go, results)))
    except BaseException as exc:  # report anything, so the parent never waits blindly
        import traceback

        results.put(("failed", n, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


def _node(n, config, templates, members, count, batch_size, seed, copy_share, go, results) -> dict:
    import grpc

    from dedup.config import load
    from dedup.node.catalogue import Catalogue
    from dedup.node.client import channel
    from dedup.node.push import load_signer, make_batches
    from dedup.node.settings import NodeSettings
    from dedup.transport import MAX_MESSAGE_BYTES
    from dedup.v1 import intake_pb2, intake_pb2_grpc, statement_pb2

    settings = load(config, NodeSettings)
    signer = load_signer(settings)
    maker = AssetMaker(templates, members, seed, copy_share)
    catalogue = Catalogue(settings.catalogue)
    fingerprints = 0
    now = int(time.time())
    with catalogue.transaction() as db:
        for i in range(count):
            a = maker.asset(n, i, count)
            fingerprints += len(a.fingerprints)
            # Paths sort in asset order, the order make_batches takes records in.
            catalogue.put_file(db, {"path": f"/collection/{i:07d}.jpg", "size": 0, "mtime_ns": 0,
                                    "asset_id": a.asset_id, "scanned_unix": now,
                                    "record": a.SerializeToString(deterministic=True)})
    batches = make_batches(catalogue, signer, settings.member_id, batch_size, settings.origin())
    catalogue.close()
    requests = []
    for b in batches:
        stmt = statement_pb2.SignedStatement()
        stmt.ParseFromString(b.manifest)
        req = intake_pb2.SubmitBatchRequest(manifest=stmt, assets=b.assets)
        if req.ByteSize() > MAX_MESSAGE_BYTES:
            raise ValueError(f"a batch of {len(b.paths)} assets is {req.ByteSize()} bytes, over the "
                             f"{MAX_MESSAGE_BYTES}-byte message limit: use a smaller batch size")
        requests.append(req)
    sent_assets = sum(len(b.paths) for b in batches)
    copies = sum(maker.is_copy(i, count) for i in range(count))
    timeout = settings.coordinator.timeout_seconds

    ch = channel(settings)
    # The TLS handshake is made before the clock starts; the timed part is the sending.
    grpc.channel_ready_future(ch).result(timeout=60)
    stub = intake_pb2_grpc.IntakeServiceStub(ch)
    results.put(("ready", n, None))
    go.wait()

    acks, errors = [], []
    accepted = new_matches = 0
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    first = time.monotonic()
    for req in requests:
        t0 = time.monotonic()
        try:
            resp = stub.SubmitBatch(req, timeout=timeout, wait_for_ready=False)
        except grpc.RpcError as err:
            errors.append({"batch_id": _batch_id(req), "code": err.code().name, "detail": err.details()})
            continue
        t1 = time.monotonic()
        acks.append((t1, t1 - t0, resp.accepted))
        accepted += resp.accepted
        new_matches += resp.new_matches
    last = time.monotonic()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    ch.close()
    return {"member": settings.member_id, "assets": sent_assets, "fingerprints": fingerprints,
            "batches": len(requests), "copies": copies, "first_send": first, "last_ack": last, "acks": acks,
            "errors": errors, "accepted": accepted, "new_matches": new_matches,
            "cpu_seconds": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)}


def _batch_id(req) -> str:
    from dedup.signing import parse_body
    from dedup.v1 import asset_pb2

    return parse_body(req.manifest, asset_pb2.BatchManifest).batch_id


# --- the coordinator (a process of its own) ---------------------------------------------------


class CoordinatorProcess:
    """``dedup coordinator serve`` on the level's configuration, its logs in a file."""

    def __init__(self, config: Path, folder: Path) -> None:
        self.ready = folder / "coordinator.port"
        self.log_path = folder / "coordinator.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dedup.cli.main", "coordinator", "serve", "--config", str(config),
             "--ready-file", str(self.ready)],
            stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not (self.ready.exists() and self.ready.read_text().strip()):
            if self.proc.poll() is not None:
                raise RuntimeError(f"the coordinator exited with {self.proc.returncode}: {self._tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the coordinator did not start within 60 s: {self._tail()}")
            time.sleep(0.05)
        self.port = int(self.ready.read_text())

    def _tail(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-2000:]

    def status(self) -> dict[str, int]:
        """VmHWM (peak resident set) and VmRSS in KiB, from /proc."""
        out = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0])
        return out

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the whole process (all its threads), from /proc."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> int:
        """SIGTERM (the service's clean stop) and wait; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


# --- one level ---------------------------------------------------------------------------------


def _members(n: int) -> dict[str, str]:
    return {f"member-{k:02d}": f"Member archive {k:02d}" for k in range(1, n + 1)}


def _stored(database: Path) -> dict:
    """What the stopped coordinator's database holds (read-only)."""
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        per_member = dict(db.execute("SELECT member_id, COUNT(*) FROM assets GROUP BY member_id"))
        counts = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                  for t in ("assets", "batches", "matches", "proposals", "log_entries")}
        counts["clusters"] = db.execute("SELECT COUNT(DISTINCT cluster_id) FROM clusters").fetchone()[0]
        return {"per_member": per_member, **counts}
    finally:
        db.close()


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))] if s else 0.0


def fresh_consortium(folder: Path, nodes: int, settings: str = ""):
    """A new demo-style consortium of ``nodes`` members in ``folder`` (emptied first), with
    ``settings`` (TOML lines) put ahead of the coordinator's generated ones: (member ids,
    layout, the coordinator's database path)."""
    from dedup.config import load
    from dedup.coordinator.settings import CoordinatorSettings
    from dedup.demo.setup import create

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    members = _members(nodes)
    layout = create(folder, members, {m: folder / "nodes" / m / "collection" for m in members})
    if settings:
        layout.coordinator_config.write_text(settings + layout.coordinator_config.read_text())
    return members, layout, Path(load(layout.coordinator_config, CoordinatorSettings).database)


def run_level(nodes: int, per_node: int, batch_size: int, templates: list[bytes], folder: Path, seed: int,
              copy_share: float) -> dict:
    from dedup.demo.setup import point_nodes_at

    members, layout, database = fresh_consortium(folder, nodes)
    coord = CoordinatorProcess(layout.coordinator_config, layout.coordinator_config.parent)
    log(f"{nodes} nodes: coordinator pid {coord.proc.pid} serving on 127.0.0.1:{coord.port}")
    procs = []
    try:
        point_nodes_at(layout, coord.port)
        ctx = mp.get_context("spawn")
        go, results = ctx.Event(), ctx.Queue()
        ids = list(members)
        for n, m in enumerate(ids):
            p = ctx.Process(target=_node_main, name=f"node-{m}",
                            args=(n, str(layout.node_configs[m]), templates, ids, per_node, batch_size, seed,
                                  copy_share, go, results))
            p.start()
            procs.append(p)
        _collect(results, procs, "ready", READY_TIMEOUT)
        log(f"{nodes} nodes: {per_node} assets each built, signed and connected; sending")
        idle = coord.status()
        load = os.getloadavg()
        cpu0 = coord.cpu_seconds()
        t0 = time.monotonic()
        go.set()
        done = _collect(results, procs, "done", None)
        t1 = time.monotonic()
        cpu1 = coord.cpu_seconds()
        mem = coord.status()
    finally:
        code = _stop_all(coord, procs)
    if code != 0:
        raise RuntimeError(f"the coordinator did not stop cleanly (exit {code}); see {coord.log_path}")

    first = min(d["first_send"] for d in done.values())
    last = max(d["last_ack"] for d in done.values())
    wall = last - first
    assets = sum(d["assets"] for d in done.values())
    fingerprints = sum(d["fingerprints"] for d in done.values())
    batches = sum(d["batches"] for d in done.values())
    errors = [e | {"member": d["member"]} for d in done.values() for e in d["errors"]]
    accepted = sum(d["accepted"] for d in done.values())
    stored = _stored(database)
    sent_per_member = {d["member"]: d["assets"] for d in done.values()}
    stored_ok = stored["assets"] == assets == accepted and stored["per_member"] == sent_per_member
    latencies = [lat for d in done.values() for _, lat, _ in d["acks"]]
    # Acknowledged assets per quarter of the run: intake slows as the store grows.
    quarters = [0] * 4
    for d in done.values():
        for t, _, k in d["acks"]:
            quarters[min(3, int(4 * (t - first) / wall))] += k
    copies = sum(d["copies"] for d in done.values())
    report = {
        "nodes": nodes,
        "what": WHAT,
        "assets_sent": assets,
        "assets_per_node": per_node,
        "fingerprints_sent": fingerprints,
        "fingerprints_per_asset": round(fingerprints / assets, 2),
        "batches": batches,
        "batch_size": batch_size,
        "wall_seconds": round(wall, 3),
        "assets_per_second": round(assets / wall, 1),
        "fingerprints_per_second": round(fingerprints / wall, 1),
        "assets_per_second_by_quarter": [round(q / (wall / 4), 1) for q in quarters],
        "batch_latency_seconds": {"median": round(statistics.median(latencies), 4) if latencies else None,
                                  "p95": round(_pct(latencies, 0.95), 4), "max": round(max(latencies, default=0), 4)},
        "assets_acknowledged": accepted,
        "refusals": len(errors),
        "refusal_examples": errors[:5],
        "stored_assets": stored["assets"],
        "stored_ok": stored_ok,
        "stored": {k: v for k, v in stored.items() if k != "per_member"},
        "copies_sent": copies,
        "matches_reported": sum(d["new_matches"] for d in done.values()),
        "coordinator_peak_rss_mib": round(mem["VmHWM"] / 1024, 1),
        "coordinator_rss_before_mib": round(idle["VmRSS"] / 1024, 1),
        "coordinator_rss_at_end_mib": round(mem["VmRSS"] / 1024, 1),
        "coordinator_cpu_seconds": round(cpu1 - cpu0, 2),
        "coordinator_cpu_share_of_wall": round((cpu1 - cpu0) / (t1 - t0), 2),
        "nodes_cpu_seconds": round(sum(d["cpu_seconds"] for d in done.values()), 2),
        # Other work on the machine slows the run; this says how busy it was when sending began.
        "load_average_at_start": [round(x, 2) for x in load],
    }
    log(f"{nodes} nodes: {assets} assets ({fingerprints} fingerprints) in {batches} batches, {wall:.1f} s: "
        f"{report['assets_per_second']:.0f} assets/s, {report['fingerprints_per_second']:.0f} fingerprints/s; "
        f"refusals {len(errors)}; stored {stored['assets']}; matches {stored['matches']} "
        f"(copies sent {copies}); coordinator peak RSS {report['coordinator_peak_rss_mib']} MiB")
    if errors:
        raise RuntimeError(f"{len(errors)} batches were refused, e.g. {errors[:3]}")
    if not stored_ok:
        raise RuntimeError(f"stored assets {stored['per_member']} (acknowledged {accepted}) differ from those "
                           f"sent {sent_per_member}")
    return report


def _stop_all(coord: CoordinatorProcess, procs) -> int:
    """Stop the coordinator and reap the node processes; the coordinator's exit code."""
    code = coord.stop()
    for p in procs:
        p.join(timeout=30)
        if p.is_alive():
            p.terminate()
    return code


def _collect(results, procs, kind: str, timeout: float | None) -> dict:
    """One ``kind`` message from every node; fail fast if a node fails or dies."""
    got: dict[int, object] = {}
    deadline = None if timeout is None else time.monotonic() + timeout
    while len(got) < len(procs):
        try:
            what, n, payload = results.get(timeout=1.0)
        except queue.Empty:
            dead = [p.name for p in procs if p.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"node processes died: {dead}") from None
            if deadline is not None and time.monotonic() > deadline:
                raise RuntimeError(f"nodes not {kind} after {timeout:.0f} s") from None
            continue
        if what == "failed":
            raise RuntimeError(f"node {n} failed: {payload}")
        if what != kind:
            raise RuntimeError(f"node {n}: expected {kind!r}, got {what!r}")
        got[n] = payload
    return got


# --- the benchmark ----------------------------------------------------------------------------


def run(nodes_list=(2, 8), assets_per_node: int | None = None, batch_size: int | None = None,
        workdir: Path | None = None, *, assets_per_level: int = ASSETS_PER_LEVEL, copy_share: float = COPY_SHARE,
        seed: int = SEED, keep: bool = False) -> dict:
    """Measure intake at each concurrency level; return the report (see ``WHAT``).

    ``assets_per_node`` defaults to ``assets_per_level`` split evenly over the level's nodes;
    ``batch_size`` to the node's default. Raises RuntimeError if any batch is refused or the
    stored assets differ from those sent.
    """
    started = time.monotonic()
    batch_size = batch_size or default_batch_size()
    if not 1 <= batch_size <= coordinator_max_batch():
        raise ValueError(f"batch size must be 1 to {coordinator_max_batch()}, the coordinator's limit")
    if not 0 <= copy_share <= 0.5:
        raise ValueError("copy share must be between 0 and 0.5")
    own = workdir is None
    root = Path(tempfile.mkdtemp(prefix="dedup-intake-")) if own else Path(workdir)
    root.mkdir(parents=True, exist_ok=True)
    log(f"work folder {root}")
    try:
        t = time.monotonic()
        templates = base_records(root / "base-images", seed)
        log(f"base fingerprint sets: {len(templates)} images read in {time.monotonic() - t:.1f} s")
        levels = []
        for nodes in nodes_list:
            per_node = assets_per_node or max(1, assets_per_level // nodes)
            levels.append(run_level(nodes, per_node, batch_size, templates, root / f"nodes-{nodes}", seed,
                                    copy_share))
    finally:
        if own and not keep:
            shutil.rmtree(root, ignore_errors=True)
    return {
        "benchmark": "intake",
        "date": now_iso(),
        "command": COMMAND,
        "duration_seconds": round(time.monotonic() - started, 1),
        "machine": machine(),
        "versions": versions("grpcio", "protobuf", "numpy", "cryptography"),
        "code": code_state(entries=("bench.intake", "dedup.cli.main")),
        "setup": {
            "coordinator": "one `dedup coordinator serve` process (its default gRPC worker threads), mutual TLS "
                           "on 127.0.0.1, SQLite (WAL, synchronous=FULL) in a fresh folder per level; "
                           "its JSON logs go to a file",
            "nodes": "one spawned process per node, each with its own TLS certificate, signing key, node catalogue "
                     "and gRPC channel (connected before timing); batches built and signed with "
                     "node.push.make_batches before timing, then sent one after another with SubmitBatch, all "
                     "nodes at once; the clients share the machine's cores with the coordinator",
            "assets": f"each from one of {len(templates)} real fingerprint sets (crops and rescales of "
                      f"scikit-image's photographs, read with read_image), XORed with per-asset random masks, "
                      f"with random file and pixel digests; {copy_share:.0%} of each node's assets are "
                      f"re-encoded copies of another node's asset (hashes a few bits off), one match each",
            "batch_size": batch_size,
            "copy_share": copy_share,
            "seed": seed,
        },
        "levels": levels,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.intake",
        description="Intake throughput of the coordinator: N member nodes (processes) push signed fingerprint "
                    "batches at once over mutual TLS to a real coordinator process with a SQLite store; reports "
                    "assets and fingerprints per second, refusals, whether every asset was stored, and the "
                    "coordinator's peak memory, for each number of nodes. Prints the report as JSON on stdout "
                    "and progress on stderr.",
        epilog=f"Defaults: {ASSETS_PER_LEVEL} assets per level split over its nodes, the node's batch size "
               f"({default_batch_size()}), {COPY_SHARE:.0%} cross-member copies; about 1-2 minutes on 2 cores. "
               "Exits non-zero if a batch is refused or the store does not hold every asset sent.")
    ap.add_argument("--nodes", type=int, nargs="+", default=[2, 8], metavar="N",
                    help="concurrency levels: how many nodes send at once (default: 2 8)")
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--assets-per-node", type=int, metavar="K", help="assets each node sends (default: "
                      "--assets-per-level split evenly over the level's nodes)")
    size.add_argument("--assets-per-level", type=int, default=ASSETS_PER_LEVEL, metavar="K",
                      help=f"assets sent in all at each level (default: {ASSETS_PER_LEVEL})")
    ap.add_argument("--batch-size", type=int, metavar="B", help="assets per signed batch (default: the node's "
                    f"default, {default_batch_size()}; the coordinator takes up to {coordinator_max_batch()})")
    ap.add_argument("--copy-share", type=float, default=COPY_SHARE, metavar="F",
                    help=f"share of each node's assets that copy another node's asset (default: {COPY_SHARE})")
    ap.add_argument("--seed", type=int, default=SEED, help="seed for the generated assets")
    ap.add_argument("--workdir", type=Path, help="folder for the consortia, catalogues and databases "
                    "(kept; default: a temporary folder, removed afterwards)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is logged)")
    args = ap.parse_args(argv)
    if any(n < 1 for n in args.nodes):
        ap.error("--nodes must be positive")
    if args.batch_size is not None and not 1 <= args.batch_size <= coordinator_max_batch():
        ap.error(f"--batch-size must be 1 to {coordinator_max_batch()}")
    if not 0 <= args.copy_share <= 0.5:
        ap.error("--copy-share must be between 0 and 0.5")
    report = run(args.nodes, args.assets_per_node, args.batch_size, args.workdir,
                 assets_per_level=args.assets_per_level, copy_share=args.copy_share, seed=args.seed, keep=args.keep)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
