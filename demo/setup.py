"""Throwaway consortium material for the demo: a CA, keys, certificates and configuration files."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from dedup import pki
from dedup.cosignature import CosignatureVerifier

LOG_ORIGIN = "demo.dedup.local/log"
SERVER_NAME = "coordinator"
#: HK$ per GB-month for the members' reports. Preservation storage, counted with its replicas,
#: backups and fixity checking, costs several times a bare cloud disk (the node's default).
PRICE_PER_GB_MONTH = (1.0, 3.0)
#: Cosignatures a checkpoint needs before a member treats the proofs citing it as final: a
#: majority of the three members, so no single member (nor the coordinator) vouches alone.
WITNESS_QUORUM = 2


@dataclass(frozen=True)
class Layout:
    root: Path
    coordinator_config: Path
    log_public_key: Path
    node_configs: dict[str, Path]
    export: Path
    #: Each member's cosigner verifier key (C2SP vkey), as the consortium publishes them for
    #: anyone checking the witnesses' cosignatures on a proof.
    witness_keys: dict[str, Path]


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
    witness_keys = {}
    (root / "witnesses").mkdir(parents=True, exist_ok=True)
    for priority, (mid, name) in enumerate(members.items(), start=1):
        ndir = pki.private_dir(root / "nodes" / mid)
        # The node makes its own keys; the records service sees and certifies only the request.
        tls_key = pki.new_tls_key()
        signer = pki.write_member_key(ndir, mid)
        pki.write_key(ndir / pki.TLS_KEY, tls_key)
        request = pki.read_request(pki.make_request(mid, tls_key, signer))
        pki.write_cert(ndir / pki.TLS_CERT, pki.issue_member(ca, request))
        # A member witnesses the log with its statement key, under its member id (SPEC 8.2).
        witness_keys[mid] = root / "witnesses" / f"{mid}.vkey"
        witness_keys[mid].write_text(CosignatureVerifier(mid, signer.verifier().public_key).to_string() + "\n")
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
            "price_per_gb_month": list(PRICE_PER_GB_MONTH),
        }
        node_configs[mid] = ndir / "node.toml"
        node_configs[mid].write_text(tomli_w.dumps(cfg))
    for mid, path in node_configs.items():
        # Each node counts the other members' cosignatures (SPEC 8.2, finality).
        cfg = tomllib.loads(path.read_text())
        # Keys inline, not paths: a copied configuration (as the tests make) keeps working.
        cfg["witnesses"] = [witness_keys[other].read_text().strip() for other in members if other != mid]
        # A smaller consortium (the fault tests run one member) counts what it has.
        cfg["witness_quorum"] = min(WITNESS_QUORUM, len(cfg["witnesses"]))
        path.write_text(tomli_w.dumps(cfg))

    ccfg = {
        "listen": "127.0.0.1:0",
        "database": "coordinator.sqlite",
        "log_key": "log.key",
        "log_origin": LOG_ORIGIN,
        "tls": {"ca": "../pki/ca.pem", "cert": "tls.pem", "key": "tls.key"},
        "members": member_entries,
    }
    (cdir / "coordinator.toml").write_text(tomli_w.dumps(ccfg))
    return Layout(root, cdir / "coordinator.toml", log_pub, node_configs, root / "log-export", witness_keys)


def point_nodes_at(layout: Layout, port: int) -> None:
    """Rewrite each node's coordinator address once the coordinator's port is known."""
    for path in layout.node_configs.values():
        path.write_text(path.read_text().replace('address = "127.0.0.1:0"', f'address = "127.0.0.1:{port}"'))
