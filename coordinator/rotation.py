"""Rotating the log's signing key (`dedup coordinator rotate-log-key`).

The outgoing key signs a ``LogKeyRotated`` entry naming the new key; the checkpoint covering that
entry, and everything after it, is signed by the new key. Entry, checkpoint and the store's record
of the current key are written in one transaction. Witnesses that trusted the old key learn the
new one from that entry, so the old key is needed for this one entry only.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from dedup import pki
from dedup.config import load
from dedup.note import NoteError, NoteSigner

from .log import LOG_KEY_META, TransparencyLog
from .settings import CoordinatorSettings
from .store import Store

_LOG_KEY_LINE = re.compile(r"^log_key\s*=.*$", re.MULTILINE)


class RotationError(Exception):
    """The rotation cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class Rotation:
    entry_index: int | None  # None when the log had already rotated to this key
    old_key: str
    new_key: str
    new_key_file: Path
    generated: bool


def _new_signer(path: Path, name: str) -> tuple[NoteSigner, bool]:
    if path.exists():
        try:
            return NoteSigner.from_string(path.read_text(encoding="utf-8").strip()), False
        except (OSError, NoteError) as exc:
            raise RotationError(f"{path} is not a log signer key: {exc}") from exc
    signer = NoteSigner.generate(name)
    pki.write_private(path, (signer.to_string() + "\n").encode())
    return signer, True


def point_config_at(config: Path, key_file: Path) -> None:
    """Rewrite the top-level ``log_key`` line of ``config`` to name ``key_file`` (other lines untouched)."""
    text = config.read_text(encoding="utf-8")
    head = re.split(r"^\s*\[", text, maxsplit=1, flags=re.MULTILINE)[0]  # top-level keys come before any table
    if len(_LOG_KEY_LINE.findall(head)) != 1:
        raise RotationError(f"cannot find one top-level `log_key = ...` line in {config}; set log_key to "
                            f"{key_file} by hand")
    key_file = key_file.resolve()
    try:
        value = key_file.relative_to(config.resolve().parent).as_posix()
    except ValueError:
        value = str(key_file)
    new_head = _LOG_KEY_LINE.sub(lambda _: f"log_key = {json.dumps(value)}", head, count=1)
    tmp = config.with_name(config.name + ".tmp")
    tmp.write_text(new_head + text[len(head):], encoding="utf-8")
    os.replace(tmp, config)


def rotate_log_key(config: Path, new_key_file: Path, reason: str, clock=time.time) -> Rotation:
    settings = load(config, CoordinatorSettings)
    old = NoteSigner.from_string(settings.log_key.read_text(encoding="utf-8").strip())
    new, generated = _new_signer(new_key_file, old.name)
    if new.name != old.name:
        raise RotationError(f"the new key is named {new.name!r}; the log key keeps its name {old.name!r}")
    if new.key_id == old.key_id:
        raise RotationError(f"{new_key_file} holds the current log key; give a new key (or a path to create one at)")
    store = Store(settings.database)
    try:
        if store.meta(LOG_KEY_META) == new.verifier().to_string():
            # Rotated before, but the configuration was not updated (interrupted): finish that.
            index = None
        else:
            log = TransparencyLog(store, old, settings.log_origin)
            index = log.rotate_key(new, reason, int(clock()))
    finally:
        store.close()
    point_config_at(config, new_key_file)
    if load(config, CoordinatorSettings).log_key.resolve() != new_key_file.resolve():
        raise RotationError(f"{config} does not name {new_key_file} after the update; set log_key by hand")
    return Rotation(index, old.verifier().to_string(), new.verifier().to_string(), new_key_file.resolve(), generated)
