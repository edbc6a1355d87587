"""The rights values every party agrees on: what ``Evidence.rights`` may carry, and how each
value is named and weighed.

A rights value on the wire is exactly one of:

- one of the 12 rightsstatements.org statements, ``http://rightsstatements.org/vocab/ID/1.0/``
  (the form the vocabulary itself publishes, with http);
- a Creative Commons licence, ``https://creativecommons.org/licenses/CODE/VERSION/``, CODE one
  of ``by``, ``by-sa``, ``by-nd``, ``by-nc``, ``by-nc-sa``, ``by-nc-nd`` and VERSION one of
  1.0, 2.0, 2.5, 3.0, 4.0. Version 1.0 of BY-NC-ND was published as ``by-nd-nc`` and that is
  its canonical form (``by-nc-nd/1.0`` is accepted as a spelling of it), so every canonical
  URI is one Creative Commons actually serves;
- a ported Creative Commons licence, ``https://creativecommons.org/licenses/CODE/VERSION/J/``
  for versions 1.0 to 3.0 (and 2.1, which exists only ported), J a two-letter jurisdiction,
  ``igo`` or ``scotland``. A port is kept as itself, not folded into the international
  licence: it is a different legal text, and the holder chose it (a photograph published under
  CC BY 3.0 HK stays so). The shape is checked, not whether Creative Commons published that
  port;
- CC0, ``https://creativecommons.org/publicdomain/zero/1.0/``;
- the Public Domain Mark, ``https://creativecommons.org/publicdomain/mark/1.0/``;
- ``unknown``: nothing trustworthy was found. Absent is unknown, never free.

``canonical`` turns any common spelling of a URI into its wire value; ``parse`` also takes
statement IDs, names and licence short names ("InC", "In Copyright", "CC BY 4.0", "CC0");
``is_wire_value`` says whether a string is already a wire value; ``label`` names a value for
people; ``is_restricted`` says whether it limits reuse.

Restricted means: some reuse needs permission beyond the statement, so a person should look
before the file is published or passed on. That is every In Copyright statement, the No
Copyright statements bound by contract, non-commercial terms or other legal restrictions
(NoC-CR, NoC-NC, NoC-OKLR), and the Creative Commons licences with NonCommercial (NC: no
commercial use) or NoDerivatives (ND: no adaptations, and a crop, colour correction or
retouch of a photograph is an adaptation). BY and BY-SA are not restricted: their conditions
(credit the author; share adaptations alike) can be met by any reuse. CC0, the Public Domain
Mark, NoC-US, NKC, CNE, UND and ``unknown`` are not restricted, which means "not known to be
restricted", never "free".
"""

from __future__ import annotations

import re

UNKNOWN = "unknown"

#: The rightsstatements.org statement IDs and their published names.
STATEMENT_NAMES: dict[str, str] = {
    "InC": "In Copyright",
    "InC-OW-EU": "In Copyright - EU Orphan Work",
    "InC-EDU": "In Copyright - Educational Use Permitted",
    "InC-NC": "In Copyright - Non-Commercial Use Permitted",
    "InC-RUU": "In Copyright - Rights-holder(s) Unlocatable or Unidentifiable",
    "NoC-CR": "No Copyright - Contractual Restrictions",
    "NoC-NC": "No Copyright - Non-Commercial Use Only",
    "NoC-OKLR": "No Copyright - Other Known Legal Restrictions",
    "NoC-US": "No Copyright - United States",
    "CNE": "Copyright Not Evaluated",
    "UND": "Copyright Undetermined",
    "NKC": "No Known Copyright",
}
STATEMENTS: tuple[str, ...] = tuple(STATEMENT_NAMES)
#: Statements whose use is restricted: in copyright, or out of copyright but bound by
#: contract, non-commercial terms or other legal restrictions.
RESTRICTED: frozenset[str] = frozenset(
    {"InC", "InC-OW-EU", "InC-EDU", "InC-NC", "InC-RUU", "NoC-CR", "NoC-NC", "NoC-OKLR"}
)

