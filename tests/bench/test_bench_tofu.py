"""`grin bench tofu` end to end through the installed command, on the tiny recipe (3 authors).

The numbers of a tiny model mean nothing; this holds the plumbing to the report's contract: every
method runs from one target and lands in the JSON with the agreed keys (privacy metrics against the
retrained model's reference, robustness probes with the retrained model's relearn baseline, the
per-epoch probe curves, the calibrated non-member level, GRIN-NPO over seeds with mean and std, the
benchmark's acceptance targets), the sweep lands under `sweeps`, both figures are PNGs, and no
forget-set text reaches the output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from grin_core.data.tofu import TofuSubset, load_tofu

# ~40 s on 2 idle cores: two tiny models trained, seven evaluations. One torch thread: a tiny model
# gains nothing from two, and two threads on a busy 2-core machine run several times slower.
pytestmark = pytest.mark.slow

GRIN = Path(sys.executable).with_name("grin")
METHODS = ("grin-match", "grin-npo", "grin-graddiff", "grin-po", "npo", "graddiff", "grun", "retrain")
METHOD_KEYS = {"wall_s", "scoring_s", "peak_rss_mb", "state_bytes", "trainable_params", "metrics", "config"}
METRIC_KEYS = {
    "forget_rougeL",
    "retain_rougeL",
    "forget_truth_ratio",
    "forget_quality",
    "model_utility",
    "forget_keyword_acc",
    "mia_auc",
    "mia_zlib_auc",
    "mia_mink_auc",
    "mia_minkpp_auc",
    "holdout_prob",
    "forget_holdout_prob_ratio",
    "privleak",
    "privleak_reference_auc",
}
ROBUSTNESS_KEYS = {
    "forget_paraphrase_rougeL",
    "forget_paraphrase_prob",
    "forget_sampled_best_rougeL",
    "forget_format_max_rougeL",
    "forget_int8_rougeL",
    "forget_int4_rougeL",
    "mia_int4_auc",
    "relearn_forget_rougeL",
    "relearn_forget_prob",
    "relearn_before_forget_rougeL",
    "relearn_nonmember_rougeL",
    "relearn_sweep",
}
LEVEL_KEYS = {
    "nonmember_mia_auc",
    "nonmember_mia_zlib_auc",
    "nonmember_mia_mink_auc",
    "nonmember_mia_minkpp_auc",
    "nonmember_prob_ratio",
}
PROBE_KEYS = {"epoch", "phase", "mia_auc", "forget_prob", "holdout_prob", "retain_prob"}
ACCEPTANCE = {
    "mia_auc_within_0.1_retrain",
    "mia_zlib_auc_within_0.1_retrain",
    "mia_mink_auc_within_0.1_retrain",
    "mia_minkpp_auc_within_0.1_retrain",
    "privleak_within_25",
    "mean_prob_ratio_le_3",
    "relearn_le_retrain_plus_0.1",
    "utility_ge_0.95_target",
    "retain_rougeL_ge_0.9_target",
    "forget_rougeL_within_0.1_retrain",
}
PNG = b"\x89PNG\r\n\x1a\n"


def test_tiny_benchmark_writes_the_report_and_the_plot(tmp_path: Path, tofu_dir: Path) -> None:
    out, plot, curves = tmp_path / "tofu.json", tmp_path / "tofu.png", tmp_path / "curves.png"
    env = {**os.environ, "GRIN_TOFU_DIR": str(tofu_dir)}
    result = subprocess.run(
        [
            str(GRIN),
            "bench",
            "tofu",
            "--split",
            "forget10",
            "--authors",
            "3",
            "--recipe",
            "tiny",
            "--methods",
            ",".join(METHODS),
            "--epochs",
            "2",
            "--seeds",
            "2",
            "--sweep",
            "p=1",
            "--lr",
            "npo=2e-4",
            "--threads",
            "1",
            "--cache-dir",
            str(tmp_path / "models"),
            "--json",
            str(out),
            "--plot",
            str(plot),
            "--curves",
            str(curves),
            "--resume",
            str(tmp_path / "parts"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    report = json.loads(out.read_text())
    # --resume keeps every finished part (bench_memo.py): a killed run would pick up from them
    kept = {path.stem for path in (tmp_path / "parts").glob("*.json")}
    assert {
        "retrain",
        "target",
        "grin-match_seed_0",
        "grin-match_seed_1",
        "grin-npo",
        "npo",
        "grun",
        "grin-match_p_1",
    } <= kept
    assert {
        "split",
        "authors",
        "target",
        "retrain",
        "methods",
        "sweeps",
        "ratios",
        "targets",
        "calibration",
        "acceptance",
        "seeds",
        "schedule",
    } <= set(report)
    assert (report["split"], report["authors"]) == ("forget10", 3)
    assert report["seeds"] == [0, 1]

    # The non-member level: 10 authors the target never saw (3 authors: 2 retained, author 199 forgotten).
    calibration = report["calibration"]
    assert calibration["authors"] == list(range(2, 12)) and calibration["n_records"] == 20  # the recipe's first 20
    assert calibration["source"] == "unseen authors"
    assert 0 <= calibration["auc"] <= 1

    for model in ("target", "retrain"):
        assert {"train_s", "cached", "metrics", "robustness"} <= set(report[model])
        assert report[model]["cached"] is False and report[model]["train_s"] > 0
        assert METRIC_KEYS <= set(report[model]["metrics"]), model
        assert ROBUSTNESS_KEYS <= set(report[model]["robustness"]), model
        assert set(report[model]["robustness"]["relearn_sweep"]) == {"2@0.001"}, model
    retrained = report["retrain"]["metrics"]
    assert retrained["privleak"] == 0 and retrained["privleak_reference_auc"] == retrained["mia_mink_auc"]
    assert report["target"]["metrics"]["privleak_reference_auc"] == retrained["mia_mink_auc"]
    baseline = report["retrain"]["robustness"]["relearn_forget_rougeL"]

    assert set(report["methods"]) == set(METHODS)
    for name, entry in report["methods"].items():
        assert METHOD_KEYS <= set(entry), name
        assert METRIC_KEYS | LEVEL_KEYS <= set(entry["metrics"]), name  # evaluated after the calibration
        assert entry["metrics"]["privleak_reference_auc"] == retrained["mia_mink_auc"], name
        assert ROBUSTNESS_KEYS <= set(entry["robustness"]), name
        assert entry["wall_s"] > 0 and entry["state_bytes"]["total"] > 0, name
        if name == "retrain":
            continue
        assert entry["robustness"]["retrain_relearn_forget_rougeL"] == baseline, name
        # Per-epoch curves: epoch 0 (before) and one probe per epoch run; GRIN steers, the baselines record.
        probes, schedule = entry["probes"], entry["schedule"]
        assert PROBE_KEYS <= set(probes[0]) and probes[0]["epoch"] == 0, name
        assert len(probes) == 1 + round(entry["epochs_run"]) and 1 <= entry["epochs_run"] <= 2, name
        assert schedule["steer"] is (name.startswith("grin-") or name == "grun"), name
        assert schedule["target_auc"] == calibration["auc"], name
        assert schedule["band"][0] < calibration["auc"] < schedule["band"][1], name
        assert schedule["push_epochs"] + schedule["repair_epochs"] == len(probes) - 1, name
    assert report["methods"]["npo"]["schedule"]["push_epochs"] == 2  # steer=False: fixed epochs, all push

    grin, full = report["methods"]["grin-match"], report["methods"]["npo"]
    # cost in FLOPs beside seconds: every stage of each method, retraining counted the same way
    assert report["ratios"]["retrain_flops"] > 0 and report["ratios"]["grin_flops_over_retrain"] > 0
    assert {"nonmember", "scoring", "training", "probes"} <= set(grin["flops"]["stages"])
    assert grin["levels"]["aucs"].keys() == {"loss", "zlib", "mink", "minkpp"}
    assert grin["n_seeds"] == 2 and [run["seed"] for run in grin["seeds"]] == [0, 1]
    assert [run["config"]["seed"] for run in grin["seeds"]] == [0, 1]
    for run in grin["seeds"]:
        assert METRIC_KEYS <= set(run["metrics"]) and ROBUSTNESS_KEYS <= set(run["robustness"])
        assert run["probes"] and ACCEPTANCE <= set(run["acceptance"])
    for key in ("mia_auc", "forget_quality", "model_utility", "privleak", "relearn_forget_rougeL", "wall_s"):
        values = [run["metrics"].get(key, run["robustness"].get(key, run.get(key))) for run in grin["seeds"]]
        assert grin["mean"][key] == pytest.approx(sum(values) / 2), key
        assert grin["std"][key] == pytest.approx(abs(values[0] - values[1]) / 2**0.5), key
    assert grin["metrics"]["mia_auc"] == grin["mean"]["mia_auc"]  # the headline reads the mean
    assert grin["scoring_s"] > 0 and grin["fwd_bwd_s"] > 0 and full["scoring_s"] is None
    assert grin["trainable_params"] < full["trainable_params"]
    assert full["config"]["full_parameter"] and full["config"]["learning_rate"] == 2e-4
    assert full["config"]["epochs"] == 2 and grin["config"]["epochs"] == 2
    assert report["methods"]["retrain"]["wall_s"] == report["retrain"]["train_s"]
    # GRUN: an intervention beside unchanged weights, the base's own forget numbers, a second request on top
    grun = report["methods"]["grun"]
    assert grun["base_weights_changed"] is False and "drop the intervention" in grun["threat_model"]
    assert 0 < grun["trainable_params"] < full["trainable_params"] and grun["intervention_bytes"] > 0
    assert grun["base_forget"]["forget_rougeL"] == report["target"]["metrics"]["forget_rougeL"]
    sequential = grun["sequential"]
    assert sequential["n_second"] > 0 and sequential["second_author"] not in report["data"]["forget_authors"]
    assert {"forget_rougeL", "mia_auc"} <= set(sequential["first_forget_after_second"])
    assert report["retrain"]["metrics"]["forget_quality"] == 1.0
    assert METRIC_KEYS <= set(report["sweeps"]["p"]["1"]["metrics"])
    assert report["sweeps"]["p"]["1"]["config"]["p_percent"] == 1.0
    assert 0 < report["ratios"]["grin_state_bytes_over_npo"] < 1

    # The acceptance targets (benchmarks/tofu_summary.py), measured on the mean: every target there, with a value and a verdict.
    assert ACCEPTANCE <= set(report["targets"])
    for name in ACCEPTANCE:  # n/a only where a denominator is 0 (a tiny model's retain ROUGE-L can be)
        target = report["targets"][name]
        assert set(target) == {"value", "met"} and (target["met"] is None) is (target["value"] is None), name
    mia = report["targets"]["mia_auc_within_0.1_retrain"]
    assert mia["value"] == pytest.approx(grin["mean"]["mia_auc"] - retrained["mia_auc"], abs=1e-4)
    assert mia["met"] is (abs(mia["value"]) <= 0.1)
    assert set(report["acceptance"]["targets"]) == ACCEPTANCE
    verdicts = list(report["acceptance"]["targets"].values())
    assert report["acceptance"]["met"] is (None if None in verdicts else all(verdicts))
    assert [run["seed"] for run in report["acceptance"]["per_seed"]] == [0, 1]

    assert plot.read_bytes()[:8] == PNG and curves.read_bytes()[:8] == PNG

    forget = load_tofu(TofuSubset(3, "forget10", 4), tofu_dir).forget
    printed = result.stdout + result.stderr + out.read_text()
    assert not any(r["answer"] in printed or r["question"] in printed for r in forget)
