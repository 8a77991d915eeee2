"""Global top-p selection (exact k, ties, brute-force equal), mask files and statistics."""

import math

import numpy as np
import pytest
import torch

from grin_core.models.checkpoint import file_sha256
from grin_core.scoring.mask import Mask, MaskIntegrityError, parameter_site, select_top_p, top_k_count


def brute_force(scores: dict[str, torch.Tensor], p_percent: float) -> dict[str, torch.Tensor]:
    """Concatenate, stable-sort descending, take the first k: the reference selection."""
    flat = torch.cat([t.flatten().float() for t in scores.values()])
    k = top_k_count(flat.numel(), p_percent)
    order = torch.sort(flat, descending=True, stable=True).indices[:k]
    chosen = torch.zeros_like(flat, dtype=torch.bool)
    chosen[order] = True
    out, start = {}, 0
    for name, t in scores.items():
        out[name] = chosen[start : start + t.numel()].view(t.shape)
        start += t.numel()
    return out


def test_k_is_exact_ceiling():
    assert top_k_count(1000, 0.3) == 3  # float 0.3/100*1000 = 3.0000000000000004 would give 4
    assert top_k_count(1001, 0.3) == 4
    assert top_k_count(7, 100) == 7
    assert top_k_count(10, 0.01) == 1
    with pytest.raises(ValueError):
        top_k_count(10, 0)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("p", [0.2, 0.5, 1.0, 7.3, 50.0])
def test_top_p_matches_brute_force_with_ties(seed, p):
    g = torch.Generator().manual_seed(seed)
    # few distinct values -> many ties across and within tensors
    scores = {
        "a": torch.randint(0, 6, (17, 13), generator=g).float(),
        "b": torch.randint(0, 6, (40,), generator=g).float() / 2,
        "c": torch.randint(0, 6, (3, 5, 7), generator=g).float(),
    }
    mask = select_top_p(scores, p)
    reference = brute_force(scores, p)
    assert mask.k == math.ceil(p / 100 * 366 - 1e-9)
    assert sum(int(m.sum()) for m in mask.tensors.values()) == mask.k
    for name in scores:
        assert torch.equal(mask.tensors[name], reference[name]), name


def test_top_p_continuous_negative_and_signed_zero_scores():
    g = torch.Generator().manual_seed(7)
    scores = {"x": torch.randn(300, generator=g), "y": torch.tensor([0.0, -0.0, -0.0, 0.0, -1e-30, 1e-30])}
    for p in (1, 10, 60, 99, 100):
        mask = select_top_p(scores, p)
        reference = brute_force(scores, p)
        assert all(torch.equal(mask.tensors[n], reference[n]) for n in scores)


def test_top_p_low_precision_scores_and_rejects_nan():
    scores = {"w": torch.arange(100, dtype=torch.bfloat16).reshape(10, 10)}
    mask = select_top_p(scores, 5)
    assert mask.indices("w").tolist() == [95, 96, 97, 98, 99]
    with pytest.raises(ValueError):
        select_top_p({"w": torch.tensor([1.0, float("nan")])}, 50)


def test_mask_refuses_wrong_k():
    with pytest.raises(ValueError):
        Mask({"w": torch.tensor([True, False])}, p_percent=50, k=2)


def test_save_load_round_trip_both_encodings_and_hashes(tmp_path):
    g = torch.Generator().manual_seed(0)
    scores = {
        "model.layers.0.mlp.up_proj.weight": torch.rand(64, 32, generator=g),  # sparse -> indices
        "model.layers.0.self_attn.q_proj.weight": torch.rand(32, 32, generator=g) + 10,  # dense -> bits
        "model.layers.1.self_attn.k_proj.weight": torch.rand(8, 8, generator=g) - 10,  # empty
    }
    mask = select_top_p(scores, 25)
    path = tmp_path / "mask.safetensors"
    sha = mask.save(path)
    assert sha == file_sha256(path)
    loaded = Mask.load(path, sha256=sha)
    assert list(loaded.tensors) == list(mask.tensors)
    assert all(torch.equal(loaded.tensors[n], mask.tensors[n]) for n in mask.tensors)
    assert (loaded.k, loaded.p_percent) == (mask.k, mask.p_percent)
    assert loaded.content_sha256() == mask.content_sha256()
    with pytest.raises(MaskIntegrityError):
        Mask.load(path, sha256="0" * 64)


