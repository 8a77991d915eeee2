"""The GPU benchmark as one resumable run: all 200 TOFU authors, forget01 / 05 / 10.

`python -m benchmarks.gpu_run --data DIR --out DIR` (benchmarks/gpu_run.sh on a lent device; with
`--recipe tiny` the same path runs on a CPU, which is how it is tested):
1. train: the target (every author) and each split's retrained model, a process each, all at once:
   models this small leave a GPU launch-bound, so concurrent processes fill it;
2. evaluate: per split, the retrained model's and the target's evaluation (every method needs them);
3. methods: a process per split and method, up to `--at-once` at a time, the largest split's first;
4. report: per split, `run_tofu_bench` over every method again, each part read back from
   `<work>/parts_<split>/` (bench_memo.py), into `<work>/<split>.json`.
Phases 2-4 are `run_tofu_bench` processes sharing the split's parts; models come from the cache.
Then what finished goes into `<out>`: gpu_run.json, gpu_run.md (benchmarks/gpu_report.py), a
figure per split and children.log (every child's log; the console shows their news only). A split
or method the deadline cut, or that failed, is listed under `missing` / `lost` with the phase,
never dropped; a split's report holds the methods that finished, and a rerun runs the rest.
Methods run side by side, so a wall time includes the others' contention: `phases` records how
many processes shared the device.

Device time is short (15 minutes a session), so `--budget-s` bounds the whole run and a second run
with the same `--work` and cache resumes: trained models, finished parts and splits are not redone.
Exit status 0 = every split and method reported, 3 = some missing (run again to resume), 1 = a
process failed (its log is named).
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

from benchmarks.tofu_config import DEFAULT_METHODS, METHODS, REPO_ROOT

SPLITS = ("forget01", "forget05", "forget10")
INCOMPLETE = 3
REPORT_RESERVE_S = 45.0  # the methods phase stops this long before the deadline: the reports need it
# lines every child repeats (which data, the cache hits) stay in its log (out/children.log), off the console
QUIET = ("data: ", "(or reusing the cache in", ": cached - ", "Generating ", "Map: ")


@dataclass
class Child:
    """One child process and where its output goes."""

    name: str
    args: list[str]
    log: Path
    process: subprocess.Popen | None = None
    printed: int = 0
    result: str | None = field(default=None)  # "ok", "failed (rc N)", "cut by the deadline"


def _common(args: argparse.Namespace, methods: str | None = None) -> list[str]:
    """A child's settings: the run's, with its own methods if given."""
    return [
        "--recipe",
        args.recipe,
        "--authors",
        str(args.authors),
        "--data",
        str(args.data),
        "--cache",
        str(args.cache),
        "--seed",
        str(args.seed),
        "--methods",
        methods or args.methods,
    ]


def _bench_config(args: argparse.Namespace, split: str):
    from benchmarks.tofu_config import BenchConfig

    return BenchConfig(
        split=split,
        authors=args.authors,
        recipe=args.recipe,
        seed=args.seed,
        data_dir=args.data,
        cache_dir=args.cache,
        methods=tuple(m for m in args.methods.split(",") if m),
        resume_dir=Path(args.work) / f"parts_{split}",
    )


def _reported(work: Path, split: str, methods: list[str]) -> bool:
    """Whether an earlier run left this split's report with every method asked for."""
    path = work / f"{split}.json"
    return path.is_file() and set(methods) <= set(json.loads(path.read_text())["methods"])


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
    """Child: `run_tofu_bench` on one split with its methods; every finished part is kept (bench_memo.py).
    With --report, the split's report, written only once it is whole."""
    from benchmarks.tofu import run_tofu_bench

    report = run_tofu_bench(_bench_config(args, args.split), _log, command=" ".join(sys.argv))
    if not args.report:
        return
    path = Path(args.work) / f"{args.split}.json"
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(report, indent=1, default=str))
    partial.replace(path)


def _start(child: Child, env: dict) -> None:
    # a rerun appends to the earlier run's log; only the new lines are relayed
    child.printed = len(child.log.read_text(errors="replace").splitlines()) if child.log.is_file() else 0
    with child.log.open("a") as out:
        child.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.gpu_run", *child.args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO_ROOT,
            start_new_session=True,
        )


