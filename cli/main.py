"""The `dedup` command: one subcommand per role."""

from __future__ import annotations

import os

# The fingerprint arithmetic works on small matrices, where a multi-threaded BLAS spends
# more time coordinating threads than computing; the node's scan runs one process per
# core instead. Set before numpy is first imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402

from dedup import jsonlog  # noqa: E402

from . import exits  # noqa: E402
from .common import CommandError, Parser  # noqa: E402

DESCRIPTION = """\
Find the photographs that archives hold in common without exchanging images,
and agree which institution keeps the master.

roles:
  node         a member institution: scan its storage, keep a catalogue, push
               signed fingerprints, look up whether a picture is the
               definitive version (readers too)
  coordinator  the records service: take in batches, match across members,
               keep the signed log
  audit        anyone: verify an exported log offline with the coordinator's
               public key
  demo         run a three-member consortium on this machine, end to end

deployment:
  pki          the consortium CA, TLS certificates and Ed25519 keys: init,
               issue, revoke, check
  config       the configuration reference, and checking a configuration file

A local audit of one's own folder needs no configuration and no keys:
  dedup node scan FOLDER; dedup node duplicates; dedup node report --out DIR

Run `dedup ROLE --help` for each role's commands.
"""


ROLES = ("node", "coordinator", "audit", "demo", "pki", "config")


def _register(role: str, sub: argparse._SubParsersAction) -> None:
    """Load one role's module and add its commands (written as plain imports, so that tools
    reading the source, and bench.sources, see what each role runs)."""
    if role == "node":
        from dedup.node.cli import register
    elif role == "coordinator":
        from dedup.coordinator.cli import register
    elif role == "audit":
        from dedup.audit.cli import register
    elif role == "demo":
        from dedup.demo.cli import register
    elif role == "pki":
        from dedup.cli.pki import register
    else:
        from dedup.cli.config import register
    register(sub)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line; given the arguments, only the role they name (when they name
    one) is loaded: a role's modules take a second or two to import, and `dedup node scan`
    should not wait for the coordinator's."""
    words = [w for w in argv or () if not w.startswith("-")]
    chosen = [words[0]] if words and words[0] in ROLES else ROLES
    parser = Parser(prog="dedup", description=DESCRIPTION, epilog=exits.EPILOG)
    sub = parser.add_subparsers(dest="role", metavar="ROLE", required=True)
    for role in chosen:
        _register(role, sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    # Warnings (a retry, a skipped file) with their fields, not Python's bare last-resort line:
    # words at a terminal, JSON lines under a scheduler. The coordinator sets its own level.
    jsonlog.setup("WARNING", text=sys.stderr.isatty())
    try:
        return args.func(args)
    except CommandError as exc:
        print(f"dedup: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
