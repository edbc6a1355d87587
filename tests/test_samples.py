"""The demo's member folders: deterministic, and their ground truth really holds."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import pytest

from dedup.demo.samples import MEMBERS, SampleSet, build_member_folders
from dedup.matching import Link, find_links, relation_name
from dedup.node.imaging import ImageError, ImageFacts, read_image
from dedup.node.scan import to_record

FileRef = tuple[str, str]


def listing(sample: SampleSet) -> dict[tuple[str, str], str]:
    out = {}
    for member, folder in sample.folders.items():
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                ref = (member, path.relative_to(folder).as_posix())
                out[ref] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleSet:
    return build_member_folders(tmp_path_factory.mktemp("consortium"))


@pytest.fixture(scope="module")
def facts(sample: SampleSet) -> dict[tuple[str, str], ImageFacts]:
    return {ref: read_image(sample.folders[ref[0]] / ref[1]) for ref in sample.sources}


@pytest.fixture(scope="module")
def links(facts: dict[FileRef, ImageFacts]) -> dict[frozenset[FileRef], Link]:
    """Every link ``find_links`` makes among the readable files, keyed by the pair."""
    refs = sorted(facts)
    records = [to_record(f"{m}:{rel}", facts[(m, rel)]) for m, rel in refs]
    return {frozenset((refs[i], refs[j])): lk for i, j, lk in find_links(records)}


def test_members_and_folders(sample: SampleSet) -> None:
    assert tuple(sample.folders) == MEMBERS
    for member, folder in sample.folders.items():
        assert folder.is_dir() and folder.name == member


def test_layout_is_deterministic(sample: SampleSet, tmp_path: Path) -> None:
    again = build_member_folders(tmp_path / "again", seed=7)
    assert listing(again) == listing(sample)
    assert again.groups == sample.groups
    assert again.crops == sample.crops


def test_rebuilding_replaces_stale_files(tmp_path: Path) -> None:
    first = build_member_folders(tmp_path)
    stale = first.folders["city-museum"] / "stale.jpg"
    stale.write_bytes(b"old")
    second = build_member_folders(tmp_path)
    assert not stale.exists()
    assert listing(first) == listing(second)


def test_every_listed_file_exists_and_nothing_else(sample: SampleSet) -> None:
    listed = set(sample.sources) | set(sample.unreadable)
    assert set(listing(sample)) == listed
    for group in sample.groups + sample.local_duplicates:
        assert set(group) <= set(sample.sources)


def test_enough_distinct_photographs(sample: SampleSet) -> None:
    assert len(set(sample.sources.values())) >= 10
    for member in MEMBERS:
        held_elsewhere = {p for (m, _), p in sample.sources.items() if m != member}
        own = {p for (m, _), p in sample.sources.items() if m == member}
        assert own - held_elsewhere, f"{member} holds no photograph of its own"


def test_groups_span_members_and_match(sample: SampleSet, links) -> None:
    """Every pair in an expected group, crops included, is linked by the project's matcher,
    but for a crop and another copy of its picture: the crop is linked to its original, and
    the copy may not hold the crop's part well enough to be placed (a greyscale copy of a
    smooth picture); the cluster takes both (clusters need at least half to agree)."""
    assert any(len({m for m, _ in g}) == 3 for g in sample.groups)
    crops = {crop: original for crop, original in sample.crops}
    excused = set()
    for group in sample.groups:
        assert len({m for m, _ in group}) == len(group) >= 2
        assert len({sample.sources[ref] for ref in group}) == 1
        for a, b in itertools.combinations(group, 2):
            if frozenset((a, b)) in links:
                continue
            assert (a in crops and crops[a] != b) or (b in crops and crops[b] != a), (a, b)
            excused.add(frozenset((a, b)))
    # Known: the rocket's detail and its greyscale copy.
    assert len(excused) <= 1


def test_groups_cover_the_archive_variants(sample: SampleSet, facts) -> None:
    members = [facts[ref] for group in sample.groups for ref in group]
    assert any(f.bit_depth == 16 and f.format == "TIFF" for f in members)
    assert any(f.format_family == "lossless" and f.bit_depth == 8 for f in members)
    assert any(f.mode == "L" and f.format == "JPEG" for f in members)
    assert any(f.jpeg_quality == 75 for f in members)


def test_local_duplicates(sample: SampleSet, links) -> None:
    """Every member holds copies of its own: each pair of a group is linked (a byte-identical
    backup, a re-encoded access copy, a smaller web copy), at least twice per member."""
    for member in MEMBERS:
        assert sum(g[0][0] == member for g in sample.local_duplicates) >= 2, member
    relations = set()
    for group in sample.local_duplicates:
        assert len({m for m, _ in group}) == 1
        assert len({sample.sources[ref] for ref in group}) == 1
        for a, b in itertools.combinations(group, 2):
            relations.add(relation_name(links[frozenset((a, b))].relation))
    assert {"identical_bytes", "reencoded"} <= relations, relations


def test_rights_written_are_read(sample: SampleSet) -> None:
    """Each member mixes rights: a restricted statement or notice, a free one, and none."""
    from PIL import Image

    from dedup.node.rights import rights_of

    for ref, expected in sample.rights.items():
        with Image.open(sample.folders[ref[0]] / ref[1]) as im:
            assert rights_of(im).uri == expected, ref
    for member in MEMBERS:
        held = {v for (m, _), v in sample.rights.items() if m == member}
        assert "http://rightsstatements.org/vocab/InC/1.0/" in held and "unknown" in held and len(held) >= 3, held


def test_different_photographs_never_match(sample: SampleSet, links) -> None:
    """No link joins files of two photographs, and every link is within an expected set."""
    for pair in links:
        a, b = sorted(pair)
        assert sample.sources[a] == sample.sources[b], (a, b)
    expected = {frozenset(p) for g in sample.groups + sample.local_duplicates for p in itertools.combinations(g, 2)}
    assert set(links) <= expected
    assert len(expected - set(links)) <= 1  # test_groups_span_members_and_match says which


def test_crops_are_in_groups_and_labelled_as_crops(sample: SampleSet, links) -> None:
    """Crops are placed in their originals by keypoints and labelled with the share kept."""
    assert len(sample.crops) == 2
    grouped = {ref for g in sample.groups for ref in g}
    for crop, original in sample.crops:
        assert crop[0] != original[0]
        assert {crop, original} <= grouped
        assert any({crop, original} <= set(g) for g in sample.groups)
        assert sample.sources[crop] == sample.sources[original]
        found = links[frozenset((crop, original))]
        assert (relation_name(found.relation), found.algorithm) == ("cropped", "kp64")
        assert 0.68 <= found.kept <= 0.9, found.kept


def test_unreadable_files_are_refused(sample: SampleSet) -> None:
    assert {m for m, _ in sample.unreadable} == set(MEMBERS)
    assert {Path(rel).suffix for _, rel in sample.unreadable} == {".jpg", ".txt"}
    for member, rel in sample.unreadable:
        with pytest.raises(ImageError):
            read_image(sample.folders[member] / rel)


def test_readable_files_have_fingerprints(sample: SampleSet, facts) -> None:
    for ref, fact in facts.items():
        assert not fact.low_information, ref
        assert [(n, v) for n, v, _ in fact.fingerprints] == [("dct256", 2), ("dct64", 2), ("kp64", 1)], ref
