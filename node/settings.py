"""A member node's settings (one TOML file)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from dedup.config import ConfigError, MemberId, TlsFiles, env_overrides, resolve_path
from dedup.note import NoteVerifier


class CoordinatorEndpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str = Field(description="host:port of the coordinator's gRPC service")
    server_name: str = Field("coordinator", description="name in the coordinator's TLS certificate")
    timeout_seconds: float = Field(30.0, gt=0, description="deadline for each call")
    retries: int = Field(3, ge=0, description="times `push` resends a batch the coordinator did not answer "
                                              "(UNAVAILABLE or DEADLINE_EXCEEDED) before leaving it pending for "
                                              "the next push; the waits grow exponentially, with random jitter")
    retry_backoff_seconds: float = Field(0.5, gt=0, description="the first wait before a resend; each further "
                                                                "wait doubles it, up to 30 s")


class AutoDecisions(BaseModel):
    """The local rule `dedup node decisions --auto` answers proposals by."""

    model_config = ConfigDict(extra="forbid")

    after_push: bool = Field(False, description="run `dedup node decisions --auto` at the end of every successful "
                                                "push (off by default: votes are then cast only when asked)")
    accept_following_policy: bool = Field(True, description="accept an open proposal whose master and deciding "
                                                            "rule are what the published policy gives on the "
                                                            "proposal's own evidence (when no hold applies)")
    hold_when_losing_master: bool = Field(True, description="cast no vote, and list the proposal as held for a "
                                                            "person, when this member's copy would lose master "
                                                            "status: it holds the cluster's agreed master, or its "
                                                            "copy ranks first under the policy, and the proposal "
                                                            "names another copy")
    off_policy: Literal["hold", "reject"] = Field("hold", description="what to do with a proposal that does not "
                                                                      "follow the published policy: hold it for a "
                                                                      "person, or reject it with the policy's "
                                                                      "answer as the reason")


def _key_text(value: str, info: ValidationInfo, parse, what: str) -> str:
    """A key given as its string (which ``parse`` accepts) or as a file holding it: the string."""
    text = value.strip()
    try:
        parse(text)
        return text
    except ValueError:
        pass
    path = resolve_path(Path(text), info)
    try:
        content = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"neither a {what} nor a readable file: {value} ({exc.strerror})") from None
    try:
        parse(content)
    except ValueError as exc:
        raise ValueError(f"{path} does not hold a {what}: {exc}") from None
    return content


class NodeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: Environment variables that override the file (dedup/config.py).
    ENV_PREFIX: ClassVar[str] = "DEDUP_NODE__"

    member_id: MemberId | None = Field(None, description="this institution's member id (the CN of its TLS "
                                                        "certificate); needed by the commands that sign or talk "
                                                        "to the coordinator, not by scan, duplicates or report")
    catalogue: Path = Field(description="SQLite file of the node's local catalogue")
    signing_key: Path | None = Field(None, description="file holding the member's C2SP signer key (PRIVATE+KEY+...), "
                                                       "made by `dedup pki request`; needed by the commands that "
                                                       "sign (push, withdraw, votes, rulings, witness)")
    tls: TlsFiles | None = Field(None, description="mutual-TLS files; needed by the commands that talk to the "
                                                   "coordinator")
    coordinator: CoordinatorEndpoint | None = Field(None, description="where to push; absent for a local-only node")
    roots: list[str] = Field(default_factory=list,
                             description="folders or s3://bucket/prefix URLs `dedup node scan` reads when given none")
    s3_endpoint: str | None = Field(None, description="endpoint URL of an S3-compatible store (default: AWS); "
                                                      "credentials come from the usual AWS environment and profiles")
    price_per_gb_month: tuple[float, float] = Field((0.08, 0.25), description="storage cost range, HK$ per GB-month, "
                                                                               "for the report's cost figures")
    batch_size: int = Field(500, ge=1, le=5000, description="assets per signed batch")
    workers: int = Field(0, ge=0, description="scan processes; 0 means one per CPU core")
    lookup_batch_size: int = Field(100, ge=1, le=1000, description="files `dedup node lookup` asks the coordinator "
                                                                   "about per call (at most the coordinator's "
                                                                   "lookup.max_files)")
    log_verifier_key: str | None = Field(None, description="the coordinator's log verifier key (C2SP vkey string), "
                                                           "or a file holding it (e.g. the consortium's log.pub); "
                                                           "needed to witness the log")
    log_origin: str | None = Field(None, description="the log's origin, the first line of its checkpoints (e.g. "
                                                     "records.example.hk/dedup-log): every statement this node signs "
                                                     "is bound to it; default: the name of log_verifier_key")
    witness_after_push: bool = Field(True, description="witness the log (`dedup node witness`) at the end of every "
                                                       "successful push, when log_verifier_key is set")
    witnesses: list[str] = Field(default_factory=list,
                                 description="the witnesses whose cosignatures make a checkpoint final for this node "
                                             "(usually the other members): each a C2SP cosigner key "
                                             "(name+keyid+base64(0x04 || key)), a member's statement verifier key "
                                             "(its signing.pub: a member cosigns with its statement key), or a file "
                                             "holding one")
    witness_quorum: int = Field(0, ge=0, description="how many of `witnesses` must cosign a checkpoint before this "
                                                     "node treats the proofs citing it as final (SPEC.md 8.2); 0 "
                                                     "counts none")
    quorum_wait_seconds: float = Field(0.0, ge=0, description="how long `push` waits, after witnessing, for the "
                                                              "checkpoint it pushed into to gather witness_quorum "
                                                              "cosignatures; 0 checks once and does not wait")
    auto_decisions: AutoDecisions = Field(default_factory=AutoDecisions,
                                          description="how `dedup node decisions --auto` answers master proposals")

    @field_validator("log_verifier_key")
    @classmethod
    def _log_key(cls, v: str | None, info: ValidationInfo) -> str | None:
        return None if v is None else _key_text(v, info, NoteVerifier.from_string, "verifier key")

    @field_validator("witnesses")
    @classmethod
    def _witness_keys(cls, v: list[str], info: ValidationInfo) -> list[str]:
        from dedup.quorum import parse_witness

        out = [parse_witness(_key_text(item, info, parse_witness, "witness key")).to_string() for item in v]
        if len({k.split("+")[0] for k in out}) != len(out):
            raise ValueError("a witness is listed twice: each counts once towards the quorum")
        return out

    @model_validator(mode="after")
    def _quorum_reachable(self) -> "NodeSettings":
        if self.witness_quorum > len(self.witnesses):
            raise ValueError(f"witness_quorum = {self.witness_quorum}, but only {len(self.witnesses)} witnesses are "
                             "listed: list their keys in `witnesses`")
        return self

    @field_validator("catalogue", "signing_key")
    @classmethod
    def _paths(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        return None if v is None else resolve_path(v, info)

    @model_validator(mode="after")
    def _one_log(self) -> "NodeSettings":
        if self.log_origin is not None and self.log_verifier_key is not None:
            named = NoteVerifier.from_string(self.log_verifier_key).name
            if named != self.log_origin:
                raise ValueError(f"log_origin {self.log_origin!r} is not the log named by log_verifier_key "
                                 f"({named!r}); set one of them")
        return self

    def origin(self) -> str:
        """The log every statement this node signs is for; NotConfigured if it cannot be known."""
        if self.log_origin:
            return self.log_origin
        if self.log_verifier_key:
            return NoteVerifier.from_string(self.log_verifier_key).name
        from .client import NotConfigured

        raise NotConfigured("this node's statements are signed for one log, and it does not know which: set "
                            "log_verifier_key (the consortium's log.pub) or log_origin")

    @field_validator("roots")
    @classmethod
    def _roots(cls, v: list[str], info: ValidationInfo) -> list[str]:
        return [p if p.startswith("s3://") else str(resolve_path(Path(p), info)) for p in v]


#: The catalogue of a node run with no configuration file: in the folder it is run from, beside
#: the report an archivist writes there, where it is seen, kept or deleted with the audit.
DEFAULT_CATALOGUE = "dedup-catalogue.sqlite"


def unconfigured(environ: Mapping[str, str] | None = None) -> NodeSettings:
    """The settings of a node run with no configuration file: a local catalogue in the current
    folder (or DEDUP_NODE__CATALOGUE) and nothing of the consortium, unless the environment sets it."""
    over = env_overrides(NodeSettings, os.environ if environ is None else environ)
    over.setdefault("catalogue", DEFAULT_CATALOGUE)
    try:
        return NodeSettings.model_validate(over, context={"base": Path.cwd()})
    except ValidationError as exc:
        lines = [f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()]
        raise ConfigError("the DEDUP_NODE__* environment variables are not a valid configuration:\n  "
                          + "\n  ".join(lines)) from exc
