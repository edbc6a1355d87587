"""Loading TOML configuration files into pydantic settings models.

Relative paths in a file are taken relative to the file's own folder, so a configuration
folder can be moved or copied as a whole.

Environment-variable overrides: a settings model that declares ``ENV_PREFIX`` (e.g.
``DEDUP_COORDINATOR__``) takes any setting from ``<ENV_PREFIX><FIELD>``, nested tables joined by
``__`` (``DEDUP_COORDINATOR__TLS__CA``, ``DEDUP_NODE__COORDINATOR__ADDRESS``), over the file's value.
Text and path settings take the variable's value as it is; every other setting reads it as a TOML
value (``500``, ``true``, ``["/data/a", "/data/b"]``, ``[0.08, 0.25]``). Containers and
orchestrators can then keep one file and inject what differs per host (addresses, the database
URL with its password) from their secret stores. A variable with the prefix that names no
setting is an error, so a typo cannot be silently ignored.
"""

from __future__ import annotations

import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

S = TypeVar("S", bound=BaseModel)

MEMBER_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def _member_id(v: str) -> str:
    if not MEMBER_ID.match(v):
        raise ValueError("member ids are 1-63 lowercase letters, digits and '-'")
    return v


#: A member id: also the common name of the member's TLS certificate and its key's name.
MemberId = Annotated[str, AfterValidator(_member_id)]


class ConfigError(Exception):
    """A configuration file is missing, unreadable or invalid."""


def _strip_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def env_var_names(model: type[BaseModel], prefix: str | None = None) -> dict[str, tuple[str, ...]]:
    """Every environment variable ``model`` reads, mapped to the setting's path of field names."""
    prefix = prefix if prefix is not None else getattr(model, "ENV_PREFIX", None)
    if not prefix:
        return {}
    out: dict[str, tuple[str, ...]] = {}

    def walk(m: type[BaseModel], path: tuple[str, ...]) -> None:
        for name, field in m.model_fields.items():
            inner = _strip_optional(field.annotation)
            here = (*path, name)
            out[prefix + "__".join(p.upper() for p in here)] = here
            if _is_model(inner):
                walk(inner, here)

    walk(model, ())
    return out


def _leaf(model: type[BaseModel], path: tuple[str, ...]):
    m: Any = model
    field = None
    for name in path:
        field = m.model_fields[name]
        m = _strip_optional(field.annotation)
    return m


def env_overrides(model: type[BaseModel], environ: Mapping[str, str]) -> dict:
    """The nested settings the environment sets for ``model`` (see the module's docstring)."""
    prefix = getattr(model, "ENV_PREFIX", None)
    if not prefix:
        return {}
    known = env_var_names(model, prefix)
    unknown = sorted(k for k in environ if k.startswith(prefix) and k not in known)
    if unknown:
        raise ConfigError(f"environment variable {unknown[0]} names no setting (settings from the environment "
                          f"are {prefix}<FIELD>, nested tables joined by '__'; see deploy/CONFIGURATION.md)")
    out: dict = {}
    for var, path in sorted(known.items(), key=lambda kv: len(kv[1])):
        if var not in environ:
            continue
        text = environ[var]
        target = _leaf(model, path)
        if target in (str, Path):
            value: Any = text
        else:
            try:
                value = tomllib.loads(f"v = {text}")["v"]
            except tomllib.TOMLDecodeError:
                value = text  # let the model say what is wrong with it
        d = out
        for name in path[:-1]:
            d = d.setdefault(name, {})
            if not isinstance(d, dict):
                raise ConfigError(f"{var} sets part of a table that another variable sets whole")
        d[path[-1]] = value
    return out


def _merge(base: dict, over: dict) -> dict:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
    return base


def load(path: Path, model: type[S], environ: Mapping[str, str] | None = None) -> S:
    """Read ``path`` into ``model``, with the environment's overrides (``os.environ`` by default)."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"configuration file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    _merge(raw, env_overrides(model, os.environ if environ is None else environ))
    try:
        return model.model_validate(raw, context={"base": path.resolve().parent})
    except ValidationError as exc:
        lines = [f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()]
        raise ConfigError(f"{path} is not a valid configuration:\n  " + "\n  ".join(lines)) from exc


def resolve_path(value: Path, info) -> Path:
    """Field validator helper: make a relative path relative to the config file's folder."""
    base = (info.context or {}).get("base")
    if base is not None and not value.is_absolute():
        return (Path(base) / value).resolve()
    return value


class TlsFiles(BaseModel):
    """PEM files for mutual TLS, all issued under the consortium CA."""

    model_config = ConfigDict(extra="forbid")

    ca: Path = Field(description="PEM certificate of the consortium CA")
    cert: Path = Field(description="PEM certificate this party presents")
    key: Path = Field(description="PEM private key of that certificate")

    @field_validator("ca", "cert", "key")
    @classmethod
    def _paths(cls, v: Path, info: ValidationInfo) -> Path:
        return resolve_path(v, info)
