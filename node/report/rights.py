"""Rights as the report shows and compares them: one value per statement or licence (its
wire value in ``dedup.rights``), named for people, with the file's own notice beside it."""

from __future__ import annotations

from dedup import rights as vocabulary

UNKNOWN = vocabulary.UNKNOWN
#: Longest notice quoted in a table or card; the whole text is in report.json.
NOTICE_LIMIT = 160


def status(uri: str | None) -> str:
    """The canonical value, or 'unknown'. The same statement is often written as https, or as
    its human-readable page; they must not look like a mix of rights. A value outside the
    vocabulary is kept as it is, so it is seen rather than hidden."""
    if uri is None or not uri.strip():
        return UNKNOWN
    return vocabulary.canonical(uri) or uri.strip()


def restricted(uri: str | None) -> bool:
    """Whether the value limits reuse: see ``dedup.rights.is_restricted``."""
    return vocabulary.is_restricted(status(uri))


def label(uri: str | None) -> str:
    """'In Copyright', 'CC BY 4.0', 'Public Domain Mark', 'Unknown'..."""
    return vocabulary.label(status(uri))


def describe(uri: str | None, notice: str | None) -> str:
    """The label and the file's own notice: 'In Copyright — “© 2003 Jane Doe”'. A notice that
    only spells the same statement again ('CC BY 4.0', its URI) adds nothing and is left out."""
    text = " ".join((notice or "").split())
    if not text or vocabulary.parse(text) == status(uri):
        return label(uri)
    if len(text) > NOTICE_LIMIT:
        text = text[:NOTICE_LIMIT - 1].rstrip() + "\u2026"
    return f"{label(uri)} \u2014 \u201c{text}\u201d"
