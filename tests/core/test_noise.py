"""Noise lands on the masked weights only, is seeded, and has the asked variance."""

import math

import pytest
import torch

from grin_core.scoring.gri import eligible_parameters
from grin_core.scoring.mask import select_top_p
from grin_core.scoring.noise import inject_noise


def random_mask(model, p, seed=0):
    g = torch.Generator().manual_seed(seed)
    scores = {n: torch.rand(w.shape, generator=g) for n, w in eligible_parameters(model).items()}
    return select_top_p(scores, p)


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_noise_touches_only_masked_weights(tiny_model_factory):
    model = tiny_model_factory(0)
    mask = random_mask(model, 5)
    before = snapshot(model)
    assert inject_noise(model, mask, sigma2=1e-3, seed=0) == mask.k
    for name, param in model.named_parameters():
        if name not in mask.tensors:
            assert torch.equal(param, before[name]), name
            continue
        selected = mask.tensors[name]
        assert torch.equal(param[~selected], before[name][~selected]), name
        assert (param[selected] != before[name][selected]).all(), name


def test_noise_is_reproducible_by_seed(tiny_model_factory):
    mask = random_mask(tiny_model_factory(0), 5)
    runs = {}
    for label, seed in (("a", 3), ("b", 3), ("c", 4)):
        model = tiny_model_factory(0)
        inject_noise(model, mask, sigma2=1e-3, seed=seed)
        runs[label] = snapshot(model)
    assert all(torch.equal(runs["a"][n], runs["b"][n]) for n in runs["a"])
    assert not all(torch.equal(runs["a"][n], runs["c"][n]) for n in mask.tensors)


def test_noise_has_the_asked_variance(tiny_model_factory):
    model = tiny_model_factory(0)
    mask = random_mask(model, 50)
    before = snapshot(model)
    inject_noise(model, mask, sigma2=1e-3, seed=0)
    deltas = torch.cat([(p - before[n])[mask.tensors[n]] for n, p in model.named_parameters() if n in mask.tensors])
    assert deltas.numel() == mask.k > 5000
    assert deltas.mean().abs() < 4 * math.sqrt(1e-3 / deltas.numel())
    assert deltas.var().item() == pytest.approx(1e-3, rel=0.1)


def test_noise_rejects_foreign_masks(tiny_model_factory, tiny_model):
    mask = random_mask(tiny_model, 5)
    mask.tensors = {f"other.{n}": m for n, m in mask.tensors.items()}
    with pytest.raises(KeyError):
        inject_noise(tiny_model_factory(0), mask)
