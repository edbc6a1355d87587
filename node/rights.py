"""The rights status of one image, from its embedded metadata.

A file's rights are shared as a rightsstatements.org URI or ``unknown``. Absent or unreadable
metadata is ``unknown``, never free: the node cannot tell "nobody wrote it down" from "no
restrictions", and a wrong "free" is the costly mistake.

Decision, first match wins:

1. A rightsstatements.org URI in ``xmpRights:WebStatement``, then in the text of
   ``xmpRights:UsageTerms`` or ``dc:rights``: that statement. It is the only machine-readable
   statement of status in common use, so it beats any free text.
2. A copyright notice in ``dc:rights``, ``plus:Licensor`` (the licensor's name), IPTC IIM 2:116
   or EXIF Copyright, in that order: In Copyright (InC). A notice asserts copyright, nothing
   more. The order prefers the fields an editor fills deliberately over the one cameras fill
   by default. Text without letters or digits, and text that disclaims copyright ("public
   domain", "no known copyright"), is not a notice: free text is not trusted to free a work.
3. ``xmpRights:Marked`` without a notice: ``False`` is No Known Copyright (NKC), the nearest
   statement to "marked as not rights-managed"; ``True`` is In Copyright.
4. Otherwise ``unknown``.

Every source is read defensively: a malformed packet or field is skipped, so one bad field
never costs the image its other metadata, and reading never raises.
"""

from __future__ import annotations

import codecs
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from PIL import Image, IptcImagePlugin

STATEMENTS: tuple[str, ...] = (
    "InC", "InC-OW-EU", "InC-EDU", "InC-NC", "InC-RUU",
    "NoC-CR", "NoC-NC", "NoC-OKLR", "NoC-US",
    "CNE", "UND", "NKC",
)
#: Statements whose use is restricted: in copyright, or out of copyright but bound by
#: contract, non-commercial terms or other legal restrictions.
RESTRICTED: frozenset[str] = frozenset(
    {"InC", "InC-OW-EU", "InC-EDU", "InC-NC", "InC-RUU", "NoC-CR", "NoC-NC", "NoC-OKLR"}
)
TEXT_LIMIT = 500
T = TypeVar("T")


@dataclass(frozen=True)
class Rights:
    uri: str     # canonical rightsstatements.org URI, or 'unknown'
    text: str    # the statement text found in the file, or ''
    source: str  # the field that decided, or '' when unknown


UNKNOWN = Rights("unknown", "", "")

_BY_LOWER = {s.lower(): s for s in STATEMENTS}
_RS = (
    r"(?:https?://)?(?:www\.)?rightsstatements\.org/(?:vocab|page)/"
    r"([A-Za-z]+(?:-[A-Za-z]+)*)/1\.0(?!\d)/?"
)
_RS_WHOLE = re.compile(_RS + r"(?:[?#].*)?", re.IGNORECASE | re.DOTALL)
# In running text a URI must not be glued to a preceding word or path.
_RS_IN_TEXT = re.compile(r"(?<![\w.@/-])" + _RS, re.IGNORECASE)


def _vocab(statement_id: str) -> str:
    return f"http://rightsstatements.org/vocab/{statement_id}/1.0/"


def uri_for(statement_id: str) -> str | None:
    """The vocab URI for a statement ID such as 'InC' or 'noc-us' (any case), else None."""
    canonical = _BY_LOWER.get(statement_id.strip().lower())
    return _vocab(canonical) if canonical else None


def canonical_uri(value: str) -> str | None:
    """The canonical vocab URI for a rightsstatements.org URI in any common spelling, else None.

    Accepts http or https, an optional www., any case, /page/ (the human-readable page that
    people copy from a browser, often with ?language=..) as well as /vocab/, and a missing
    trailing slash.
    """
    m = _RS_WHOLE.fullmatch(value.strip())
    return uri_for(m.group(1)) if m else None


def is_restricted(uri: str) -> bool:
    """True for a statement in RESTRICTED. False means "not known to be restricted", not free."""
    canonical = canonical_uri(uri)
    return canonical is not None and canonical.split("/")[-3] in RESTRICTED


