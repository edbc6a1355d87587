"""Reading an institution's catalogue export and matching its rows to scanned files; the
documented example imported with the real command."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from dedup.node.sidecar import SidecarError, SidecarRow, match, read_sidecar
from dedup.rights import STATEMENT_NAMES, STATEMENTS, is_wire_value, statement_uri
from dedup.v1 import asset_pb2

INC = "http://rightsstatements.org/vocab/InC/1.0/"
NOC_US = "http://rightsstatements.org/vocab/NoC-US/1.0/"
NKC = "http://rightsstatements.org/vocab/NKC/1.0/"
CC_BY = "https://creativecommons.org/licenses/by/4.0/"
CC0 = "https://creativecommons.org/publicdomain/zero/1.0/"
PDM = "https://creativecommons.org/publicdomain/mark/1.0/"
REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "deploy" / "examples" / "catalogue.csv"


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


@pytest.mark.parametrize("column", ["rights", "rights_statement", "rights uri", "Rights URI", "Licence", "license"])
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


ACCEPTED = (
    "accepted: a rightsstatements.org statement by ID, name or URI (InC 'In Copyright', InC-OW-EU, InC-EDU, "
    "InC-NC, InC-RUU, NoC-CR, NoC-NC, NoC-OKLR, NoC-US 'No Copyright - United States', CNE 'Copyright Not "
    "Evaluated', UND 'Copyright Undetermined', NKC 'No Known Copyright'); a Creative Commons licence by short "
    "name or URI (CC BY, CC BY-SA, CC BY-ND, CC BY-NC, CC BY-NC-SA or CC BY-NC-ND with version 1.0, 2.0, 2.5, "
    "3.0 or 4.0, e.g. 'CC BY 4.0', or ported, e.g. 'CC BY 3.0 HK'); 'CC0'; 'Public Domain Mark'; any case; "
    "an empty cell keeps what the file says (see deploy/CATALOGUE.md)"
)


def test_unknown_rights_value(tmp_path: Path) -> None:
    message = error(tmp_path, "path,rights\na.tif,InC\nb.tif,Maybe\n")
    assert message == f"line 3: unknown rights value 'Maybe': {ACCEPTED}"


def test_public_domain_alone_is_refused_with_the_choices(tmp_path: Path) -> None:
    message = error(tmp_path, "path,rights\na.tif,InC\nb.tif,Public domain\n")
    assert message == ("line 3: unknown rights value 'Public domain': 'public domain' alone does not say which: "
                       "use 'Public Domain Mark', 'CC0' or a No Copyright statement such as 'No Copyright - "
                       f"United States'; {ACCEPTED}")


def test_unknown_is_refused(tmp_path: Path) -> None:
    message = error(tmp_path, "path,rights\na.tif,Unknown\n")
    assert message.startswith("line 2: rights value 'unknown' is not a statement: leave the cell empty")
    assert message.endswith(ACCEPTED)


@pytest.mark.parametrize(
    "value",
    [
        "http://rightsstatements.org/vocab/Nope/1.0/",
        "CC BY",
        "CC BY 4.0 HK",
        "CC BY 5.0",
        "https://creativecommons.org/licenses/by/2.1/",
        "All rights reserved",
    ],
)
def test_other_rights_values_are_errors(tmp_path: Path, value: str) -> None:
    assert error(tmp_path, f"path,rights\na.tif,{value}\n") == f"line 2: unknown rights value {value!r}: {ACCEPTED}"


_ACCEPTED_VALUES = [
    *[(sid, statement_uri(sid)) for sid in STATEMENTS],
    *[(name, statement_uri(sid)) for sid, name in STATEMENT_NAMES.items()],
    *[(name.upper(), statement_uri(sid)) for sid, name in STATEMENT_NAMES.items()],
    ("inc", INC), ("in copyright", INC), ("No Copyright – United States", NOC_US), ("noc-us", NOC_US),
    ("CC BY 4.0", CC_BY), ("cc by 4.0", CC_BY), ("CC-BY-4.0", CC_BY), ("Attribution 4.0 International", CC_BY),
    ("CC BY-SA 3.0", "https://creativecommons.org/licenses/by-sa/3.0/"),
    ("CC BY-ND 2.5", "https://creativecommons.org/licenses/by-nd/2.5/"),
    ("CC BY-NC 2.0", "https://creativecommons.org/licenses/by-nc/2.0/"),
    ("CC BY-NC-SA 1.0", "https://creativecommons.org/licenses/by-nc-sa/1.0/"),
    ("CC BY-NC-ND 4.0", "https://creativecommons.org/licenses/by-nc-nd/4.0/"),
    ("CC BY 3.0 HK", "https://creativecommons.org/licenses/by/3.0/hk/"),
    ("CC0", CC0), ("cc0 1.0", CC0), ("Public Domain Mark", PDM), ("PUBLIC DOMAIN MARK", PDM), ("PDM", PDM),
    ("http://rightsstatements.org/vocab/InC/1.0/", INC), ("https://rightsstatements.org/page/InC/1.0/?language=en", INC),
    ("http://creativecommons.org/licenses/by/4.0/legalcode", CC_BY), ("https://www.creativecommons.org/licenses/by/4.0", CC_BY),
    ("https://creativecommons.org/licenses/by/4.0/deed.zh_TW", CC_BY),
    ("https://creativecommons.org/publicdomain/zero/1.0/legalcode", CC0),
    ("http://creativecommons.org/publicdomain/mark/1.0/", PDM),
]


@pytest.mark.parametrize(("value", "uri"), _ACCEPTED_VALUES)
def test_accepted_rights_values(tmp_path: Path, value: str, uri: str) -> None:
    assert read_sidecar(write(tmp_path, f'path,rights\na.tif,"{value}"\n')) == [SidecarRow("a.tif", "", "", uri)]


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


# --- the documented example, through the real command -----------------------------------------


def dedup(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dedup.cli.main", *map(str, args)], capture_output=True, text=True)


def picture(path: Path, notice: str | None = None, shade: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    if notice is not None:
        exif[0x8298] = notice.encode()
    Image.new("RGB", (64, 48), (shade, 90, 160)).save(path, exif=exif)


def catalogued(cat: Path) -> dict[str, tuple[str, str, str]]:
    db = sqlite3.connect(cat)
    rows = db.execute("SELECT path, rights_uri, rights_text, rights_source FROM files").fetchall()
    db.close()
    return {Path(p).name: (u, t, s) for p, u, t, s in rows}


def test_the_documented_example_imports_with_the_real_command(tmp_path: Path) -> None:
    store = tmp_path / "store"
    names = ["masters/1972/HKRS-365-1-1.tif", "masters/1972/HKRS-365-1-2.tif", "masters/1973/HKRS-365-1-3.jpg",
             "gifts/wong-1998-014.jpg", "gifts/wong-1998-015.jpg", "gifts/wong-1998-016.jpg",
             "postcards/pc-0042.jpg", "unlisted.jpg"]
    for shade, name in enumerate(names):
        picture(store / name, shade=shade * 20)
    nasa = "(c) NASA - public domain"
    picture(store / "access/apollo-11-lunar-module.jpg", nasa, shade=200)
    picture(store / "postcards/pc-0043.jpg", "© 1925 Kelly & Walsh", shade=220)
    cfg = tmp_path / "node.toml"
    cfg.write_text(f'member_id = "m"\ncatalogue = "cat.sqlite"\nsigning_key = "k"\nroots = ["{store}"]\n')
    scanned = dedup("node", "scan", "--config", cfg, "--json")
    assert scanned.returncode == 0, scanned.stderr
    before = catalogued(tmp_path / "cat.sqlite")
    assert before["apollo-11-lunar-module.jpg"] == ("unknown", nasa, "EXIF Copyright")  # a claim frees nothing

    out = dedup("node", "import-catalogue", EXAMPLE, "--config", cfg, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"rows": 9, "files_changed": 8}
    after = catalogued(tmp_path / "cat.sqlite")
    assert after == {
        "HKRS-365-1-1.tif": (INC, "", "sidecar"),
        "HKRS-365-1-2.tif": ("http://rightsstatements.org/vocab/InC-EDU/1.0/", "", "sidecar"),
        "HKRS-365-1-3.jpg": (NOC_US, "", "sidecar"),  # the row with no path, found by accession number
        "apollo-11-lunar-module.jpg": (PDM, nasa, "sidecar"),  # the file's own notice is kept beside it
        "wong-1998-014.jpg": (CC_BY, "", "sidecar"),
        "wong-1998-015.jpg": ("https://creativecommons.org/licenses/by-nc-sa/3.0/hk/", "", "sidecar"),
        "wong-1998-016.jpg": (CC0, "", "sidecar"),
        "pc-0042.jpg": (NKC, "", "sidecar"),
        "pc-0043.jpg": (INC, "© 1925 Kelly & Walsh", "EXIF Copyright"),  # no rights in its row
        "unlisted.jpg": ("unknown", "", ""),
    }
    db = sqlite3.connect(tmp_path / "cat.sqlite")
    for path, uri, record in db.execute("SELECT path, rights_uri, record FROM files"):
        sent = asset_pb2.Asset.FromString(record).evidence.rights
        assert sent == uri and is_wire_value(sent), path
    db.close()

    # A changed file is read again: the catalogue still wins, the notice is still the file's.
    picture(store / "access/apollo-11-lunar-module.jpg", nasa, shade=201)
    assert dedup("node", "scan", "--config", cfg).returncode == 0
    assert catalogued(tmp_path / "cat.sqlite")["apollo-11-lunar-module.jpg"] == (PDM, nasa, "sidecar")

    # A later import without the row: the next scan reads the file again and takes what it says.
    fewer = tmp_path / "fewer.csv"
    fewer.write_text("\n".join(EXAMPLE.read_text(encoding="utf-8").splitlines()[:4]) + "\n", encoding="utf-8")
    assert dedup("node", "import-catalogue", fewer, "--config", cfg).returncode == 0
    rescan = dedup("node", "scan", "--config", cfg, "--json")
    assert rescan.returncode == 0 and json.loads(rescan.stdout)["scan"]["read"] == 5
    last = catalogued(tmp_path / "cat.sqlite")
    assert last["apollo-11-lunar-module.jpg"] == ("unknown", nasa, "EXIF Copyright")
    assert last["pc-0042.jpg"] == ("unknown", "", "")
    assert last["HKRS-365-1-3.jpg"] == (NOC_US, "", "sidecar")


def test_every_accepted_value_imports_with_the_real_command(tmp_path: Path) -> None:
    csv = tmp_path / "labels.csv"
    lines = ["accession;rights"] + [f"A-{n};{value}" for n, (value, _) in enumerate(_ACCEPTED_VALUES)]
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = tmp_path / "node.toml"
    cfg.write_text(f'member_id = "m"\ncatalogue = "cat.sqlite"\nsigning_key = "k"\nroots = ["{tmp_path}"]\n')
    out = dedup("node", "import-catalogue", csv, "--config", cfg, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"rows": len(_ACCEPTED_VALUES), "files_changed": 0}
    db = sqlite3.connect(tmp_path / "cat.sqlite")
    stored = dict(db.execute("SELECT key, rights FROM sidecar"))
    db.close()
    assert stored == {f"A-{n}": uri for n, (_, uri) in enumerate(_ACCEPTED_VALUES)}

    bad = tmp_path / "bad.csv"
    bad.write_text("accession,rights\nA-1,In Copyright\nA-2,Public domain\n", encoding="utf-8")
    refused = dedup("node", "import-catalogue", bad, "--config", cfg)
    assert refused.returncode == 1
    assert "line 3: unknown rights value 'Public domain'" in refused.stderr
    assert "'Public Domain Mark', 'CC0' or a No Copyright statement" in refused.stderr
    for listed in ("In Copyright", "NoC-US", "CC BY 4.0", "CC0", "Public Domain Mark", "deploy/CATALOGUE.md"):
        assert listed in refused.stderr
    db = sqlite3.connect(tmp_path / "cat.sqlite")
    assert len(db.execute("SELECT key FROM sidecar").fetchall()) == len(_ACCEPTED_VALUES)  # nothing of it stored
    db.close()
