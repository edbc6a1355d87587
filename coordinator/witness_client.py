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
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from dedup.cosignature import Cosignature, CosignatureError, CosignatureVerifier, cosignatures
from dedup.jsonlog import event
from dedup.note import NoteError, split_note
from dedup.tlog_witness import AddCheckpoint, cosignature_lines, parse_size

from .refusal import Refusal
from .settings import WitnessSettings
from .witnessing import MAX_FUTURE_SECONDS, consistency_proof

log = logging.getLogger("dedup.coordinator")

#: Seconds to wait for one witness's answer.
TIMEOUT_SECONDS = 10.0
#: The longest wait before trying again a witness that refused or could not be reached: each
#: failure in a row doubles the wait from the interval up to this.
MAX_BACKOFF_SECONDS = 600.0


@dataclass
class _Witness:
    url: str
    verifier: CosignatureVerifier
    #: The size it last cosigned, as far as this coordinator knows (0: unknown or none).
    size: int = 0
    #: Failures in a row, and when (time.monotonic) to try again after the last one.
    failures: int = 0
    retry_at: float = 0.0


class WitnessClient:
    def __init__(self, core, witnesses: list[WitnessSettings], interval: float, metrics=None,
                 clock=time.monotonic) -> None:
        self.core = core
        self.metrics = metrics
        self.witnesses = [_Witness(w.url, CosignatureVerifier.from_string(w.key)) for w in witnesses]
        self.interval = interval
        self.clock = clock
        self._stop = threading.Event()
        self._sending = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="dedup-witnesses", daemon=True)

    def start(self) -> None:
        if self.witnesses:
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread; a request under way is let finish (at most TIMEOUT_SECONDS)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.send_all()
            except Exception as exc:  # noqa: BLE001 - a store outage must not end witnessing for good
                event(log, "witnesses not reached", logging.WARNING, problem=repr(exc))

    def send_all(self) -> dict[str, str]:
        """Send the latest checkpoint to every witness that has not cosigned it and is not
        waiting out a failure: name -> outcome."""
        with self._sending:  # one round at a time: each witness's size is the client's own
            latest = self.core.store.latest_checkpoint()
            if latest is None:
                return {}
            out = {}
            for w in self.witnesses:
                if self._stop.is_set():
                    break
                now = self.clock()
                if w.retry_at > now:
                    failures = f"{w.failures} failure{'s' if w.failures > 1 else ''}"
                    out[w.verifier.name] = f"backing off for {w.retry_at - now:.0f} s after {failures}"
                    continue
                out[w.verifier.name] = self.send(w, latest[0])
            return out

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
                if w.size == size and _cosigned_by(note, w.verifier):
                    return self._current(w)  # it cosigned this checkpoint before (a restart forgot)
                # Else from its size; its own size again if its answer to that was lost: the same
                # checkpoint is cosigned again.
                continue
            return self._failed(w, size, f"HTTP {status}: {answer[:200].decode('utf-8', 'replace').strip()}")
        return self._failed(w, size, "the witness moved on between two answers")

    def _store(self, w: _Witness, size: int, note: str, answer: bytes) -> str:
        try:
            lines = cosignature_lines(answer)
            text = split_note(note)[0]
            # Lines by other keys are ignored (the spec's rule); one by this key that fails is not.
            mine = [(ln, c) for ln in lines if (c := _by(text, ln, w.verifier)) is not None]
        except (ValueError, NoteError, CosignatureError) as exc:
            return self._failed(w, size, f"its answer holds no valid cosignature by its key: {exc}")
        if not mine:
            return self._failed(w, size, "its answer holds no cosignature by its configured key")
        line, cosig = mine[0]
        timestamp = cosig.timestamp
        now = int(self.core.clock())
        if timestamp > now + MAX_FUTURE_SECONDS:
            # As for a member's AddCosignature: a time ahead of every clock would mislead auditors.
            return self._failed(w, size, f"its cosignature's time {timestamp} is {timestamp - now} s ahead of this "
                                         f"coordinator's clock (at most {MAX_FUTURE_SECONDS} s allowed)")
        with self.core.lock:  # the store's connection is shared with intake
            self.core.store.put_cosignature(size, w.verifier.name, line, timestamp)
        w.size = size
        event(log, "cosignature", witness=w.verifier.name, tree_size=size, via="tlog-witness")
        if self.metrics is not None:
            self.metrics.cosignatures.labels("accepted").inc()
        return self._current(w, "cosigned")

    def _current(self, w: _Witness, outcome: str = "current") -> str:
        w.failures, w.retry_at = 0, 0.0
        return outcome

    def _failed(self, w: _Witness, size: int, problem: str) -> str:
        w.failures += 1
        backoff = min(self.interval * 2 ** min(w.failures - 1, 32), MAX_BACKOFF_SECONDS)
        w.retry_at = self.clock() + backoff
        event(log, "witness refused", logging.WARNING, witness=w.verifier.name, url=w.url, tree_size=size,
              problem=problem, failures=w.failures, retry_in_seconds=round(backoff))
        if self.metrics is not None:
            self.metrics.cosignatures.labels("refused").inc()
        return problem


def _log_signed(note: str) -> str:
    """The checkpoint with the log's signature only: other witnesses' cosignatures are not this
    witness's business (and keep the request small)."""
    text, sigs = split_note(note)
    return text + "\n" + sigs[0].to_line()


def _cosigned_by(note: str, verifier: CosignatureVerifier) -> bool:
    """Whether the stored checkpoint ``note`` already carries a valid cosignature by ``verifier``."""
    try:
        return bool(cosignatures(note, [verifier]))
    except (CosignatureError, NoteError):
        return False


def _by(text: str, line: str, verifier: CosignatureVerifier) -> Cosignature | None:
    """The cosignature ``line`` holds by ``verifier`` over ``text``; None if the line is another
    key's; CosignatureError if it is this key's and fails."""
    got = cosignatures(text + "\n" + line, [verifier])
    return got[0] if got else None


def _post(url: str, body: bytes) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "text/plain"})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_SECONDS) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except (urllib.error.URLError, OSError) as err:
        return 0, f"unreachable: {getattr(err, 'reason', err)}".encode()
