"""A scoring or unlearning stage as a job directory, run by N processes under `accelerate launch`.

The launched processes share nothing with the caller but files, so the caller writes the inputs
(`write_job`), `launch` runs `python -m grin_core.runtime.stage_job JOB` on every rank (distributed.py says
why the ranks agree with one process) and rank 0 writes the outputs:

    job.json          {"stage": "score" | "unlearn", "config": UnlearnConfig fields, "target_auc", "steer",
                       "card": model-card info, "grin_config": extra grin_config.json entries}
    model/            the parent checkpoint (verified by its manifest on load)
    forget.json, retain.json, holdout.json and calibration.json (optional: the privacy schedule),
    mask.safetensors (unlearn;
                      without it the ranks score first, as `unlearn` does without a mask)
    -> scored-mask.safetensors (score) | checkpoint/ + result.json (unlearn: UnlearnResult.summary() and costs)

Progress goes to stdout as one JSON line per epoch (numbers only, from rank 0), for the caller to relay.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from transformers import TrainerCallback

STAGES = ("score", "unlearn")
SCORED_MASK, CHECKPOINT, RESULT = "scored-mask.safetensors", "checkpoint", "result.json"
PROGRESS = '{"grin_progress"'  # how a rank's progress line starts (_step_line, _EpochLines)


def write_job(
    directory: str | Path,
    stage: str,
    model_dir: str | Path,
    forget: Sequence[Mapping],
    retain: Sequence[Mapping],
    config: Mapping,
    *,
    holdout: Sequence[Mapping] | None = None,
    calibration: Sequence[Mapping] | None = None,
    mask_path: str | Path | None = None,
    target_auc: float = 0.5,
    steer: bool = True,
    card: Mapping | None = None,
    grin_config: Mapping | None = None,
) -> Path:
    """Lay out a job directory (the model is linked, not copied)."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model").symlink_to(Path(model_dir).resolve(), target_is_directory=True)
    for name, records in (("forget", forget), ("retain", retain), ("holdout", holdout), ("calibration", calibration)):
        if records is not None:
            (directory / f"{name}.json").write_text(json.dumps(list(records)))
    if mask_path is not None:
        (directory / "mask.safetensors").symlink_to(Path(mask_path).resolve())
    job = {
        "stage": stage,
        "config": dict(config),
        "target_auc": target_auc,
        "steer": steer,
        "card": dict(card or {}),
        "grin_config": dict(grin_config or {}),
    }
    (directory / "job.json").write_text(json.dumps(job, default=list))
    return directory


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def progress_in(line: str) -> dict | None:
    """The numbers of a rank's progress line, wherever another rank's output left it on the line."""
    at = line.find(PROGRESS)
    return None if at < 0 else json.JSONDecoder().raw_decode(line, at)[0]["grin_progress"]


def launch(directory: str | Path, processes: int, log=print) -> None:
    """Run the job on `processes` ranks; relay rank 0's progress lines to `log`; raise if any rank fails.

    `--multi_gpu` is accelerate's torch-elastic launcher; on a machine without GPUs the ranks form a
    gloo group on the CPU (TrainingArguments(use_cpu=True) and PartialState(cpu=True))."""
    if processes < 2:
        raise ValueError("launch is for 2 or more processes; call the stage directly for one")
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        str(processes),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(_free_port()),
        "-m",
        "grin_core.runtime.stage_job",
        str(directory),
    ]
    # the ranks share one pipe: no progress bars in it (a bar's unterminated line would run into ours)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "TQDM_DISABLE": "1"}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc:
        tail: list[str] = []
        for line in proc.stdout:
            if (numbers := progress_in(line)) is not None:
                log(numbers)
            tail = [*tail[-40:], line.rstrip()]
    if proc.returncode != 0:
        raise RuntimeError(f"the {processes}-process stage failed (exit {proc.returncode}):\n" + "\n".join(tail))


def _step_line(what: str, done: int, total: int) -> None:
    """Rank 0's scoring steps (grin_core/runtime/steps.py) as JSON lines on stdout."""
    print(json.dumps({"grin_progress": {"step": what, "done": done, "total": total}}), flush=True)


class _EpochLines(TrainerCallback):
    """Rank 0's per-epoch numbers as JSON lines on stdout."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            numbers = {k: v for k, v in logs.items() if isinstance(v, int | float)}
            print(json.dumps({"grin_progress": {"epoch": state.epoch, **numbers}}), flush=True)


def run(directory: str | Path) -> None:
    """What every rank runs: the stage on its share, outputs from rank 0."""
    from accelerate import PartialState

    from grin_core.models.checkpoint import load_checkpoint, save_checkpoint
    from grin_core.scoring.mask import Mask
    from grin_core.unlearning.unlearn import score_and_select, unlearn
    from grin_core.unlearning.unlearn_config import UnlearnConfig

    state = PartialState(cpu=not torch.cuda.is_available())  # forms the process group
    directory = Path(directory)
    job = json.loads((directory / "job.json").read_text())
    config = UnlearnConfig(**job["config"])  # its __post_init__ turns eligible_modules back into a tuple
    model, tokenizer = load_checkpoint(directory / "model", device=str(state.device))
    records = {
        name: json.loads((directory / f"{name}.json").read_text())
        for name in ("forget", "retain", "holdout", "calibration")
        if (directory / f"{name}.json").exists()
    }
    if job["stage"] == "score":
        mask = score_and_select(
            model,
            tokenizer,
            records["forget"],
            records["retain"],
            config,
            on_step=_step_line if state.is_main_process else None,
        )
        if state.is_main_process:
            mask.save(directory / SCORED_MASK)
        state.wait_for_everyone()
        return
    mask = Mask.load(directory / "mask.safetensors") if (directory / "mask.safetensors").exists() else None
    result = unlearn(
        model,
        tokenizer,
        records["forget"],
        records["retain"],
        config,
        mask=mask,
        callbacks=[_EpochLines()],
        holdout_records=records.get("holdout"),
        target_auc=job["target_auc"],
        steer=job["steer"],
        calibration_records=records.get("calibration"),
    )
    if state.is_main_process:
        summary = result.summary()
        save_checkpoint(
            result.model,
            tokenizer,
            directory / CHECKPOINT,
            card_info=job["card"],
            grin_config={**result.checkpoint_record(), **job["grin_config"]},
        )
        out = {**summary, "trainable_params": result.trainable_params, "processes": state.num_processes}
        (directory / RESULT).write_text(json.dumps(out, default=str))
    state.wait_for_everyone()


if __name__ == "__main__":
    run(sys.argv[1])
