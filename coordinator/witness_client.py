"""The coordinator as a C2SP tlog-witness client: it sends its checkpoints to the witnesses named
in its configuration and keeps the cosignatures they return (SPEC.md 8.4).

Members witness by pulling (`dedup node witness`); witnesses that speak the public protocol
(a member's `dedup node witness-serve`, litewitness, the public witness network) are pushed to.
For each, the client remembers the size it last cosigned (unknown at start: it asks with size
0 and learns the witness's size from the 409 answer), sends the latest checkpoint with a
consistency proof from there, checks the returned line with the configured key and stores it
exactly as a member's cosignature is stored, so every checkpoint served afterwards carries it.
Nothing here blocks intake: it runs in a thread of its own, between checkpoints.
"""

from __future__ import annotations

import logging
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass

from dedup.cosignature import CosignatureError, CosignatureVerifier, cosignatures
from dedup.jsonlog import event
from dedup.note import NoteError, split_note
from dedup.tlog_witness import AddCheckpoint, cosignature_lines, parse_size

from .refusal import Refusal
from .settings import WitnessSettings
from .witnessing import consistency_proof

log = logging.getLogger("dedup.coordinator")

#: Seconds to wait for one witness's answer.
TIMEOUT_SECONDS = 10.0


@dataclass
class _Witness:
    url: str
    verifier: CosignatureVerifier
    #: The size it last cosigned, as far as this coordinator knows (0: unknown or none).
    size: int = 0


class WitnessClient:
    def __init__(self, core, witnesses: list[WitnessSettings], interval: float, metrics=None) -> None:
        self.core = core
        self.metrics = metrics
        self.witnesses = [_Witness(w.url, CosignatureVerifier.from_string(w.key)) for w in witnesses]
        self.interval = interval
        self._stop = threading.Event()
        self._sending = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="dedup-witnesses", daemon=True)

    def start(self) -> None:
        if self.witnesses:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.send_all()

    def send_all(self) -> dict[str, str]:
        """Send the latest checkpoint to every witness that has not cosigned it: name -> outcome."""
        with self._sending:  # one round at a time: each witness's size is the client's own
            latest = self.core.store.latest_checkpoint()
            if latest is None:
                return {}
            return {w.verifier.name: self.send(w, latest[0]) for w in self.witnesses}

    def send(self, w: _Witness, size: int) -> str:
        """One witness, the checkpoint of ``size``: 'cosigned', 'current', or what went wrong."""
        if w.size == size and size:
            return "current"
        for _ in range(2):  # a 409 says the witness's size: once more from there
            try:
                _, proof, note = consistency_proof(self.core, w.size, size)
            except Refusal as r:
                # The witness's size is no checkpoint this log published: it follows another log
                # of this name, or this log lost history. Either way it is for a person to see.
                return self._failed(w, size, f"cannot prove consistency from the witness's size {w.size}: {r.message}")
            body = AddCheckpoint(w.size, tuple(proof), _log_signed(note)).to_body()
            status, answer = _post(w.url, body)
            if status == 200:
                return self._store(w, size, note, answer)
            if status == 409:
                try:
                    w.size = parse_size(answer)
                except ValueError:
                    return self._failed(w, size, "409 without the witness's size")
                if w.size == size:
                    return "current"  # it cosigned this checkpoint before (a restart forgot)
                continue
            return self._failed(w, size, f"HTTP {status}: {answer[:200].decode('utf-8', 'replace').strip()}")
        return self._failed(w, size, "the witness moved on between two answers")

    def _store(self, w: _Witness, size: int, note: str, answer: bytes) -> str:
        try:
            lines = cosignature_lines(answer)
            text = split_note(note)[0]
            mine = [cosig for cosig in cosignatures(note + "".join(lines), [w.verifier])]
        except (ValueError, NoteError, CosignatureError) as exc:
            return self._failed(w, size, f"its answer holds no valid cosignature by its key: {exc}")
        if not mine:
            return self._failed(w, size, "its answer holds no cosignature by its configured key")
        line = next(ln for ln in lines if _is_by(ln, w.verifier, text))
        with self.core.lock:  # the store's connection is shared with intake
            self.core.store.put_cosignature(size, w.verifier.name, line, mine[0].timestamp)
        w.size = size
        event(log, "cosignature", witness=w.verifier.name, tree_size=size, via="tlog-witness")
        if self.metrics is not None:
            self.metrics.cosignatures.labels("accepted").inc()
        return "cosigned"

    def _failed(self, w: _Witness, size: int, problem: str) -> str:
        event(log, "witness refused", logging.WARNING, witness=w.verifier.name, url=w.url, tree_size=size,
              problem=problem)
        if self.metrics is not None:
            self.metrics.cosignatures.labels("refused").inc()
        return problem


def _log_signed(note: str) -> str:
    """The checkpoint with the log's signature only: other witnesses' cosignatures are not this
    witness's business (and keep the request small)."""
    text, sigs = split_note(note)
    return text + "\n" + sigs[0].to_line()


def _is_by(line: str, verifier: CosignatureVerifier, text: str) -> bool:
    try:
        return bool(cosignatures(text + "\n" + line, [verifier]))
    except (CosignatureError, NoteError):
        return False


def _post(url: str, body: bytes) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "text/plain"})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_SECONDS) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except (urllib.error.URLError, OSError) as err:
        return 0, f"unreachable: {getattr(err, 'reason', err)}".encode()
