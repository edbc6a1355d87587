#!/bin/sh
# A member node in a container: scan and push now, then every DEDUP_SCAN_INTERVAL_SECONDS
# (containers have no timer; on a plain server use deploy/systemd instead). A push that cannot
# reach the coordinator (exit 3) leaves its batches pending; the next round resends them.
set -u
interval="${DEDUP_SCAN_INTERVAL_SECONDS:-86400}"
while :; do
    dedup node scan --quiet --json || echo "dedup-node-loop: scan exited $?" >&2
    dedup node push --json || echo "dedup-node-loop: push exited $?" >&2
    sleep "$interval"
done