def _run_all(children: list[Child], deadline: float, started: float, at_once: int) -> None:
    """Run the children, at most `at_once` at a time in their order, relaying their new log lines
    with the elapsed time; stop what still runs at the deadline (what never started: never started)."""
    at_once = max(1, min(at_once, len(children)))
    # the cores shared out; a caller's OMP_NUM_THREADS caps it (torch processes oversubscribed run 10x slower)
    threads = max(1, (os.cpu_count() or 1) // at_once)
    threads = min(threads, int(os.environ.get("OMP_NUM_THREADS", threads)))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(threads), "TQDM_DISABLE": "1"}
    waiting = list(children)
    while any(c.result is None for c in children):
        running = [c for c in children if c.process is not None and c.result is None]
        while waiting and len(running) < at_once and time.monotonic() < deadline:
            _start(child := waiting.pop(0), env)
            running.append(child)
        time.sleep(1)
        for child in running:
            rc = child.process.poll()  # before the read: an exited child's lines are all in its log
            lines = child.log.read_text(errors="replace").splitlines()
            for line in lines[child.printed :]:
                if line.strip() and not any(quiet in line for quiet in QUIET):
                    print(f"[{time.monotonic() - started:6.0f} s] {child.name}: {line[:300]}", flush=True)
            child.printed = len(lines)
            if rc is not None:
                child.result = "ok" if rc == 0 else f"failed (rc {rc})"
        if time.monotonic() > deadline:
            for child in children:
                if child.result is None and child.process is not None:
                    os.killpg(child.process.pid, signal.SIGKILL)
                    child.process.wait()
                    child.result = "cut by the deadline"
                elif child.result is None:
                    child.result = "not started before the deadline"


class _Phases:
    """The children of one orchestrated run, launched phase by phase; `phases` keeps each phase's results."""

    def __init__(self, args: argparse.Namespace, started: float, work: Path) -> None:
        self.args, self.started, self.work = args, started, work
        self.phases: dict[str, dict] = {}
        self.launched: list[Child] = []

    def run(self, name: str, batch: list[Child], until: float) -> list[Child]:
        """Run one phase's children, up to --at-once at a time; stop those still running at `until`."""
        self.launched.extend(batch)
        if not batch:
            self.phases[name] = {"seconds": 0.0, "children": {}}
            return batch
        t0 = time.monotonic()
        _log(
            f"[{t0 - self.started:6.0f} s] {name}: {len(batch)} process(es): {', '.join(c.name for c in batch)} "
            f"({max(0.0, until - t0):.0f} s left)"
        )
        _run_all(batch, until, self.started, self.args.at_once)
        self.phases[name] = {
            "seconds": round(time.monotonic() - t0, 1),
            "processes": len(batch),
            "at_once": min(self.args.at_once, len(batch)),
            "children": {c.name: c.result for c in batch},
        }
        return batch

    def children(self, role: str, runs, *extra: str) -> list[Child]:
        """A bench child per (split, methods, tag): named "role split [tag]", a log each."""
        return [
            Child(
                " ".join(filter(None, [role, split, tag])),
                ["bench", "--split", split, "--work", str(self.work), *_common(self.args, methods), *extra],
                self.work / ("_".join(filter(None, [role, split, tag])) + ".log"),
            )
            for split, methods, tag in runs
        ]


def _failures(batch: list[Child], split: str) -> dict[str, str]:
    return {c.name: c.result for c in batch if c.name.split()[1] == split and c.result != "ok"}


def _checked_splits(args: argparse.Namespace) -> list[str]:
    """--splits as a list; bad --splits or --methods are refused before any work."""
    splits = [s for s in args.splits.split(",") if s]
    unknown = [s for s in splits if s not in SPLITS]
    if unknown or not splits:
        raise SystemExit(f"--splits takes {', '.join(SPLITS)}; got {args.splits!r}")
    if bad := [m for m in args.methods.split(",") if m and m not in METHODS] or not args.methods.strip(","):
        raise SystemExit(f"--methods takes {', '.join(METHODS)}; got {args.methods!r}" + (f" ({bad})" if bad else ""))
    return splits


