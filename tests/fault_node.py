"""A member node for the fault tests, run as a process of its own: it adds a few records to its
catalogue and pushes them (node.push.push, with its backoff), round after round, until the
stop file appears; then it pushes until nothing is pending and writes a JSON summary.

Usage: fault_node.py NODE_TOML STOP_FILE RESULT_JSON PER_ROUND SEED MEMBER,MEMBER,...
A tenth of each round's records are near copies of another member's, so intake also records
matches and proposals while the coordinator is being killed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from conftest import asset, fingerprint, near
from dedup.config import load
from dedup.node.catalogue import Catalogue
from dedup.node.push import push
from dedup.node.settings import NodeSettings


def main() -> int:
    config, stop, result, per_round, seed, members = sys.argv[1:7]
    per_round, seed, members = int(per_round), int(seed), members.split(",")
    settings = load(Path(config), NodeSettings)
    me = members.index(settings.member_id)
    cat = Catalogue(settings.catalogue)
    stop = Path(stop)
    made = pushes = unreachable = retries = 0
    started = time.monotonic()
    while True:
        stopping = stop.exists()
        if not stopping:
            now = int(time.time())
            with cat.transaction() as db:
                for _ in range(per_round):
                    i = made
                    made += 1
                    if i % 10 == 5:  # a copy of the next member's record i-5
                        fp = near(fingerprint(seed + ((me + 1) % len(members)) * 100_000 + i - 5), 3, i)
                    else:
                        fp = fingerprint(seed + me * 100_000 + i)
                    a = asset(f"{settings.member_id}-{i:06d}", fp)
                    cat.put_file(db, {"path": f"/photos/{i:06d}.tif", "size": 1, "mtime_ns": i, "asset_id": a.asset_id,
                                      "scanned_unix": now, "record": a.SerializeToString(deterministic=True)})
        summary = push(settings, cat)
        pushes += 1
        retries += summary.retries
        if summary.refused:
            print(json.dumps({"refused": summary.refused}), flush=True)
            return 1
        if summary.unreachable:
            unreachable += 1
            time.sleep(0.2)
            continue
        if stopping and not cat.pending_batches() and not cat.unpushed():
            break
        time.sleep(0.05)  # a node pushes now and then, not in a tight loop
    Path(result).write_text(json.dumps({"member": settings.member_id, "records": made, "pushes": pushes,
                                        "pushes_cut_short": unreachable, "retries": retries,
                                        "seconds": round(time.monotonic() - started, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
