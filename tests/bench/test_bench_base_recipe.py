"""A recipe with a base (`grin bench tofu --recipe smollm2`'s path) on a tiny chat GGUF: the base is
dequantised once into the model cache, the target and the retrained model are that base fine-tuned
(its architecture and chat template kept), and the base's own evaluation lands as a part of its own.
A few records, one epoch: the plumbing, not the numbers."""

from __future__ import annotations

from benchmarks.bench_memo import Memo
from benchmarks.recipes import RECIPES, Recipe
from benchmarks.tofu import _base_part
from benchmarks.tofu_bench import TofuBench
from benchmarks.tofu_config import BenchConfig
from grin_core.data.prompts import CHAT, line_template
from grin_core.models.checkpoint import load_checkpoint, load_grin_config
from tests.fixtures.tiny_gguf import with_chat_template, write_tiny_gguf

TINY_BASE = {
    "model": {},
    "train": {"max_epochs": 1, "stop_loss": None, "batch_size": 8},
    "prompt_template": CHAT,
    "n_general": 2,
    "eval_retain": 4,
    "eval_calibration": 4,
    "unlearn_epochs": 1,
    "probes": {"num_samples": 1, "bits": (8,), "relearn_steps": 1, "max_new_tokens": 8, "relearn_sweep": ()},
}


def test_a_recipe_with_a_base_fine_tunes_it_for_target_and_retrain(tiny_model, tiny_tokenizer, tmp_path, monkeypatch):
    gguf = write_tiny_gguf(tiny_model, with_chat_template(tiny_tokenizer), tmp_path / "tiny-chat.gguf")
    monkeypatch.setitem(RECIPES, "tiny-base", Recipe(base=str(gguf), **TINY_BASE))
    config = BenchConfig(authors=2, recipe="tiny-base", methods=("retrain",), cache_dir=tmp_path / "cache")
    assert config.epochs == 1  # the recipe's unlearning budget
    lines: list[str] = []
    bench = TofuBench(config, lines.append)

    target, summary = bench.train("target", bench.data.train[:8])
    retrain, _ = bench.train("retrain", bench.data.retrain[:6])

    assert target != retrain
    assert sorted(p.name for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")) == sorted(
        [bench.base_dir().name, target.name, retrain.name]
    )  # one base, dequantised once
    recorded = load_grin_config(target)
    assert recorded["trained_from"] == "base" and recorded["architecture"] == "LlamaForCausalLM"
    assert line_template(load_checkpoint(target)[1]) == CHAT
    assert summary["epochs"] == 1 and summary["config"]["finetune"]["batch_size"] == 8
    assert summary["config"]["base_checkpoint"] == bench.base_dir().name

    base = _base_part(bench, Memo(None, {}, lines.append))
    assert base["checkpoint"] == bench.base_dir().name and "forget_rougeL" in base["metrics"]
