"""The GPU benchmark of issue 15 as one resumable run: all 200 TOFU authors, forget01 / 05 / 10.

`python -m benchmarks.gpu_run --data DIR --out DIR` (benchmarks/gpu_run.sh on a lent device; with
`--recipe tiny` the same path runs on a CPU, which is how it is tested):
1. train: the target (every author) and each split's retrained model, a process each, all at once:
   models this small leave a GPU launch-bound, so concurrent processes fill it;
2. bench: `run_tofu_bench` per split, a process each, all at once, the models from the cache;
   each finished part (an evaluation, a method) is kept in `<work>/parts_<split>/` (bench_memo.py)
   and the split's report lands in `<work>/<split>.json` when it is whole;
3. report: what finished goes into `<out>`: gpu_run.json, gpu_run.md (benchmarks/gpu_report.py)
   and a figure per split. A split the deadline cut is listed under `missing`, never dropped.

Device time is short (15 minutes a session), so `--budget-s` bounds the whole run and a second run
with the same `--work` and cache resumes: trained models, finished parts and splits are not redone.
Exit status 0 = every split reported, 3 = some missing (run again to resume), 1 = a process failed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.tofu_config import DEFAULT_METHODS, REPO_ROOT

SPLITS = ("forget01", "forget05", "forget10")
INCOMPLETE = 3


@dataclass
class Child:
    """One child process and where its output goes."""

    name: str
    args: list[str]
    log: Path
    process: subprocess.Popen | None = None
    printed: int = 0
    result: str | None = field(default=None)  # "ok", "failed (rc N)", "cut by the deadline"


def _common(args: argparse.Namespace) -> list[str]:
    return ["--recipe", args.recipe, "--authors", str(args.authors), "--data", str(args.data),
            "--cache", str(args.cache), "--seed", str(args.seed), "--methods", args.methods]


def _bench_config(args: argparse.Namespace, split: str):
    from benchmarks.tofu_config import BenchConfig

    return BenchConfig(split=split, authors=args.authors, recipe=args.recipe, seed=args.seed, data_dir=args.data,
                       cache_dir=args.cache, methods=tuple(m for m in args.methods.split(",") if m),
                       resume_dir=Path(args.work) / f"parts_{split}")


def _log(line: str) -> None:
    print(line, flush=True)


def train_one(args: argparse.Namespace) -> None:
    """Child: train (or find in the cache) the target or one split's retrained model."""
    from benchmarks.tofu_bench import TofuBench

    bench = TofuBench(_bench_config(args, args.split), _log)
    records = bench.data.train if args.model == "target" else bench.data.retrain
    _, summary = bench.train(args.model, records)
    (Path(args.work) / f"train_{args.model}_{args.split}.json").write_text(json.dumps(summary, indent=1))


def bench_one(args: argparse.Namespace) -> None:
    """Child: one split's whole benchmark; the report is written only once it is whole."""
    from benchmarks.tofu import run_tofu_bench

    report = run_tofu_bench(_bench_config(args, args.split), _log, command=" ".join(sys.argv))
    path = Path(args.work) / f"{args.split}.json"
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(report, indent=1, default=str))
    partial.replace(path)


