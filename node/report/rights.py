"""Rights statuses as the report compares them: one spelling per rightsstatements.org statement."""

from __future__ import annotations

import re

UNKNOWN = "unknown"

_RS = re.compile(r"^https?://(?:www\.)?rightsstatements\.org/(?:vocab|page)/([A-Za-z-]+)/([0-9.]+)/?(?:\?.*)?$")
#: In Copyright (every InC variant) and the No Copyright statements that still restrict use.
_RESTRICTED = re.compile(r"^(InC(-[A-Z]+)?|NoC-CR|NoC-NC|NoC-OKLR)$")


def status(uri: str | None) -> str:
    """The canonical statement URI, or 'unknown'. The same statement is often written as
    https, or as its human-readable /page/ address; they must not look like a mix of rights."""
    if uri is None:
        return UNKNOWN
    text = uri.strip()
    if not text or text.lower() == UNKNOWN:
        return UNKNOWN
    m = _RS.match(text)
    if m:
        return f"http://rightsstatements.org/vocab/{m.group(1)}/{m.group(2)}/"
    return text


def restricted(uri: str | None) -> bool:
    """Whether the statement limits reuse (InC family, NoC-CR, NoC-NC, NoC-OKLR)."""
    m = _RS.match(status(uri))
    return bool(m and _RESTRICTED.match(m.group(1)))


def short(uri: str | None) -> str:
    """'http://rightsstatements.org/vocab/InC/1.0/' -> 'InC', for tables."""
    m = _RS.match(status(uri))
    return m.group(1) if m else status(uri)
