"""`dedup config ...`: the configuration reference, generated from the settings models, and a
check of a configuration file as a role would load it."""

from __future__ import annotations

import argparse
import json
import os
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from dedup.config import ConfigError, _strip_optional, env_var_names, load

from . import exits
from .common import CommandError, emit_json

REFERENCE = Path("deploy") / "CONFIGURATION.md"


def _roles() -> list[tuple[str, str, type[BaseModel], str, str]]:
    from dedup.coordinator.settings import CoordinatorSettings
    from dedup.node.settings import NodeSettings

    return [
        ("coordinator", "Coordinator", CoordinatorSettings, "DEDUP_COORDINATOR_CONFIG",
         "`dedup coordinator serve` (and its other commands), run by the records service. "
         "Example: [`examples/coordinator.toml`](examples/coordinator.toml)."),
        ("node", "Node", NodeSettings, "DEDUP_NODE_CONFIG",
         "`dedup node ...`, run by each member institution. "
         "Example: [`examples/node.toml`](examples/node.toml). With no file, the commands of a local audit "
         "(`scan`, `duplicates`, `report`, `not-duplicates`, `import-catalogue`, a local `lookup`) use the "
         "catalogue `dedup-catalogue.sqlite` in the folder they are run from (or the environment's settings), "
         "and say so; the commands that sign or talk to the coordinator need a file with `member_id`, "
         "`signing_key`, `[tls]` and `[coordinator]`, as `dedup pki install` writes it."),
    ]


