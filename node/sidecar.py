"""An institution's own catalogue export (CSV), whose values override what files embed.

The catalogue is the institution's record of truth: its rights statement beats whatever a
scanner or an editor left in the file. Because it overrides, it is read strictly: a value
that cannot be understood, or two rows claiming the same file, stop the whole import with
the line at fault, rather than quietly applying some of it.

The columns, the values the rights column accepts and an example file are documented in
deploy/CATALOGUE.md (the example is deploy/examples/catalogue.csv).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from dedup.rights import UNKNOWN, parse

_PATH = {"path", "file", "filename", "file name", "filepath", "file path"}
_ACCESSION = {"accession", "accession number", "accession no", "object number"}
_RIGHTS = {"rights", "rights statement", "rights uri", "licence", "license"}
_TITLE = {"title"}


@dataclass(frozen=True)
class SidecarRow:
    key: str        # the file's path as listed, or else its accession number
    accession: str
    title: str
    rights: str     # a wire value of dedup.rights (never 'unknown'), or '' for no override


class SidecarError(ValueError):
    """The sidecar cannot be used; the message names the line and the problem."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"line {line}: {problem}")
        self.line = line


def read_sidecar(path: Path) -> list[SidecarRow]:
    """Every row of the CSV at path, or SidecarError; never part of them."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SidecarError(data.count(b"\n", 0, e.start) + 1, "not UTF-8 text") from None
    if not text.strip():
        raise SidecarError(1, "empty file: no header")
    header_line = text.lstrip("\r\n").partition("\n")[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(header_line),
                        skipinitialspace=True, strict=True)
    try:
        header = next((cells for cells in reader if any(cell.strip() for cell in cells)), None)
        if header is None:
            raise SidecarError(reader.line_num, "no header")
        columns = _columns(header, reader.line_num)
        rows: list[SidecarRow] = []
        first_seen: dict[str, int] = {}
        while True:
            line = reader.line_num + 1  # where this record starts; a quoted cell may span lines
            try:
                cells = next(reader)
            except StopIteration:
                break
            if not any(cell.strip() for cell in cells):
                continue  # blank lines and the empty rows spreadsheets leave at the end
            if any(cell.strip() for cell in cells[len(header):]):
                raise SidecarError(line, f"{len(cells)} fields but the header has {len(header)}")
            row = _row(cells, columns, line)
            if row.key in first_seen:
                raise SidecarError(line, f"duplicate key {row.key!r} (first on line {first_seen[row.key]})")
            first_seen[row.key] = line
            rows.append(row)
    except csv.Error as e:
        raise SidecarError(reader.line_num, f"malformed CSV: {e}") from None
    return rows


def match(row_keys: dict[str, SidecarRow], path: str, accession_hint: str | None = None) -> SidecarRow | None:
    """The row for a scanned file, by the most specific key that fits.

    The exact path first; then a relative path that the scanned path ends with, longest
    first (catalogues list paths below the storage root the node was pointed at); then the
    accession hint, if the caller has one; then the file's name; then its stem, since
    accession numbers are often file stems ('HKRS-123-4.tif' is 'HKRS-123-4').
    """
    parts = [p for p in path.replace("\\", "/").split("/") if p]
    if not parts:
        return None
    suffixes = ["/".join(parts[i:]) for i in range(len(parts) - 1)]
    name = parts[-1]
    for key in (path, *suffixes, accession_hint, name, PurePosixPath(name).stem):
        if key and (row := row_keys.get(key)) is not None:
            return row
    return None


def _delimiter(header: str) -> str:
    # Spreadsheets in many locales export with ';' or tabs; the header shows which.
    return max((",", ";", "\t"), key=header.count)


def _normal(column: str) -> str:
    return " ".join(column.replace("_", " ").replace("-", " ").replace(".", " ").lower().split())


def _columns(header: list[str], line: int) -> dict[str, int]:
    """Column index of each role: 'path', 'accession', 'rights', 'title'."""
    roles = {"path": _PATH, "accession": _ACCESSION, "rights": _RIGHTS, "title": _TITLE}
    found: dict[str, int] = {}
    for index, column in enumerate(header):
        for role, aliases in roles.items():
            if _normal(column) in aliases:
                if role in found:
                    both = f"{header[found[role]]!r} and {column!r}"
                    raise SidecarError(line, f"columns {both} both give the {role}")
                found[role] = index
    if "path" not in found and "accession" not in found:
        raise SidecarError(line, "missing key column: need 'path' (or 'file', 'filename') or 'accession' "
                              "(or 'accession_number', 'object number')")
    return found


def _row(cells: list[str], columns: dict[str, int], line: int) -> SidecarRow:
    def cell(role: str) -> str:
        index = columns.get(role)
        return cells[index].strip() if index is not None and index < len(cells) else ""

    accession = cell("accession")
    # A catalogue listing objects not yet digitised has no path for them; the accession
    # number still lets match() find them by file stem.
    key = cell("path") or accession
    if not key:
        raise SidecarError(line, "empty key: no path or accession number")
    return SidecarRow(key=key, accession=accession, title=cell("title"), rights=_rights(cell("rights"), line))


ACCEPTED = (
    "accepted: a rightsstatements.org statement by ID, name or URI (InC 'In Copyright', InC-OW-EU, InC-EDU, "
    "InC-NC, InC-RUU, NoC-CR, NoC-NC, NoC-OKLR, NoC-US 'No Copyright - United States', CNE 'Copyright Not "
    "Evaluated', UND 'Copyright Undetermined', NKC 'No Known Copyright'); a Creative Commons licence by short "
    "name or URI (CC BY, CC BY-SA, CC BY-ND, CC BY-NC, CC BY-NC-SA or CC BY-NC-ND with version 1.0, 2.0, 2.5, "
    "3.0 or 4.0, e.g. 'CC BY 4.0', or ported, e.g. 'CC BY 3.0 HK'); 'CC0'; 'Public Domain Mark'; any case; "
    "an empty cell keeps what the file says (see deploy/CATALOGUE.md)"
)


def _rights(value: str, line: int) -> str:
    if not value:
        return ""
    uri = parse(value)
    if uri == UNKNOWN:
        # The catalogue overrides the file; "unknown" would only erase what the file says.
        raise SidecarError(line, "rights value 'unknown' is not a statement: leave the cell empty to keep what "
                                 "the file says, or use 'Copyright Not Evaluated' (CNE) or 'Copyright "
                                 f"Undetermined' (UND); {ACCEPTED}")
    if uri is None:
        hint = ""
        if "public domain" in " ".join(value.lower().split()):
            hint = ("'public domain' alone does not say which: use 'Public Domain Mark', 'CC0' or a No "
                    "Copyright statement such as 'No Copyright - United States'; ")
        raise SidecarError(line, f"unknown rights value {value!r}: {hint}{ACCEPTED}")
    return uri
