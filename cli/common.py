"""Helpers the role command lines share."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import textwrap
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


#: Help is wrapped to the terminal but never wider than this: longer lines are hard to read.
HELP_COLUMNS = 80

#: A line of a list or table: its label, then two or more spaces, then the text a wrapped line
#: continues under ("  2  bad arguments ...", "  DIR/log.pub     the log's verifier key ...").
_LABELLED = re.compile(r"^\s*\S(?:\S| (?! ))*( {2,})(?=\S)")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs keep their own line breaks (paragraphs, lists, tables, examples)
    and each line is wrapped to the width; a wrapped line of a list or table continues under
    its text."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        if width is None:  # argparse's own rule (the terminal, less 2), capped
            width = min(shutil.get_terminal_size().columns, HELP_COLUMNS) - 2
        super().__init__(prog, indent_increment, max_help_position, width)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out = []
        for line in text.splitlines():
            line = line.rstrip()
            if len(indent) + len(line) <= width:
                out.append(indent + line)
                continue
            lead = len(line) - len(line.lstrip())
            m = _LABELLED.match(line)
            hang = m.end() if m and m.end() <= width // 2 else lead
            out += textwrap.wrap(line.lstrip(), width, initial_indent=indent + " " * lead,
                                 subsequent_indent=indent + " " * hang, break_on_hyphens=False,
                                 break_long_words=False)
        return "\n".join(out) + "\n"


class _Commands(argparse._SubParsersAction):
    """Subcommands that report an unknown option with the usage of the command it was given to
    (argparse passes it up to the top-level parser, which shows its own usage)."""

    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, values, option_string)
        extras = getattr(namespace, argparse._UNRECOGNIZED_ARGS_ATTR, None)
        if extras:  # the namespace is this parser's own: they were left by the subcommand
            self._name_parser_map[values[0]].error(f"unrecognized arguments: {' '.join(extras)}")


class Parser(argparse.ArgumentParser):
    """Every `dedup` parser (subcommands inherit the class): help by HelpFormatter, unknown
    options reported by the command they were given to."""

    def __init__(self, *args, formatter_class=HelpFormatter, **kwargs) -> None:
        if formatter_class in (argparse.HelpFormatter, argparse.RawDescriptionHelpFormatter):
            formatter_class = HelpFormatter
        super().__init__(*args, formatter_class=formatter_class, **kwargs)
        self.register("action", "parsers", _Commands)


def plural(n: int, one: str, many: str | None = None) -> str:
    """``n`` and the noun that agrees with it: "1 batch", "2 batches", "0 files"."""
    return f"{n} {one if n == 1 else many or one + 's'}"


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
