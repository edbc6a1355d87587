"""Reading an institution's catalogue export and matching its rows to scanned files."""

from __future__ import annotations

from pathlib import Path

import pytest

from dedup.node.sidecar import SidecarError, SidecarRow, match, read_sidecar

INC = "http://rightsstatements.org/vocab/InC/1.0/"
NOC_US = "http://rightsstatements.org/vocab/NoC-US/1.0/"
NKC = "http://rightsstatements.org/vocab/NKC/1.0/"


def write(tmp_path: Path, text: str, *, bom: bool = False, name: str = "sidecar.csv") -> Path:
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(SidecarError) as caught:
        read_sidecar(write(tmp_path, text))
    assert isinstance(caught.value, ValueError)
    return str(caught.value)


# --- reading ----------------------------------------------------------------------------------


def test_path_keyed(tmp_path: Path) -> None:
    rows = read_sidecar(write(tmp_path, (
        "path,accession,title,rights\n"
        "masters/HKRS-1.tif,HKRS-1,Harbour 1972,InC\n"
        "masters/HKRS-2.tif,HKRS-2,\"Quay, at dusk\",http://rightsstatements.org/vocab/NoC-US/1.0/\n"
        "masters/HKRS-3.tif,,,\n"
    )))
    assert rows == [
        SidecarRow("masters/HKRS-1.tif", "HKRS-1", "Harbour 1972", INC),
        SidecarRow("masters/HKRS-2.tif", "HKRS-2", "Quay, at dusk", NOC_US),
        SidecarRow("masters/HKRS-3.tif", "", "", ""),
    ]


def test_accession_keyed_with_bom_aliases_and_any_case(tmp_path: Path) -> None:
    text = (
        "Object Number,TITLE,Rights_Statement\r\n"
        "HKRS-123-4,Market street,https://rightsstatements.org/page/NKC/1.0/?language=en\r\n"
        "HKRS-123-5,Tram,noc-us\r\n"
    )
    rows = read_sidecar(write(tmp_path, text, bom=True))
    assert rows == [
        SidecarRow("HKRS-123-4", "HKRS-123-4", "Market street", NKC),
        SidecarRow("HKRS-123-5", "HKRS-123-5", "Tram", NOC_US),
    ]


@pytest.mark.parametrize("column", ["path", "file", "filename", "FileName", "File Name"])
def test_path_aliases(tmp_path: Path, column: str) -> None:
    assert read_sidecar(write(tmp_path, f"{column},rights\na.tif,InC\n")) == [SidecarRow("a.tif", "", "", INC)]


@pytest.mark.parametrize("column", ["accession", "accession_number", "Accession Number", "object number"])
def test_accession_aliases(tmp_path: Path, column: str) -> None:
    rows = read_sidecar(write(tmp_path, f"{column},title\nA-1,Harbour\n"))
    assert rows == [SidecarRow("A-1", "A-1", "Harbour", "")]


@pytest.mark.parametrize("column", ["rights", "rights_statement", "rights uri", "Rights URI"])
def test_rights_aliases(tmp_path: Path, column: str) -> None:
    assert read_sidecar(write(tmp_path, f"path,{column}\na.tif,InC\n"))[0].rights == INC


def test_path_wins_over_accession_and_falls_back_to_it(tmp_path: Path) -> None:
    rows = read_sidecar(write(tmp_path, "accession,path\nA-1,scans/a1.tif\nA-2,\n"))
    assert rows == [SidecarRow("scans/a1.tif", "A-1", "", ""), SidecarRow("A-2", "A-2", "", "")]


def test_values_are_trimmed_blank_rows_skipped_and_quoted_newlines_kept(tmp_path: Path) -> None:
    text = 'path , title ,rights\n\n a.tif , "Two\nlines", InC \n,,\n'
    assert read_sidecar(write(tmp_path, text)) == [SidecarRow("a.tif", "", "Two\nlines", INC)]


def test_semicolon_and_tab_separated(tmp_path: Path) -> None:
    semicolon = write(tmp_path, "path;title;rights\na.tif;Harbour, 1972;InC\n", name="a.csv")
    tab = write(tmp_path, "path\ttitle\trights\na.tif\tHarbour, 1972\tInC\n", name="b.csv")
    expected = [SidecarRow("a.tif", "", "Harbour, 1972", INC)]
    assert read_sidecar(semicolon) == expected
    assert read_sidecar(tab) == expected


def test_non_ascii(tmp_path: Path) -> None:
    rows = read_sidecar(write(tmp_path, "path,title\nÄrchiv/ß.tif,Hafen – 1972\n", bom=True))
    assert rows == [SidecarRow("Ärchiv/ß.tif", "", "Hafen – 1972", "")]


def test_header_only(tmp_path: Path) -> None:
    assert read_sidecar(write(tmp_path, "path,rights\n")) == []


# --- errors -----------------------------------------------------------------------------------


def test_missing_key_column(tmp_path: Path) -> None:
    message = error(tmp_path, "title,rights\nHarbour,InC\n")
    assert message.startswith("line 1:") and "missing key column" in message


