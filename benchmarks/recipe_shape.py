"""Shape a recipe on the CPU: train its model and schedule on a few authors, one line per epoch.

`python -m benchmarks.recipe_shape --recipe gpu --authors 10 --general 10 --jsonl FILE` prints (and
appends to FILE) each epoch's mean answer loss and seconds, then the epochs the stopping rule took;
`--set lr=2e-3` and `--model hidden_size=256` try a row of docs/benchmarks.md's shaping table.
Numbers only: no record text.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks.recipes import RECIPES


def _values(pairs: list[str]) -> dict:
    """name=value pairs, each value read as JSON (numbers, true/false) or else kept as text."""
    out = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        try:
            out[name] = json.loads(value)
        except json.JSONDecodeError:
            out[name] = value
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.recipe_shape", description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="gpu", choices=sorted(RECIPES))
    parser.add_argument("--authors", type=int, default=10)
    parser.add_argument("--general", type=int, default=10, help="first n of real_authors and of world_facts")
    parser.add_argument("--set", nargs="*", default=[], help="TrainConfig overrides, name=value")
    parser.add_argument("--model", nargs="*", default=[], help="TinyLlamaConfig overrides, name=value")
    parser.add_argument("--data", type=Path, default=None, help="the TOFU files (default: the settings')")
    parser.add_argument("--jsonl", type=Path, default=None, help="also append every line here")
    args = parser.parse_args(argv)

    from transformers import TrainerCallback

    from grin_core.data.tofu import TofuSubset, load_tofu
    from grin_core.models.tiny_llama import TinyLlamaConfig
    from grin_core.models.train import TrainConfig, train_model

    recipe = RECIPES[args.recipe]
    model_config = TinyLlamaConfig(**{**recipe.model, **_values(args.model)})
    train_config = TrainConfig(**{**recipe.train, **_values(args.set)})
    records = load_tofu(TofuSubset(args.authors, "forget10", args.general), args.data).train

    def emit(line: dict) -> None:
        print(json.dumps(line), flush=True)
        if args.jsonl is not None:
            with args.jsonl.open("a") as f:
                f.write(json.dumps(line) + "\n")

    class EachEpoch(TrainerCallback):
        def on_log(self, args_, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                emit({"epoch": round(state.epoch, 2), "loss": logs["loss"], "t": round(time.time(), 1)})

    emit(
        {
            "recipe": args.recipe,
            "records": len(records),
            "model": model_config.to_dict(),
            "train": train_config.to_dict(),
        }
    )
    started = time.perf_counter()
    result = train_model(records, model_config, train_config, progress=False, callbacks=[EachEpoch()])
    emit(
        {
            "done": True,
            "epochs": len(result.history),
            "final_loss": result.history[-1]["loss"],
            "params": sum(p.numel() for p in result.model.parameters()),
            "wall_s": round(time.perf_counter() - started),
        }
    )


if __name__ == "__main__":
    main()
