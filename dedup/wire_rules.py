"""The form of the strings a member sends: rules every party applies alike, so that a node
written from SPEC knows what the coordinator refuses before it sends anything.

Names are kept off the wire by these forms, not by trusting each node to leave them out: an
asset id, a batch id and a withdrawal id are opaque, a capture date is a date, a rights value is a vocabulary URI, a claim kind
is a word. The only free text (a vote's reason and claim evidence, a ruling's reasoning, a
withdrawal's reason) is logged as signed and read by other parties, so it is bounded and holds
no control characters.
"""

from __future__ import annotations

import re
from datetime import datetime

from dedup import rights

#: An asset id: "a-" and 24 lowercase hex digits (12 random bytes, drawn by the node when it
#: first sees a path), so no part of a path, file name or catalogue number can ride in it.
ASSET_ID = re.compile(r"a-[0-9a-f]{24}")
#: EXIF DateTimeOriginal as the node writes it; no zone, as EXIF gives none.
CAPTURE_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}")
#: A batch or withdrawal id: 32 lowercase hex digits (16 random bytes, drawn by the node), so a
#: batch named after a collection or a person cannot carry that name into the log.
RANDOM_ID = re.compile(r"[0-9a-f]{32}")
#: A claim's kind: one lowercase word such as "camera_original" or "accession_record".
CLAIM_KIND = re.compile(r"[a-z][a-z0-9_]{0,63}")
#: Longest free text, in characters (code points).
TEXT_LIMIT = 4096
#: The fields that carry free text, by full protobuf name.
FREE_TEXT: tuple[str, ...] = (
    "dedup.v1.AssetsWithdrawn.reason",
    "dedup.v1.MasterVote.reason",
    "dedup.v1.MasterVote.claim_evidence",
    "dedup.v1.MasterRuling.reasoning",
)
# Every C0 and C1 control but tab and newline: text is shown on operators' terminals and in
# reports, where escapes and carriage returns could rewrite what a reader sees.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def is_asset_id(value: str) -> bool:
    return ASSET_ID.fullmatch(value) is not None


def is_capture_date(value: str) -> bool:
    """``YYYY-MM-DDTHH:MM:SS`` naming a real time, or empty (the date is unknown)."""
    if value == "":
        return True
    if CAPTURE_DATE.fullmatch(value) is None:
        return False
    try:
        datetime.strptime(value, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return False
    return True


def is_rights(value: str) -> bool:
    """A rights value in its canonical wire form (``dedup.rights``), or empty: absent is
    unknown, never free."""
    return value == "" or rights.is_wire_value(value)


def is_random_id(value: str) -> bool:
    return RANDOM_ID.fullmatch(value) is not None


def is_claim_kind(value: str) -> bool:
    return CLAIM_KIND.fullmatch(value) is not None


def text_problem(value: str) -> str | None:
    """What makes ``value`` unfit as free text, or None if it is fit."""
    if len(value) > TEXT_LIMIT:
        return f"is {len(value)} characters long; free text holds at most {TEXT_LIMIT}"
    if m := _CONTROL.search(value):
        return (f"holds the control character U+{ord(m.group()):04X} at character {m.start()}; free text may "
                "hold tab and newline, no other control character")
    return None
