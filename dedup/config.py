"""Loading TOML configuration files into pydantic settings models.

Relative paths in a file are taken relative to the file's own folder, so a configuration
folder can be moved or copied as a whole.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, TypeVar

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


def load(path: Path, model: type[S]) -> S:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"configuration file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
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
