"""The FLOP counter: a tiny model's count by hand (runtime/flops.py)."""

from __future__ import annotations

import torch

from grin_core.runtime.flops import FlopMeter, matmul_params, training_flops
from tests.fixtures.models import TINY_CONFIG


def test_matmul_params_by_hand(tiny_model):
    # untied embeddings: every parameter but the input embedding (vocab x hidden) multiplies activations
    vocab, hidden = tiny_model.get_input_embeddings().weight.shape
    total = sum(p.numel() for p in tiny_model.parameters())
    assert hidden == TINY_CONFIG.hidden_size
    assert matmul_params(tiny_model) == total - vocab * hidden


def test_forward_and_trained_tokens_by_hand(tiny_model_factory):
    model = tiny_model_factory(0)
    n = matmul_params(model)
    meter = FlopMeter.of(model)
    ids = torch.tensor([[1, 5, 6, 7, 0], [1, 8, 9, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]])  # 7 real tokens of 10 positions
    with meter.attached(model):
        with meter.stage("probe"), torch.no_grad():
            model(input_ids=ids, attention_mask=mask)
        with meter.stage("train"):
            model(input_ids=ids, attention_mask=mask, labels=ids).loss.backward()
            model(input_ids=ids)  # no mask: every position is real
    model(input_ids=ids, attention_mask=mask)  # detached: not counted
    summary = meter.summary()
    assert summary["stages"]["probe"] == {"forward_tokens": 7, "trained_tokens": 0, "flops": 2.0 * n * 7}
    assert summary["stages"]["train"]["trained_tokens"] == 7 + 10
    assert summary["total_flops"] == 2.0 * n * 7 + 6.0 * n * 17


def test_a_cached_generation_step_counts_its_new_tokens(tiny_model_factory):
    model = tiny_model_factory(0)
    meter = FlopMeter.of(model)
    with meter.attached(model), torch.no_grad():
        model.generate(
            input_ids=torch.tensor([[1, 5, 6]]),
            attention_mask=torch.ones(1, 3, dtype=torch.long),
            max_new_tokens=4,
            min_new_tokens=4,
            do_sample=False,
            pad_token_id=0,
        )
    # the prompt's 3 tokens, then one forward per generated token after the first: 3 more
    assert meter.summary()["stages"]["other"]["forward_tokens"] == 3 + 3


def test_training_flops_by_hand():
    assert training_flops(1000, tokens_per_epoch=50, epochs=2) == 6 * 1000 * 50 * 2