#: Creative Commons licence codes in canonical order, and the versions published unported.
LICENCES: tuple[str, ...] = ("by", "by-sa", "by-nd", "by-nc", "by-nc-sa", "by-nc-nd")
VERSIONS: tuple[str, ...] = ("1.0", "2.0", "2.5", "3.0", "4.0")
PORTED_VERSIONS: tuple[str, ...] = ("1.0", "2.0", "2.1", "2.5", "3.0")
CC0 = "https://creativecommons.org/publicdomain/zero/1.0/"
PDM = "https://creativecommons.org/publicdomain/mark/1.0/"

_BY_LOWER = {s.lower(): s for s in STATEMENTS}
_ELEMENTS = {frozenset(code.split("-")[1:]): code for code in LICENCES}

#: A rights URI in any common spelling, without anchors, for use inside a larger pattern (so
#: a reader can find one in running text): http or https, www., any case, rightsstatements'
#: /page/ address, and Creative Commons' deed and legal-code pages in any language.
URI_PATTERN = (
    r"(?:https?://)?(?:www\.)?(?:"
    r"rightsstatements\.org/(?:vocab|page)/(?P<rs>[a-z]+(?:-[a-z]+)*)/1\.0"
    r"|creativecommons\.org/(?:"
    r"licenses/(?P<cc>by(?:-[a-z]{2})*)/(?P<version>\d\.\d)(?:/(?P<port>[a-z]{2}|igo|scotland)(?![a-z]))?"
    r"|publicdomain/(?P<pd>zero|mark)/1\.0)"
    r"(?:/(?:legalcode|deed)(?:\.[a-z]{2,3}(?:[-_][a-z0-9]{2,4})?)?)?"
    r")(?!\w|\.\w)/?(?:[?#][^\s<>\"']*)?"
)
_URI = re.compile(URI_PATTERN, re.IGNORECASE)


def statement_uri(statement_id: str) -> str:
    return f"http://rightsstatements.org/vocab/{statement_id}/1.0/"


def licence_uri(code: str, version: str, port: str = "") -> str:
    if code == "by-nc-nd" and version == "1.0":
        code = "by-nd-nc"
    return f"https://creativecommons.org/licenses/{code}/{version}/" + (f"{port}/" if port else "")


def _licence(elements: str, version: str, port: str) -> str | None:
    """The licence URI for 'by-nc-sa'-style elements (any order), or None if there is none."""
    parts = elements.lower().split("-")
    rest = frozenset(parts[1:])
    code = _ELEMENTS.get(rest) if parts[0] == "by" and len(rest) == len(parts) - 1 else None
    if code is None:
        return None
    if port:
        return licence_uri(code, version, port.lower()) if version in PORTED_VERSIONS else None
    return licence_uri(code, version) if version in VERSIONS else None


def from_match(m: re.Match[str]) -> str | None:
    """The wire value for a match of ``URI_PATTERN``, or None if it names nothing in the
    vocabulary (an unknown statement, a licence version that does not exist)."""
    if m.group("rs"):
        statement = _BY_LOWER.get(m.group("rs").lower())
        return statement_uri(statement) if statement else None
    if m.group("cc"):
        return _licence(m.group("cc"), m.group("version"), m.group("port") or "")
    return CC0 if m.group("pd").lower() == "zero" else PDM


def canonical(value: str) -> str | None:
    """The wire value for a rights URI in any common spelling, or for ``unknown``; else None."""
    text = value.strip()
    if text.lower() == UNKNOWN:
        return UNKNOWN
    m = _URI.fullmatch(text)
    return from_match(m) if m else None


def is_wire_value(value: str) -> bool:
    """Whether ``value`` is exactly a canonical wire value (a vocabulary URI or ``unknown``)."""
    return canonical(value) == value


# --- names --------------------------------------------------------------------------------


