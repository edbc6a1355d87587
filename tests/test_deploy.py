"""deploy/: what can be tested without a container engine. The compose and Kubernetes files parse
and name images, ports, secrets, files and settings that exist; the example configurations load
through the real settings models; the systemd units verify; the alert rules and the operations
guide name metrics the coordinator exports; the configuration reference is the generated one.
And the closest thing here to three institutions on three networks: a coordinator and two nodes
in network namespaces of their own, over real mutual TLS with the PKI from `dedup pki`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import uuid
from pathlib import Path, PurePosixPath

import pytest
import yaml

from dedup.cli.main import build_parser
from dedup.config import ConfigError, env_var_names, load

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DEDUP = [sys.executable, "-m", "dedup.cli.main"]


def coordinator_model():
    from dedup.coordinator.settings import CoordinatorSettings

    return CoordinatorSettings


def node_model():
    from dedup.node.settings import NodeSettings

    return NodeSettings


def port_of(address: str) -> int:
    return int(address.rpartition(":")[2])


def check_env_names(env: dict) -> None:
    """Every DEDUP_* variable is one the code reads."""
    known = {"DEDUP_COORDINATOR_CONFIG", "DEDUP_NODE_CONFIG", "DEDUP_SCAN_INTERVAL_SECONDS",
             *env_var_names(coordinator_model()), *env_var_names(node_model())}
    for name in env:
        if name.startswith("DEDUP_"):
            assert name in known, f"{name} is not a setting or variable dedup reads"


def check_command(argv: list[str]) -> None:
    """``argv`` (after the program) is a valid `dedup` command line."""
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's way of refusing
        pytest.fail(f"`dedup {' '.join(argv)}` is not a valid command line (exit {exc.code})")


# --- the reference and the examples -----------------------------------------------------------

def test_configuration_reference_is_the_generated_one():
    from dedup.cli.config import render_reference

    committed = (DEPLOY / "CONFIGURATION.md").read_text(encoding="utf-8")
    assert committed == render_reference(), \
        "deploy/CONFIGURATION.md is stale: run `dedup config reference --out deploy/CONFIGURATION.md`"


def _fields_set(model, raw: dict, path: str = "") -> list[str]:
    """Settings of ``model`` (recursively) that ``raw`` does not set."""
    import typing

    from pydantic import BaseModel

    from dedup.config import _strip_optional

    missing = []
    for name, field in model.model_fields.items():
        key = f"{path}{name}"
        if name not in raw:
            missing.append(key)
            continue
        inner = _strip_optional(field.annotation)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            missing += _fields_set(inner, raw[name], key + ".")
        elif typing.get_origin(inner) is list and issubclass(typing.get_args(inner)[0], BaseModel):
            item = typing.get_args(inner)[0]
            merged = {k: v for entry in raw[name] for k, v in entry.items()}
            missing += _fields_set(item, merged, key + "[].")
    return missing


@pytest.mark.parametrize("name,model", [("coordinator.toml", coordinator_model), ("node.toml", node_model)])
def test_example_configs_load_and_set_every_setting(name, model):
    path = DEPLOY / "examples" / name
    settings = load(path, model(), environ={})
    assert settings is not None
    raw = tomllib.loads(path.read_text())
    assert _fields_set(model(), raw) == [], f"{name} leaves settings out"


def test_environment_overrides():
    cfg = DEPLOY / "examples" / "node.toml"
    s = load(cfg, node_model(), environ={"DEDUP_NODE__BATCH_SIZE": "7", "DEDUP_NODE__ROOTS": '["/a", "s3://b/c"]',
                                        "DEDUP_NODE__COORDINATOR__ADDRESS": "10.0.0.1:7443",
                                        "DEDUP_NODE__AUTO_DECISIONS__AFTER_PUSH": "true",
                                        "DEDUP_NODE__CATALOGUE": "/var/lib/x.sqlite"})
    assert s.batch_size == 7 and s.roots == ["/a", "s3://b/c"] and s.coordinator.address == "10.0.0.1:7443"
    assert s.auto_decisions.after_push is True and s.catalogue == Path("/var/lib/x.sqlite")
    assert s.coordinator.server_name == "coordinator"  # the rest of the table is the file's
    with pytest.raises(ConfigError, match="DEDUP_NODE__BATCHSIZE names no setting"):
        load(cfg, node_model(), environ={"DEDUP_NODE__BATCHSIZE": "7"})
    with pytest.raises(ConfigError, match="batch_size"):
        load(cfg, node_model(), environ={"DEDUP_NODE__BATCH_SIZE": "lots"})
    c = load(DEPLOY / "examples" / "coordinator.toml", coordinator_model(),
             environ={"DEDUP_COORDINATOR__DATABASE": "postgresql://u:p@db:5432/d", "DEDUP_COORDINATOR__MATCH__LOW": "5"})
    assert c.database == "postgresql://u:p@db:5432/d" and c.match.low == 5 and c.match.whole == 32
    # The role variables naming the file are not overrides.
    load(cfg, node_model(), environ={"DEDUP_NODE_CONFIG": str(cfg)})


# --- the image and docker compose --------------------------------------------------------------

def dockerfile() -> str:
    return (DEPLOY / "Dockerfile").read_text()


def test_dockerfile_pins_its_base_runs_as_non_root_and_copies_what_exists():
    text = dockerfile()
    bases = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
    assert bases
    for base in bases:
        # An exact release (python:3.11.N-...) or a digest, never a moving tag.
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base), base
    user = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert user and user[-1].split(":")[0] not in ("root", "0")
    for src in re.findall(r"^COPY\s+(?!--from)(.+)\s+\S+$", text, re.MULTILINE):
        for part in src.split():
            assert (ROOT / part).exists(), f"Dockerfile copies {part}, which does not exist"
    # Every package folder pyproject maps is in the image.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for folder in pyproject["tool"]["setuptools"]["package-dir"].values():
        top = folder.split("/")[0]
        assert re.search(rf"^COPY\s+{top}\s", text, re.MULTILINE), f"{top}/ is not copied into the image"
    # Compiled modules are built in the first stage, which must have a C compiler for them.
    if pyproject["tool"]["setuptools"].get("ext-modules"):
        build_stage = text.split("\nFROM ")[1]
        assert re.search(r"apt-get install[^\n]*\bgcc\b", build_stage), "the build stage has no C compiler"
    assert os.access(DEPLOY / "docker" / "node-loop.sh", os.X_OK)


@pytest.fixture(scope="module")
def compose_setup(tmp_path_factory):
    """deploy/ copied, with compose/setup.sh run as documented (its `dedup` is this checkout's)."""
    root = tmp_path_factory.mktemp("compose") / "deploy"
    shutil.copytree(DEPLOY, root, ignore=shutil.ignore_patterns("consortium"))
    wrapper = root.parent / "dedup"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} -m dedup.cli.main \"$@\"\n")
    wrapper.chmod(0o755)
    proc = subprocess.run(["sh", "compose/setup.sh"], cwd=root, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "DEDUP": str(wrapper)})
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return root, yaml.safe_load((root / "docker-compose.yml").read_text())