def test_mask_file_is_compact(tmp_path):
    sparse = torch.zeros(1000, 1000, dtype=torch.bool)
    sparse.view(-1)[torch.arange(0, 1_000_000, 200)] = True  # 0.5 %: 5000 int32 indices = 20 kB
    mask = Mask({"w": sparse}, p_percent=0.5, k=5000)
    mask.save(tmp_path / "m.safetensors")
    assert (tmp_path / "m.safetensors").stat().st_size < 25_000  # bits would take 125 kB
    dense = Mask({"w": torch.ones(1000, 100, dtype=torch.bool)}, p_percent=100, k=100_000)
    dense.save(tmp_path / "d.safetensors")
    assert (tmp_path / "d.safetensors").stat().st_size < 14_000  # 12.5 kB of bits


def test_tampered_mask_file_is_refused(tmp_path):
    mask = select_top_p({"w": torch.arange(1000.0)}, 0.7)  # 7 of 1000: stored as indices
    path = tmp_path / "mask.safetensors"
    mask.save(path)
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    with safe_open(str(path), framework="numpy") as f:
        metadata = f.metadata()
    arrays = load_file(str(path))
    arrays["w/indices"] = np.array([0, 1, 2, 3, 4, 5, 6], dtype=np.int32)  # same k, other weights
    save_file(arrays, str(path), metadata=metadata)
    with pytest.raises(MaskIntegrityError):
        Mask.load(path)
    arrays["w/bits"] = np.zeros(125, dtype=np.uint8)  # an entry the header does not name
    save_file(arrays, str(path), metadata=metadata)
    with pytest.raises(MaskIntegrityError):
        Mask.load(path)


def test_parameter_site_llama_and_gpt2_names():
    assert parameter_site("model.layers.3.self_attn.q_proj.weight") == (3, "q_proj", "attention")
    assert parameter_site("model.layers.0.mlp.down_proj.weight") == (0, "down_proj", "mlp")
    assert parameter_site("transformer.h.11.attn.c_attn.weight") == (11, "c_attn", "attention")
    assert parameter_site("transformer.h.2.mlp.c_proj.weight") == (2, "c_proj", "mlp")
    assert parameter_site("lm_head.weight") == (None, "lm_head", "other")


def test_stats_by_layer_module_and_kind():
    def t(n, k):
        return torch.tensor([True] * k + [False] * (n - k))

    mask = Mask(
        {
            "model.layers.0.self_attn.q_proj.weight": t(10, 1),
            "model.layers.0.mlp.gate_proj.weight": t(10, 3),
            "model.layers.1.self_attn.q_proj.weight": t(10, 2),
            "model.layers.1.mlp.down_proj.weight": t(10, 4),
        },
        p_percent=25,
        k=10,
    )
    stats = mask.stats()
    assert stats["k"] == 10 and stats["n_eligible"] == 40 and stats["density"] == 0.25
    assert stats["by_layer"]["0"] == {"selected": 4, "numel": 20, "share": 0.4, "density": 0.2}
    assert stats["by_module"]["q_proj"]["selected"] == 3
    assert stats["by_kind"]["mlp"] == {"selected": 7, "numel": 20, "share": 0.7, "density": 0.35}
    assert stats["by_kind"]["attention"]["share"] == pytest.approx(0.3)
    assert stats["by_tensor"]["model.layers.1.mlp.down_proj.weight"]["density"] == 0.4
