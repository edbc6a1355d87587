"""`dedup coordinator ...`: what the records service runs."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from dedup import jsonlog
from dedup.cli import exits
from dedup.cli.common import CommandError, add_config, emit_json, load_config, plural

from .settings import CoordinatorSettings

ENV = "DEDUP_COORDINATOR_CONFIG"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "coordinator", help="the records service's coordinator: intake, matching, the signed log",
        description="Take in members' signed fingerprint batches over mutual TLS, match them across members, "
                    "propose a master for each cross-member cluster, and record every step in a signed "
                    "append-only log.",
        epilog=exits.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    cmds = p.add_subparsers(dest="coordinator_command", metavar="COMMAND", required=True)

    s = cmds.add_parser("serve", help="run the gRPC service until interrupted",
                        description="Serve IntakeService, LogService, NegotiationService (members' signed votes "
                                    "on master proposals, arbiters' rulings; open proposals past "
                                    "vote_deadline_seconds are agreed, silence counting as acceptance, checked "
                                    "every deadline_check_seconds), gRPC health checking and reflection on the "
                                    "configured address, over mutual TLS, with the store in the configured SQLite "
                                    "file or PostgreSQL URL. Prometheus metrics are served on metrics_listen when "
                                    "set. Logs are JSON lines on stderr. Stops cleanly on SIGTERM or Ctrl-C.")
    add_config(s, ENV, "coordinator")
    s.add_argument("--ready-file", type=Path,
                   help="once serving, write the bound port to this file (for scripts that start the service)")
    s.set_defaults(func=_serve)

    s = cmds.add_parser("export-log", help="export the signed log for auditors",
                        description="Write every log entry up to the latest signed checkpoint, and every "
                                    "checkpoint, to a folder that `dedup audit verify` checks offline.")
    add_config(s, ENV, "coordinator")
    s.add_argument("out", type=Path, metavar="OUT", help="folder to write (replaced if it exists)")
    s.add_argument("--json", action="store_true", help="print what was written as JSON")
    s.set_defaults(func=_export)

    s = cmds.add_parser("rotate-log-key", help="replace the log's signing key, announcing the new one in the log",
                        description="Append a LogKeyRotated entry, signed by the current log key, naming the new "
                                    "key; the checkpoint covering it and everything after are signed by the new "
                                    "key, and log_key in the configuration file is rewritten to name NEW_KEY. "
                                    "Members' nodes that trusted the old key learn the new one from that entry "
                                    "when they next witness; give auditors the new verifier key (printed) as well. "
                                    "Run it while the coordinator is stopped, then start it again. If NEW_KEY does "
                                    "not exist, a new key named like the current one is generated there (mode "
                                    "0600). Afterwards the old key file is no longer used and can be destroyed.",
                        epilog=exits.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config(s, ENV, "coordinator")
    s.add_argument("--new-key", type=Path, required=True, metavar="NEW_KEY",
                   help="file holding the new signer key (PRIVATE+KEY+...), or where to generate one")
    s.add_argument("--reason", default="scheduled rotation", help="why, recorded in the log entry")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.set_defaults(func=_rotate)

    s = cmds.add_parser("health", help="ask a running coordinator's health port whether it is serving",
                        description="Call grpc.health.v1.Health/Check on the coordinator's plaintext health port "
                                    "(health_listen) and exit 0 if it answers SERVING. For container health checks "
                                    "and scripts; Kubernetes probes the same port with a native grpc probe. The "
                                    "address is --address, else health_listen from the configuration (an "
                                    "all-interfaces address such as 0.0.0.0 is asked on 127.0.0.1).",
                        epilog="exit codes:\n  0  serving\n  1  answering, but not serving\n"
                               "  2  no address: give --address or a configuration with health_listen\n"
                               "  3  no answer within the timeout\n",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config(s, ENV, "coordinator")
    s.add_argument("--address", metavar="HOST:PORT", help="health port to ask (default: health_listen)")
    s.add_argument("--service", default="", help="service name to ask about (default: the whole server)")
    s.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer (default 5)")
    s.add_argument("--json", action="store_true", help="print the answer as JSON")
    s.set_defaults(func=_health)


def _serve(args) -> int:
    from .database import DatabaseError
    from .server import start
    from .store import SchemaError

    settings = load_config(args, CoordinatorSettings, ENV)
    jsonlog.setup()
    try:
        running = start(settings)
    except (OSError, ValueError, DatabaseError, SchemaError) as exc:
        raise CommandError(f"cannot start the coordinator: {exc}", exits.FAILED) from exc
    if args.ready_file:
        args.ready_file.write_text(f"{running.port}\n")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    running.stop(grace=2.0)
    return exits.OK


def _export(args) -> int:
    from dedup.note import NoteSigner

    from .export import export_log
    from .store import Store

    settings = load_config(args, CoordinatorSettings, ENV)
    signer = NoteSigner.from_string(settings.log_key.read_text(encoding="utf-8").strip())
    store = Store(settings.database)
    try:
        entries, checkpoints = export_log(store, args.out, signer.verifier().to_string())
    except ValueError as exc:
        raise CommandError(str(exc), exits.FAILED) from exc
    finally:
        store.close()
    if args.json:
        emit_json({"export": str(args.out), "entries": entries, "checkpoints": checkpoints})
    else:
        print(f"exported {plural(entries, 'entry', 'entries')} and {plural(checkpoints, 'checkpoint')} to {args.out}")
    return exits.OK


def _rotate(args) -> int:
    from .database import DatabaseError
    from .log import LogKeyMismatch
    from .rotation import RotationError, rotate_log_key
    from .store import SchemaError

    load_config(args, CoordinatorSettings, ENV)  # a bad or missing file is a usage error (exit 2)
    try:
        r = rotate_log_key(args.config, args.new_key, args.reason)
    except (RotationError, LogKeyMismatch, DatabaseError, SchemaError, OSError) as exc:
        raise CommandError(f"log key not rotated: {exc}", exits.FAILED) from exc
    out = {"entry_index": r.entry_index, "old_key": r.old_key, "new_key": r.new_key,
           "new_key_file": str(r.new_key_file), "generated": r.generated, "config": str(args.config)}
    if args.json:
        emit_json(out)
    else:
        where = "already in the log" if r.entry_index is None else f"log entry {r.entry_index}"
        print(f"log key rotated ({where}); new verifier key:\n  {r.new_key}\n"
              f"{args.config} now names {r.new_key_file}; start the coordinator again")
    return exits.OK


def _health(args) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    address = args.address
    if address is None:
        if args.config is None:
            raise CommandError("no address: pass --address HOST:PORT, or --config naming a file with health_listen")
        settings = load_config(args, CoordinatorSettings, ENV)
        if not settings.health_listen:
            raise CommandError(f"{args.config} sets no health_listen; pass --address")
        host, _, port = settings.health_listen.rpartition(":")
        address = f"{'127.0.0.1' if host in ('', '0.0.0.0', '[::]', '::') else host}:{port}"
    with grpc.insecure_channel(address) as channel:
        try:
            resp = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout)
        except grpc.RpcError as exc:
            status = exc.code().name
            if args.json:
                emit_json({"address": address, "service": args.service, "status": status, "serving": False})
            else:
                print(f"{address}: no answer ({status}: {exc.details()})")
            return exits.FAILED if exc.code() == grpc.StatusCode.NOT_FOUND else exits.UNAVAILABLE
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
    serving = resp.status == health_pb2.HealthCheckResponse.SERVING
    if args.json:
        emit_json({"address": address, "service": args.service, "status": status, "serving": serving})
    else:
        print(f"{address}: {status}")
    return exits.OK if serving else exits.FAILED
