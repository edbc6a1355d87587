"""The rights status of one image, from its embedded metadata.

A file's rights are shared as a wire value of ``dedup.rights``: a rightsstatements.org
statement, a Creative Commons licence, CC0 or the Public Domain Mark (as its canonical URI),
or ``unknown``. Absent or unreadable metadata is ``unknown``, never free: the node cannot tell
"nobody wrote it down" from "no restrictions", and a wrong "free" is the costly mistake.

Decision, first match wins:

1. A rights URI in ``xmpRights:WebStatement`` or ``cc:license``: that value. These fields
   hold nothing but a statement's address.
2. A rights URI, or a licence's standard name ("CC BY 4.0", "CC-BY-SA-3.0", "CC BY-SA 3.0
   de", "CC0", "Public Domain Mark"), in the text of ``xmpRights:UsageTerms``, ``dc:rights``,
   IPTC IIM 2:116 or EXIF Copyright, in that order: that value. A standard name is as
   unambiguous as the URI it stands for: whoever wrote it chose that licence or tool.
3. A copyright notice in ``dc:rights``, ``plus:Licensor`` (the licensor's name), IPTC 2:116
   or EXIF Copyright, in that order: In Copyright (InC). A notice asserts copyright, nothing
   more. The order prefers the fields an editor fills deliberately over the one cameras fill
   by default. Text without letters or digits is not a notice; nor is text that claims the
   work is free ("public domain", "no known copyright restrictions", "(c) NASA - public
   domain"), even beside a (c): calling it In Copyright would contradict the file.
4. ``xmpRights:Marked`` without a notice: ``False`` is No Known Copyright (NKC), the nearest
   statement to "marked as not rights-managed"; ``True`` is In Copyright.
5. Otherwise ``unknown``, with the first text found kept beside it.

A free-text claim of public domain therefore ends as ``unknown`` with the claim as its text.
Free text is not trusted to free a work: "public domain" says neither where, nor in which
rights, nor who judged it, and the same words are written over works still in copyright. Nor
is it turned into "Copyright Not Evaluated" or "Copyright Undetermined": those are statements
an institution makes about its own review, and no one has reviewed anything. ``unknown`` says
exactly what the node knows, and the claim stays in the catalogue and in the report for a
person to judge (and to settle with ``import-catalogue``). A claim in one field does not
cancel a notice in another: the notice still makes the file In Copyright, to be reviewed.

``Rights.text`` is the file's own notice, shown beside the statement: the text of the field
that decided, else the first text found.

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

from dedup.rights import CC0, PDM, URI_PATTERN, from_match, parse, statement_uri

TEXT_LIMIT = 500
T = TypeVar("T")


@dataclass(frozen=True)
class Rights:
    uri: str     # a wire value of dedup.rights: a canonical rights URI, or 'unknown'
    text: str    # the file's own notice: the decisive field's text, else the first found, or ''
    source: str  # the field that decided (for 'unknown', the field the text is from), or ''


UNKNOWN = Rights("unknown", "", "")
_INC = statement_uri("InC")
_NKC = statement_uri("NKC")


def rights_of(image: Image.Image) -> Rights:
    """The rights of an opened image, from its XMP, IPTC and EXIF. Never raises."""
    xmp = _safe(_xmp_fields, image) or {}
    iptc = _safe(_iptc_notice, image) or ""
    exif = _safe(_exif_notice, image) or ""
    texts = [
        (source, text)
        for source, text in (
            ("xmpRights:UsageTerms", xmp.get("xmpRights:UsageTerms", "")),
            ("dc:rights", xmp.get("dc:rights", "")),
            ("plus:Licensor", xmp.get("plus:Licensor", "")),
            ("IPTC 2:116", iptc),
            ("EXIF Copyright", exif),
        )
        if _has_words(text)
    ]
    first = texts[0] if texts else ("", "")

    for field in ("xmpRights:WebStatement", "cc:license"):
        if uri := _find_statement(xmp.get(field, "")):
            return Rights(uri, first[1], field)
    for source, text in texts:
        if source != "plus:Licensor" and (uri := _find_statement(text)):
            return Rights(uri, text, source)
    for source, text in texts:
        if source != "xmpRights:UsageTerms" and not _claims_free(text):
            return Rights(_INC, text, source)
    marked = xmp.get("xmpRights:Marked", "").lower()
    if marked in ("false", "true"):
        return Rights(_NKC if marked == "false" else _INC, first[1], "xmpRights:Marked")
    return Rights("unknown", first[1], first[0]) if texts else UNKNOWN


def _safe(read: Callable[[Image.Image], T], image: Image.Image) -> T | None:
    # Metadata comes from untrusted files in every dialect; whatever one reader trips over,
    # the others still count.
    try:
        return read(image)
    except Exception:
        return None


def _has_words(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


# In running text a URI must not be glued to a preceding word or path, nor run on into one.
_URI_IN_TEXT = re.compile(r"(?<![\w.@/-])" + URI_PATTERN + r"(?![\w/-])", re.IGNORECASE)
# A licence's short name as Creative Commons and SPDX write it. A ported licence's
# jurisdiction ("CC BY-SA 3.0 de") counts only at the end of a phrase, so that the "by" of
# "CC BY 3.0 by Jane Doe" is not read as one.
_CC_NAME = re.compile(
    r"(?<![\w-])CC[\s-]+(BY(?:[\s-]+(?:SA|ND|NC))*)[\s-]+v?(\d\.\d)(?!\w|\.\d)"
    r"(?:[\s-]+([a-z]{2}|igo|scotland)(?=\s*(?:$|[),;|/]|\.(?:\s|$))))?",
    re.IGNORECASE,
)
_TOOL_NAME = re.compile(r"(?<![\w-])(?:(CC-?0|CC[\s-]zero)|(public\s+domain\s+mark))(?!\w)", re.IGNORECASE)


def _find_statement(text: str) -> str | None:
    """The first rights URI in the text, else the first licence or tool named in it."""
    for m in _URI_IN_TEXT.finditer(text):
        if uri := from_match(m):
            return uri
    for m in _CC_NAME.finditer(text):
        if uri := parse(" ".join(filter(None, ("CC", *m.groups())))):
            return uri
    if m := _TOOL_NAME.search(text):
        return CC0 if m.group(1) else PDM
    return None


_FREE = re.compile(
    r"\b(?:public\s+domain|no\s+known\s+copyright|no\s+copyright|not\s+in\s+copyright"
    r"|out\s+of\s+copyright|copyright[\s-]*free|copyright\s+(?:has\s+)?expired)\b",
    re.IGNORECASE,
)
_NOT_FREE = re.compile(r"\bnot\s+(?:in\s+(?:the\s+)?)?public\s+domain\b", re.IGNORECASE)


def _claims_free(text: str) -> bool:
    """Whether the text says the work is out of copyright (and does not say the opposite)."""
    return bool(_FREE.search(text)) and not _NOT_FREE.search(text)


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
    "cc": "http://creativecommons.org/ns#",
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


_WANTED = ("xmpRights:WebStatement", "xmpRights:UsageTerms", "xmpRights:Marked", "dc:rights", "plus:Licensor",
           "cc:license")


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