def env_file(path: Path) -> dict:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))


def mounts(root: Path, service: dict) -> dict[PurePosixPath, Path | None]:
    """container path -> host path (None for a named volume)."""
    out = {}
    for v in service.get("volumes", []):
        src, dst = v.split(":")[:2]
        out[PurePosixPath(dst)] = (root / src).resolve() if src.startswith(".") else None
    return out


def host_path(mapping: dict, container: Path) -> Path | None:
    container = PurePosixPath(container)
    for dst, src in sorted(mapping.items(), key=lambda kv: -len(str(kv[0]))):
        if container == dst or dst in container.parents:
            assert src is not None, f"{container} is in a named volume"
            return src / container.relative_to(dst)
    pytest.fail(f"{container} is not mounted into the container")


def test_compose_services_images_ports_and_health(compose_setup):
    root, compose = compose_setup
    services = compose["services"]
    assert {"postgres", "coordinator", "member-a", "member-b"} <= set(services)
    k8s_image = next(d for d in k8s_docs() if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    pg = services["postgres"]["image"]
    assert re.fullmatch(r"postgres:\d+\.\d+(-\w+)?", pg), f"{pg} is not an exact release"
    for name in ("coordinator", "member-a", "member-b"):
        s = services[name]
        assert s["image"] == k8s_image and s["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (root / s["build"]["context"] / "pyproject.toml").exists() or (ROOT / "pyproject.toml").exists()
        check_env_names(s.get("environment", {}))
        test = s["healthcheck"]["test"]
        assert test[0] == "CMD" and test[1] == "dedup"
        check_command(test[2:])
    # The coordinator's ports are the configuration's.
    c = services["coordinator"]
    cfg = tomllib.loads((DEPLOY / "compose" / "coordinator.toml").read_text())
    published = {int(p.split(":")[-1]) for p in c["ports"]}
    assert published == {port_of(cfg["listen"])}
    assert {int(p) for p in c["expose"]} == {port_of(cfg["metrics_listen"])}
    health = c["healthcheck"]["test"]
    assert port_of(health[health.index("--address") + 1]) == port_of(cfg["health_listen"])
    assert c["command"][:2] == ["coordinator", "serve"]
    # Nodes dial the coordinator's service name and port, checking the certificate's name.
    for name in ("member-a", "member-b"):
        node = tomllib.loads((root / "consortium/nodes" / name / "node.toml").read_text())
        host, port = node["coordinator"]["address"].rsplit(":", 1)
        assert host == "coordinator" and int(port) == port_of(cfg["listen"])
        assert "/usr/local/bin/dedup-node-loop" in services[name]["entrypoint"]
    assert "COPY deploy/docker/node-loop.sh /usr/local/bin/dedup-node-loop" in dockerfile()


def test_compose_mounts_exist_and_configs_load_as_the_containers_see_them(compose_setup):
    root, compose = compose_setup
    services = compose["services"]
    declared = set(compose.get("volumes", {}))
    for s in services.values():
        for v in s.get("volumes", []):
            src = v.split(":")[0]
            if src.startswith("."):
                assert (root / src).exists(), f"{src} is mounted but compose/setup.sh does not make it"
            else:
                assert src in declared, f"named volume {src} is not declared"
        for f in ([s["env_file"]] if isinstance(s.get("env_file"), str) else s.get("env_file", [])):
            assert (root / f).exists(), f
            check_env_names(env_file(root / f))

    c = services["coordinator"]
    m = mounts(root, c)
    env = {**env_file(root / c["env_file"]), **c["environment"]}
    cfg_host = host_path(m, Path(env["DEDUP_COORDINATOR_CONFIG"]))
    settings = load(cfg_host, coordinator_model(), environ=env)
    assert settings.database.startswith("postgresql://dedup:") and "@postgres:5432/" in settings.database
    pg_env = env_file(root / services["postgres"]["env_file"])
    assert pg_env["POSTGRES_PASSWORD"] in settings.database
    assert [mm.id for mm in settings.members] == ["member-a", "member-b"]
    # Paths resolve against the container's /etc/dedup; each is a mounted file that exists.
    for p in (settings.log_key, settings.tls.ca, settings.tls.cert, settings.tls.key):
        container = PurePosixPath("/etc/dedup") / p.relative_to(cfg_host.parent)
        assert host_path(m, container).exists(), container

    for name in ("member-a", "member-b"):
        s = services[name]
        m = mounts(root, s)
        cfg_host = host_path(m, Path(s["environment"]["DEDUP_NODE_CONFIG"]))
        settings = load(cfg_host, node_model(), environ=s["environment"])
        assert settings.member_id == name
        assert PurePosixPath(settings.catalogue).parent in m and m[PurePosixPath(settings.catalogue).parent] is None
        assert all(PurePosixPath(r) in m for r in settings.roots)
        for p in (settings.signing_key, settings.tls.ca, settings.tls.cert, settings.tls.key):
            assert p.exists() and p.parent == cfg_host.parent
        # Private keys stay private on the host too.
        assert settings.signing_key.stat().st_mode & 0o077 == 0


# --- Kubernetes ----------------------------------------------------------------------------------

def k8s_docs() -> list[dict]:
    docs = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_kubernetes_manifests_reference_what_exists(tmp_path):
    docs = k8s_docs()
    by_kind: dict[str, list[dict]] = {}
    for d in docs:
        assert d.get("apiVersion") and d.get("kind"), d
        by_kind.setdefault(d["kind"], []).append(d)
    kustom = next(d for d in docs if d["kind"] == "Kustomization")
    for r in kustom["resources"]:
        assert (DEPLOY / "kubernetes" / r).exists(), r
    dep = by_kind["Deployment"][0]
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"
    ctr = pod["containers"][0]
    check_command(ctr["args"])
    env = {e["name"]: e for e in ctr["env"]}
    check_env_names(env)
    secrets = {s["metadata"]["name"]: s for s in by_kind["Secret"]}
    configmaps = {c["metadata"]["name"]: c for c in by_kind["ConfigMap"]}
    for e in env.values():
        if "valueFrom" in e:
            ref = e["valueFrom"]["secretKeyRef"]
            assert ref["key"] in secrets[ref["name"]]["stringData"], ref
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounted = {}
    for vm in ctr["volumeMounts"]:
        v = volumes[vm["name"]]
        if "secret" in v:
            mounted[PurePosixPath(vm["mountPath"])] = set(secrets[v["secret"]["secretName"]]["stringData"])
        elif "configMap" in v:
            data = configmaps[v["configMap"]["name"]]["data"]
            assert vm["subPath"] in data
            mounted[PurePosixPath(vm["mountPath"])] = data[vm["subPath"]]

    # The ConfigMap's file loads as the container would load it, database from the Secret.
    config_path = PurePosixPath(env["DEDUP_COORDINATOR_CONFIG"]["value"])
    text = mounted[config_path]
    (tmp_path / config_path.name).write_text(text)
    db_ref = env["DEDUP_COORDINATOR__DATABASE"]["valueFrom"]["secretKeyRef"]
    db = secrets[db_ref["name"]]["stringData"][db_ref["key"]]
    s = load(tmp_path / config_path.name, coordinator_model(), environ={"DEDUP_COORDINATOR__DATABASE": db})
    assert s.database.startswith("postgresql://")
    for p in (s.log_key, s.tls.ca, s.tls.cert, s.tls.key):
        container = config_path.parent / p.relative_to(tmp_path)
        assert container.parent in mounted and container.name in mounted[container.parent], container

    # With PostgreSQL there is no default place for the saved index: it is set, and on the
    # persistent volume (the root file system is read-only and /tmp goes with the pod).
    assert s.index_snapshot is not None
    snapshot = PurePosixPath(str(s.index_snapshot))
    under = [vm for vm in ctr["volumeMounts"] if snapshot.is_relative_to(vm["mountPath"])]
    assert len(under) == 1 and "readOnly" not in under[0], under
    claim = volumes[under[0]["name"]]["persistentVolumeClaim"]["claimName"]
    assert claim in {c["metadata"]["name"] for c in by_kind["PersistentVolumeClaim"]}

    # Ports and probes are the configuration's; probes are native gRPC on the health port.
    ports = {p["name"]: p["containerPort"] for p in ctr["ports"]}
    assert ports["grpc"] == port_of(s.listen)
    assert ports["health"] == port_of(s.health_listen)
    assert ports["metrics"] == port_of(s.metrics_listen)
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert ctr[probe]["grpc"]["port"] == ports["health"], probe
    assert str(ports["metrics"]) == dep["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"]
    for svc in by_kind["Service"]:
        assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
        for p in svc["spec"]["ports"]:
            assert p["targetPort"] in ports


# --- systemd -------------------------------------------------------------------------------------

def test_systemd_units_verify(tmp_path):
    units = sorted((DEPLOY / "systemd").glob("dedup-node.*"))
    assert {u.suffix for u in units} == {".service", ".timer"}
    service = (DEPLOY / "systemd" / "dedup-node.service").read_text()
    for hardening in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes", "ProtectHome=",
                      "CapabilityBoundingSet=", "RestrictAddressFamilies="):
        assert hardening in service
    envs = dict(re.findall(r"^Environment=(\w+)=(\S+)$", service, re.MULTILINE))
    check_env_names(envs)
    for cmd in re.findall(r"^ExecStart=-?/opt/dedup/bin/dedup (.+)$", service, re.MULTILINE):
        check_command(cmd.split())
    assert "OnCalendar=" in (DEPLOY / "systemd" / "dedup-node.timer").read_text()
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed here; the units' contents were checked, not verified")
    # The unit names /opt/dedup, where it is installed; verify against this checkout's command.
    for u in units:
        (tmp_path / u.name).write_text(u.read_text().replace("/opt/dedup/bin/dedup", str(Path(sys.executable).parent / "dedup")))
    if not (Path(sys.executable).parent / "dedup").exists():
        pytest.skip("no dedup command beside this interpreter to verify ExecStart against")
    proc = subprocess.run(["systemd-analyze", "verify", *(str(tmp_path / u.name) for u in units)],
                          capture_output=True, text=True, timeout=60)
    # verify exits 0 on unknown keys and bad values, but says so: both must be silent.
    assert proc.returncode == 0 and not proc.stderr.strip() and not proc.stdout.strip(), proc.stderr + proc.stdout


def test_the_witness_unit_serves_with_the_node_units_hardening(tmp_path):
    unit = DEPLOY / "systemd" / "dedup-witness.service"
    service = unit.read_text()
    node = (DEPLOY / "systemd" / "dedup-node.service").read_text()
    hardening = node[node.index("# Hardening"):node.index("[Install]")]
    assert hardening in service and "Type=simple" in service and "Restart=on-failure" in service
    envs = dict(re.findall(r"^Environment=(\w+)=(\S+)$", service, re.MULTILINE))
    check_env_names(envs)
    cmd, = re.findall(r"^ExecStart=/opt/dedup/bin/dedup (.+)$", service, re.MULTILINE)
    assert cmd.split()[:2] == ["node", "witness-serve"]
    check_command(cmd.split())
    if shutil.which("systemd-analyze") is None or not (Path(sys.executable).parent / "dedup").exists():
        pytest.skip("systemd-analyze or this checkout's dedup command is missing; the unit's contents were checked")
    (tmp_path / unit.name).write_text(service.replace("/opt/dedup/bin/dedup", str(Path(sys.executable).parent / "dedup")))
    proc = subprocess.run(["systemd-analyze", "verify", str(tmp_path / unit.name)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and not proc.stderr.strip() and not proc.stdout.strip(), proc.stderr + proc.stdout


def run_oneshot(service: str, env: dict) -> list[tuple[str, int]]:
    """Run a Type=oneshot unit's ExecStart lines as systemd does (systemd.service(5)): in order,
    each with the unit's Environment=; a non-zero exit stops the unit unless the line starts
    with "-". Returns (command, exit code) of each line run."""
    environ = {**os.environ, **dict(re.findall(r"^Environment=(\w+)=(\S+)$", service, re.MULTILINE)), **env}
    ran = []
    for line in re.findall(r"^ExecStart=(.+)$", service, re.MULTILINE):
        ignore = line.startswith("-")
        argv = line.lstrip("-").split()
        code = subprocess.run([sys.executable, "-m", "dedup.cli.main", *argv[1:]], env=environ, capture_output=True,
                              text=True, timeout=120).returncode
        ran.append((" ".join(argv[1:3]), code))
        if code != 0 and not ignore:
            break
    return ran


def test_the_nightly_unit_pushes_after_a_scan_that_met_an_unreadable_file(tmp_path):
    from PIL import Image

    from dedup import pki
    from dedup.note import NoteSigner

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (64, 48), (200, 120, 40)).save(photos / "good.png")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a picture")
    pki.write_private(tmp_path / "signing.key", NoteSigner.generate("city-museum").to_string().encode())
    ca = pki.new_ca("test CA")
    key, cert = pki.issue(ca, "city-museum", dns_names=("city-museum",))
    pki.write_cert(tmp_path / "ca.pem", ca[1])
    pki.write_key(tmp_path / "tls.key", key)
    pki.write_cert(tmp_path / "tls.pem", cert)
    config = tmp_path / "node.toml"
    config.write_text(
        f'member_id = "city-museum"\nsigning_key = "{tmp_path / "signing.key"}"\nroots = ["{photos}"]\n'
        f'log_origin = "test.example.org/log"\n'
        f'[tls]\nca = "{tmp_path / "ca.pem"}"\ncert = "{tmp_path / "tls.pem"}"\nkey = "{tmp_path / "tls.key"}"\n'
        '[coordinator]\naddress = "127.0.0.1:9"\nserver_name = "coordinator"\ntimeout_seconds = 2\nretries = 0\n')
    service = (DEPLOY / "systemd" / "dedup-node.service").read_text()
    ran = run_oneshot(service, {"DEDUP_NODE_CONFIG": str(config),
                                "DEDUP_NODE__CATALOGUE": str(tmp_path / "catalogue.sqlite")})
    # The scan records the unreadable file and exits 1; the push still runs (and, with no
    # coordinator listening, keeps its batch for the next night: exit 3).
    assert ran == [("node scan", 1), ("node push", 3)]


# --- metrics, alerts, the guide ------------------------------------------------------------------

def exported_metrics() -> dict[str, set[str]]:
    """Every sample name the coordinator exports (with suffixes), with its label names."""
    from dedup.coordinator.metrics import Metrics

    out = {}
    # The registry's own map from collector to exposed names; label names are the collector's.
    for collector, names in Metrics().registry._collector_to_names.items():  # noqa: SLF001
        labels = set(getattr(collector, "_labelnames", ()))
        for n in names:
            out[n] = labels | ({"le"} if n.endswith("_bucket") else set())
    return out


def test_alert_rules_use_real_metrics_and_labels():
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    metrics = exported_metrics()
    from dedup.v1 import negotiation_pb2

    source = "\n".join(p.read_text() for p in (ROOT / "coordinator").glob("*.py"))
    # Proposal statuses are labelled with the protocol enum's names (PROPOSAL_STATUS_OPEN -> "open").
    source += "".join(f'"{n.removeprefix("PROPOSAL_STATUS_").lower()}"' for n in negotiation_pb2.ProposalStatus.keys())
    seen = set()
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["alert"] and rule["expr"] and rule["annotations"]["summary"]
            for name, selector in re.findall(r"\b(dedup_[a-z_]+)(\{[^}]*\})?", rule["expr"]):
                assert name in metrics, f"{rule['alert']}: {name} is not exported"
                seen.add(name)
                for label, value in re.findall(r'(\w+)\s*=~?\s*"([^"]*)"', selector):
                    assert label in metrics[name], f"{rule['alert']}: {name} has no label {label}"
                    for v in value.split("|"):
                        assert f'"{v}"' in source, f"{rule['alert']}: no {label}={v!r} in the coordinator's code"
            guide = (DEPLOY / "OPERATIONS.md").read_text()
            assert f"`{rule['alert']}`" in guide, f"OPERATIONS.md does not say what {rule['alert']} means"
    assert seen


def test_operations_guide_names_every_metric_and_command():
    from dedup.coordinator.metrics import Metrics

    guide = (DEPLOY / "OPERATIONS.md").read_text()
    for family in Metrics().registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        assert f"`{name}`" in guide, f"OPERATIONS.md does not describe {name}"
    for cmd in re.findall(r"`(dedup (?:pki|coordinator|config|node|audit) [^`]*)`", guide):
        words = [w for w in cmd.split()[1:] if not w.startswith(("...", '"'))]
        sub = build_parser()._subparsers._group_actions[0].choices[words[0]]  # noqa: SLF001
        assert words[1] in sub._subparsers._group_actions[0].choices, cmd  # noqa: SLF001


# --- three hosts on three networks -----------------------------------------------------------------

def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def _namespaces_available() -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root to create network namespaces (ip netns add)"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed (apt-get install iproute2)"
    probe = f"dd-probe-{uuid.uuid4().hex[:6]}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"cannot create network namespaces here: {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


def _images(folder: Path, names: list[str], variant: bool = False) -> None:
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True)
    for name in names:
        img = Image.fromarray(getattr(data, name)())
        if variant:  # a smaller JPEG access copy of the same photograph
            img.convert("RGB").resize((img.width // 2, img.height // 2)).save(folder / f"{name}.jpg", quality=80)
        else:
            img.save(folder / f"{name}.png")


def test_coordinator_and_two_nodes_on_separate_networks(tmp_path):
    reason = _namespaces_available()
    if reason:
        pytest.skip(reason)
    tag = uuid.uuid4().hex[:5]
    coord_ns, nodes = f"dd-c-{tag}", {"member-a": (f"dd-a-{tag}", 1), "member-b": (f"dd-b-{tag}", 2)}
    made: list[str] = []
    procs: list[subprocess.Popen] = []
    try:
        _ip("netns", "add", coord_ns)
        made.append(coord_ns)
        _ip("-n", coord_ns, "link", "set", "lo", "up")
        for member, (ns, i) in nodes.items():
            # One point-to-point link per institution: 10.231.i.1 (coordinator) - 10.231.i.2 (node).
            _ip("netns", "add", ns)
            made.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            c_if, n_if = f"ddc{i}{tag}", f"ddn{i}{tag}"
            _ip("link", "add", c_if, "netns", coord_ns, "type", "veth", "peer", "name", n_if, "netns", ns)
            _ip("-n", coord_ns, "addr", "add", f"10.231.{i}.1/30", "dev", c_if)
            _ip("-n", ns, "addr", "add", f"10.231.{i}.2/30", "dev", n_if)
            _ip("-n", coord_ns, "link", "set", c_if, "up")
            _ip("-n", ns, "link", "set", n_if, "up")

        def run(ns: str, *args: str, **kw) -> subprocess.CompletedProcess:
            return subprocess.run(["ip", "netns", "exec", ns, *DEDUP, *args], capture_output=True, text=True,
                                  timeout=300, **kw)

        # The PKI, from `dedup pki`, as the records service would make it.
        pkidir = tmp_path / "pki"
        subprocess.run([*DEDUP, "pki", "init", str(pkidir), "--origin", "netns.example.org/log"], check=True,
                       capture_output=True)
        for member, (ns, i) in nodes.items():
            # Each member makes its keys in its own namespace; the records service certifies the request.
            ndir = tmp_path / "nodes" / member
            for step in (["ip", "netns", "exec", ns, *DEDUP, "pki", "request", member, "--dir", str(ndir)],
                         [*DEDUP, "pki", "issue", member, "--dir", str(pkidir), "--request",
                          str(ndir / f"{member}.request"), "--coordinator", f"10.231.{i}.1:7443"],
                         ["ip", "netns", "exec", ns, *DEDUP, "pki", "install", str(pkidir / "members" / member),
                          "--dir", str(ndir)]):
                subprocess.run(step, check=True, capture_output=True)
        members = "\n".join((pkidir / "members" / m / "member.toml").read_text() for m in nodes)
        cfg = tmp_path / "coordinator.toml"
        cfg.write_text('listen = "0.0.0.0:7443"\nhealth_listen = "127.0.0.1:7444"\ndatabase = "coordinator.sqlite"\n'
                       'log_key = "pki/coordinator/log.key"\nlog_origin = "netns.example.org/log"\n'
                       '[tls]\nca = "pki/ca.pem"\ncert = "pki/coordinator/tls.pem"\nkey = "pki/coordinator/tls.key"\n\n'
                       + members)
        _images(tmp_path / "photos" / "member-a", ["astronaut", "camera", "coffee"])
        _images(tmp_path / "photos" / "member-b", ["astronaut", "chelsea"], variant=True)

        log = open(tmp_path / "coordinator.log", "w")
        procs.append(subprocess.Popen(["ip", "netns", "exec", coord_ns, *DEDUP, "coordinator", "serve",
                                       "--config", str(cfg)], stdout=log, stderr=log))
        deadline = time.monotonic() + 90
        while True:
            h = run(coord_ns, "coordinator", "health", "--config", str(cfg))
            if h.returncode == 0:
                break
            assert procs[0].poll() is None, (tmp_path / "coordinator.log").read_text()
            assert time.monotonic() < deadline, "coordinator not serving after 90 s"
            time.sleep(0.5)

        # The coordinator is not reachable from a node's network except over its link.
        isolated = run(nodes["member-a"][0], "coordinator", "health", "--address", "10.231.2.1:7444", "--timeout", "2")
        assert isolated.returncode == 3

        matches = 0
        for member, (ns, i) in nodes.items():
            env = {**os.environ, "DEDUP_NODE__CATALOGUE": str(tmp_path / member / "catalogue.sqlite"),
                   "DEDUP_NODE__ROOTS": json.dumps([str(tmp_path / "photos" / member)]),
                   "DEDUP_NODE__WORKERS": "1"}
            (tmp_path / member).mkdir()
            node_cfg = str(tmp_path / "nodes" / member / "node.toml")
            check = run(ns, "pki", "check", "--config", node_cfg, "--json", env=env)
            assert check.returncode == 0, check.stdout + check.stderr
            scan = run(ns, "node", "scan", "--config", node_cfg, "--json", "--quiet", env=env)
            assert scan.returncode == 0, scan.stderr
            push = run(ns, "node", "push", "--config", node_cfg, "--json", env=env)
            assert push.returncode == 0, push.stderr + push.stdout
            out = json.loads(push.stdout)
            assert out["assets_accepted"] >= 2, out
            matches += out["new_matches"]
        # The shared photograph (a PNG at one member, a half-size JPEG at the other) was matched.
        assert matches >= 1
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        for ns in made:
            _ip("netns", "del", ns, check=False)
