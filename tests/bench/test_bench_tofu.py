"""`grin bench tofu` end to end through the installed command, on the tiny recipe (3 authors).

The numbers of a tiny model mean nothing; this holds the plumbing to the issue's contract: every
method runs from one target and lands in the JSON with the agreed keys, the sweep lands under
`sweeps`, the figure is a PNG, and no forget-set text reaches the output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from grin_core.tofu import TofuSubset, load_tofu

# ~40 s on 2 idle cores: two tiny models trained, seven evaluations. One torch thread: a tiny model
# gains nothing from two, and two threads on a busy 2-core machine run several times slower.
pytestmark = pytest.mark.slow

GRIN = Path(sys.executable).with_name("grin")
METHODS = ("grin-npo", "grin-graddiff", "grin-po", "npo", "graddiff", "retrain")
METHOD_KEYS = {"wall_s", "scoring_s", "peak_rss_mb", "state_bytes", "trainable_params", "metrics", "config"}
METRIC_KEYS = {"forget_rougeL", "retain_rougeL", "forget_truth_ratio", "forget_quality", "model_utility",
               "forget_keyword_acc", "mia_auc"}


def test_tiny_benchmark_writes_the_report_and_the_plot(tmp_path: Path, tofu_dir: Path) -> None:
    out, plot = tmp_path / "tofu.json", tmp_path / "tofu.png"
    env = {**os.environ, "GRIN_TOFU_DIR": str(tofu_dir)}
    result = subprocess.run(
        [str(GRIN), "bench", "tofu", "--split", "forget10", "--authors", "3", "--recipe", "tiny",
         "--methods", ",".join(METHODS), "--epochs", "1", "--sweep", "p=1", "--lr", "npo=2e-4",
         "--threads", "1",
         "--cache-dir", str(tmp_path / "models"), "--json", str(out), "--plot", str(plot)],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    report = json.loads(out.read_text())
    assert {"split", "authors", "target", "retrain", "methods", "sweeps", "ratios", "targets"} <= set(report)
    assert (report["split"], report["authors"]) == ("forget10", 3)
    for model in ("target", "retrain"):
        assert {"train_s", "cached", "metrics"} <= set(report[model])
        assert report[model]["cached"] is False and report[model]["train_s"] > 0
    assert set(report["methods"]) == set(METHODS)
    for name, entry in report["methods"].items():
        assert METHOD_KEYS <= set(entry), name
        assert METRIC_KEYS <= set(entry["metrics"]), name
        assert entry["wall_s"] > 0 and entry["state_bytes"]["total"] > 0, name
    grin, full = report["methods"]["grin-npo"], report["methods"]["npo"]
    assert grin["scoring_s"] > 0 and grin["fwd_bwd_s"] > 0 and full["scoring_s"] is None
    assert grin["trainable_params"] < full["trainable_params"]
    assert full["config"]["full_parameter"] and full["config"]["learning_rate"] == 2e-4
    assert report["methods"]["retrain"]["wall_s"] == report["retrain"]["train_s"]
    assert report["retrain"]["metrics"]["forget_quality"] == 1.0
    assert METRIC_KEYS <= set(report["sweeps"]["p"]["1"]["metrics"])
    assert report["sweeps"]["p"]["1"]["config"]["p_percent"] == 1.0
    assert 0 < report["ratios"]["grin_npo_state_bytes_over_npo"] < 1
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    forget = load_tofu(TofuSubset(3, "forget10", 4), tofu_dir).forget
    printed = result.stdout + result.stderr
    assert not any(r["answer"] in printed or r["question"] in printed for r in forget)
