"""One GRIN-NPO lever run on the benchmark's cached TOFU target: the rows of docs/benchmarks.md's lever tables.

    python benchmarks/tofu_lever.py --authors 40 --label prop-rb32 push_control=proportional retain_batch_size=32
        [--seed 0] [--jsonl FILE]

KEY=VALUE pairs override UnlearnConfig fields (Python literals). The target (and its calibration)
come from `grin bench tofu`'s model cache; a missing target is trained first. Prints one JSON line
(schedule summary, evaluation numbers, the per-epoch probes) and appends it to --jsonl. No record text.
"""

from __future__ import annotations

import argparse
import ast
import json

from benchmarks.tofu_bench import TofuBench
from benchmarks.tofu_config import BenchConfig

LEVER_METRICS = (
    "mia_auc",
    "mia_zlib_auc",
    "mia_mink_auc",
    "mia_minkpp_auc",
    "forget_holdout_prob_ratio",
    "forget_holdout_typical_prob_ratio",
    "nonmember_mia_auc",
    "nonmember_mia_zlib_auc",
    "nonmember_mia_mink_auc",
    "nonmember_mia_minkpp_auc",
    "nonmember_prob_ratio",
    "privleak",
    "forget_rougeL",
    "retain_rougeL",
    "model_utility",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--authors", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--label", default="lever")
    parser.add_argument("--jsonl", default=".grin/bench/levers.jsonl")
    parser.add_argument("--relearn", action="store_true", help="also the relearning sweep on the unlearned model")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()
    overrides = {}
    for item in args.overrides:
        key, _, value = item.partition("=")
        try:
            overrides[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[key] = value
    bench = TofuBench(BenchConfig(authors=args.authors, methods=("grin-npo",), seed=args.seed), print)
    target_dir, _ = bench.train("target", bench.data.train)
    model, tokenizer = bench.load(target_dir)
    bench.calibrate(model, tokenizer, None)
    del model
    method = "grin-" + overrides.pop("method", "npo")
    entry = bench.unlearn(
        args.label,
        target_dir,
        bench.config.method_config(method, **overrides),
        steer=True,
        probes=False,
        relearn_sweep=args.relearn,
    )
    metrics = entry["metrics"]
    row = {
        "authors": args.authors,
        "seed": args.seed,
        "label": args.label,
        "method": method,
        "overrides": overrides,
        "wall_s": entry["wall_s"],
        "timings": entry["timings"],
        "schedule": entry["schedule"],
        "levels": entry["levels"],
        "flops": entry["flops"],
        **{k: metrics.get(k) for k in LEVER_METRICS},
        "probes": entry["probes"],
    }
    if args.relearn:
        row["relearn_sweep"] = entry["relearn_sweep"]
    print(json.dumps({k: v for k, v in row.items() if k != "probes"}))
    with open(args.jsonl, "a") as out:
        out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
