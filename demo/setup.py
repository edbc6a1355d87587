"""Throwaway consortium material for the demo: a CA, keys, certificates and configuration files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tomli_w

from dedup import pki

LOG_ORIGIN = "demo.dedup.local/log"
SERVER_NAME = "coordinator"


@dataclass(frozen=True)
class Layout:
    root: Path
    coordinator_config: Path
    log_public_key: Path
    node_configs: dict[str, Path]
    export: Path


def create(root: Path, members: dict[str, str], collections: dict[str, Path]) -> Layout:
    """Write keys and configs for a coordinator and one node per member under ``root``.

    ``members`` maps member id to display name; ``collections`` maps member id to the folder
    that member's node scans. The coordinator listens on a port the OS picks.
    """
    # The same files and formats `dedup pki init`, `request`, `issue` and `install` write.
    ca = pki.write_ca(root / "pki", "demo consortium CA")
    cdir = root / "coordinator"
    pki.write_server_tls(ca, cdir, SERVER_NAME, dns_names=("localhost",), ip_addresses=("127.0.0.1",))
    log_key = pki.write_log_key(cdir, LOG_ORIGIN)
    log_pub = root / pki.LOG_PUB
    log_pub.write_text(log_key.verifier().to_string() + "\n")

    member_entries = []
    node_configs = {}
    for priority, (mid, name) in enumerate(members.items(), start=1):
        ndir = pki.private_dir(root / "nodes" / mid)
        # The node makes its own keys; the records service sees and certifies only the request.
        tls_key = pki.new_tls_key()
        signer = pki.write_member_key(ndir, mid)
        pki.write_key(ndir / pki.TLS_KEY, tls_key)
        request = pki.read_request(pki.make_request(mid, tls_key, signer))
        pki.write_cert(ndir / pki.TLS_CERT, pki.issue_member(ca, request))
        member_entries.append({"id": mid, "name": name, "public_key": signer.verifier().to_string(),
                               "custodial_priority": priority * 10})
        cfg = {
            "member_id": mid,
            "catalogue": "catalogue.sqlite",
            "signing_key": "signing.key",
            "roots": [str(collections[mid])],
            "tls": {"ca": "../../pki/ca.pem", "cert": "tls.pem", "key": "tls.key"},
            # The coordinator's address is filled in once it has bound its port.
            "coordinator": {"address": "127.0.0.1:0", "server_name": SERVER_NAME, "timeout_seconds": 30.0},
            # Each node witnesses the log after its push, trusting the published log key.
            "log_verifier_key": "../../log.pub",
        }
        node_configs[mid] = ndir / "node.toml"
        node_configs[mid].write_text(tomli_w.dumps(cfg))

    ccfg = {
        "listen": "127.0.0.1:0",
        "database": "coordinator.sqlite",
        "log_key": "log.key",
        "log_origin": LOG_ORIGIN,
        "tls": {"ca": "../pki/ca.pem", "cert": "tls.pem", "key": "tls.key"},
        "members": member_entries,
    }
    (cdir / "coordinator.toml").write_text(tomli_w.dumps(ccfg))
    return Layout(root, cdir / "coordinator.toml", log_pub, node_configs, root / "log-export")


def point_nodes_at(layout: Layout, port: int) -> None:
    """Rewrite each node's coordinator address once the coordinator's port is known."""
    for path in layout.node_configs.values():
        path.write_text(path.read_text().replace('address = "127.0.0.1:0"', f'address = "127.0.0.1:{port}"'))
