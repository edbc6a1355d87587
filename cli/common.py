"""Helpers the role command lines share."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from dedup.config import ConfigError, load

from . import exits

S = TypeVar("S", bound=BaseModel)


class CommandError(Exception):
    """Print the message and exit with ``code``."""

    def __init__(self, message: str, code: int = exits.USAGE) -> None:
        super().__init__(message)
        self.code = code


def add_config(p: argparse.ArgumentParser, env: str, what: str) -> None:
    p.add_argument("-c", "--config", type=Path, default=os.environ.get(env),
                   help=f"{what} configuration file (TOML); default: ${env}")


def load_config(args: argparse.Namespace, model: type[S], env: str) -> S:
    if args.config is None:
        raise CommandError(f"no configuration file: pass --config or set ${env}")
    try:
        return load(args.config, model)
    except ConfigError as exc:
        raise CommandError(str(exc)) from exc


def emit_json(data: dict) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
