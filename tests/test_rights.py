"""Rights from embedded metadata, read from real files written with Pillow."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin, TiffImagePlugin, TiffTags

from dedup.node.rights import (
    RESTRICTED,
    STATEMENTS,
    UNKNOWN,
    Rights,
    canonical_uri,
    is_restricted,
    rights_of,
    uri_for,
)

INC = "http://rightsstatements.org/vocab/InC/1.0/"
NKC = "http://rightsstatements.org/vocab/NKC/1.0/"
NOC_US = "http://rightsstatements.org/vocab/NoC-US/1.0/"
NOTICE = "© 1972 City Museum"

NS = (
    'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
    'xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:xmpRights="http://ns.adobe.com/xap/1.0/rights/" '
    'xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/" '
    'xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"'
)


def packet(body: str, attrs: str = "", ns: str = NS) -> str:
    """A complete XMP packet, as Adobe tools write it, with body inside one rdf:Description."""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        f" <rdf:RDF {ns}>\n"
        f'  <rdf:Description rdf:about="" {attrs}>\n{body}\n  </rdf:Description>\n'
        " </rdf:RDF>\n</x:xmpmeta>\n" + " " * 200 + '\n<?xpacket end="w"?>'
    )


def usage_terms(text: str) -> str:
    alt = f'<rdf:Alt><rdf:li xml:lang="x-default">{text}</rdf:li></rdf:Alt>'
    return f"<xmpRights:UsageTerms>{alt}</xmpRights:UsageTerms>"


def dc_rights(*items: tuple[str, str]) -> str:
    lis = "".join(f'<rdf:li xml:lang="{lang}">{text}</rdf:li>' for lang, text in items)
    return f"<dc:rights><rdf:Alt>{lis}</rdf:Alt></dc:rights>"


def exif_with(copyright: str | bytes) -> Image.Exif:
    exif = Image.Exif()
    exif[0x8298] = copyright
    return exif


def iptc_dataset(record: int, number: int, value: bytes) -> bytes:
    return bytes([0x1C, record, number]) + struct.pack(">H", len(value)) + value


def app13(iptc: bytes) -> bytes:
    """An APP13 segment: 'Photoshop 3.0' image resources with one 8BIM 0x0404 (IPTC-NAA)."""
    data = iptc + b"\0" * (len(iptc) & 1)  # resource data is padded to an even length
    resource = b"8BIM" + struct.pack(">H", 0x0404) + b"\0\0" + struct.pack(">I", len(iptc)) + data
    payload = b"Photoshop 3.0\0" + resource
    return b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload


def jpeg(path: Path, *, xmp: str | bytes | None = None, exif: Image.Exif | None = None,
         segment: bytes = b"") -> Path:
    options: dict[str, object] = {}
    if xmp is not None:
        options["xmp"] = xmp.encode() if isinstance(xmp, str) else xmp
    if exif is not None:
        options["exif"] = exif
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (120, 80, 40)).save(buffer, "JPEG", **options)
    data = buffer.getvalue()
    path.write_bytes(data[:2] + segment + data[2:])  # extra segment straight after SOI
    return path


def png(path: Path, xmp: str | None = None, exif: Image.Exif | None = None) -> Path:
    info = PngImagePlugin.PngInfo()
    if xmp is not None:
        info.add_itxt("XML:com.adobe.xmp", xmp)
    options: dict[str, object] = {"pnginfo": info}
    if exif is not None:
        options["exif"] = exif
    Image.new("RGB", (32, 24), (10, 20, 30)).save(path, "PNG", **options)
    return path


def tiff(path: Path, xmp: str | None = None, exif: Image.Exif | None = None) -> Path:
    tags = TiffImagePlugin.ImageFileDirectory_v2()
    if xmp is not None:
        tags[700] = xmp.encode()
        tags.tagtype[700] = TiffTags.BYTE
    if exif is not None:
        for tag, value in exif.items():
            tags[tag] = value
    Image.new("RGB", (32, 24), (200, 100, 0)).save(path, "TIFF", tiffinfo=tags)
    return path


def read(path: Path) -> Rights:
    with Image.open(path) as image:
        return rights_of(image)


# --- one file per source ------------------------------------------------------------------


def test_jpeg_xmp_web_statement(tmp_path: Path) -> None:
    xmp = packet(
        f"<xmpRights:WebStatement>{NOC_US}</xmpRights:WebStatement>"
        + dc_rights(("x-default", NOTICE))
    )
    path = jpeg(tmp_path / "a.jpg", xmp=xmp)
    assert read(path) == Rights(NOC_US, NOTICE, "xmpRights:WebStatement")


def test_jpeg_xmp_web_statement_as_attribute_and_resource(tmp_path: Path) -> None:
    page = "https://rightsstatements.org/page/InC-EDU/1.0/?language=en"
    as_attribute = packet("", attrs=f'xmpRights:WebStatement="{page}"')
    as_resource = packet('<xmpRights:WebStatement rdf:resource="http://rightsstatements.org/vocab/NKC/1.0"/>')
    edu = "http://rightsstatements.org/vocab/InC-EDU/1.0/"
    assert read(jpeg(tmp_path / "a.jpg", xmp=as_attribute)) == Rights(edu, "", "xmpRights:WebStatement")
    assert read(jpeg(tmp_path / "b.jpg", xmp=as_resource)) == Rights(NKC, "", "xmpRights:WebStatement")


def test_png_itxt_xmp_dc_rights_prefers_x_default(tmp_path: Path) -> None:
    xmp = packet(dc_rights(("de", "© 1972 Stadtmuseum"), ("x-default", NOTICE)))
    assert read(png(tmp_path / "a.png", xmp)) == Rights(INC, NOTICE, "dc:rights")


def test_dc_rights_without_x_default_takes_the_first(tmp_path: Path) -> None:
    xmp = packet(dc_rights(("en", "© 1972 City Museum"), ("de", "© 1972 Stadtmuseum")))
    assert read(png(tmp_path / "a.png", xmp)) == Rights(INC, NOTICE, "dc:rights")


def test_webp_xmp(tmp_path: Path) -> None:
    path = tmp_path / "a.webp"
    xmp = packet(f'<xmpRights:WebStatement>{INC}</xmpRights:WebStatement>')
    Image.new("RGB", (32, 24)).save(path, "WEBP", xmp=xmp.encode())
    assert read(path) == Rights(INC, "", "xmpRights:WebStatement")


def test_tiff_tag_700_usage_terms_uri_beats_exif_copyright(tmp_path: Path) -> None:
    terms = "Public domain in the US: https://RightsStatements.org/page/NoC-US/1.0"
    xmp = packet(usage_terms(terms))
    path = tiff(tmp_path / "a.tif", xmp, exif_with("Jane Doe"))
    assert read(path) == Rights(NOC_US, terms, "xmpRights:UsageTerms")


def test_tiff_exif_copyright(tmp_path: Path) -> None:
    assert read(tiff(tmp_path / "a.tif", exif=exif_with("City Museum 1972"))) == Rights(
        INC, "City Museum 1972", "EXIF Copyright"
    )


def test_jpeg_exif_copyright_utf8_latin1_and_two_parts(tmp_path: Path) -> None:
    utf8 = jpeg(tmp_path / "a.jpg", exif=exif_with(NOTICE.encode("utf-8")))
    latin1 = jpeg(tmp_path / "b.jpg", exif=exif_with(NOTICE.encode("latin-1")))
    two = jpeg(tmp_path / "c.jpg", exif=exif_with("Jane Doe\0City Museum"))
    editor_only = jpeg(tmp_path / "d.jpg", exif=exif_with(" \0City Museum"))
    assert read(utf8) == Rights(INC, NOTICE, "EXIF Copyright")
    assert read(latin1) == Rights(INC, NOTICE, "EXIF Copyright")
    assert read(two) == Rights(INC, "Jane Doe; City Museum", "EXIF Copyright")
    assert read(editor_only) == Rights(INC, "City Museum", "EXIF Copyright")


def test_png_exif_copyright(tmp_path: Path) -> None:
    path = png(tmp_path / "a.png", exif=exif_with("City Museum"))
    assert read(path) == Rights(INC, "City Museum", "EXIF Copyright")


def test_jpeg_iptc_copyright_notice_utf8(tmp_path: Path) -> None:
    iptc = (
        iptc_dataset(1, 90, b"\x1b%G")  # CodedCharacterSet: UTF-8
        + iptc_dataset(2, 0, b"\0\x04")  # RecordVersion
        + iptc_dataset(2, 116, NOTICE.encode("utf-8"))
    )
    path = jpeg(tmp_path / "a.jpg", segment=app13(iptc))
    assert read(path) == Rights(INC, NOTICE, "IPTC 2:116")


def test_jpeg_iptc_copyright_notice_legacy_charset_and_repeated(tmp_path: Path) -> None:
    iptc = iptc_dataset(2, 116, NOTICE.encode("cp1252")) + iptc_dataset(2, 116, b"Jane Doe ")
    path = jpeg(tmp_path / "a.jpg", segment=app13(iptc))
    assert read(path) == Rights(INC, f"{NOTICE}; Jane Doe", "IPTC 2:116")


def test_tiff_iptc_tag(tmp_path: Path) -> None:
    path = tmp_path / "a.tif"
    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[33723] = iptc_dataset(2, 116, b"City Museum")
    tags.tagtype[33723] = TiffTags.UNDEFINED
    Image.new("RGB", (32, 24)).save(path, "TIFF", tiffinfo=tags)
    assert read(path) == Rights(INC, "City Museum", "IPTC 2:116")


def test_plus_licensor_name(tmp_path: Path) -> None:
    licensor = (
        "<plus:Licensor><rdf:Seq><rdf:li rdf:parseType=\"Resource\">"
        "<plus:LicensorURL>https://example.org</plus:LicensorURL>"
        "<plus:LicensorName>City Museum Picture Library</plus:LicensorName>"
        "</rdf:li></rdf:Seq></plus:Licensor>"
    )
    as_attribute = (
        '<plus:Licensor><rdf:Seq><rdf:li><rdf:Description plus:LicensorName="City Museum Picture Library"/>'
        "</rdf:li></rdf:Seq></plus:Licensor>"
    )
    expected = Rights(INC, "City Museum Picture Library", "plus:Licensor")
    assert read(jpeg(tmp_path / "a.jpg", xmp=packet(licensor))) == expected
    assert read(jpeg(tmp_path / "b.jpg", xmp=packet(as_attribute))) == expected


# --- nothing, or nothing usable -------------------------------------------------------------


def test_files_without_metadata_are_unknown(tmp_path: Path) -> None:
    assert read(jpeg(tmp_path / "a.jpg")) == UNKNOWN
    assert read(png(tmp_path / "a.png")) == UNKNOWN
    assert read(tiff(tmp_path / "a.tif")) == UNKNOWN
    assert UNKNOWN == Rights("unknown", "", "")


@pytest.mark.parametrize(
    "xmp",
    [
        b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF",  # truncated
        b"\xff\xfe\x00garbage\x00",
        b"not xml at all",
        b"<a><b></a></b>",
    ],
)
def test_malformed_xmp_is_ignored(tmp_path: Path, xmp: bytes) -> None:
    assert read(jpeg(tmp_path / "a.jpg", xmp=xmp)) == UNKNOWN
    with_exif = jpeg(tmp_path / "b.jpg", xmp=xmp, exif=exif_with("Jane Doe"))
    assert read(with_exif) == Rights(INC, "Jane Doe", "EXIF Copyright")


def test_xmp_with_a_dtd_is_ignored(tmp_path: Path) -> None:
    xmp = '<!DOCTYPE x [<!ENTITY e "© Evil">]>' + packet(dc_rights(("x-default", "&e;")))
    assert read(jpeg(tmp_path / "a.jpg", xmp=xmp)) == UNKNOWN


def test_malformed_iptc_is_ignored(tmp_path: Path) -> None:
    path = jpeg(tmp_path / "a.jpg", segment=app13(b"\x1c\xff\x01garbage"), exif=exif_with("Jane Doe"))
    assert read(path) == Rights(INC, "Jane Doe", "EXIF Copyright")


def test_text_without_letters_or_disclaiming_copyright_is_no_notice(tmp_path: Path) -> None:
    assert read(jpeg(tmp_path / "a.jpg", exif=exif_with("    "))) == UNKNOWN
    assert read(jpeg(tmp_path / "b.jpg", exif=exif_with("-"))) == UNKNOWN
    assert read(png(tmp_path / "c.png", packet(dc_rights(("x-default", "Public Domain"))))) == UNKNOWN
    disclaimed_then_notice = jpeg(
        tmp_path / "d.jpg",
        xmp=packet(dc_rights(("x-default", "No known copyright restrictions"))),
        exif=exif_with("Jane Doe"),
    )
    assert read(disclaimed_then_notice) == Rights(INC, "Jane Doe", "EXIF Copyright")


# --- packet dialects ------------------------------------------------------------------------


def test_xmp_with_bom_missing_namespaces_and_nul_padding(tmp_path: Path) -> None:
    undeclared = (
        '<x:xmpmeta><rdf:RDF><rdf:Description xmpRights:Marked="True">'
        + dc_rights(("x-default", NOTICE))
        + "</rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    data = b"\xef\xbb\xbf" + undeclared.encode() + b"\0" * 16
    assert read(jpeg(tmp_path / "a.jpg", xmp=data)) == Rights(INC, NOTICE, "dc:rights")


def test_xmp_with_xml_declaration_str_and_utf16(tmp_path: Path) -> None:
    xmp = '<?xml version="1.0" encoding="UTF-8"?>' + packet(dc_rights(("x-default", NOTICE)))
    assert read(png(tmp_path / "a.png", xmp)) == Rights(INC, NOTICE, "dc:rights")
    utf16 = packet(dc_rights(("x-default", NOTICE))).encode("utf-16")
    assert read(jpeg(tmp_path / "b.jpg", xmp=utf16)) == Rights(INC, NOTICE, "dc:rights")


def test_namespace_uri_without_trailing_slash(tmp_path: Path) -> None:
    ns = NS.replace("http://ns.adobe.com/xap/1.0/rights/", "http://ns.adobe.com/xap/1.0/rights")
    xmp = packet(f"<xmpRights:WebStatement>{INC}</xmpRights:WebStatement>", ns=ns)
    assert read(jpeg(tmp_path / "a.jpg", xmp=xmp)) == Rights(INC, "", "xmpRights:WebStatement")


def test_rights_of_embedded_documents_are_not_the_files(tmp_path: Path) -> None:
    pantry = (
        "<xmpMM:Pantry><rdf:Bag><rdf:li><rdf:Description>"
        + dc_rights(("x-default", "© Somebody Else"))
        + "</rdf:Description></rdf:li></rdf:Bag></xmpMM:Pantry>"
    )
    assert read(jpeg(tmp_path / "a.jpg", xmp=packet(pantry))) == UNKNOWN


def test_text_is_trimmed_and_limited(tmp_path: Path) -> None:
    long = "© City Museum " + "x" * 600
    assert read(jpeg(tmp_path / "a.jpg", exif=exif_with(("  " + long).encode()))).text == long[:500]
    spaced = packet(dc_rights(("x-default", f"\n   {NOTICE}\n  ")))
    assert read(png(tmp_path / "b.png", spaced)).text == NOTICE


# --- precedence -----------------------------------------------------------------------------


def test_web_statement_beats_uris_in_text(tmp_path: Path) -> None:
    xmp = packet(
        f"<xmpRights:WebStatement>{NOC_US}</xmpRights:WebStatement>"
        + usage_terms(INC)
    )
    assert read(jpeg(tmp_path / "a.jpg", xmp=xmp)) == Rights(NOC_US, INC, "xmpRights:WebStatement")


def test_usage_terms_uri_beats_dc_rights_uri_and_uri_beats_notice(tmp_path: Path) -> None:
    both = packet(usage_terms(f"See {NKC}") + dc_rights(("x-default", f"Rights: {INC}")))
    assert read(jpeg(tmp_path / "a.jpg", xmp=both)) == Rights(NKC, f"See {NKC}", "xmpRights:UsageTerms")
    in_dc = packet(dc_rights(("x-default", f"City Museum, {NOC_US}")))
    path = jpeg(tmp_path / "b.jpg", xmp=in_dc, exif=exif_with("Jane Doe"))
    assert read(path) == Rights(NOC_US, f"City Museum, {NOC_US}", "dc:rights")


def test_web_statement_text_is_the_first_notice_found(tmp_path: Path) -> None:
    xmp = packet(f"<xmpRights:WebStatement>{INC}</xmpRights:WebStatement>")
    path = jpeg(tmp_path / "a.jpg", xmp=xmp, exif=exif_with("Jane Doe"))
    assert read(path) == Rights(INC, "Jane Doe", "xmpRights:WebStatement")


def test_notice_order(tmp_path: Path) -> None:
    licensor = (
        '<plus:Licensor><rdf:Seq><rdf:li rdf:parseType="Resource">'
        "<plus:LicensorName>Picture Library</plus:LicensorName></rdf:li></rdf:Seq></plus:Licensor>"
    )
    iptc = app13(iptc_dataset(2, 116, b"IPTC notice"))
    exif = exif_with("EXIF notice")
    with_dc = packet(licensor + dc_rights(("x-default", NOTICE)))
    all_four = jpeg(tmp_path / "a.jpg", xmp=with_dc, exif=exif, segment=iptc)
    no_dc = jpeg(tmp_path / "b.jpg", xmp=packet(licensor), exif=exif, segment=iptc)
    no_xmp = jpeg(tmp_path / "c.jpg", exif=exif, segment=iptc)
    assert read(all_four) == Rights(INC, NOTICE, "dc:rights")
    assert read(no_dc) == Rights(INC, "Picture Library", "plus:Licensor")
    assert read(no_xmp) == Rights(INC, "IPTC notice", "IPTC 2:116")


def test_marked(tmp_path: Path) -> None:
    false = jpeg(tmp_path / "a.jpg", xmp=packet("<xmpRights:Marked>False</xmpRights:Marked>"))
    true = jpeg(tmp_path / "b.jpg", xmp=packet("", attrs='xmpRights:Marked="True"'))
    false_with_notice = jpeg(
        tmp_path / "c.jpg", xmp=packet("", attrs='xmpRights:Marked="False"'), exif=exif_with("Jane Doe")
    )
    assert read(false) == Rights(NKC, "", "xmpRights:Marked")
    assert read(true) == Rights(INC, "", "xmpRights:Marked")
    assert read(false_with_notice) == Rights(INC, "Jane Doe", "EXIF Copyright")


# --- URIs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        "http://rightsstatements.org/vocab/InC/1.0/",
        "https://rightsstatements.org/vocab/InC/1.0/",
        "http://rightsstatements.org/vocab/InC/1.0",
        "https://rightsstatements.org/page/InC/1.0/",
        "https://rightsstatements.org/page/InC/1.0/?language=en",
        "HTTP://RightsStatements.ORG/vocab/InC/1.0/",
        "http://www.rightsstatements.org/vocab/InC/1.0/",
        "  rightsstatements.org/vocab/InC/1.0/ ",
        "http://rightsstatements.org/vocab/inc/1.0/",
    ],
)
def test_canonical_uri_spellings(spelling: str) -> None:
    assert canonical_uri(spelling) == INC


@pytest.mark.parametrize(
    "value",
    [
        "",
        "InC",
        "http://rightsstatements.org/vocab/Nope/1.0/",
        "http://rightsstatements.org/vocab/InC/2.0/",
        "http://rightsstatements.org/vocab/InC/1.0/extra",
        "http://example.org/vocab/InC/1.0/",
        "https://creativecommons.org/publicdomain/zero/1.0/",
        "see http://rightsstatements.org/vocab/InC/1.0/",
    ],
)
def test_canonical_uri_rejects(value: str) -> None:
    assert canonical_uri(value) is None


def test_every_statement_canonicalises() -> None:
    assert len(STATEMENTS) == 12
    for statement in STATEMENTS:
        uri = f"http://rightsstatements.org/vocab/{statement}/1.0/"
        assert uri_for(statement) == uri
        assert canonical_uri(uri.replace("vocab", "page").upper()) == uri


def test_restricted() -> None:
    assert RESTRICTED == {"InC", "InC-OW-EU", "InC-EDU", "InC-NC", "InC-RUU", "NoC-CR", "NoC-NC", "NoC-OKLR"}
    assert is_restricted(INC)
    assert is_restricted("https://rightsstatements.org/page/NoC-CR/1.0/")
    assert not is_restricted(NOC_US)
    assert not is_restricted(NKC)
    assert not is_restricted("unknown")


# --- never raises ---------------------------------------------------------------------------

_ALLOWED = {f"http://rightsstatements.org/vocab/{s}/1.0/" for s in STATEMENTS} | {"unknown"}
_FRAGMENTS = st.sampled_from(
    [
        "<x:xmpmeta>", "</x:xmpmeta>", "<rdf:RDF>", "</rdf:RDF>", "<rdf:Description>",
        "</rdf:Description>", "<dc:rights>", "</dc:rights>", "<rdf:Alt>", "<rdf:li>", "</rdf:li>",
        f"<xmpRights:WebStatement>{INC}</xmpRights:WebStatement>", 'xmpRights:Marked="False"',
        "<plus:Licensor>", "<!DOCTYPE", "&amp;", "&bogus;", "\0", "\ufeff", "©", " ", ">", "<",
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(_FRAGMENTS | st.text(max_size=20), max_size=30), raw=st.binary(max_size=200))
def test_rights_of_never_raises(tmp_path: Path, parts: list[str], raw: bytes) -> None:
    for xmp in ("".join(parts).encode("utf-8", "surrogatepass"), raw):
        if not xmp:
            continue
        result = read(jpeg(tmp_path / "f.jpg", xmp=xmp))
        assert result.uri in _ALLOWED
        assert len(result.text) <= 500