def type_name(annotation: Any) -> str:
    """A reader's name for a settings type."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        inner = " or ".join(type_name(a) for a in rest)
        return f"{inner}, optional" if len(rest) < len(args) else inner
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is Literal:
        return "one of " + ", ".join(json.dumps(a) for a in args)
    if origin is list:
        return f"list of {type_name(args[0])}"
    if origin is tuple:
        return f"[{', '.join(type_name(a) for a in args)}]"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table"
    return {str: "text", int: "integer", float: "number", bool: "boolean", Path: "path"}.get(annotation,
                                                                                              str(annotation))


def _constraints(field) -> str:
    out = []
    for m in field.metadata:
        for attr, sym in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            v = getattr(m, attr, None)
            if v is not None:
                out.append(f"{sym} {v}")
    return f" ({', '.join(out)})" if out else ""


def _default(field) -> str:
    if field.is_required():
        return "**required**"
    value = field.default_factory() if field.default_factory is not None else field.default
    if value is PydanticUndefined:
        return "**required**"
    if isinstance(value, BaseModel):
        return "(table)"
    if value is None:
        return "unset"
    if isinstance(value, tuple):
        value = list(value)
    return f"`{json.dumps(value)}`" if not isinstance(value, bool) else f"`{str(value).lower()}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _rows(model: type[BaseModel], env: dict[tuple[str, ...], str], path: tuple[str, ...] = (),
          list_path: str | None = None) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        here = (*path, name)
        key = f"{list_path}[].{name}" if list_path else ".".join(here)
        inner = _strip_optional(field.annotation)
        item = typing.get_args(inner)[0] if typing.get_origin(inner) is list else None
        var = env.get(here, "") if list_path is None else ""
        desc = field.description or (inner.__doc__ if isinstance(inner, type) and issubclass(inner, BaseModel)
                                     and inner.__doc__ else "")
        if isinstance(item, type) and issubclass(item, BaseModel):
            desc = (desc or "the list") + f": one `[[{key}]]` table each"
        rows.append(f"| `{key}` | {type_name(field.annotation)}{_constraints(field)} | {_default(field)} | "
                    f"{f'`{var}`' if var else '—'} | {_cell(desc)} |")
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            rows += _rows(inner, env, here, list_path and f"{list_path}[].{name}")
        elif isinstance(item, type) and issubclass(item, BaseModel):
            rows += _rows(item, env, here, key)
    return rows


def render_reference() -> str:
    """deploy/CONFIGURATION.md, from the settings models' fields, types, defaults and descriptions."""
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated from the settings models by `dedup config reference --out deploy/CONFIGURATION.md`;",
        "     tests/test_deploy.py fails if this file and the models disagree. Do not edit by hand. -->",
        "",
        "Each role reads one TOML file, named by `--config` or by the role's `*_CONFIG` variable. Relative",
        "paths in a file are taken relative to the file's folder, so a configuration folder can be moved",
        "as a whole. Unknown settings are refused, naming the setting, with exit code 2.",
        "`dedup config check ROLE FILE` loads a file exactly as the role would (with the environment's",
        "overrides) and prints the result.",
        "",
        "## Environment-variable overrides",
        "",
        "Any setting can be set from the environment, over the file's value: `DEDUP_<ROLE>__<SETTING>`,",
        "with nested tables joined by `__` (`DEDUP_COORDINATOR__TLS__CA`, `DEDUP_NODE__COORDINATOR__ADDRESS`).",
        "Text and path settings take the value as it is; every other setting reads it as a TOML value",
        "(`500`, `true`, `[\"/data/a\", \"/data/b\"]`, `[0.08, 0.25]`). Relative paths are taken relative",
        "to the configuration file's folder, as in the file. Lists of tables (the coordinator's",
        "`members`) can only be set whole (a TOML array of inline tables). A variable with the role's",
        "prefix that names no setting is refused (exit 2), so a misspelt override cannot pass unnoticed.",
        "Containers use this to keep one file and inject what differs per host, such as the database",
        "URL with its password from a secret.",
        "",
    ]
    for _role, title, model, config_env, intro in _roles():
        env = {path: var for var, path in env_var_names(model).items()}
        out += [
            f"## {title}",
            "",
            f"{intro} File: `--config FILE` or `${config_env}`; overrides: `{model.ENV_PREFIX}<SETTING>`.",
            "",
            "| setting | type | default | environment variable | description |",
            "|---|---|---|---|---|",
            *_rows(model, env),
            "",
        ]
    return "\n".join(out)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="configuration: the generated reference, and checking a file",
                       description="Every setting of every role, as the settings models define it: write the "
                                   "reference page, or load a configuration file exactly as a role would "
                                   "(environment overrides included) to check it before a restart.",
                       epilog=exits.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    cmds = p.add_subparsers(dest="config_command", metavar="COMMAND", required=True)

    s = cmds.add_parser("reference", help="write the configuration reference (Markdown) from the settings models",
                        description="Render every setting of the coordinator and the node, with its type, "
                                    "default, environment variable and description, as Markdown: to stdout, or "
                                    f"to --out (the committed copy is {REFERENCE}).")
    s.add_argument("--out", type=Path, help="file to write (default: stdout)")
    s.set_defaults(func=_reference)

    s = cmds.add_parser("check", help="load a configuration file as a role would, and print the result",
                        description="Validate FILE with the role's settings model and the environment's "
                                    "DEDUP_<ROLE>__* overrides, and print the effective settings (paths resolved). "
                                    "Exit 2 names every problem.",
                        epilog=exits.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("role", choices=("coordinator", "node"), help="which role's file it is")
    s.add_argument("file", type=Path, metavar="FILE", help="the TOML configuration file")
    s.add_argument("--json", action="store_true", help="print the effective settings as JSON")
    s.set_defaults(func=_check)


def _reference(args) -> int:
    text = render_reference()
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    return exits.OK


def _check(args) -> int:
    model = next(m for role, _, m, _, _ in _roles() if role == args.role)
    try:
        settings = load(args.file, model, os.environ)
    except ConfigError as exc:
        raise CommandError(str(exc)) from exc
    data = settings.model_dump(mode="json")
    if args.json:
        emit_json(data)
    else:
        print(f"{args.file}: a valid {args.role} configuration")
        for k, v in data.items():
            print(f"  {k} = {json.dumps(v)}")
    return exits.OK
