"""The accuracy corpus's hand-listed versions (bench.corpus.VERSIONS): a source listed as a
version of a kept one is set aside as its derivative, whichever of the two is met first."""

from __future__ import annotations

from bench.corpus import VERSIONS, known_version

GUARDIAN = "wesnoth-1.16-data:/usr/share/games/wesnoth/1.16/data/core/images/portraits/monsters/fire_guardian.png"
WRAITH = "wesnoth-1.16-data:/usr/share/games/wesnoth/1.16/data/core/images/portraits/monsters/fire_wraith_A.png"
OTHER = "wesnoth-1.16-data:/usr/share/games/wesnoth/1.16/data/core/images/portraits/monsters/fire_wraith_B.png"


def test_a_listed_version_resolves_to_the_kept_picture_in_either_order() -> None:
    assert known_version(WRAITH, [OTHER, GUARDIAN]) == GUARDIAN
    assert known_version(GUARDIAN, [WRAITH]) == WRAITH


def test_nothing_else_is_a_listed_version() -> None:
    # Not listed, or its partner not kept (yet): the pixel checks decide alone.
    assert known_version(OTHER, [GUARDIAN, WRAITH]) == ""
    assert known_version(WRAITH, [OTHER]) == ""
    # Tails match whole path components only.
    assert known_version("pkg:/x/not_" + "fire_wraith_A.png", [GUARDIAN]) == ""


def test_every_listed_pair_names_two_different_files() -> None:
    for a, b in VERSIONS:
        assert a != b and a.rsplit("/", 1)[-1] != b.rsplit("/", 1)[-1]
