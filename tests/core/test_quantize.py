"""Fake quantisation: per-channel round-to-nearest bounds, copies only, int8 closer than int4."""

import pytest
import torch
from torch import nn

from grin_core.evaluation.quantize import channel_scales, fake_quantize, quantize_tensor


def test_known_values_int4():
    w = torch.tensor([[0.7, -0.36, 0.14, 0.0], [0.0, 0.0, 0.0, 0.0], [-1.4, 1.4, 0.2, 0.55]])
    # int4: integers -7..7; scales 0.7 / 7 = 0.1 and 1.4 / 7 = 0.2 (row 2 all zero stays zero)
    q = quantize_tensor(w, 4)
    expected = torch.tensor([[0.7, -0.4, 0.1, 0.0], [0.0, 0.0, 0.0, 0.0], [-1.4, 1.4, 0.2, 0.6]])
    assert torch.allclose(q, expected, atol=1e-6)  # -3.6 -> -4, 1.4 -> 1, 2.75 -> 3
    assert channel_scales(w, 4).tolist() == pytest.approx([0.1, 0.0, 0.2])


def test_round_trip_error_bound_per_channel_and_int8_closer():
    w = torch.randn(16, 33, generator=torch.Generator().manual_seed(0)) * torch.logspace(-3, 1, 16).unsqueeze(1)
    errors = {}
    for bits in (8, 4):
        q = fake_quantize(w, bits)
        scale = channel_scales(w, bits).unsqueeze(1)
        assert ((w - q).abs() <= scale / 2 + 1e-7).all()
        assert (q.abs().amax(dim=1) <= w.abs().amax(dim=1) + 1e-6).all()
        levels = (q / scale).round()
        assert torch.allclose(q, levels * scale, atol=1e-6) and levels.abs().max() <= 2 ** (bits - 1) - 1
        errors[bits] = (w - q).abs().mean().item()
    assert errors[8] < errors[4] / 8  # 16x finer steps


def test_model_copy_quantises_linear_weights_only_and_leaves_input(tiny_model):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    quantised = fake_quantize(tiny_model, 4)
    assert quantised is not tiny_model
    for k, v in tiny_model.state_dict().items():
        assert torch.equal(v, before[k])  # the input is never modified
    q_state = quantised.state_dict()
    linear = {f"{name}.weight" for name, m in tiny_model.named_modules() if isinstance(m, nn.Linear)}
    assert linear and all(not torch.equal(q_state[k], before[k]) for k in linear)
    assert all(torch.equal(q_state[k], before[k]) for k in before if k not in linear)  # embeddings, norms
    for k in linear:
        assert torch.equal(q_state[k], quantize_tensor(before[k], 4))
