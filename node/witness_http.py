"""A member node as a C2SP tlog-witness endpoint (`dedup node witness-serve`; SPEC.md 8.4).

The coordinator (or any log this node trusts) POSTs its new checkpoint with a consistency proof
from the size this node last cosigned; the node checks it exactly as `dedup node witness` does
and answers with its cosignature. Both paths keep one record per log in the catalogue
(`witness_state`), compared and advanced in one transaction, so neither can roll the other
back, and a contradicting checkpoint leaves the same evidence file.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace

from dedup.checkpoint import Checkpoint
from dedup.cosignature import CosignatureSigner
from dedup.jsonlog import event
from dedup.note import NoteVerifier, split_note
from dedup.tlog_witness import PATH, SIZE_CONTENT_TYPE, AddCheckpoint, Rejection, decide, size_body, MAX_BODY_BYTES

from .catalogue import Catalogue
from .push import load_signer
from .settings import NodeSettings
from .witness import _write_evidence, trusted_keys

log = logging.getLogger("dedup.node")

#: Where `dedup node witness-serve` listens unless told: loopback, for a reverse proxy with TLS
#: in front (the protocol authenticates the checkpoint, not the caller).
DEFAULT_LISTEN = "127.0.0.1:7380"
#: Seconds a connection may take to send its request: the server answers one at a time.
REQUEST_TIMEOUT_SECONDS = 30
TEXT = "text/plain; charset=utf-8"


def trusted_logs(settings: NodeSettings, catalogue: Catalogue) -> dict[str, list[NoteVerifier]]:
    """origin -> the log keys this node trusts (`dedup node witness` learns rotations)."""
    origin, keys = trusted_keys(settings, catalogue)
    return {origin: keys}


def add_checkpoint(settings: NodeSettings, catalogue: Catalogue, signer: CosignatureSigner, body: bytes,
                   clock=time.time) -> tuple[int, str, bytes]:
    """Answer one add-checkpoint request: (HTTP status, content type, body)."""
    try:
        request = AddCheckpoint.parse(body)
        presented = request.checkpoint()
        logs = trusted_logs(settings, catalogue)

        def check(state):
            cp = decide(request, logs, (state[0], state[1]) if state else None)
            return cp.size, cp.root_hash, request.signed_checkpoint

        try:
            catalogue.advance_witness(presented.origin, check)
        except Rejection as r:
            if r.evidence:
                _evidence(settings, catalogue, request, presented, r.message)
            raise
    except Rejection as r:
        event(log, "checkpoint refused", logging.WARNING, member=settings.member_id, status=r.status,
              problem=r.message)
        if r.status == 409:
            return 409, SIZE_CONTENT_TYPE, size_body(r.size)
        return r.status, TEXT, (r.message + "\n").encode()
    except sqlite3.OperationalError as exc:
        # The catalogue is busy (a push or scan holds it) or unwritable: nothing was recorded or
        # cosigned, and the log may simply send again.
        event(log, "checkpoint not witnessed", logging.WARNING, member=settings.member_id, problem=str(exc))
        return 503, TEXT, f"the witness cannot record now ({exc}); send again later\n".encode()
    line = signer.cosign(split_note(request.signed_checkpoint)[0], int(clock())).to_line()
    event(log, "witnessed", member=settings.member_id, size=presented.size, previous_size=request.old_size,
          via="tlog-witness")
    return 200, TEXT, line.encode("utf-8")


def _evidence(settings: NodeSettings, catalogue: Catalogue, request: AddCheckpoint, cp: Checkpoint,
              problem: str) -> None:
    """The log contradicted the record: keep both checkpoints and the proof, as the pull witness does."""
    state = catalogue.witness_state(cp.origin)
    proof = SimpleNamespace(old_size=request.old_size, new_size=cp.size, hashes=list(request.proof),
                            signed_checkpoint=request.signed_checkpoint)
    path = _write_evidence(settings, problem, cp.origin, state, request.signed_checkpoint, cp, proof)
    event(log, "inconsistent log", logging.ERROR, member=settings.member_id, problem=problem, evidence=str(path),
          via="tlog-witness")


class WitnessServer(HTTPServer):
    """Serves POST <prefix>/add-checkpoint. One request at a time: a member's witness sees few
    logs, and the catalogue's transaction orders it with `dedup node witness` runs anyway."""

    def __init__(self, listen: str, settings: NodeSettings, prefix: str = "") -> None:
        host, _, port = listen.rpartition(":")
        self.settings = settings
        self.path_served = prefix.rstrip("/") + PATH
        self.signer = CosignatureSigner(settings.member_id, load_signer(settings).private_key)
        self._catalogue: Catalogue | None = None
        self._owner: int | None = None
        super().__init__((host.strip("[]") or "127.0.0.1", int(port)), _Handler)

    @property
    def catalogue(self) -> Catalogue:
        # Opened by the serving thread: an SQLite connection stays with the thread that made it.
        if self._catalogue is None or self._owner != threading.get_ident():
            self._catalogue, self._owner = Catalogue(self.settings.catalogue), threading.get_ident()
        return self._catalogue

    def handle_error(self, request, client_address) -> None:
        # A client that stalled or hung up (the timeout above): one line, not a traceback.
        event(log, "witness request failed", logging.WARNING, client=str(client_address[0]),
              problem=repr(sys.exc_info()[1]))

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}{self.path_served}"


class _Handler(BaseHTTPRequestHandler):
    server: WitnessServer
    server_version = "dedup-witness"
    timeout = REQUEST_TIMEOUT_SECONDS  # a stalled client must not hold the witness

    def do_POST(self) -> None:  # noqa: N802 - the http.server name
        if self.path != self.server.path_served:
            return self._send(404, TEXT, b"not found: this witness serves add-checkpoint\n")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            return self._send(411, TEXT, b"a Content-Length is required\n")
        if not 0 <= length <= MAX_BODY_BYTES:
            return self._send(400, TEXT, f"request body over {MAX_BODY_BYTES} bytes\n".encode())
        body = self.rfile.read(length)
        self._send(*add_checkpoint(self.server.settings, self.server.catalogue, self.server.signer, body))

    def do_GET(self) -> None:  # noqa: N802
        self._send(405, TEXT, b"add-checkpoint takes POST\n")

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the http.server signature
        pass  # each request is logged by add_checkpoint, as structured events
