"""Rights from embedded metadata, read from real files written with Pillow, and the shared
vocabulary of rights values (dedup.rights)."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin, TiffImagePlugin, TiffTags

from dedup.node.rights import UNKNOWN, Rights, rights_of
from dedup.rights import (
    CC0,
    LICENCES,
    PDM,
    PORTED_VERSIONS,
    RESTRICTED,
    STATEMENT_NAMES,
    STATEMENTS,
    VERSIONS,
    canonical,
    is_restricted,
    is_wire_value,
    label,
    licence_uri,
    parse,
    statement_uri,
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
    'xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/" '
    'xmlns:cc="http://creativecommons.org/ns#"'
)
CC_BY = "https://creativecommons.org/licenses/by/4.0/"
CC_BY_SA_3 = "https://creativecommons.org/licenses/by-sa/3.0/"
NASA = "(c) NASA - public domain"


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
    # A claim of public domain is kept as the file's notice, but frees nothing.
    public_domain = png(tmp_path / "c.png", packet(dc_rights(("x-default", "Public Domain"))))
    assert read(public_domain) == Rights("unknown", "Public Domain", "dc:rights")
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
    assert canonical(spelling) == INC


@pytest.mark.parametrize(
    "value",
    [
        "",
        "InC",
        "http://rightsstatements.org/vocab/Nope/1.0/",
        "http://rightsstatements.org/vocab/InC/2.0/",
        "http://rightsstatements.org/vocab/InC/1.0/extra",
        "http://rightsstatements.org/vocab/InC/1.0.1/",
        "http://example.org/vocab/InC/1.0/",
        "see http://rightsstatements.org/vocab/InC/1.0/",
        "https://creativecommons.org/licenses/by/5.0/",
        "https://creativecommons.org/licenses/by/2.1/",  # 2.1 exists only ported
        "https://creativecommons.org/licenses/by/4.0/hk/",  # 4.0 was never ported
        "https://creativecommons.org/licenses/by-sa-nd/4.0/",
        "https://creativecommons.org/licenses/by-nc-nc/4.0/",
        "https://creativecommons.org/licenses/sa/1.0/",
        "https://creativecommons.org/licenses/by/4.0/extra",
        "https://creativecommons.org/licenses/by/3.0/hongkong/",
        "https://creativecommons.org/publicdomain/zero/2.0/",
        "https://creativecommons.org/licenses/publicdomain/",
        "https://example.org/licenses/by/4.0/",
        "CC BY 4.0",
    ],
)
def test_canonical_uri_rejects(value: str) -> None:
    assert canonical(value) is None
    assert not is_wire_value(value)


def test_every_statement_canonicalises() -> None:
    assert len(STATEMENTS) == 12
    for statement in STATEMENTS:
        uri = f"http://rightsstatements.org/vocab/{statement}/1.0/"
        assert statement_uri(statement) == uri
        assert canonical(uri.replace("vocab", "page").upper()) == uri
        assert parse(statement.lower()) == parse(statement) == uri


def test_restricted() -> None:
    assert RESTRICTED == {"InC", "InC-OW-EU", "InC-EDU", "InC-NC", "InC-RUU", "NoC-CR", "NoC-NC", "NoC-OKLR"}
    assert is_restricted(INC)
    assert is_restricted("https://rightsstatements.org/page/NoC-CR/1.0/")
    assert not is_restricted(NOC_US)
    assert not is_restricted(NKC)
    assert not is_restricted("unknown")
    # Creative Commons: no commercial use (NC) or no adaptations (ND) restrict reuse;
    # attribution and share-alike are conditions any reuse can meet.
    restricted = {code for code in LICENCES if is_restricted(licence_uri(code, "4.0"))}
    assert restricted == {"by-nd", "by-nc", "by-nc-sa", "by-nc-nd"}
    assert is_restricted("http://creativecommons.org/licenses/by-nd-nc/1.0/legalcode")
    assert is_restricted("https://creativecommons.org/licenses/by-nc-sa/3.0/hk/")
    assert not is_restricted("https://creativecommons.org/licenses/by-sa/3.0/hk/")
    for free in (CC_BY, CC_BY_SA_3, CC0, PDM, "", None, "http://example.org/nope"):
        assert not is_restricted(free)
    for statement in STATEMENTS:
        assert is_restricted(statement_uri(statement)) == (statement in RESTRICTED)


# --- Creative Commons, CC0 and the Public Domain Mark in files --------------------------------


def test_cc_uri_in_web_statement_keeps_the_notice(tmp_path: Path) -> None:
    xmp = packet(
        "<xmpRights:WebStatement>http://creativecommons.org/licenses/by/4.0/deed.en</xmpRights:WebStatement>"
        + dc_rights(("x-default", "© 2003 Jane Doe"))
    )
    assert read(jpeg(tmp_path / "a.jpg", xmp=xmp)) == Rights(CC_BY, "© 2003 Jane Doe", "xmpRights:WebStatement")


def test_cc_license_property_as_resource_attribute_and_text(tmp_path: Path) -> None:
    resource = packet('<cc:license rdf:resource="http://creativecommons.org/licenses/by-sa/3.0/"/>')
    attribute = packet("", attrs='cc:license="https://creativecommons.org/licenses/by-nc-nd/4.0/legalcode"')
    text = packet("<cc:license>https://creativecommons.org/publicdomain/zero/1.0/</cc:license>",
                  ns=NS.replace('xmlns:cc="http://creativecommons.org/ns#"', 'xmlns:cc="http://creativecommons.org/ns"'))
    assert read(png(tmp_path / "a.png", resource)) == Rights(CC_BY_SA_3, "", "cc:license")
    assert read(tiff(tmp_path / "b.tif", attribute)) == Rights(
        "https://creativecommons.org/licenses/by-nc-nd/4.0/", "", "cc:license")
    assert read(jpeg(tmp_path / "c.jpg", xmp=text)) == Rights(CC0, "", "cc:license")


def test_web_statement_beats_cc_license(tmp_path: Path) -> None:
    xmp = packet(f"<xmpRights:WebStatement>{INC}</xmpRights:WebStatement>"
                 f'<cc:license rdf:resource="{CC_BY}"/>')
    assert read(jpeg(tmp_path / "a.jpg", xmp=xmp)) == Rights(INC, "", "xmpRights:WebStatement")


def test_cc_uris_in_usage_terms_and_dc_rights(tmp_path: Path) -> None:
    pdm = "Public domain: https://creativecommons.org/publicdomain/mark/1.0/."
    ported = "© 2010 Jane Doe, licensed https://creativecommons.org/licenses/by-sa/3.0/hk/deed.zh_TW"
    assert read(png(tmp_path / "a.png", packet(usage_terms(pdm)))) == Rights(PDM, pdm, "xmpRights:UsageTerms")
    assert read(jpeg(tmp_path / "b.jpg", xmp=packet(dc_rights(("x-default", ported))))) == Rights(
        "https://creativecommons.org/licenses/by-sa/3.0/hk/", ported, "dc:rights")


@pytest.mark.parametrize(
    ("notice", "uri"),
    [
        ("CC BY 4.0", CC_BY),
        ("Photo: Jane Doe, CC BY-SA 3.0", CC_BY_SA_3),
        ("Jane Doe (CC-BY-NC-ND-4.0)", "https://creativecommons.org/licenses/by-nc-nd/4.0/"),
        ("© Hans Müller, CC BY-SA 3.0 de", "https://creativecommons.org/licenses/by-sa/3.0/de/"),
        ("CC BY 3.0 by Jane Doe", "https://creativecommons.org/licenses/by/3.0/"),
        ("CC0", CC0),
        ("Released under CC0 1.0", CC0),
        ("Public Domain Mark 1.0", PDM),
    ],
)
def test_licence_names_in_text(tmp_path: Path, notice: str, uri: str) -> None:
    in_dc = png(tmp_path / "a.png", packet(dc_rights(("x-default", notice))))
    in_exif = jpeg(tmp_path / "b.jpg", exif=exif_with(notice.encode()))
    assert read(in_dc) == Rights(uri, notice, "dc:rights")
    assert read(in_exif) == Rights(uri, notice, "EXIF Copyright")


def test_a_licence_anywhere_beats_a_bare_notice(tmp_path: Path) -> None:
    path = jpeg(tmp_path / "a.jpg", xmp=packet(dc_rights(("x-default", "© 2003 Jane Doe"))),
                exif=exif_with("CC BY 4.0"))
    assert read(path) == Rights(CC_BY, "CC BY 4.0", "EXIF Copyright")


def test_a_licence_without_its_version_is_a_notice(tmp_path: Path) -> None:
    assert read(jpeg(tmp_path / "a.jpg", exif=exif_with("Jane Doe, CC BY-SA"))) == Rights(
        INC, "Jane Doe, CC BY-SA", "EXIF Copyright")


# --- claims of public domain ----------------------------------------------------------------


@pytest.mark.parametrize(
    "claim",
    [NASA, "© NASA. Public Domain", "Public domain", "No known copyright restrictions", "Copyright expired",
     "No Copyright - United States", "copyright-free"],
)
def test_a_claim_of_public_domain_is_kept_but_frees_nothing(tmp_path: Path, claim: str) -> None:
    exif = jpeg(tmp_path / "a.jpg", exif=exif_with(claim.encode()))
    iptc = jpeg(tmp_path / "b.jpg", segment=app13(iptc_dataset(1, 90, b"\x1b%G") + iptc_dataset(2, 116, claim.encode())))
    dc = png(tmp_path / "c.png", packet(dc_rights(("x-default", claim))))
    assert read(exif) == Rights("unknown", claim, "EXIF Copyright")
    assert read(iptc) == Rights("unknown", claim, "IPTC 2:116")
    assert read(dc) == Rights("unknown", claim, "dc:rights")


def test_the_nasa_notice_from_a_scanned_tiff_is_not_in_copyright(tmp_path: Path) -> None:
    result = read(tiff(tmp_path / "a.tif", exif=exif_with(NASA)))
    assert result.uri != INC and not is_restricted(result.uri)
    assert result == Rights("unknown", NASA, "EXIF Copyright")


def test_saying_not_public_domain_is_a_notice(tmp_path: Path) -> None:
    notice = "© 2003 Jane Doe. Not in the public domain"
    assert read(jpeg(tmp_path / "a.jpg", exif=exif_with(notice.encode()))) == Rights(INC, notice, "EXIF Copyright")


def test_a_claim_does_not_cancel_a_notice_elsewhere_nor_the_marked_flag(tmp_path: Path) -> None:
    claim_then_notice = jpeg(tmp_path / "a.jpg", xmp=packet(dc_rights(("x-default", NASA))),
                             exif=exif_with("Jane Doe"))
    assert read(claim_then_notice) == Rights(INC, "Jane Doe", "EXIF Copyright")
    marked = jpeg(tmp_path / "b.jpg", xmp=packet(dc_rights(("x-default", "Public domain")),
                                                  attrs='xmpRights:Marked="False"'))
    assert read(marked) == Rights(NKC, "Public domain", "xmpRights:Marked")


def test_usage_terms_alone_are_shown_but_decide_nothing(tmp_path: Path) -> None:
    path = jpeg(tmp_path / "a.jpg", xmp=packet(usage_terms("Editorial use only")))
    assert read(path) == Rights("unknown", "Editorial use only", "xmpRights:UsageTerms")


# --- the vocabulary ---------------------------------------------------------------------------


def _every_value() -> list[str]:
    values = [statement_uri(s) for s in STATEMENTS]
    values += [licence_uri(code, v) for code in LICENCES for v in VERSIONS]
    values += [licence_uri(code, v, "hk") for code in LICENCES for v in PORTED_VERSIONS]
    return values + [CC0, PDM, "unknown"]


@pytest.mark.parametrize(
    ("spelling", "value"),
    [
        ("http://creativecommons.org/licenses/by/4.0/", CC_BY),
        ("https://creativecommons.org/licenses/by/4.0", CC_BY),
        ("https://www.creativecommons.org/licenses/by/4.0/", CC_BY),
        ("creativecommons.org/licenses/by/4.0/", CC_BY),
        ("HTTPS://CreativeCommons.org/Licenses/BY/4.0/", CC_BY),
        ("https://creativecommons.org/licenses/by/4.0/legalcode", CC_BY),
        ("https://creativecommons.org/licenses/by/4.0/legalcode.de", CC_BY),
        ("https://creativecommons.org/licenses/by/4.0/legalcode.txt", CC_BY),
        ("https://creativecommons.org/licenses/by/4.0/deed", CC_BY),
        ("https://creativecommons.org/licenses/by/4.0/deed.en", CC_BY),
        ("https://creativecommons.org/licenses/by/4.0/deed.zh-hant", CC_BY),
        ("https://creativecommons.org/licenses/by/4.0/deed.pt_BR/", CC_BY),
        ("https://creativecommons.org/licenses/by/4.0/?ref=chooser-v1", CC_BY),
        ("  https://creativecommons.org/licenses/by/4.0/#  ", CC_BY),
        ("http://creativecommons.org/licenses/by-sa/3.0/legalcode", CC_BY_SA_3),
        ("https://creativecommons.org/licenses/sa-by/3.0/", None),
        ("https://creativecommons.org/licenses/by-nc-nd/1.0/", "https://creativecommons.org/licenses/by-nd-nc/1.0/"),
        ("http://creativecommons.org/licenses/by-nd-nc/1.0", "https://creativecommons.org/licenses/by-nd-nc/1.0/"),
        ("https://creativecommons.org/licenses/by-sa-nc/2.0/", "https://creativecommons.org/licenses/by-nc-sa/2.0/"),
        ("http://creativecommons.org/licenses/by/3.0/hk/", "https://creativecommons.org/licenses/by/3.0/hk/"),
        ("https://creativecommons.org/licenses/by/3.0/HK/legalcode", "https://creativecommons.org/licenses/by/3.0/hk/"),
        ("https://creativecommons.org/licenses/by/2.1/jp/", "https://creativecommons.org/licenses/by/2.1/jp/"),
        ("https://creativecommons.org/licenses/by/3.0/igo/", "https://creativecommons.org/licenses/by/3.0/igo/"),
        ("https://creativecommons.org/licenses/by-sa/2.5/scotland/",
         "https://creativecommons.org/licenses/by-sa/2.5/scotland/"),
        ("http://creativecommons.org/publicdomain/zero/1.0/", CC0),
        ("https://creativecommons.org/publicdomain/zero/1.0/legalcode", CC0),
        ("https://creativecommons.org/publicdomain/zero/1.0/deed.fr", CC0),
        ("http://www.creativecommons.org/publicdomain/mark/1.0", PDM),
        ("https://creativecommons.org/publicdomain/mark/1.0/deed.de", PDM),
        ("unknown", "unknown"),
        (" Unknown ", "unknown"),
    ],
)
def test_canonical_forms(spelling: str, value: str | None) -> None:
    assert canonical(spelling) == value
    assert is_wire_value(spelling) == (spelling == value)


def test_every_value_is_its_own_canonical_form() -> None:
    values = _every_value()
    assert len(values) == 12 + 6 * 5 + 6 * 5 + 3
    for value in values:
        assert is_wire_value(value), value
        assert canonical(value) == value
        assert parse(label(value)) == value, (value, label(value))  # a label names one value
    assert not is_wire_value("") and not is_wire_value("Unknown") and not is_wire_value(CC_BY.upper())
    assert not is_wire_value(CC_BY.replace("https", "http")) and not is_wire_value(INC.replace("http", "https"))
    assert len({label(v) for v in values}) == len(values)


def test_labels() -> None:
    assert {label(statement_uri(s)) for s in STATEMENTS} == set(STATEMENT_NAMES.values())
    assert label(INC) == "In Copyright"
    assert label("https://rightsstatements.org/page/NoC-US/1.0/?language=en") == "No Copyright - United States"
    assert label(NKC) == "No Known Copyright"
    assert label(statement_uri("CNE")) == "Copyright Not Evaluated"
    assert label(statement_uri("UND")) == "Copyright Undetermined"
    assert label(statement_uri("InC-RUU")) == "In Copyright - Rights-holder(s) Unlocatable or Unidentifiable"
    expected = {"by": "CC BY", "by-sa": "CC BY-SA", "by-nd": "CC BY-ND", "by-nc": "CC BY-NC",
                "by-nc-sa": "CC BY-NC-SA", "by-nc-nd": "CC BY-NC-ND"}
    for code, name in expected.items():
        for version in VERSIONS:
            want = "CC BY-ND-NC 1.0" if (code, version) == ("by-nc-nd", "1.0") else f"{name} {version}"
            assert label(licence_uri(code, version)) == want
    assert label("https://creativecommons.org/licenses/by/3.0/hk/") == "CC BY 3.0 HK"
    assert label("https://creativecommons.org/licenses/by/3.0/igo/") == "CC BY 3.0 IGO"
    assert label("https://creativecommons.org/licenses/by-sa/2.5/scotland/") == "CC BY-SA 2.5 Scotland"
    assert label(CC0) == "CC0"
    assert label("http://creativecommons.org/publicdomain/zero/1.0/legalcode") == "CC0"
    assert label(PDM) == "Public Domain Mark"
    assert label("unknown") == label("") == label(None) == "Unknown"
    assert label("some local value") == "some local value"  # outside the vocabulary: shown, not hidden


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("InC", INC), ("inc", INC), ("In Copyright", INC), ("IN COPYRIGHT", INC), ("in-copyright", INC),
        ("No Copyright - United States", NOC_US), ("No Copyright \u2013 United States", NOC_US),
        ("no copyright united states", NOC_US), ("NoC-US", NOC_US), ("noc_us", NOC_US),
        ("In Copyright - Educational Use Permitted", statement_uri("InC-EDU")),
        ("No Known Copyright", NKC),
        ("CC BY 4.0", CC_BY), ("cc by 4.0", CC_BY), ("CC-BY-4.0", CC_BY), ("CC BY 4.0 International", CC_BY),
        ("Creative Commons Attribution 4.0 International", CC_BY), ("Attribution 4.0 International", CC_BY),
        ("CC BY-SA 3.0", CC_BY_SA_3), ("Attribution-ShareAlike 3.0 Unported", CC_BY_SA_3),
        ("CC BY-NC-ND 4.0", "https://creativecommons.org/licenses/by-nc-nd/4.0/"),
        ("Attribution-NonCommercial-NoDerivatives 4.0 International",
         "https://creativecommons.org/licenses/by-nc-nd/4.0/"),
        ("Attribution-NoDerivs 3.0 Unported", "https://creativecommons.org/licenses/by-nd/3.0/"),
        ("CC BY 3.0 HK", "https://creativecommons.org/licenses/by/3.0/hk/"),
        ("CC0", CC0), ("cc0 1.0", CC0), ("CC0 1.0 Universal", CC0), ("CC-0", CC0),
        ("Public Domain Mark", PDM), ("public domain mark 1.0", PDM), ("PDM", PDM),
        ("https://creativecommons.org/licenses/by/4.0/legalcode", CC_BY),
        ("https://rightsstatements.org/page/InC/1.0/?language=en", INC),
        ("unknown", "unknown"),
        ("Public domain", None), ("CC BY", None), ("CC BY 4.0 HK", None), ("CC BY 5.0", None),
        ("BY 4.0", None), ("Copyright", None), ("", None), ("InC-XX", None),
    ],
)
def test_parse_names(name: str, value: str | None) -> None:
    assert parse(name) == value


# --- never raises ---------------------------------------------------------------------------

_FRAGMENTS = st.sampled_from(
    [
        "<x:xmpmeta>", "</x:xmpmeta>", "<rdf:RDF>", "</rdf:RDF>", "<rdf:Description>",
        "</rdf:Description>", "<dc:rights>", "</dc:rights>", "<rdf:Alt>", "<rdf:li>", "</rdf:li>",
        f"<xmpRights:WebStatement>{INC}</xmpRights:WebStatement>", 'xmpRights:Marked="False"',
        f'<cc:license rdf:resource="{CC_BY}"/>', "CC BY-SA 3.0 de", "CC0", "public domain",
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
        assert is_wire_value(result.uri)
        assert len(result.text) <= 500
