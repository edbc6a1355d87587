"""The coordinator's settings (one TOML file; see SPEC.md and the demo's generated file)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from dedup.config import MemberId, TlsFiles, resolve_path
from dedup.matching import DEFAULT_RULE, Rule
from dedup.note import NoteVerifier

from .database import is_url


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MemberSettings(_Model):
    id: MemberId = Field(description="member id; equals the common name of the member's TLS certificate")
    name: str = Field(description="display name of the institution")
    public_key: str = Field(description="the member's Ed25519 signing key as a C2SP verifier key string")
    custodial_priority: int = Field(100, ge=0, description="master policy tie-break: lower ranks first")
    revoked: str | None = Field(None, description="set to the reason to revoke this member's key: everything it "
                                                  "sends is refused from then on, and the log records the revocation")
    arbiter: bool = Field(False, description="may settle disputed master proposals with a signed ruling (logged in "
                                             "the member's admission, so it is set when the member is first admitted)")
    reader: bool = Field(False, description="a member that only looks up provenance (`dedup node lookup`): no "
                                            "collection, no batches, no votes; logged in the member's admission, so "
                                            "it is set when the member is first admitted")
    auditor: bool = Field(False, description="reads every log entry in full (other members read only the entries "
                                             "about them; SPEC.md 8, 'Who reads the log'): no collection, no "
                                             "batches, no votes; logged in the member's admission, so it is set "
                                             "when the member is first admitted")

    previous_keys: list[str] = Field(
        default_factory=list,
        description="keys this member signed with before public_key, oldest first, as C2SP verifier key strings "
                    "(`dedup pki issue --rekey` writes them). When the log holds the last of them, the coordinator "
                    "logs a MemberKeyReplaced entry at start-up and refuses the old key from then on")

    @field_validator("public_key")
    @classmethod
    def _a_strong_key(cls, v: str) -> str:
        NoteVerifier.from_string(v)  # malformed, mismatched or weak keys are refused here, by name
        return v

    @field_validator("previous_keys")
    @classmethod
    def _strong_previous_keys(cls, v: list[str]) -> list[str]:
        for key in v:
            NoteVerifier.from_string(key)
        return v

    def raw_key(self) -> bytes:
        return NoteVerifier.from_string(self.public_key).public_bytes()

    def raw_previous_keys(self) -> list[bytes]:
        return [NoteVerifier.from_string(k).public_bytes() for k in self.previous_keys]

    @model_validator(mode="after")
    def _reader_is_not_arbiter(self) -> "MemberSettings":
        if self.reader and self.arbiter:
            raise ValueError(f"member {self.id}: a reader cannot be an arbiter (readers cast no votes or rulings)")
        if self.auditor and self.arbiter:
            raise ValueError(f"member {self.id}: an auditor cannot be an arbiter (auditors cast no votes or rulings)")
        names = {NoteVerifier.from_string(k).name for k in self.previous_keys} - {self.id}
        if names:
            raise ValueError(f"member {self.id}: previous keys must be named {self.id!r}, not {sorted(names)}")
        raw = [self.raw_key(), *self.raw_previous_keys()]
        if len(set(raw)) != len(raw):
            # A key may serve one stretch of the log: going back to a replaced key would revive it.
            raise ValueError(f"member {self.id}: a key appears twice among public_key and previous_keys")
        return self


class MatchSettings(_Model):
    """Match distances (see SPEC.md, "Matching"); the defaults are the published ones."""

    whole: int = Field(DEFAULT_RULE.whole, ge=0, le=128, description="largest dct256 distance for a whole-picture match")
    whole_turned_back: int = Field(DEFAULT_RULE.whole_turned_back, ge=0, le=128,
                                   description="a turned match (one's rotated or mirrored dct256 within `whole` of "
                                               "the other's upright one) also needs the other way round within this")
    whole_loose: int = Field(DEFAULT_RULE.whole_loose, ge=0, le=128,
                             description="largest dct256 distance for a local-edit match (with dct64 agreeing)")
    low: int = Field(DEFAULT_RULE.low, ge=0, le=32, description="largest dct64 distance for a local-edit match")
    points: int = Field(DEFAULT_RULE.points, ge=0, le=24,
                        description="largest kp64 keypoint-hash distance for two keypoints to correspond (crops, "
                                    "rescans and local edits found by keypoints)")
    points_inliers: int = Field(DEFAULT_RULE.points_inliers, ge=3, le=64,
                                description="keypoints that must agree on where one picture lies in the other")

    def rule(self) -> Rule:
        return Rule(whole=self.whole, whole_turned_back=self.whole_turned_back, whole_loose=self.whole_loose,
                    low=self.low, points=self.points,
                    points_inliers=self.points_inliers)


class LookupSettings(_Model):
    """Provenance lookups (`LookupService`, SPEC.md section 10)."""

    max_files: int = Field(100, ge=1, le=1000, description="most files one lookup call may ask about")
    rate: float = Field(2.0, gt=0, description="files a member may look up per second, on average (a token "
                                               "bucket per member; over it, lookups are refused with "
                                               "RESOURCE_EXHAUSTED until it refills)")
    burst: int = Field(200, ge=1, description="files a member may look up at once before the rate applies; at "
                                              "least max_files")
    count_period_seconds: int = Field(86400, ge=1, description="how often each member's lookup count is "
                                                               "logged (a LookupsCounted entry: who asked how "
                                                               "often, never what)")

    @model_validator(mode="after")
    def _burst_fits_a_call(self) -> "LookupSettings":
        if self.burst < self.max_files:
            raise ValueError(f"lookup.burst ({self.burst}) must be at least lookup.max_files ({self.max_files}), "
                             "or a full lookup could never be answered")
        return self


class WitnessSettings(_Model):
    """A C2SP tlog-witness the coordinator sends its checkpoints to (SPEC.md 8.4)."""

    url: str = Field(description="the witness's add-checkpoint URL, e.g. https://witness.example.org/add-checkpoint "
                                 "(`dedup node witness-serve` prints its own)")
    key: str = Field(description="the witness's cosigner key, name+keyid+base64(0x04 || key); a member node's is "
                                 "its member id and statement key")

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"witness url {v!r} is not an http:// or https:// URL")
        return v

    @field_validator("key")
    @classmethod
    def _cosigner(cls, v: str) -> str:
        from dedup.cosignature import CosignatureError, CosignatureVerifier

        try:
            CosignatureVerifier.from_string(v.strip())
        except CosignatureError as exc:
            raise ValueError(f"witness key: {exc}") from None
        return v.strip()


class CoordinatorSettings(_Model):
    #: Environment variables that override the file (dedup/config.py).
    ENV_PREFIX: ClassVar[str] = "DEDUP_COORDINATOR__"

    listen: str = Field("127.0.0.1:7443", description="host:port the gRPC server binds")
    database: str = Field(description="the store: a SQLite file (embedded default), or a PostgreSQL URL "
                                      "postgresql://user@host:port/dbname for the records service")
    log_key: Path = Field(description="file holding the log's C2SP signer key (PRIVATE+KEY+...)")
    log_origin: str = Field(description="checkpoint origin line, e.g. 'records.example.hk/dedup-log'")
    tls: TlsFiles
    index_snapshot: Path | None = Field(None, description="file the candidate index is saved to when the coordinator "
                                        "stops and read from when it starts, so a restart need not re-parse every "
                                        "record; used only while the log has not changed since (else the index is "
                                        "rebuilt from the store). Unset: beside a SQLite database (<database>.index), "
                                        "none with PostgreSQL")
    metrics_listen: str | None = Field(None, description="host:port to serve Prometheus metrics on (/metrics); "
                                                         "off when unset")
    health_listen: str | None = Field(None, description="host:port to serve gRPC health checking on without TLS "
                                                        "(grpc.health.v1 only, nothing else), for orchestrators' "
                                                        "probes (Kubernetes grpc probes cannot present a client "
                                                        "certificate); off when unset")
    max_batch_assets: int = Field(5000, ge=1, description="largest batch accepted, in assets")
    max_batch_candidates: int = Field(2_000_000, ge=1, description="most index candidates one batch's search may "
                                                                  "find (the bound on its memory: about 100 bytes "
                                                                  "each); past it the batch is refused with "
                                                                  "RESOURCE_EXHAUSTED (search_too_large) and "
                                                                  "nothing is stored")
    one_turn_assets: int = Field(50, ge=0, description="a batch of at most this many assets is searched and stored "
                                                       "in one turn at the intake lock; a larger one takes two (its "
                                                       "search, then its store) so that others go in between")
    intake_rate: float = Field(50.0, gt=0, description="batches and withdrawals per second each member may send "
                                                      "on average; past its burst, a member's further requests "
                                                      "are refused with RESOURCE_EXHAUSTED naming when to retry "
                                                      "(a flood from one member cannot starve the others)")
    intake_burst: int = Field(200, ge=1, description="batches and withdrawals a member may send at once before "
                                                     "intake_rate applies")
    match: MatchSettings = MatchSettings()
    lookup: LookupSettings = LookupSettings()
    vote_deadline_seconds: int = Field(14 * 86400, ge=0,
                                       description="time members have to vote on a master proposal; a proposal "
                                                   "with no rejection or claim by then is agreed, silence counting "
                                                   "as acceptance (default 14 days)")
    deadline_check_seconds: float = Field(60.0, gt=0, description="how often the server looks for proposals "
                                                                  "past their deadline")
    members: list[MemberSettings] = Field(default_factory=list)
    witnesses: list[WitnessSettings] = Field(default_factory=list,
                                             description="C2SP tlog-witnesses to send every new checkpoint to (besides "
                                                         "the members, who pull it); their cosignatures are stored "
                                                         "and served with the checkpoint like the members'")
    witness_interval_seconds: float = Field(5.0, gt=0, description="how often the coordinator sends its latest "
                                                                   "checkpoint to the witnesses that have not "
                                                                   "cosigned it")

    @field_validator("log_key")
    @classmethod
    def _paths(cls, v: Path, info: ValidationInfo) -> Path:
        return resolve_path(v, info)

    @field_validator("index_snapshot")
    @classmethod
    def _snapshot_path(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        return None if v is None else resolve_path(v, info)

    @field_validator("database")
    @classmethod
    def _database(cls, v: str, info: ValidationInfo) -> str:
        return v if is_url(v) else str(resolve_path(Path(v), info))

    def snapshot_path(self) -> Path | None:
        """Where the candidate index is saved (``index_snapshot``, or its default)."""
        if self.index_snapshot is not None:
            return self.index_snapshot
        return None if is_url(self.database) else Path(self.database + ".index")

    @model_validator(mode="after")
    def _witness_names(self) -> "CoordinatorSettings":
        names = [w.key.split("+")[0] for w in self.witnesses]
        if len(set(names)) != len(names):
            raise ValueError("two witnesses share a name: each cosignature is stored under its witness's name")
        from dedup.cosignature import CosignatureVerifier

        members = {m.id: m for m in self.members}
        for w in self.witnesses:
            name = w.key.split("+")[0]
            if name in members and CosignatureVerifier.from_string(w.key).public_bytes() != members[name].raw_key():
                # A member cosigns with its statement key; any other key under its name would be a second voice.
                raise ValueError(f"witness {name!r} is a member, but its key is not the member's statement key")
        return self

    @field_validator("members")
    @classmethod
    def _unique(cls, v: list[MemberSettings], info: ValidationInfo) -> list[MemberSettings]:
        ids = [m.id for m in v]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"member ids listed twice: {sorted(dup)}")
        holders: dict[bytes, str] = {}
        for m in v:
            for key in (m.raw_key(), *m.raw_previous_keys()):
                other = holders.setdefault(key, m.id)
                if other != m.id:
                    # One key, two members: either could disown what it signed as the other.
                    raise ValueError(f"members {other} and {m.id} have the same public key; each member needs its own")
        return v
