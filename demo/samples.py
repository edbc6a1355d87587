"""Build the demo consortium's three member archives from scikit-image's photographs.

Only images shipped inside the installed scikit-image package are used (read
straight from its ``data`` folder with Pillow), so nothing is downloaded.
The same seed always produces byte-identical folders with the same Pillow.

Archive variants mirror what real collections hold: a lossless master (8- or
16-bit TIFF/PNG) at one member, a half-size JPEG q75 web copy or a greyscale
JPEG at another, and a cropped detail at a third. Crops are matched through the
keypoints they share with their photograph (``kp64``), so each crop belongs to its
photograph's cross-member group like any other copy;
``SampleSet.crops`` also lists them with their original, for checking the label.

Each member also holds copies of its own pictures, as archives do: a large
uncompressed TIFF master with a byte-identical copy in a backup or transfer folder,
a JPEG access copy and a smaller web copy elsewhere. These are the internal
duplicates its audit report finds, and their megabytes give the report's storage
cost something to count.

Rights are written into the files as archives' tools write them: an
``xmpRights:WebStatement`` with a rightsstatements.org or Creative Commons URI, a
copyright notice in EXIF Copyright, IPTC 2:116 or XMP ``dc:rights``, or nothing at
all (rights unknown). Copies often lose the master's metadata, so some clusters mix
rights. These statements are the demo's invention: scikit-image documents the
photographs themselves as free of known copyright restrictions.
"""

from __future__ import annotations

import io
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html import escape
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin, TiffImagePlugin, TiffTags

MEMBERS = ("records-office", "city-museum", "university-library")

#: Photograph name -> file bundled in ``skimage/data`` (all offline).
PHOTOGRAPHS = {
    "astronaut": "astronaut.png",
    "camera": "camera.png",
    "coffee": "coffee.png",
    "chelsea": "chelsea.png",
    "rocket": "rocket.jpg",
    "moon": "moon.png",
    "coins": "coins.png",
    "hubble_deep_field": "hubble_deep_field.jpg",
    "immunohistochemistry": "ihc.png",
    "clock": "clock_motion.png",
    "retina": "retina.jpg",
    "cell": "cell.png",
    "motorcycle": "motorcycle_left.png",
    "page": "page.png",
}

FileRef = tuple[str, str]

# The statements written into the files, in the form the vocabularies publish them.
INC = "http://rightsstatements.org/vocab/InC/1.0/"
INC_EDU = "http://rightsstatements.org/vocab/InC-EDU/1.0/"
NOC_US = "http://rightsstatements.org/vocab/NoC-US/1.0/"
CC_BY = "https://creativecommons.org/licenses/by/4.0/"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Marking:
    """Rights metadata written into one file: a statement URI (``xmpRights:WebStatement``)
    and/or a copyright notice in ``notice_in``: "exif" (Copyright), "iptc" (2:116) or "xmp"
    (``dc:rights``)."""

    statement: str = ""
    notice: str = ""
    notice_in: str = "exif"

    @property
    def expected(self) -> str:
        """The rights value a node should read: the statement, else In Copyright for a notice."""
        return self.statement or (INC if self.notice else UNKNOWN)


NONE = Marking()


@dataclass
class SampleSet:
    """The built folders and the ground truth a matcher should recover.

    ``groups``: cross-member groups of the same photograph, as (member, relative
    POSIX path), crops included: every file of a group must be linked to the
    others. ``local_duplicates``: copies of one photograph within one member, every
    pair linked. ``crops``: (crop, original) pairs, each also in a group, whose link
    should be labelled as a crop. ``unreadable``: files the node must reject.
    ``sources``: photograph behind every readable file. ``rights``: the rights value
    (a statement URI or ``unknown``) written into every readable file.
    """

    folders: dict[str, Path]
    groups: list[list[FileRef]]
    local_duplicates: list[list[FileRef]] = field(default_factory=list)
    crops: list[tuple[FileRef, FileRef]] = field(default_factory=list)
    unreadable: list[FileRef] = field(default_factory=list)
    sources: dict[FileRef, str] = field(default_factory=dict)
    rights: dict[FileRef, str] = field(default_factory=dict)


def bundled_photograph(name: str) -> Image.Image:
    """Load one of :data:`PHOTOGRAPHS` from the installed scikit-image package."""
    import skimage

    path = Path(skimage.__file__).parent / "data" / PHOTOGRAPHS[name]
    with Image.open(path) as im:
        im.load()
        return im.copy()