def rights_of(image: Image.Image) -> Rights:
    """The rights of an opened image, from its XMP, IPTC and EXIF. Never raises."""
    xmp = _safe(_xmp_fields, image) or {}
    iptc = _safe(_iptc_notice, image) or ""
    exif = _safe(_exif_notice, image) or ""
    texts = [
        ("xmpRights:UsageTerms", xmp.get("xmpRights:UsageTerms", "")),
        ("dc:rights", xmp.get("dc:rights", "")),
        ("plus:Licensor", xmp.get("plus:Licensor", "")),
        ("IPTC 2:116", iptc),
        ("EXIF Copyright", exif),
    ]

    web = _find_uri(xmp.get("xmpRights:WebStatement", ""))
    if web:
        return Rights(web, next((t for _, t in texts if t), ""), "xmpRights:WebStatement")
    for source, text in texts[:2]:
        if uri := _find_uri(text):
            return Rights(uri, text, source)
    for source, text in texts[1:]:
        if _is_notice(text):
            return Rights(_vocab("InC"), text, source)
    marked = xmp.get("xmpRights:Marked", "").lower()
    if marked in ("false", "true"):
        return Rights(_vocab("NKC" if marked == "false" else "InC"), "", "xmpRights:Marked")
    return UNKNOWN


def _safe(read: Callable[[Image.Image], T], image: Image.Image) -> T | None:
    # Metadata comes from untrusted files in every dialect; whatever one reader trips over,
    # the others still count.
    try:
        return read(image)
    except Exception:
        return None


def _find_uri(text: str) -> str | None:
    for m in _RS_IN_TEXT.finditer(text):
        if uri := uri_for(m.group(1)):
            return uri
    return None


_DISCLAIMER = re.compile(
    r"\b(?:public\s+domain|no\s+known\s+copyright|no\s+copyright|not\s+in\s+copyright"
    r"|copyright[\s-]*free)\b",
    re.IGNORECASE,
)
_ASSERTION = re.compile(r"©|\(c\)", re.IGNORECASE)


def _is_notice(text: str) -> bool:
    if not any(ch.isalnum() for ch in text):
        return False
    return bool(_ASSERTION.search(text)) or not _DISCLAIMER.search(text)


def _clean(text: str) -> str:
    text = " ".join(re.sub(r"[\x00-\x1f\x7f]+", " ", text).split())
    return text[:TEXT_LIMIT].rstrip()


def _decode(data: bytes) -> str:
    for encoding in ("utf-8", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            pass
    return data.decode("latin-1")


# --- EXIF -------------------------------------------------------------------------------

_EXIF_COPYRIGHT = 0x8298


def _exif_notice(image: Image.Image) -> str:
    value = image.getexif().get(_EXIF_COPYRIGHT)
    if isinstance(value, bytes):
        value = _decode(value.rstrip(b"\0"))
    elif isinstance(value, str):
        # Pillow reads EXIF ASCII as Latin-1, but many tools write UTF-8 there.
        try:
            value = value.encode("latin-1").decode("utf-8")
        except UnicodeError:
            pass
    else:
        return ""
    # EXIF keeps the photographer's and the editor's notices apart with a NUL.
    return _clean("; ".join(p.strip() for p in value.split("\0") if p.strip()))


# --- IPTC IIM ---------------------------------------------------------------------------

_UTF8_ESCAPE = b"\x1b%G"  # ISO 2022 designation of UTF-8 in 1:90 CodedCharacterSet


def _iptc_notice(image: Image.Image) -> str:
    info = IptcImagePlugin.getiptcinfo(image)  # type: ignore[arg-type]
    if not info:
        return ""
    charset = info.get((1, 90))
    utf8 = isinstance(charset, bytes) and _UTF8_ESCAPE in charset
    raw = info.get((2, 116))
    values = raw if isinstance(raw, list) else [raw]
    parts = [
        v.decode("utf-8", "replace") if utf8 else _decode(v)
        for v in values
        if isinstance(v, bytes)
    ]
    return _clean("; ".join(p.strip() for p in parts if p.strip()))


# --- XMP --------------------------------------------------------------------------------

_NAMESPACES = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "xmpRights": "http://ns.adobe.com/xap/1.0/rights/",
    "plus": "http://ns.useplus.org/ldf/xmp/1.0/",
}
_XML_NS = "http://www.w3.org/XML/1998/namespace"


def _norm_ns(uri: str) -> str:
    return uri.strip().rstrip("/#").lower()


