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
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image

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


@dataclass
class SampleSet:
    """The built folders and the ground truth a matcher should recover.

    ``groups``: cross-member groups of the same photograph, as (member, relative
    POSIX path), crops included: every file of a group must be linked to the
    others. ``local_duplicates``: the same photograph twice within one member.
    ``crops``: (crop, original) pairs, each also in a group, whose link should be
    labelled as a crop. ``unreadable``: files the node must reject. ``sources``:
    photograph behind every readable file.
    """

    folders: dict[str, Path]
    groups: list[list[FileRef]]
    local_duplicates: list[list[FileRef]] = field(default_factory=list)
    crops: list[tuple[FileRef, FileRef]] = field(default_factory=list)
    unreadable: list[FileRef] = field(default_factory=list)
    sources: dict[FileRef, str] = field(default_factory=dict)


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

    def put(member: str, rel: str, photo: str, writer: Callable[[Path], None]) -> FileRef:
        target = folders[member] / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        writer(target)
        ref = (member, rel)
        out.sources[ref] = photo
        return ref

    def master_tiff(photo: str, sixteen_bit: bool = False) -> Callable[[Path], None]:
        im = _widen(bundled_photograph(photo)) if sixteen_bit else bundled_photograph(photo)
        return lambda p: im.save(p, "TIFF", compression="tiff_lzw")

    def png(photo: str, sixteen_bit: bool = False) -> Callable[[Path], None]:
        im = _widen(bundled_photograph(photo)) if sixteen_bit else bundled_photograph(photo)
        return lambda p: im.save(p, "PNG")

    def jpeg(photo: str, *, quality: int = 75, scale: float = 1.0, grey: bool = False,
             crop: float = 1.0, crop_from: str = "centre", sideways: bool = False) -> Callable[[Path], None]:
        im = bundled_photograph(photo).convert("L" if grey else "RGB")
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
        return lambda p: im.save(p, "JPEG", quality=quality, exif=exif)

    ro, cm, ul = MEMBERS

    # Photographs held by more than one member.
    out.groups.append([
        put(ro, "masters/astronaut.tif", "astronaut", master_tiff("astronaut")),
        put(cm, "web/astronaut.jpg", "astronaut", jpeg("astronaut", scale=0.5)),
        put(ul, "special-collections/astronaut-grey.jpg", "astronaut",
            jpeg("astronaut", grey=True, quality=80)),
    ])
    out.groups.append([
        put(ro, "masters/camera.tif", "camera", master_tiff("camera", sixteen_bit=True)),
        put(ul, "special-collections/camera-web.jpg", "camera", jpeg("camera", scale=0.5)),
    ])
    # Each crop joins its photograph's group at the member that holds no other copy.
    coffee_master = put(cm, "collection/coffee.png", "coffee", png("coffee"))
    coffee_crop = put(ul, "special-collections/coffee-detail.jpg", "coffee",
                      jpeg("coffee", crop=0.85, crop_from="left", quality=85))
    out.groups.append([
        coffee_master,
        put(ro, "access/coffee-grey.jpg", "coffee", jpeg("coffee", grey=True, quality=80)),
        coffee_crop,
    ])
    out.crops.append((coffee_crop, coffee_master))
    out.groups.append([
        put(ul, "special-collections/chelsea.png", "chelsea", png("chelsea")),
        put(cm, "web/chelsea.jpg", "chelsea", jpeg("chelsea", scale=0.5, sideways=True)),
    ])
    rocket_master = put(cm, "collection/rocket.tif", "rocket", master_tiff("rocket"))
    rocket_crop = put(ro, "access/rocket-detail.jpg", "rocket", jpeg("rocket", crop=0.85, quality=85))
    out.groups.append([
        rocket_master,
        put(ul, "special-collections/rocket-grey.jpg", "rocket",
            jpeg("rocket", grey=True, scale=0.5)),
        rocket_crop,
    ])
    out.crops.append((rocket_crop, rocket_master))

    # Photographs only one member holds.
    put(ro, "masters/moon.png", "moon", png("moon", sixteen_bit=True))
    put(ro, "scans/coins.tif", "coins", master_tiff("coins", sixteen_bit=True))
    put(cm, "collection/hubble-deep-field.jpg", "hubble_deep_field",
        jpeg("hubble_deep_field", quality=90))
    put(cm, "collection/immunohistochemistry.png", "immunohistochemistry",
        png("immunohistochemistry"))
    put(ul, "special-collections/retina.jpg", "retina", jpeg("retina", quality=85, scale=0.5))
    put(ul, "special-collections/cell.png", "cell", png("cell"))
    put(ul, "special-collections/motorcycle.jpg", "motorcycle", jpeg("motorcycle", quality=90))

    # The same photograph twice at one member (PNG and a JPEG copy).
    out.local_duplicates.append([
        put(cm, "collection/clock.png", "clock", png("clock")),
        put(cm, "exhibitions/clock-copy.jpg", "clock", jpeg("clock", quality=90)),
    ])

    # Files the node must refuse: a truncated JPEG and a text file per member.
    damaged = (
        (ro, "scans/scan-0042", 0.5),
        (cm, "collection/accession-1987-114", 0.6),
        (ul, "special-collections/folio-7", 0.7),
    )
    for member, stem, keep in damaged:
        rel = f"{stem}.jpg"
        jpeg("page", quality=85)(folders[member] / rel)
        _truncate(folders[member] / rel, keep=keep)
        out.unreadable.append((member, rel))
        note = "inventory.txt"
        (folders[member] / note).write_text(
            f"{member} inventory\nThis folder is sample data for the deduplication demo.\n",
            encoding="utf-8",
        )
        out.unreadable.append((member, note))
    return out


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
