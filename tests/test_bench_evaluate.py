"""The accuracy benchmark's scoring (bench.evaluate) on a corpus small enough to count by hand:
which pairs are false, which are left out, and what a set of versions of one picture counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.dataset import Corpus, Entry
from bench.evaluate import Truth, score


def _corpus() -> Corpus:
    e = [
        Entry("o0/master.png", "o0", "o0", "master", "master"),
        Entry("o0/jpeg_q95.jpg", "o0", "o0", "variant", "jpeg_q95"),
        Entry("o1/master.png", "o1", "o1", "master", "master"),
        Entry("o1/jpeg_q95.jpg", "o1", "o1", "variant", "jpeg_q95"),
        Entry("hard/burst_a.jpg", "r0:a", "r0", "must_not_match", "burst"),
        Entry("hard/burst_b.jpg", "r0:b", "r0", "must_not_match", "burst"),
        Entry("hard/frame_1.png", "frame:1", "frames", "version", "story_frames"),
        Entry("hard/frame_2.png", "frame:2", "frames", "version", "story_frames"),
        Entry("hard/frame_3.png", "frame:3", "frames", "version", "story_frames"),
    ]
    sets = {
        "burst": {"images": ["hard/burst_a.jpg", "hard/burst_b.jpg"], "pairs": [["hard/burst_a.jpg", "hard/burst_b.jpg"]]},
        "story_frames": {"images": [x.file for x in e[6:]], "pairs": [],
                         "versions": [[e[6].file, e[7].file], [e[6].file, e[8].file], [e[7].file, e[8].file]]},
    }
    return Corpus(Path("."), e, sets, [], [], [], {}, "test")


def test_versions_of_one_picture_are_counted_not_scored() -> None:
    truth = Truth.build(_corpus())
    # Frames 1-2 and 2-3 linked: versions, neither true nor false; the burst pair is false, and
    # so is a frame linked to another picture.
    links = np.array([[0, 1], [6, 7], [7, 8], [4, 5], [2, 6]])
    r = score(truth, links)
    assert r["pairwise"]["true_pairs"] == 1 and r["pairwise"]["false_pairs"] == 2
    assert r["must_not_match"] == {"burst": {"pairs": 1, "false_matches": 1, "false_links_touching_set": 1}}
    assert r["informational"]["story_frames"] == {"pairs": 3, "linked": 2}
    # Clusters: {0, 1}, {2, 6, 7, 8}, {4, 5}: the frames' cluster is false only through o1's
    # master (3 pairs); the burst pair is false.
    assert r["clusters"]["false_pairs"] == 4
    # Negatives: every cross-family pair (the frames' own pairs and the burst's are in-family;
    # the burst pair is named, so counted).
    assert r["pairwise"]["negative_pairs"] == 9 * 8 // 2 - (1 + 1 + 1 + 3) + 1