# Namespace URIs are compared loosely: a missing trailing slash or odd case is a common slip.
_PREFIX_OF = {_norm_ns(uri): prefix for prefix, uri in _NAMESPACES.items()}
_PREFIXES_USED = re.compile(r"[<\s/]([A-Za-z_][\w.\-]*):[A-Za-z_]")
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>")


def _qname(tag: str) -> str:
    """'{ns}local' as 'prefix:local' for the namespaces read here; other names unchanged."""
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        if prefix := _PREFIX_OF.get(_norm_ns(ns)):
            return f"{prefix}:{local}"
    return tag


def _packet_text(raw: object) -> str | None:
    if isinstance(raw, str):
        text = raw
    elif isinstance(raw, (bytes, bytearray)):
        data = bytes(raw)
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            text = data.decode("utf-16", "replace")
        elif data.startswith(b"<\0"):
            text = data.decode("utf-16-le", "replace")
        elif data.startswith(b"\0<"):
            text = data.decode("utf-16-be", "replace")
        else:
            text = data.decode("utf-8", "replace")
    else:
        return None
    # NUL padding is common after a packet and is never legal XML.
    return text.replace("\0", "").lstrip("\ufeff")


def _parse_packet(raw: object) -> ET.Element | None:
    text = _packet_text(raw)
    if not text or re.search(r"<!(?:DOCTYPE|ENTITY)", text, re.IGNORECASE):
        return None  # XMP never needs a DTD; refusing one keeps entity tricks out
    body = _XML_DECL.sub("", text, count=1)
    # Wrapping the packet in an element that declares the usual prefixes, and any other
    # prefix the packet uses, lets a packet that forgot its xmlns declarations still parse;
    # the packet's own declarations, being nearer, still win.
    declared = dict(_NAMESPACES)
    for prefix in set(_PREFIXES_USED.findall(body)) - {"xml", "xmlns"}:
        declared.setdefault(prefix, f"urn:undeclared:{prefix}")
    xmlns = " ".join(f'xmlns:{p}="{u}"' for p, u in declared.items())
    try:
        return ET.fromstring(f"<wrap {xmlns}>{body}</wrap>")
    except ET.ParseError:
        return None


def _descriptions(element: ET.Element) -> Iterator[ET.Element]:
    """The top-level resource descriptions: those of the document, not of nested resources
    (xmpMM:Pantry and History carry other documents' dc:rights)."""
    name = _qname(element.tag)
    if name == "rdf:RDF":
        yield from element
    elif name == "rdf:Description":
        yield element
    else:
        for child in element:
            yield from _descriptions(child)


def _attribute(element: ET.Element, qname: str) -> str:
    return next((v for k, v in element.attrib.items() if _qname(k) == qname), "")


def _value(prop: ET.Element) -> str:
    """A simple, resource or language-alternative value; x-default first, else the first."""
    if resource := _attribute(prop, "rdf:resource"):
        return resource
    for container in prop:
        if _qname(container.tag) in ("rdf:Alt", "rdf:Bag", "rdf:Seq"):
            items = [li for li in container if _qname(li.tag) == "rdf:li"]
            default = [li for li in items if li.get(f"{{{_XML_NS}}}lang", "").lower() == "x-default"]
            for li in default + items:
                if (text := _value(li)).strip():
                    return text
            return ""
    return prop.text or ""


def _licensor_name(prop: ET.Element) -> str:
    for element in prop.iter():
        if (name := _attribute(element, "plus:LicensorName")).strip():
            return name
        if _qname(element.tag) == "plus:LicensorName" and (text := _value(element)).strip():
            return text
    return ""


_WANTED = ("xmpRights:WebStatement", "xmpRights:UsageTerms", "xmpRights:Marked", "dc:rights", "plus:Licensor")


def _xmp_fields(image: Image.Image) -> dict[str, str]:
    """The rights fields of the image's XMP packet, cleaned; {} when there is none or it is
    malformed."""
    raw = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")  # the latter: PNG tEXt/zTXt
    root = _parse_packet(raw) if raw else None
    if root is None:
        return {}
    fields: dict[str, str] = {}
    for description in _descriptions(root):
        for name, value in description.attrib.items():
            if (q := _qname(name)) in _WANTED and not fields.get(q):
                fields[q] = _clean(value)
        for prop in description:
            if (q := _qname(prop.tag)) in _WANTED and not fields.get(q):
                fields[q] = _clean(_licensor_name(prop) if q == "plus:Licensor" else _value(prop))
    return fields
