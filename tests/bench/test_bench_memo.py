"""A benchmark part is computed once per key, read back equal, and recomputed when what it depends on moves."""

from __future__ import annotations

import numpy as np

from benchmarks.bench_memo import Memo


def test_a_part_is_computed_once_and_read_back_as_computed(tmp_path):
    calls, lines = [], []

    def compute():
        calls.append(1)
        return {"auc": np.float64(0.625), "seeds": (0, 1), "probes": [{"epoch": 0, "mia_auc": 0.7}]}

    memo = Memo(tmp_path / "parts", {"split": "forget01"}, lines.append)
    first = memo.run("grin-npo seed 0", {"lr": 3e-3}, compute)
    again = Memo(tmp_path / "parts", {"split": "forget01"}, lines.append).run("grin-npo seed 0", {"lr": 3e-3}, compute)
    assert len(calls) == 1 and again == first == {
        "auc": 0.625,
        "seeds": [0, 1],
        "probes": [{"epoch": 0, "mia_auc": 0.7}],
    }
    assert lines == ["grin-npo seed 0: from the earlier run (grin-npo_seed_0.json)"]

    memo.run("grin-npo seed 0", {"lr": 1e-3}, compute)  # its own config moved
    Memo(tmp_path / "parts", {"split": "forget05"}, lines.append).run(
        "grin-npo seed 0", {"lr": 1e-3}, compute
    )  # the run's
    assert len(calls) == 3
    assert not list((tmp_path / "parts").glob("*.partial"))


def test_without_a_folder_every_part_is_computed():
    calls = []
    memo = Memo(None, {}, print)
    for _ in range(2):
        memo.run("target", {}, lambda: calls.append(1) or {"x": 1})
    assert len(calls) == 2