def orchestrate(args: argparse.Namespace) -> int:
    from benchmarks.gpu_report import write_report

    started = time.monotonic()
    deadline = started + args.budget_s
    work, out = Path(args.work), Path(args.out)
    splits = _checked_splits(args)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    run = _Phases(args, started, work)
    requested = [m for m in args.methods.split(",") if m]
    todo = [s for s in splits if not _reported(work, s, requested)]
    for split in splits:
        if split not in todo:
            _log(f"{split}: reported by an earlier run ({work / f'{split}.json'})")
    missing: dict[str, str] = {}  # split -> why it has no report
    lost: dict[str, dict[str, str]] = {}  # split -> method -> why its report lacks it
    # The target is the same model for every split (all authors): trained once, by the first split's child.
    trains = [
        Child(
            f"train {s} {m}",
            ["train", "--model", m, "--split", s, "--work", str(work), *_common(args, "retrain")],
            work / f"train_{m}_{s}.log",
        )
        for m, s in [("target", splits[0]), *(("retrain", s) for s in todo)]
    ]
    run.run("train", trains, deadline)
    if any(c.result != "ok" for c in trains):
        missing.update(
            {s: "train: " + "; ".join(f"{c.name} {c.result}" for c in trains if c.result != "ok") for s in todo}
        )
        todo = []
    # Per split the retrained model's and the target's evaluation: every method needs both.
    evaluations = run.run("evaluate", run.children("evaluate", [(s, "retrain", None) for s in todo]), deadline)
    for split in list(todo):
        if bad := _failures(evaluations, split):
            missing[split] = "evaluate: " + "; ".join(f"{name} {why}" for name, why in bad.items())
            todo.remove(split)
    # A process per split and method; the report phase keeps time to write what they finished.
    methods = [m for m in requested if m != "retrain"]
    # the largest split's first: its runs are the longest, so they start in the first wave
    ran = run.run(
        "methods",
        run.children("unlearn", [(s, m, m) for s in sorted(todo, reverse=True) for m in methods]),
        deadline - REPORT_RESERVE_S,
    )
    reports = []
    for split in todo:
        lost[split] = {name.split()[2]: why for name, why in _failures(ran, split).items()}
        kept = [m for m in requested if m not in lost[split]]
        if kept:  # a split's report holds the methods that finished; `lost` names the others
            reports.append((split, ",".join(kept), None))
        else:
            missing[split] = "methods: every method " + "; ".join(sorted(set(lost[split].values())))
    for child in run.run("report", run.children("report", reports, "--report"), deadline):
        if child.result != "ok":
            missing[child.name.split()[1]] = f"report: {child.result}"
    write_report(work, out, splits, requested, missing, lost, run.phases, args, command=" ".join(sys.argv))
    return _finish(run, out, splits, missing, lost)


def _finish(
    run: _Phases, out: Path, splits: list[str], missing: dict[str, str], lost: dict[str, dict[str, str]]
) -> int:
    """Keep every child's log, say what is missing; the exit status (1 failed, INCOMPLETE, 0)."""
    # every child's whole log (the last 200 kB of each), for what the console left out
    (out / "children.log").write_text(
        "".join(
            f"==> {c.name}\n{c.log.read_text(errors='replace')[-200_000:]}\n" for c in run.launched if c.log.is_file()
        )
    )
    failed = [c for c in run.launched if c.result and c.result.startswith("failed")]
    for child in failed:
        _log(f"{child.name} {child.result}; its log: {child.log}")
    lost = {split: methods for split, methods in lost.items() if methods}
    _log(
        f"done in {time.monotonic() - run.started:.0f} s: {len(splits) - len(missing)}/{len(splits)} splits reported"
        + (f"; missing {missing}" if missing else "")
        + (f"; methods lost {lost}" if lost else "")
    )
    return 1 if failed else INCOMPLETE if missing or lost else 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_run", description=__doc__.splitlines()[0])
    parser.add_argument(
        "role",
        nargs="?",
        default="run",
        choices=("run", "train", "bench"),
        help="run (default) orchestrates; train and bench are its child processes",
    )
    parser.add_argument("--data", type=Path, required=True, help="the TOFU files")
    parser.add_argument("--out", type=Path, help="where the report, table and figures go (run)")
    parser.add_argument(
        "--work",
        type=Path,
        default=REPO_ROOT / ".grin" / "gpu_run",
        help="finished splits and child logs; a rerun with the same folder resumes",
    )
    parser.add_argument("--cache", type=Path, default=REPO_ROOT / ".grin" / "cache" / "models")
    parser.add_argument("--recipe", default="gpu")
    parser.add_argument("--authors", type=int, default=200)
    parser.add_argument("--splits", default=",".join(SPLITS))
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-s", type=float, default=400.0, help="the whole run's deadline, seconds")
    parser.add_argument(
        "--at-once", type=int, default=os.cpu_count() or 1, help="child processes at a time (default: one per core)"
    )
    parser.add_argument("--split", help="(train, bench) the split")
    parser.add_argument("--model", choices=("target", "retrain"), help="(train) which model")
    parser.add_argument("--report", action="store_true", help="(bench) write the split's report")
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
