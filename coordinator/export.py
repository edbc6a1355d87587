"""Write the log export an auditor verifies (format in dedup/export.py)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from dedup.export import PUBLIC_KEY, ENTRIES, write_checkpoint, write_entries

from .log import with_cosignatures
from .store import Store


def export_log(store: Store, out: Path, verifier_key: str) -> tuple[int, int]:
    """Export every entry up to the latest checkpoint, and every checkpoint; return (entries, checkpoints).

    Written to a sibling temporary folder and renamed into place, so a reader never sees
    a half-written export.
    """
    latest = store.latest_checkpoint()
    if latest is None:
        raise ValueError("the log has no checkpoint yet")
    size = latest[0]
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=out.parent))
    try:
        with open(tmp / ENTRIES, "wb") as f:
            step = 10_000
            for start in range(0, size, step):
                write_entries(f, store.log_entries(start, min(size, start + step)))
            f.flush()
            os.fsync(f.fileno())
        checkpoints = [(s, n) for s, n in store.checkpoints() if s <= size]
        for s, note in checkpoints:
            # As served: with the members' cosignatures, which auditors may require a quorum of.
            write_checkpoint(tmp, s, with_cosignatures(store, s, note))
        (tmp / PUBLIC_KEY).write_text(verifier_key + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return size, len(checkpoints)
