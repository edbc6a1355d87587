"""Scores one method's links against the corpus's ground truth.

Pairwise: positives are (master, variant) pairs; negatives are pairs of images of different
pictures. Variant-variant pairs of one picture are left out, and so are cross-picture pairs
within a family (a derivative and its kept picture's copies; two windows of one source) unless
a must-not-match set names the pair. Recall is also given per class and per kind of original
(photo, map, document, ...), with the false pairs that touch each kind's images. Clusters:
connected components of the links; every pair inside a component is a predicted match, every
pair of copies of one picture a real one.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from bench.dataset import Corpus
from bench.variants import CLASS_BY_NAME


#: Order of the per-kind rows; kinds not listed follow in the order met.
KIND_ORDER = ("photo", "artwork", "screenshot", "flat_graphic", "map", "dark", "document", "low_information")


def _c2(n: int | np.ndarray):
    return n * (n - 1) // 2


def prf(tp: int, fp: int, fn: int) -> dict:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4),
            "true_pairs": tp, "false_pairs": fp, "missed_pairs": fn}


@dataclass
class Truth:
    """Index arrays over the corpus entries, built once and shared by every method."""

    corpus: Corpus
    group: np.ndarray
    family: np.ndarray
    role: list[str]
    label: list[str]
    kind: list[str]  # what each image shows; copies share their original's kind
    master_of: dict[int, int]  # group id -> master index
    sibling: dict[tuple[int, str], int]  # (group id, class) -> index
    designated: dict[frozenset, str]  # must-not-match pair -> set name
    set_members: dict[str, set[int]]

    @classmethod
    def build(cls, corpus: Corpus) -> "Truth":
        es = corpus.entries
        gids: dict[str, int] = {}
        fids: dict[str, int] = {}
        group = np.array([gids.setdefault(e.group, len(gids)) for e in es])
        family = np.array([fids.setdefault(e.family, len(fids)) for e in es])
        index = {e.file: i for i, e in enumerate(es)}
        master_of = {int(group[i]): i for i, e in enumerate(es) if e.role == "master"}
        sibling = {(int(group[i]), e.label): i for i, e in enumerate(es) if e.role == "variant"}
        designated: dict[frozenset, str] = {}
        members: dict[str, set[int]] = {}
        for name, s in corpus.sets.items():
            members[name] = {index[f] for f in s["images"]}
            if name == "derivatives" or "versions" in s:
                continue
            for a, b in s["pairs"]:
                designated[frozenset((index[a], index[b]))] = name
        return cls(corpus, group, family, [e.role for e in es], [e.label for e in es], [e.kind for e in es],
                   master_of, sibling, designated, members)

    @property
    def n(self) -> int:
        return len(self.group)

    def kinds(self) -> list[str]:
        present = set(self.kind) - {""}
        return [k for k in KIND_ORDER if k in present] + sorted(present - set(KIND_ORDER))

    def positives(self) -> list[tuple[int, int, str]]:
        """(master, variant, class) for every variant file."""
        return [(self.master_of[int(self.group[i])], i, self.label[i]) for i in range(self.n) if self.role[i] == "variant"]

    def excluded(self, i: int, j: int) -> bool:
        return (self.group[i] != self.group[j] and self.family[i] == self.family[j]
                and frozenset((i, j)) not in self.designated)

    def negatives_total(self) -> int:
        # Every group lies inside one family, so cross-family pairs plus named pairs are the negatives.
        same_family = int(_c2(np.bincount(self.family)).sum())
        designated_in_family = sum(1 for p in self.designated if len({int(self.family[k]) for k in p}) == 1)
        return _c2(self.n) - same_family + designated_in_family


def score(truth: Truth, links: np.ndarray, clusters: np.ndarray | None = None) -> dict:
    """All the figures for one method from its (i, j) links; its clusters are ``clusters``
    (a cluster number per image) when the method forms its own, else the connected components
    of its links."""
    links = np.asarray(links, dtype=np.int64).reshape(-1, 2)
    linked = {(int(min(a, b)), int(max(a, b))) for a, b in links}
    pos = truth.positives()
    found_by_class: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    tp = 0
    for m, v, c in pos:
        hit = (min(m, v), max(m, v)) in linked
        tp += hit
        found_by_class[c][0] += hit
        found_by_class[c][1] += 1
    fp = 0
    false_links = []
    per_set = Counter()
    for i, j in sorted(linked):
        if truth.group[i] == truth.group[j]:
            continue
        if truth.excluded(i, j):
            continue
        fp += 1
        false_links.append((i, j))
        s = truth.designated.get(frozenset((i, j)))
        if s:
            per_set[s] += 1
    pairwise = prf(tp, fp, len(pos) - tp)
    pairwise["negative_pairs"] = truth.negatives_total()
    pairwise["positive_pairs"] = len(pos)

    per_class = {c: {"recall": round(h / t, 4), "found": h, "total": t} for c, (h, t) in found_by_class.items()}
    per_kind = kind_scores(truth, pos, linked, false_links)

    must_not = {}
    for name, s in truth.corpus.sets.items():
        if name == "derivatives" or "versions" in s:
            continue
        members = truth.set_members[name]
        touching = sum(1 for i, j in false_links if i in members or j in members)
        must_not[name] = {"pairs": len(s["pairs"]), "false_matches": per_set.get(name, 0),
                          "false_links_touching_set": touching}
    deriv = truth.set_members.get("derivatives", set())
    deriv_links = sum(1 for i, j in linked if (i in deriv or j in deriv) and truth.group[i] != truth.group[j]
                      and truth.family[i] == truth.family[j])
    informational = {"derivatives": {"images": len(deriv), "links_to_their_kept_picture_or_its_copies": deriv_links}}
    for name, s in truth.corpus.sets.items():
        if "versions" in s:
            index = {e.file: k for k, e in enumerate(truth.corpus.entries)}
            pairs = [(index[a], index[b]) for a, b in s["versions"]]
            informational[name] = {"pairs": len(pairs),
                                   "linked": sum(1 for a, b in pairs if (min(a, b), max(a, b)) in linked)}

    if clusters is None:
        clusters = components(truth.n, links)
    return {"pairwise": pairwise, "clusters": cluster_scores(truth, clusters), "per_class_recall": per_class,
            "per_kind": per_kind, "must_not_match": must_not, "informational": informational, "links": len(linked),
            "false_link_examples": [[truth.corpus.entries[i].file, truth.corpus.entries[j].file] for i, j in false_links[:100]]}


def kind_scores(truth: Truth, pos: list[tuple[int, int, str]], linked: set[tuple[int, int]],
                false_links: list[tuple[int, int]]) -> dict:
    """Per kind of original: how many originals, recall over their (master, variant) pairs,
    and the false pairs with at least one image of that kind (a pair of two kinds counts for both)."""
    out = {}
    for k in truth.kinds():
        hits = [(min(m, v), max(m, v)) in linked for m, v, _ in pos if truth.kind[m] == k]
        masters = sum(1 for i in truth.master_of.values() if truth.kind[i] == k)
        out[k] = {"originals": masters, "found": int(sum(hits)), "total": len(hits),
                  "recall": round(sum(hits) / len(hits), 4) if hits else None,
                  "images": sum(1 for x in truth.kind if x == k),
                  "false_pairs_touching": sum(1 for i, j in false_links if truth.kind[i] == k or truth.kind[j] == k)}
    return out


def components(n: int, links: np.ndarray) -> np.ndarray:
    """A cluster number per image: the connected components of the links."""
    if not len(links):
        return np.arange(n)
    g = coo_matrix((np.ones(len(links)), (links[:, 0], links[:, 1])), shape=(n, n))
    return connected_components(g, directed=False)[1]


def cluster_scores(truth: Truth, comp: np.ndarray) -> dict:
    """Pairs inside each cluster are predicted matches; every pair of copies of one picture is a
    real one."""
    comp = np.asarray(comp)
    predicted = int(_c2(np.bincount(comp)).sum())
    tp = 0
    excluded = 0
    # Count pairs per (component, group) and (component, family) without listing pairs.
    cg = Counter(zip(comp.tolist(), truth.group.tolist()))
    cf = Counter(zip(comp.tolist(), truth.family.tolist()))
    tp = sum(_c2(v) for v in cg.values())
    same_family = sum(_c2(v) for v in cf.values())
    designated_inside = sum(1 for p in truth.designated
                            if len({int(comp[k]) for k in p}) == 1 and len({int(truth.family[k]) for k in p}) == 1)
    excluded = same_family - tp - designated_inside
    fp = predicted - tp - excluded
    actual = int(_c2(np.bincount(truth.group)).sum())
    out = prf(tp, fp, actual - tp)
    sizes = np.bincount(comp)
    out["components"] = int(len(sizes))
    out["largest_component"] = int(sizes.max()) if len(sizes) else 0
    return out


#: Colour edits of a picture with no colour: a saturation change or a conversion to greyscale
#: leaves its pixels as they were (a plain re-encode), a white balance tints it (one copy
#: colour, the other grey).
COLOURLESS_ALSO = {"saturation": frozenset({"reencoded", "similar"}), "white_balance": frozenset({"greyscale"}),
                   "greyscale": frozenset({"reencoded", "similar"})}


def label_accuracy(truth: Truth, links: list[tuple[int, int, str]], colourless: frozenset[int] = frozenset()) -> dict:
    """For each class, the share of found reference-variant links whose relation is accepted.
    ``colourless``: the groups whose original has no colour (``COLOURLESS_ALSO``)."""
    rel = {(min(i, j), max(i, j)): r for i, j, r in links}
    out = {}
    by_class: dict[str, list] = defaultdict(list)
    for i in range(truth.n):
        if truth.role[i] != "variant":
            continue
        vc = CLASS_BY_NAME[truth.label[i]]
        g = int(truth.group[i])
        ref = truth.master_of[g] if vc.label_reference == "master" else truth.sibling.get((g, vc.label_reference))
        if ref is None:
            continue
        extra = COLOURLESS_ALSO.get(vc.name, frozenset()) if g in colourless else frozenset()
        by_class[vc.name].append((rel.get((min(ref, i), max(ref, i))), extra))
    for name, pairs in by_class.items():
        rels = [r for r, _ in pairs]
        found = [r for r in rels if r is not None]
        ok = sum(1 for r, extra in pairs if r is not None and (r in CLASS_BY_NAME[name].expected or r in extra))
        out[name] = {"expected": sorted(CLASS_BY_NAME[name].expected),
                     "reference": CLASS_BY_NAME[name].label_reference,
                     "found": len(found), "of": len(rels), "correct": ok,
                     "colourless_originals": sum(1 for r, extra in pairs if extra),
                     "accuracy": round(ok / len(found), 4) if found else None,
                     "relations": dict(Counter(found).most_common())}
    return out