def _run_all(children: list[Child], deadline: float, started: float, threads: int) -> None:
    """Start every child, relay their new log lines prefixed with the elapsed time, stop at the deadline."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(threads), "TQDM_DISABLE": "1"}
    for child in children:
        # a rerun appends to the earlier run's log; only the new lines are relayed
        child.printed = len(child.log.read_text(errors="replace").splitlines()) if child.log.is_file() else 0
        out = child.log.open("a")
        child.process = subprocess.Popen([sys.executable, "-m", "benchmarks.gpu_run", *child.args], stdout=out,
                                         stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT, start_new_session=True)
    while any(c.result is None for c in children):
        time.sleep(1)
        for child in children:
            lines = child.log.read_text(errors="replace").splitlines()
            for line in lines[child.printed:]:
                if line.strip() and not line.startswith(("Generating", "Map")):
                    print(f"[{time.monotonic() - started:6.0f} s] {child.name}: {line[:300]}", flush=True)
            child.printed = len(lines)
            if child.result is None and (rc := child.process.poll()) is not None:
                child.result = "ok" if rc == 0 else f"failed (rc {rc})"
        if time.monotonic() > deadline:
            for child in children:
                if child.result is None:
                    os.killpg(child.process.pid, signal.SIGKILL)
                    child.process.wait()
                    child.result = "cut by the deadline"


def orchestrate(args: argparse.Namespace) -> int:
    from benchmarks.gpu_report import write_report

    started = time.monotonic()
    deadline = started + args.budget_s
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    splits = [s for s in args.splits.split(",") if s]
    unknown = [s for s in splits if s not in SPLITS]
    if unknown or not splits:
        raise SystemExit(f"--splits takes {', '.join(SPLITS)}; got {args.splits!r}")
    phases: dict[str, dict] = {}

    def phase(name: str, children: list[Child]) -> list[Child]:
        if not children:
            phases[name] = {"seconds": 0.0, "children": {}}
            return children
        t0 = time.monotonic()
        _log(f"[{t0 - started:6.0f} s] {name}: {', '.join(c.name for c in children)} "
             f"({max(0.0, deadline - t0):.0f} s left)")
        # the cores shared out; a caller's OMP_NUM_THREADS caps it (torch processes oversubscribed run 10x slower)
        threads = max(1, (os.cpu_count() or 1) // len(children))
        threads = min(threads, int(os.environ.get("OMP_NUM_THREADS", threads)))
        _run_all(children, deadline, started, threads)
        phases[name] = {"seconds": round(time.monotonic() - t0, 1), "children": {c.name: c.result for c in children}}
        return children

    todo = [s for s in splits if not (work / f"{s}.json").is_file()]
    for split in splits:
        if split not in todo:
            _log(f"{split}: reported by an earlier run ({work / f'{split}.json'})")
    # The target is the same model for every split (all authors): trained once, by the first split's child.
    trains = [Child(f"train {m} {s}", ["train", "--model", m, "--split", s, "--work", str(work), *_common(args)],
                    work / f"train_{m}_{s}.log")
              for m, s in [("target", splits[0]), *(("retrain", s) for s in todo)]]
    phase("train", trains)
    trained = all(c.result == "ok" for c in trains)
    benches = [Child(f"bench {s}", ["bench", "--split", s, "--work", str(work), *_common(args)],
                     work / f"bench_{s}.log") for s in todo] if trained else []
    phase("bench", benches)

    missing = {c.name.split()[-1]: c.result for c in benches if c.result != "ok"}
    if not trained:
        missing.update({s: "not run: training did not finish" for s in todo})
    write_report(work, out, splits, missing, phases, args, command=" ".join(sys.argv))
    failed = [c for c in [*trains, *benches] if c.result and c.result.startswith("failed")]
    for child in failed:
        _log(f"{child.name} {child.result}; its log: {child.log}")
    _log(f"done in {time.monotonic() - started:.0f} s: {len(splits) - len(missing)}/{len(splits)} splits reported"
         + (f"; missing {missing}" if missing else ""))
    return 1 if failed else INCOMPLETE if missing else 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_run", description=__doc__.splitlines()[0])
    parser.add_argument("role", nargs="?", default="run", choices=("run", "train", "bench"),
                        help="run (default) orchestrates; train and bench are its child processes")
    parser.add_argument("--data", type=Path, required=True, help="the TOFU files")
    parser.add_argument("--out", type=Path, help="where the report, table and figures go (run)")
    parser.add_argument("--work", type=Path, default=REPO_ROOT / ".grin" / "gpu_run",
                        help="finished splits and child logs; a rerun with the same folder resumes")
    parser.add_argument("--cache", type=Path, default=REPO_ROOT / ".grin" / "cache" / "models")
    parser.add_argument("--recipe", default="gpu")
    parser.add_argument("--authors", type=int, default=200)
    parser.add_argument("--splits", default=",".join(SPLITS))
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-s", type=float, default=330.0, help="the whole run's deadline")
    parser.add_argument("--split", help="(train, bench) the split")
    parser.add_argument("--model", choices=("target", "retrain"), help="(train) which model")
    args = parser.parse_args(argv)
    if args.role == "run" and args.out is None:
        parser.error("--out is required")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.role == "train":
        train_one(args)
        return 0
    if args.role == "bench":
        bench_one(args)
        return 0
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