def _words(text: str) -> str:
    """Lower case, every run of punctuation or spaces one space (version dots kept), so 'No
    Copyright – United States' and 'no-copyright  united states' read alike."""
    return " ".join(re.sub(r"(?:[^\w.]|_|\.(?!\d))+", " ", text.lower()).split())


_NAMES = {_words(name): statement_uri(sid) for sid, name in STATEMENT_NAMES.items()}
_NAMES.update({_words(sid): statement_uri(sid) for sid in STATEMENTS})
for _name in ("cc0", "cc0 1.0", "cc0 1.0 universal", "cc 0", "cc zero", "creative commons zero"):
    _NAMES[_name] = CC0
for _name in ("public domain mark", "public domain mark 1.0", "pdm", "pdm 1.0", "cc pdm", "cc pdm 1.0"):
    _NAMES[_name] = PDM
# The words of the licences' long titles, as Creative Commons and SPDX write them.
_LONG = (
    (r"\bcreative commons\b", "cc"), (r"\battribution\b", "by"), (r"\bshare ?alike\b", "sa"),
    (r"\bnon ?commercial\b", "nc"), (r"\bno ?deriv(?:ative)?s\b", "nd"),
)
_CC_NAME = re.compile(
    r"cc (?P<elements>by(?: (?:sa|nd|nc))*) v?(?P<version>\d\.\d)"
    r"(?: (?P<port>[a-z]{2}|igo|scotland))?(?: (?:international|unported|generic|license|licence))*"
)


def parse(value: str) -> str | None:
    """The wire value for a URI in any common spelling, a rightsstatements.org ID or name ("InC",
    "In Copyright", "No Copyright - United States"), a Creative Commons licence's short name or
    title ("CC BY 4.0", "CC-BY-SA-3.0", "CC BY 3.0 HK", "Attribution 4.0 International"),
    "CC0" or "Public Domain Mark", in any case; ``unknown`` for "unknown"; else None."""
    if (uri := canonical(value)) is not None:
        return uri
    words = _words(value)
    if uri := _NAMES.get(words):
        return uri
    titled = words
    for pattern, short in _LONG:
        titled = re.sub(pattern, short, titled)
    if titled != words and not titled.startswith("cc "):
        titled = "cc " + titled  # a title whose "Creative Commons" was left off
    if m := _CC_NAME.fullmatch(titled):
        return _licence(m.group("elements").replace(" ", "-"), m.group("version"), m.group("port") or "")
    return None


def label(value: str | None) -> str:
    """A short name for people: 'In Copyright', 'No Copyright - United States', 'CC BY 4.0',
    'CC BY-SA 3.0 HK', 'CC0', 'Public Domain Mark', 'Unknown'. A value outside the vocabulary
    is returned as it is, so nothing is hidden."""
    if value is None or not value.strip():
        return "Unknown"
    uri = canonical(value)
    if uri is None:
        return value.strip()
    if uri == UNKNOWN:
        return "Unknown"
    if uri == CC0:
        return "CC0"
    if uri == PDM:
        return "Public Domain Mark"
    parts = uri.rstrip("/").split("/")
    if "rightsstatements.org" in uri:
        return STATEMENT_NAMES[parts[-2]]
    licence = parts[parts.index("licenses") + 1:]
    port = licence[2] if len(licence) > 2 else ""
    name = f"CC {licence[0].upper()} {licence[1]}"
    return f"{name} {'Scotland' if port == 'scotland' else port.upper()}" if port else name


def is_restricted(value: str | None) -> bool:
    """Whether the value limits reuse (see the module's docstring). False means "not known to
    be restricted", never "free"."""
    uri = canonical(value) if value else None
    if uri is None or uri == UNKNOWN:
        return False
    parts = uri.rstrip("/").split("/")
    if "rightsstatements.org" in uri:
        return parts[-2] in RESTRICTED
    if "/licenses/" in uri:
        elements = set(parts[parts.index("licenses") + 1].split("-"))
        return bool(elements & {"nc", "nd"})
    return False
