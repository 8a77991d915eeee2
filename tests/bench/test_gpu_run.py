"""The device run (benchmarks/gpu_run.py) on the CPU with the tiny recipe, as the device would run it:
all 200 authors, the service's packages absent (tests/bench/device_site), a deadline, and a rerun
that skips what was reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # ~60 s on 2 cores: two tiny models on 4,000 QA, one split's benchmark

DEVICE_SITE = Path(__file__).with_name("device_site")
REPO = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, tofu_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(DEVICE_SITE), str(REPO)]), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.gpu_run",
            "--recipe",
            "tiny",
            "--authors",
            "200",
            "--splits",
            "forget01",
            "--methods",
            "grin-npo,retrain",
            "--data",
            str(tofu_dir),
            "--work",
            str(tmp_path / "work"),
            "--cache",
            str(tmp_path / "models"),
            "--out",
            str(tmp_path / "out"),
            *extra,
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_the_device_run_reports_every_split_and_a_rerun_resumes(tmp_path: Path, tofu_dir: Path) -> None:
    first = _run(tmp_path, tofu_dir, "--budget-s", "500")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    combined = json.loads((tmp_path / "out" / "gpu_run.json").read_text())
    assert combined["missing"] == {} and list(combined["splits"]) == ["forget01"]
    report = combined["splits"]["forget01"]
    assert (report["authors"], report["data"]["n_forget"]) == (200, 40)
    # no TOFU author is left unseen at 200: the non-member level is the retrained model's, and says so
    assert report["calibration"]["source"] == "retrained"
    assert report["calibration"]["auc"] == report["retrain"]["metrics"]["mia_auc"]
    assert report["methods"]["grin-npo"]["schedule"]["target_auc"] == report["calibration"]["auc"]
    # the training table: the target once, a retrained model per split, with throughput (no MFU on a CPU)
    assert set(combined["models"]) == {"target", "retrain_forget01"}
    target = combined["models"]["target"]
    assert target["n_records"] == 4008 and target["throughput"]["tokens_per_s"] > 0
    assert target["throughput"]["mfu"] is None and target["peak_cuda_mb"] is None
    table = (tmp_path / "out" / "gpu_run.md").read_text()
    assert "### forget01: 40 forget QA" in table and "| grin-npo |" in table and "| retrain |" in table
    assert (tmp_path / "out" / "gpu_run_forget01.png").read_bytes().startswith(b"\x89PNG")
    # progress lines and files carry stage names and numbers, never a forget record's text
    children = (tmp_path / "out" / "children.log").read_text()
    assert "==> train forget01 target" in children and "==> unlearn forget01 grin-npo" in children
    assert "data: forget01" in children and "data: forget01" not in first.stdout  # repeated lines: log only
    said = first.stdout + children + "".join(f.read_text() for f in (tmp_path / "work").glob("*.log"))
    said += table + (tmp_path / "out" / "gpu_run.json").read_text()
    for row in json.loads((tofu_dir / "forget01.json").read_text()):
        assert row["prompt"] not in said and row["response"] not in said

    # a method the report lacks (here: never run) is listed with why, and makes the split due again
    from benchmarks.gpu_report import write_report
    from benchmarks.gpu_run import _reported, parse

    work, out = tmp_path / "work", tmp_path / "out"
    assert _reported(work, "forget01", ["grin-npo", "retrain"]) and not _reported(work, "forget01", ["npo"])
    args = parse(["--data", str(tofu_dir), "--out", str(out), "--recipe", "tiny"])
    write_report(
        work,
        out,
        ["forget01"],
        ["grin-npo", "npo", "retrain"],
        {},
        {"forget01": {"npo": "cut by the deadline"}},
        combined["phases"],
        args,
        command="test",
    )
    assert json.loads((out / "gpu_run.json").read_text())["lost"] == {"forget01": {"npo": "cut by the deadline"}}
    assert "forget01 lacks: npo (cut by the deadline)" in (out / "gpu_run.md").read_text()

    # a reported split is not run again (a part's resume from disk is tests/bench/test_bench_memo.py's)
    done = _run(tmp_path, tofu_dir, "--budget-s", "120")
    assert done.returncode == 0, done.stdout[-3000:]
    assert "forget01: reported by an earlier run" in done.stdout and "unlearn forget01" not in done.stdout


def test_bad_splits_or_methods_are_refused_before_any_work(tmp_path: Path, tofu_dir: Path) -> None:
    for flag, value in [("--splits", "forget02"), ("--methods", "grin-npo,nope")]:
        refused = _run(tmp_path, tofu_dir, flag, value)
        assert refused.returncode == 1 and value in refused.stderr and "train" not in refused.stdout
    assert not (tmp_path / "work").exists()


def test_a_run_cut_by_its_deadline_says_what_is_missing(tmp_path: Path, tofu_dir: Path) -> None:
    cut = _run(tmp_path, tofu_dir, "--budget-s", "2", "--at-once", "1")  # one child at a time
    assert cut.returncode == 3, cut.stdout[-3000:]
    combined = json.loads((tmp_path / "out" / "gpu_run.json").read_text())
    assert combined["splits"] == {}
    why = "train: train forget01 target cut by the deadline; train forget01 retrain not started before the deadline"
    assert combined["missing"] == {"forget01": why}
    assert combined["phases"]["train"]["at_once"] == 1
    assert combined["phases"]["evaluate"] == {"seconds": 0.0, "children": {}}  # nothing ran past the cut
    assert f"forget01: missing ({why})" in (tmp_path / "out" / "gpu_run.md").read_text()
