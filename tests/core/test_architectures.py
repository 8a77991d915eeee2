"""Model families other than the tests' Llama: tiny random models built from transformers configs
go through GRI scoring -> mask -> noise -> sparse masked NPO -> save -> load -> generate, and
through a GRUN request; unselected (GRIN) and base (GRUN) weights stay bit-identical."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPTNeoXConfig,
    LlamaConfig,
    MistralConfig,
    PhiConfig,
    Qwen2Config,
)

from grin_core.evaluation.generation import generate_answers
from grin_core.models.checkpoint import load_checkpoint, save_checkpoint
from grin_core.scoring.gri import eligible_parameters
from grin_core.unlearning.grun_config import GrunConfig
from grin_core.unlearning.grun_train import grun_unlearn
from grin_core.unlearning.unlearn import unlearn
from grin_core.unlearning.unlearn_config import UnlearnConfig
from tests.core.test_unlearn import FORGET, RETAIN, assert_only_mask_moved, snapshot

SMALL = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "max_position_embeddings": 128,
}
FAMILIES = {
    "llama-tied": lambda: LlamaConfig(**SMALL, tie_word_embeddings=True),
    "qwen2": lambda: Qwen2Config(**SMALL, num_key_value_heads=1),
    "mistral": lambda: MistralConfig(**SMALL, num_key_value_heads=1, sliding_window=None),
    "gpt2": lambda: GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=128),  # Conv1D layers
    "gpt-neox": lambda: GPTNeoXConfig(**SMALL),
    "phi": lambda: PhiConfig(**SMALL),
}
TINY = {"method": "npo", "epochs": 1, "batch_size": 4, "learning_rate": 1e-2, "scoring_batch_size": 8, "p_percent": 5.0}


def build(family: str, tokenizer):
    config = FAMILIES[family]()
    config.vocab_size = len(tokenizer)
    config.pad_token_id, config.bos_token_id, config.eos_token_id = (
        tokenizer.pad_token_id,
        tokenizer.bos_token_id,
        tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config).eval()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_grin_and_grun_on_each_family(family, tiny_tokenizer, tmp_path):
    model = build(family, tiny_tokenizer)
    eligible = eligible_parameters(model)
    assert len(eligible) >= 4 * model.config.num_hidden_layers, sorted(eligible)  # attention and MLP of each layer
    before = snapshot(model)
    result = unlearn(model, tiny_tokenizer, FORGET, RETAIN, UnlearnConfig(**TINY))
    assert result.mask.k > 0
    assert_only_mask_moved(model, before, result.mask)

    saved = tmp_path / family
    save_checkpoint(model, tiny_tokenizer, saved)
    reloaded, tokenizer = load_checkpoint(saved)
    assert AutoTokenizer.from_pretrained(saved).encode("Question: who?") == tokenizer.encode("Question: who?")
    for name, value in reloaded.state_dict().items():
        assert torch.equal(value, model.state_dict()[name]), name
    questions = [r["question"] for r in FORGET[:2]]
    assert generate_answers(reloaded, tokenizer, questions, max_new_tokens=6) == generate_answers(
        model, tiny_tokenizer, questions, max_new_tokens=6
    )

    base = snapshot(reloaded)
    grun = grun_unlearn(reloaded, tokenizer, FORGET[:4], RETAIN, GrunConfig(epochs=1, batch_size=4, gate="linear"))
    assert grun.trainable_params > 0
    for name, value in base.items():
        assert torch.equal(dict(reloaded.named_parameters())[name], value), name


def test_an_import_refuses_fused_experts_and_takes_a_plain_family(tiny_tokenizer, tmp_path):
    from transformers import MixtralConfig

    from grin_core.models.model_import import UnsupportedModelError, load_importable

    moe = MixtralConfig(
        **SMALL, num_key_value_heads=1, num_local_experts=4, num_experts_per_tok=2, vocab_size=len(tiny_tokenizer)
    )
    AutoModelForCausalLM.from_config(moe).save_pretrained(tmp_path / "moe")
    tiny_tokenizer.save_pretrained(tmp_path / "moe")
    with pytest.raises(UnsupportedModelError, match="mixture of experts"):
        load_importable(tmp_path / "moe")
    build("qwen2", tiny_tokenizer).save_pretrained(tmp_path / "qwen2")
    tiny_tokenizer.save_pretrained(tmp_path / "qwen2")
    model, tokenizer = load_importable(tmp_path / "qwen2")
    assert type(model).__name__ == "Qwen2ForCausalLM" and tokenizer.encode("a b") == tiny_tokenizer.encode("a b")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_saved_by_transformers_passes_the_content_check(family, tiny_tokenizer, tmp_path):
    """No false refusal (issue 25): what save_pretrained writes, in float32 or bfloat16, is complete;
    tied families hold one name of the tied pair."""
    from grin_core.models.architecture_check import check_model_directory
    from infra.checkpoint_content import as_plain, directory_tensors

    model = build(family, tiny_tokenizer)
    for dtype in (torch.float32, torch.bfloat16):
        saved = tmp_path / f"{family}-{dtype}"
        model.to(dtype).save_pretrained(saved)
        tiny_tokenizer.save_pretrained(saved)
        assert check_model_directory(saved, as_plain(directory_tensors(saved))) == type(model).__name__


def test_a_base_model_checkpoint_without_its_prefix_passes_as_transformers_loads_it(tiny_tokenizer):
    """GPT-2 on the hub is saved from GPT2Model: `h.0...`, not `transformer.h.0...`."""
    from grin_core.models.architecture_check import check_tensors, meta_model

    model = build("gpt2", tiny_tokenizer)
    found = {
        name.removeprefix("transformer."): ("F32", tuple(t.shape))
        for name, t in model.state_dict().items()
        if name != "lm_head.weight"
    }
    check_tensors(meta_model(model.config), found)