def build_member_folders(root: Path, seed: int = 7) -> SampleSet:
    """Write the three member folders under ``root`` and return the ground truth.

    Existing member folders under ``root`` are replaced so that reruns never
    leave stale files behind.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    folders = {m: root / m for m in MEMBERS}
    for folder in folders.values():
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    dates = {name: _capture_date(rng) for name in PHOTOGRAPHS}
    out = SampleSet(folders=folders, groups=[])

    def put(member: str, rel: str, photo: str, writer: Callable[[Path, Marking], None],
            rights: Marking = NONE) -> FileRef:
        target = folders[member] / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        writer(target, rights)
        ref = (member, rel)
        out.sources[ref] = photo
        out.rights[ref] = rights.expected
        return ref

    def copy_of(ref: FileRef, rel: str) -> FileRef:
        """A byte-identical copy of ``ref`` under another path of the same member."""
        member, original = ref
        target = folders[member] / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folders[member] / original, target)
        out.sources[(member, rel)] = out.sources[ref]
        out.rights[(member, rel)] = out.rights[ref]
        return member, rel

    def master_tiff(photo: str, sixteen_bit: bool = False, scale: float = 1.0,
                    compression: str = "tiff_lzw") -> Callable[[Path, Marking], None]:
        """A TIFF master; ``scale`` > 1 stands for a scan at higher resolution than the
        bundled picture, stored uncompressed as many archives keep their masters."""
        im = bundled_photograph(photo)
        if sixteen_bit:
            im = im.convert("L")
        if scale != 1.0:
            im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
        if sixteen_bit:
            im = _widen(im)
        return lambda p, m: im.save(p, "TIFF", compression=compression, tiffinfo=_tiff_tags(m))

    def png(photo: str, sixteen_bit: bool = False) -> Callable[[Path, Marking], None]:
        im = _widen(bundled_photograph(photo)) if sixteen_bit else bundled_photograph(photo)
        return lambda p, m: _save_png(im, p, m)

    def jpeg(photo: str, *, quality: int = 75, scale: float = 1.0, grey: bool = False,
             crop: float = 1.0, crop_from: str = "centre", sideways: bool = False,
             upscale: float = 1.0) -> Callable[[Path, Marking], None]:
        im = bundled_photograph(photo).convert("L" if grey else "RGB")
        if upscale != 1.0:
            # Derived from the high-resolution master, as an access copy would be.
            im = im.resize((round(im.width * upscale), round(im.height * upscale)), Image.Resampling.LANCZOS)
        if crop < 1.0:
            im = _crop(im, crop, crop_from)
        if scale != 1.0:
            size = (round(im.width * scale), round(im.height * scale))
            im = im.resize(size, Image.Resampling.LANCZOS)
        exif = Image.Exif()
        exif.get_ifd(0x8769)[36867] = dates[photo]
        if sideways:
            # Stored as the camera held it; EXIF orientation 6 turns it upright.
            im = im.transpose(Image.Transpose.ROTATE_90)
            exif[0x0112] = 6
        return lambda p, m: _save_jpeg(im, p, m, quality=quality, exif=exif)

    ro, cm, ul = MEMBERS

    # Photographs held by more than one member.
    out.groups.append([
        put(ro, "masters/astronaut.tif", "astronaut", master_tiff("astronaut"), Marking(NOC_US)),
        put(cm, "web/astronaut.jpg", "astronaut", jpeg("astronaut", scale=0.5), Marking(NOC_US)),
        put(ul, "special-collections/astronaut-grey.jpg", "astronaut",
            jpeg("astronaut", grey=True, quality=80)),
    ])
    out.groups.append([
        put(ro, "masters/camera.tif", "camera", master_tiff("camera", sixteen_bit=True),
            Marking(notice="Copyright 1994 Public Records Office")),
        put(ul, "special-collections/camera-web.jpg", "camera", jpeg("camera", scale=0.5)),
    ])
    # Each crop joins its photograph's group at the member that holds no other copy.
    coffee_master = put(cm, "collection/coffee.png", "coffee", png("coffee"),
                        Marking(notice="\u00a9 2015 City Museum of History", notice_in="xmp"))
    coffee_crop = put(ul, "special-collections/coffee-detail.jpg", "coffee",
                      jpeg("coffee", crop=0.85, crop_from="left", quality=85),
                      Marking(CC_BY, notice="Photo: Mei Wong, CC BY 4.0", notice_in="xmp"))
    out.groups.append([
        coffee_master,
        put(ro, "access/coffee-grey.jpg", "coffee", jpeg("coffee", grey=True, quality=80)),
        coffee_crop,
    ])
    out.crops.append((coffee_crop, coffee_master))
    out.groups.append([
        put(ul, "special-collections/chelsea.png", "chelsea", png("chelsea"), Marking(CC_BY)),
        put(cm, "web/chelsea.jpg", "chelsea", jpeg("chelsea", scale=0.5, sideways=True)),
    ])
    rocket_master = put(cm, "collection/rocket.tif", "rocket", master_tiff("rocket"), Marking(NOC_US))
    rocket_crop = put(ro, "access/rocket-detail.jpg", "rocket", jpeg("rocket", crop=0.85, quality=85),
                      Marking(NOC_US))
    out.groups.append([
        rocket_master,
        put(ul, "special-collections/rocket-grey.jpg", "rocket",
            jpeg("rocket", grey=True, scale=0.5)),
        rocket_crop,
    ])
    out.crops.append((rocket_crop, rocket_master))

    # Photographs only one member holds, most of them more than once: the internal
    # duplicates of each member's own audit.
    # Records office: two scanning projects, their masters copied whole into a backup folder;
    # the access and web copies lost or replaced the master's statement.
    moon = put(ro, "masters/moon.tif", "moon", master_tiff("moon", sixteen_bit=True, scale=4, compression="raw"),
               Marking(INC, notice="\u00a9 1969 Public Records Office", notice_in="xmp"))
    out.local_duplicates.append([
        moon,
        copy_of(moon, "backup-2019/masters/moon.tif"),
        put(ro, "access/moon.jpg", "moon", jpeg("moon", grey=True, quality=90, upscale=4)),
        put(ro, "web/moon-small.jpg", "moon", jpeg("moon", grey=True, quality=75),
            Marking(notice="(c) Public Records Office", notice_in="iptc")),
    ])
    coins = put(ro, "scans/coins.tif", "coins", master_tiff("coins", sixteen_bit=True, scale=4, compression="raw"))
    out.local_duplicates.append([coins, copy_of(coins, "backup-2019/scans/coins.tif")])

    # City museum: a master, its backup, the collection's JPEG and a web copy; and a PNG with
    # a JPEG copy made for an exhibition.
    hubble = put(cm, "collection/masters/hubble-deep-field.tif", "hubble_deep_field",
                 master_tiff("hubble_deep_field", scale=2, compression="raw"), Marking(NOC_US))
    out.local_duplicates.append([
        hubble,
        copy_of(hubble, "backup/2020-06/hubble-deep-field.tif"),
        put(cm, "collection/hubble-deep-field.jpg", "hubble_deep_field", jpeg("hubble_deep_field", quality=90),
            Marking(NOC_US)),
        put(cm, "web/hubble-deep-field.jpg", "hubble_deep_field", jpeg("hubble_deep_field", scale=0.5)),
    ])
    put(cm, "collection/immunohistochemistry.png", "immunohistochemistry", png("immunohistochemistry"),
        Marking(INC_EDU))
    out.local_duplicates.append([
        put(cm, "collection/clock.png", "clock", png("clock"),
            Marking(INC, notice="Copyright 1987 City Museum of History")),
        put(cm, "exhibitions/clock-copy.jpg", "clock", jpeg("clock", quality=90)),
    ])

    # University library: a master saved twice under two names by a digitisation batch, its
    # access copy, and a smaller copy reused in a thesis with its author's notice; a microscope
    # image as PNG, with the JPEG copy made for the same thesis.
    motorcycle = put(ul, "special-collections/masters/motorcycle.tif", "motorcycle",
                     master_tiff("motorcycle", scale=3, compression="raw"),
                     Marking(INC, notice="Copyright 2014 University Library"))
    out.local_duplicates.append([
        motorcycle,
        copy_of(motorcycle, "digitisation/2014-batch-3/motorcycle-final.tif"),
        put(ul, "special-collections/motorcycle.jpg", "motorcycle", jpeg("motorcycle", quality=90)),
        put(ul, "theses/figures/motorcycle-small.jpg", "motorcycle", jpeg("motorcycle", scale=0.5),
            Marking(notice="(c) 2009 Jane Chan", notice_in="iptc")),
    ])
    out.local_duplicates.append([
        put(ul, "special-collections/cell.png", "cell", png("cell")),
        put(ul, "theses/figures/cell.jpg", "cell", jpeg("cell", quality=90), Marking(CC_BY)),
    ])
    put(ul, "special-collections/retina.jpg", "retina", jpeg("retina", quality=85, scale=0.5))

    # Files the node must refuse: a truncated JPEG and a text file per member.
    damaged = (
        (ro, "scans/scan-0042", 0.5),
        (cm, "collection/accession-1987-114", 0.6),
        (ul, "special-collections/folio-7", 0.7),
    )
    for member, stem, keep in damaged:
        rel = f"{stem}.jpg"
        jpeg("page", quality=85)(folders[member] / rel, NONE)
        _truncate(folders[member] / rel, keep=keep)
        out.unreadable.append((member, rel))
        note = "inventory.txt"
        (folders[member] / note).write_text(
            f"{member} inventory\nThis folder is sample data for the deduplication demo.\n",
            encoding="utf-8",
        )
        out.unreadable.append((member, note))
    return out


# --- rights metadata, as cataloguing and scanning tools write it ----------------------------

def _xmp(m: Marking) -> bytes | None:
    """An XMP packet with the statement and, for notice_in "xmp", the notice; None if neither."""
    props = []
    if m.statement:
        props.append(f"<xmpRights:WebStatement>{escape(m.statement)}</xmpRights:WebStatement>")
    if m.notice and m.notice_in == "xmp":
        props.append(f'<dc:rights><rdf:Alt><rdf:li xml:lang="x-default">{escape(m.notice)}</rdf:li></rdf:Alt>'
                     "</dc:rights>")
    if not props:
        return None
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:xmpRights="http://ns.adobe.com/xap/1.0/rights/">'
        + "".join(props)
        + '</rdf:Description></rdf:RDF></x:xmpmeta>\n<?xpacket end="w"?>'
    ).encode("utf-8")


def _iptc(m: Marking) -> bytes:
    """IPTC IIM: 1:90 declaring UTF-8, then 2:116 Copyright Notice; empty without an IPTC notice."""
    if not (m.notice and m.notice_in == "iptc"):
        return b""

    def dataset(record: int, number: int, value: bytes) -> bytes:
        return bytes([0x1C, record, number]) + struct.pack(">H", len(value)) + value

    return dataset(1, 90, b"\x1b%G") + dataset(2, 116, m.notice.encode("utf-8"))


def _save_jpeg(im: Image.Image, path: Path, m: Marking, *, quality: int, exif: Image.Exif) -> None:
    exif = _copy_exif(exif)
    if m.notice and m.notice_in == "exif":
        exif[0x8298] = m.notice
    options: dict[str, object] = {"quality": quality, "exif": exif}
    if xmp := _xmp(m):
        options["xmp"] = xmp
    buffer = io.BytesIO()
    im.save(buffer, "JPEG", **options)
    data = buffer.getvalue()
    if iptc := _iptc(m):
        # Photoshop's APP13 segment (one 8BIM IPTC-NAA resource), straight after SOI.
        resource = (b"8BIM" + struct.pack(">H", 0x0404) + b"\0\0" + struct.pack(">I", len(iptc))
                    + iptc + b"\0" * (len(iptc) & 1))
        payload = b"Photoshop 3.0\0" + resource
        data = data[:2] + b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload + data[2:]
    path.write_bytes(data)


def _copy_exif(exif: Image.Exif) -> Image.Exif:
    # One Exif object is shared by every copy a writer makes; each file gets its own.
    out = Image.Exif()
    out.load(exif.tobytes())
    return out


def _save_png(im: Image.Image, path: Path, m: Marking) -> None:
    info = PngImagePlugin.PngInfo()
    if xmp := _xmp(m):
        info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8"))
    options: dict[str, object] = {"pnginfo": info}
    if m.notice and m.notice_in == "exif":
        exif = Image.Exif()
        exif[0x8298] = m.notice
        options["exif"] = exif
    im.save(path, "PNG", **options)


def _tiff_tags(m: Marking) -> TiffImagePlugin.ImageFileDirectory_v2:
    tags = TiffImagePlugin.ImageFileDirectory_v2()
    if xmp := _xmp(m):
        tags[700] = xmp  # XMLPacket
        tags.tagtype[700] = TiffTags.BYTE
    if m.notice and m.notice_in == "exif":
        tags[0x8298] = m.notice  # Copyright
    if iptc := _iptc(m):
        tags[33723] = iptc  # IPTC-NAA
        tags.tagtype[33723] = TiffTags.UNDEFINED
    return tags


def _widen(im: Image.Image) -> Image.Image:
    """16-bit greyscale copy (values x257), as a 16-bit scanner master would hold."""
    return Image.fromarray(np.asarray(im.convert("L"), dtype=np.uint16) * 257)


def _crop(im: Image.Image, keep: float, side: str = "centre") -> Image.Image:
    """Keep ``keep`` of each side around the centre, or of the width with ``side`` cut off
    ("left"/"right"): two of the crop shapes archives make."""
    w, h = im.size
    if side == "centre":
        cw, ch = round(w * keep), round(h * keep)
        x, y = (w - cw) // 2, (h - ch) // 2
        return im.crop((x, y, x + cw, y + ch))
    cw = round(w * keep)
    if side == "left":
        return im.crop((w - cw, 0, w, h))
    if side == "right":
        return im.crop((0, 0, cw, h))
    raise ValueError(f"unknown crop side {side!r}")


def _capture_date(rng: np.random.Generator) -> str:
    start = datetime(1965, 1, 1)
    moment = start + timedelta(seconds=int(rng.integers(0, 50 * 365 * 86400)))
    return moment.strftime("%Y:%m:%d %H:%M:%S")


def _truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
