"""GRI scores equal hand-computed gradient ratios; eligibility works by module type."""

import pytest
import torch
from datasets import Dataset
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.modeling_outputs import CausalLMOutput

from grin_core.data.qa import IGNORE_INDEX, qa_collator
from grin_core.scoring.gri import (
    decoder_layers,
    eligible_parameters,
    gradient_magnitude,
    gri_ratio,
    gri_scores,
)

V, H = 6, 4
X = IGNORE_INDEX


class Block(nn.Module):
    def __init__(self, act: bool) -> None:
        super().__init__()
        self.proj = nn.Linear(H, H, bias=False)
        self.act = act

    def forward(self, h):
        h = self.proj(h)
        return torch.tanh(h) if self.act else h


class ToyLM(nn.Module):
    """embedding -> tanh(W1 .) -> W2 . -> lm_head, position-wise (no attention)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(V, H)
        self.layers = nn.ModuleList([Block(act=True), Block(act=False)])
        self.norm = nn.LayerNorm(H)  # not eligible, not used
        self.lm_head = nn.Linear(H, V, bias=False)

    @property
    def device(self):
        return self.lm_head.weight.device

    def forward(self, input_ids, attention_mask=None):
        h = self.embed(input_ids)
        for layer in self.layers:
            h = layer(h)
        return CausalLMOutput(logits=self.lm_head(h))


def toy_set(rows):
    return Dataset.from_list(
        [
            {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels, "length": len(ids)}
            for ids, labels in rows
        ]
    )


FORGET = [([0, 3, 4, 5], [X, X, 4, 5]), ([0, 1, 2], [X, 1, 2])]
RETAIN = [([0, 5, 5, 1, 3], [X, X, 5, 1, 3]), ([0, 2], [X, 2]), ([0, 4, 1], [X, X, 1])]


@torch.no_grad()
def hand_gradients(model: ToyLM, rows) -> dict[str, torch.Tensor]:
    """d(token-mean NLL)/dW1, dW2 by the chain rule, token by token, no autograd."""
    E, W1, W2, U = (model.embed.weight, model.layers[0].proj.weight, model.layers[1].proj.weight, model.lm_head.weight)
    g1, g2 = torch.zeros_like(W1), torch.zeros_like(W2)
    n = sum(1 for _, labels in rows for y in labels[1:] if y != X)
    for ids, labels in rows:
        for t in range(len(ids) - 1):
            y = labels[t + 1]
            if y == X:
                continue
            e = E[ids[t]]
            h1 = torch.tanh(W1 @ e)
            z = U @ (W2 @ h1)
            dz = torch.softmax(z, 0) - nn.functional.one_hot(torch.tensor(y), V).float()
            dh2 = U.T @ dz
            g2 += torch.outer(dh2, h1)
            g1 += torch.outer((W2.T @ dh2) * (1 - h1**2), e)
    return {"layers.0.proj.weight": g1 / n, "layers.1.proj.weight": g2 / n}


def test_toy_net_gri_equals_hand_computed_ratio(tiny_tokenizer):
    model = ToyLM()
    params = eligible_parameters(model)
    assert list(params) == ["layers.0.proj.weight", "layers.1.proj.weight"]
    g_f = gradient_magnitude(model, toy_set(FORGET), tiny_tokenizer, params, batch_size=1)
    g_r = gradient_magnitude(model, toy_set(RETAIN), tiny_tokenizer, params, batch_size=2)
    hand_f, hand_r = hand_gradients(model, FORGET), hand_gradients(model, RETAIN)
    for name in params:
        assert torch.allclose(g_f[name], hand_f[name].abs(), atol=1e-6)
        assert torch.allclose(g_r[name], hand_r[name].abs(), atol=1e-6)
    scores = gri_ratio(g_f, g_r, eps=1e-8)
    for name in params:
        expected = hand_f[name].abs() / (hand_r[name].abs() + 1e-8)
        assert torch.allclose(scores[name], expected, rtol=1e-4)
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())


def test_gradient_is_of_the_set_mean_whatever_the_batching(tiny_tokenizer):
    model = ToyLM()
    params = eligible_parameters(model)
    one = gradient_magnitude(model, toy_set(RETAIN), tiny_tokenizer, params, batch_size=1)
    all_at_once = gradient_magnitude(model, toy_set(RETAIN), tiny_tokenizer, params, batch_size=3)
    assert all(torch.allclose(one[n], all_at_once[n], atol=1e-7) for n in params)


def test_gri_ratio_eps_and_key_mismatch():
    scores = gri_ratio({"w": torch.tensor([1.0, -2.0, 0.0])}, {"w": torch.tensor([0.5, 0.0, 0.0])}, eps=0.5)
    assert scores["w"].tolist() == [1.0, 4.0, 0.0]
    with pytest.raises(ValueError):
        gri_ratio({"a": torch.ones(1)}, {"b": torch.ones(1)})


def test_llama_eligible_parameters_are_the_decoder_linears(tiny_model):
    params = eligible_parameters(tiny_model)
    n_layers = tiny_model.config.num_hidden_layers
    assert len(params) == 7 * n_layers
    kinds = {name.split(".")[-2] for name in params}
    assert kinds == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert not any("embed" in n or "norm" in n or "lm_head" in n for n in params)
    only = eligible_parameters(tiny_model, modules=("down_proj", "q_proj"))
    assert sorted({n.split(".")[-2] for n in only}) == ["down_proj", "q_proj"] and len(only) == 2 * n_layers
    with pytest.raises(ValueError):
        eligible_parameters(tiny_model, modules=("no_such_proj",))


def test_gpt2_conv1d_layers_are_eligible():
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=16, n_head=2, vocab_size=50, n_positions=32))
    assert decoder_layers(model) is model.transformer.h
    names = {n.split(".", 3)[-1] for n in eligible_parameters(model)}
    assert names == {"attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight"}


def test_gri_scores_on_llama_match_independent_autograd(tiny_model_factory, tiny_tokenizer):
    model = tiny_model_factory(1)
    forget = [
        {"question": "Who is Basil?", "answer": "A novelist from Lagos."},
        {"question": "What did she write?", "answer": "Three books of poems."},
    ]
    retain = [
        {"question": "Where is Kyiv?", "answer": "In Ukraine."},
        {"question": "Name a colour.", "answer": "Blue, mostly."},
        {"question": "Favourite number?", "answer": "Seven."},
    ]
    scores = gri_scores(model, tiny_tokenizer, forget, retain, eps=1e-8, batch_size=2)

    def full_batch_grad(records):
        from grin_core.data.qa import qa_dataset

        batch = qa_collator(tiny_tokenizer)(qa_dataset(records, tiny_tokenizer).remove_columns("length").to_list())
        loss = model(**batch).loss  # HF's token-mean loss over the whole set in one batch
        names = list(scores)
        params = dict(model.named_parameters())
        return dict(zip(names, torch.autograd.grad(loss, [params[n] for n in names])))

    model.eval()
    g_f, g_r = full_batch_grad(forget), full_batch_grad(retain)
    for name, score in scores.items():
        expected = g_f[name].abs() / (g_r[name].abs() + 1e-8)
        close = torch.isclose(score, expected, rtol=1e-3, atol=1e-3 * expected.abs().max().item())
        assert close.float().mean() > 0.999, name


def test_a_non_finite_gradient_is_an_error_not_a_score(tiny_model_factory, tiny_tokenizer):
    model = tiny_model_factory(2)
    records = [{"question": "Where is Kyiv?", "answer": "In Ukraine."}]
    with torch.no_grad():
        model.model.layers[0].mlp.up_proj.weight[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="not finite"):
        gri_scores(model, tiny_tokenizer, records, records)
