"""`make bench-partition` (bench/partition.py) on a small scale: the shards' unioned answers and
the replicas' split answers must be the single index's, and the figures must add up."""

from __future__ import annotations

import json

from bench import partition


def test_shards_and_replicas_answer_as_the_single_index(tmp_path, capsys):
    out = tmp_path / "partition.json"
    # 1,500 queries: a full batch and a partial one; 3 shards: shards of unequal size.
    assert partition.main(["--sizes", "2000", "--queries", "1500", "--shards", "3", "--replicas", "2",
                           "--log-entries", "250", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    [size] = r["sizes"]
    layouts = {(x["layout"], x["workers"]): x for x in size["layouts"]}
    assert set(layouts) == {("single", 1), ("shards", 3), ("replicas", 2)}
    single = layouts["single", 1]
    assert single["identical"] is None and single["queries"] == 1500
    # A third of the queries are copies of stored pictures: the search finds them.
    assert single["candidates"] > 300
    for key in (("shards", 3), ("replicas", 2)):
        x = layouts[key]
        assert x["identical"] is True and x["queries"] == 1500 and x["candidates"] == single["candidates"]
    assert sorted(w["assets"] for w in layouts["shards", 3]["per_worker"]) == [666, 667, 667]
    assert [w["assets"] for w in layouts["replicas", 2]["per_worker"]] == [2000, 2000]
    assert [a["entries"] for a in r["log_append"]] == [250, 250]
    assert r["code"]["entries"] == ["bench.partition"] and "dedup/candidates.py" in r["code"]["sources"]
    assert "| 2,000 | shards | 3 |" in capsys.readouterr().out
