"""Model FLOPs and MFU (benchmarks/throughput.py): PaLM's / nanoGPT's count, by hand."""

from __future__ import annotations

import pytest
from transformers import LlamaConfig, LlamaForCausalLM

from benchmarks.throughput import matmul_params, peak_bf16_flops, train_flops, training_throughput


def test_train_flops_is_6n_per_token_plus_attention_over_the_sequence():
    # one sequence of 2 tokens, N = 10, 1 layer of width 4: 2 * (6*10 + 12*1*4*2) = 312
    assert train_flops([2], n_params=10, n_layers=1, hidden=4) == 312
    # nanoGPT's GPT-2 small at T = 1024: flops_per_token = 6N + 12 * 12 * 12 * 64 * 1024 (L, H, Q, T)
    n = 85_000_000
    assert train_flops([1024], n, 12, 768) == 1024 * (6 * n + 12 * 12 * 12 * 64 * 1024)
    # sequences are counted apart: attention grows with each one's own length
    assert train_flops([1, 3], 10, 1, 4) == train_flops([1], 10, 1, 4) + train_flops([3], 10, 1, 4)


def test_mfu_is_achieved_flops_over_the_chips_bf16_peak():
    history = [{"epoch": 1, "seconds": 9.0}, {"epoch": 2, "seconds": 1.0}, {"epoch": 3, "seconds": 1.0}]
    # 6 * N * 1 token = 312e12 FLOPs an epoch, and an epoch (the median after the first) takes 1 s
    out = training_throughput(
        history, [1], n_params=52_000_000_000_000, n_layers=0, hidden=1, device_name="NVIDIA A100-SXM4-80GB"
    )
    assert out["epoch_s"] == 1.0 and out["tokens_per_s"] == 1.0
    assert out["mfu"] == pytest.approx(1.0) and out["peak_bf16_tflops"] == 312
    on_cpu = training_throughput(history, [1], 10, 0, 1, device_name="cpu")
    assert on_cpu["mfu"] is None and on_cpu["model_tflops_per_s"] == pytest.approx(60e-12, abs=1e-4)
    # 5 sequences in batches of 2 are 3 steps an epoch
    assert training_throughput(history, [1] * 5, 10, 0, 1, "cpu", batch_size=2)["step_ms"] == pytest.approx(333.33)
    assert peak_bf16_flops("NVIDIA H200") == peak_bf16_flops("NVIDIA H100 80GB HBM3") == 989.4e12
    assert training_throughput([], [1], 10, 0, 1, "cpu") == {}


@pytest.mark.parametrize("tied", [False, True])
def test_matmul_params_leave_out_an_untied_input_embedding(tied):
    config = LlamaConfig(
        vocab_size=100,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        tie_word_embeddings=tied,
    )
    model = LlamaForCausalLM(config)
    total = sum(p.numel() for p in model.parameters())  # parameters() yields a tied matrix once
    assert matmul_params(model) == (total if tied else total - 100 * 16)