def test_unknown_rights_value(tmp_path: Path) -> None:
    message = error(tmp_path, "path,rights\na.tif,InC\nb.tif,Public domain\n")
    assert message.startswith("line 3:") and "unknown rights value 'Public domain'" in message


@pytest.mark.parametrize(
    "value",
    [
        "unknown",
        "CC0",
        "http://rightsstatements.org/vocab/Nope/1.0/",
        "https://creativecommons.org/licenses/by/4.0/",
    ],
)
def test_other_rights_values_are_errors(tmp_path: Path, value: str) -> None:
    assert "unknown rights value" in error(tmp_path, f"path,rights\na.tif,{value}\n")


def test_duplicate_key(tmp_path: Path) -> None:
    message = error(tmp_path, "accession,title\nA-1,x\nA-2,y\n\nA-1,z\n")
    assert message.startswith("line 5:") and "duplicate key 'A-1'" in message and "line 2" in message


def test_duplicate_key_after_a_multiline_cell(tmp_path: Path) -> None:
    message = error(tmp_path, 'path,title\na.tif,"one\ntwo\nthree"\na.tif,again\n')
    assert message.startswith("line 5:") and "duplicate key" in message


def test_empty_key(tmp_path: Path) -> None:
    message = error(tmp_path, "path,title\na.tif,x\n,Untitled\n")
    assert message.startswith("line 3:") and "empty key" in message


def test_two_key_columns_of_one_kind(tmp_path: Path) -> None:
    message = error(tmp_path, "file,path\na.tif,b.tif\n")
    assert message.startswith("line 1:") and "'file' and 'path'" in message


def test_too_many_fields(tmp_path: Path) -> None:
    assert error(tmp_path, "path,title\na.tif,x,surplus\n").startswith("line 2:")


def test_empty_file_not_utf8_and_malformed_csv(tmp_path: Path) -> None:
    assert "empty" in error(tmp_path, "")
    assert "empty" in error(tmp_path, "\n\n")
    assert "no header" in error(tmp_path, ",,\n")
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("path,title\na.tif,ok\nb.tif,Caf\xe9\n".encode("latin-1"))
    with pytest.raises(SidecarError, match="^line 3: not UTF-8"):
        read_sidecar(latin1)
    assert "malformed CSV" in error(tmp_path, 'path,title\na.tif,"unterminated\n')


def test_no_partial_result(tmp_path: Path) -> None:
    path = write(tmp_path, "path,rights\na.tif,InC\nb.tif,InC\nc.tif,maybe\n")
    with pytest.raises(SidecarError):
        read_sidecar(path)


# --- matching ---------------------------------------------------------------------------------


def keyed(*keys: str) -> dict[str, SidecarRow]:
    return {key: SidecarRow(key, "", key.upper(), "") for key in keys}


def test_exact_path_first() -> None:
    rows = keyed("/srv/photos/HKRS-123-4.tif", "HKRS-123-4.tif", "HKRS-123-4")
    assert match(rows, "/srv/photos/HKRS-123-4.tif") == rows["/srv/photos/HKRS-123-4.tif"]


def test_name_then_stem() -> None:
    rows = keyed("HKRS-123-4.tif", "HKRS-123-4")
    assert match(rows, "/srv/photos/HKRS-123-4.tif") == rows["HKRS-123-4.tif"]
    by_stem = match(keyed("HKRS-123-4"), "/srv/photos/HKRS-123-4.tif")
    assert by_stem == SidecarRow("HKRS-123-4", "", "HKRS-123-4", "")
    assert match(keyed("HKRS-123-4"), "s3://bucket/scans/HKRS-123-4.jpg") is not None


def test_relative_path_below_the_scanned_root() -> None:
    rows = keyed("1972/HKRS-1.tif", "HKRS-1")
    assert match(rows, "/srv/photos/1972/HKRS-1.tif") == rows["1972/HKRS-1.tif"]
    assert match(rows, "/srv/photos/1973/HKRS-1.tif") == rows["HKRS-1"]


def test_accession_hint_before_name() -> None:
    rows = keyed("A-99", "scan0001")
    assert match(rows, "/srv/scan0001.tif", accession_hint="A-99") == rows["A-99"]
    assert match(rows, "/srv/scan0001.tif", accession_hint="A-404") == rows["scan0001"]


def test_no_match() -> None:
    rows = keyed("HKRS-123-4")
    assert match(rows, "/srv/photos/HKRS-123-40.tif") is None
    assert match(rows, "/srv/photos/HKRS-123.tif") is None
    assert match({}, "a.tif") is None
    assert match(rows, "") is None


def test_match_on_read_rows(tmp_path: Path) -> None:
    rows = read_sidecar(write(tmp_path, "accession number,rights\nHKRS-123-4,InC\n"))
    row = match({r.key: r for r in rows}, "/srv/photos/HKRS-123-4.tif")
    assert row is not None and row.rights == INC
