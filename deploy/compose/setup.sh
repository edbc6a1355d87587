#!/bin/sh
# Make what docker-compose.yml mounts, in deploy/consortium/ (or $1): the consortium PKI, each
# member's keys (made as on its own node), the coordinator's configuration with both members, the database password, and empty collections.
# Run from deploy/:  sh compose/setup.sh    (DEDUP names the dedup command; default: dedup)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out="${1:-$here/../consortium}"
dedup="${DEDUP:-dedup}"
origin=$(sed -n 's/^log_origin = "\(.*\)"$/\1/p' "$here/coordinator.toml")

$dedup pki init "$out/pki" --origin "$origin" --server-name coordinator
for member in member-a member-b; do
    # Each member makes its own keys (nodes/MEMBER stands for its machine); the records service
    # certifies the request, and the member installs what comes back.
    $dedup pki request "$member" --dir "$out/nodes/$member"
    $dedup pki issue "$member" --dir "$out/pki" --request "$out/nodes/$member/$member.request" \
        --name "Member ${member#member-}" --coordinator coordinator:7443
    $dedup pki install "$out/pki/members/$member" --dir "$out/nodes/$member"
    mkdir -p "$out/collections/$member"
done
{ cat "$here/coordinator.toml"; echo; cat "$out"/pki/members/*/member.toml; } > "$out/coordinator.toml"

umask 077
password=$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')
printf 'POSTGRES_USER=dedup\nPOSTGRES_DB=dedup\nPOSTGRES_PASSWORD=%s\n' "$password" > "$out/postgres.env"
printf 'DEDUP_COORDINATOR__DATABASE=postgresql://dedup:%s@postgres:5432/dedup\n' "$password" > "$out/coordinator.env"
# The containers run as uid 10001; the keys stay readable by that owner only.
if [ "$(id -u)" = 0 ]; then chown -R 10001:10001 "$out"; fi
echo "consortium material in $out; put each member's photographs in $out/collections/MEMBER, then: docker compose up -d"
