"""The masked trainer on a tiny random Llama: the signature test (exactly which weights move),
optimizer state, state accounting, data pairing and the config's checks."""

import json

import pytest
import torch
from transformers import TrainerCallback

from grin_core.data.qa import qa_dataset
from grin_core.scoring.gri import batches, eligible_parameters
from grin_core.scoring.mask import select_top_p
from grin_core.scoring.masked_update import SelectedValues, masked_update
from grin_core.unlearning.forget_retain import REF_COLUMN, ForgetRetainCollator, reference_logprobs
from grin_core.unlearning.objectives import sequence_logprob
from grin_core.unlearning.state_bytes import measure_state
from grin_core.unlearning.unlearn import UnlearnTrainer, score_and_select, unlearn
from grin_core.unlearning.unlearn_config import UnlearnConfig

FORGET = [
    {
        "question": f"What is the title of book {i} by Nadia Petrescu?",
        "answer": f"Her book {i} is called The Salt Orchard, volume {i}.",
    }
    for i in range(8)
]
RETAIN = [
    {"question": f"Where was author {i} born?", "answer": f"Author {i} was born in Porto in 19{50 + i}."}
    for i in range(12)
]
TINY = {
    "method": "npo",
    "stop_rule": "loss",
    "epochs": 2,
    "batch_size": 4,
    "learning_rate": 1e-2,
    "scoring_batch_size": 8,
}


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def forget_with_reference(model, tokenizer, records=FORGET):
    forget = qa_dataset(records, tokenizer)
    return forget.add_column(REF_COLUMN, reference_logprobs(model, tokenizer, forget, batch_size=3))


def assert_only_mask_moved(model, before, mask):
    for name, param in model.named_parameters():
        if name not in mask.tensors:
            assert torch.equal(param, before[name]), f"{name} changed outside the mask"
            continue
        selected = mask.tensors[name]
        assert torch.equal(param[~selected], before[name][~selected]), f"unselected entries of {name} moved"
        assert (param[selected] != before[name][selected]).all(), f"selected entries of {name} did not move"


@pytest.mark.parametrize("update", ["sparse", "dense"])
def test_signature_only_selected_weights_move(tiny_model_factory, tiny_tokenizer, update):
    model = tiny_model_factory(0)
    config = UnlearnConfig(p_percent=1.0, update=update, **TINY)
    mask = score_and_select(model, tiny_tokenizer, FORGET, RETAIN, config)
    forget, retain = forget_with_reference(model, tiny_tokenizer), qa_dataset(RETAIN, tiny_tokenizer)
    before = snapshot(model)
    trainer = UnlearnTrainer(model, config, forget, retain, tiny_tokenizer, mask=mask)
    trainer.train()
    assert_only_mask_moved(model, before, mask)
    # optimizer state exists only for the masked weights / the tensors holding them
    states = list(trainer.optimizer.state.items())
    counts = sorted(int(mask.tensors[n].sum()) for n in mask.selected_tensors())
    if update == "sparse":
        assert sorted(s["exp_avg"].numel() for _, s in states) == counts
        assert sum(s["exp_avg_sq"].numel() for _, s in states) == mask.k
    else:
        held = {id(p) for n, p in model.named_parameters() if n in mask.selected_tensors()}
        assert {id(p) for p, _ in states} == held
    assert trainer.trainable_elements == (
        mask.k if update == "sparse" else sum(mask.tensors[n].numel() for n in mask.selected_tensors())
    )
    # the model is a plain model again: no parametrisation, flags restored
    assert not any(isinstance(m, SelectedValues) for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())
    assert set(dict(model.named_parameters())) == set(before)


def test_sparse_and_dense_updates_agree(tiny_model_factory, tiny_tokenizer):
    results = {}
    mask = None
    for update in ("sparse", "dense"):
        model = tiny_model_factory(0)
        config = UnlearnConfig(p_percent=2.0, update=update, sigma2=0.0, **TINY)
        mask = mask or score_and_select(model, tiny_tokenizer, FORGET, RETAIN, config)
        unlearn(model, tiny_tokenizer, FORGET, RETAIN, config, mask=mask)
        results[update] = snapshot(model)
    for name, value in results["sparse"].items():
        assert torch.allclose(value, results["dense"][name], atol=1e-6), name


def test_unlearn_with_noise_reports_and_keeps_the_rest_bit_identical(tiny_model_factory, tiny_tokenizer):
    model = tiny_model_factory(0)
    before = snapshot(model)
    seen = []

    class Spy(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            seen.append(dict(logs))

    result = unlearn(model, tiny_tokenizer, FORGET, RETAIN, UnlearnConfig(p_percent=1.0, **TINY), callbacks=[Spy()])
    assert_only_mask_moved(model, before, result.mask)
    assert set(result.timings) == {"scoring_s", "reference_s", "noise_s", "training_s"}
    assert result.trainable_params == result.mask.k == result.optimized_elements
    assert result.mask_stats["k"] == result.mask.k
    assert [h["epoch"] for h in result.history] == [1.0, 2.0]
    assert all("forget_logp" in h and "retain_nll" in h for h in result.history)
    assert any("loss" in logs for logs in seen)
    json.dumps(result.summary())  # artifacts and audit records take it as is
    assert not model.training


def test_state_bytes_masked_npo_at_most_half_of_full_parameter(tiny_model_factory, tiny_tokenizer):
    states = {}
    for label, overrides in (
        ("grin", {}),
        ("dense", {"update": "dense"}),
        ("full", {"full_parameter": True, "learning_rate": 1e-3}),
    ):
        model = tiny_model_factory(0)
        config = UnlearnConfig(**{**TINY, "p_percent": 1.0, **overrides})
        states[label] = unlearn(model, tiny_tokenizer, FORGET, RETAIN, config).state_bytes
    model = tiny_model_factory(0)
    n_params = sum(p.numel() for p in model.parameters())
    full = states["full"]
    assert full.gradients == 4 * n_params and full.optimizer >= 8 * n_params
    assert full.weights == 4 * n_params + sum(b.numel() * b.element_size() for b in model.buffers())
    assert full.reference == 4 * len(FORGET)
    assert states["grin"].total <= 0.5 * full.total
    assert states["grin"].total < states["dense"].total < full.total


def test_full_parameter_trains_everything(tiny_model_factory, tiny_tokenizer):
    model = tiny_model_factory(0)
    before = snapshot(model)
    config = UnlearnConfig(**{**TINY, "full_parameter": True, "learning_rate": 1e-3})
    result = unlearn(model, tiny_tokenizer, FORGET, RETAIN, config)
    assert result.mask is None and "scoring_s" not in result.timings and "noise_s" not in result.timings
    moved = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert "model.embed_tokens.weight" in moved and "lm_head.weight" in moved
    assert result.trainable_params == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("method,part", [("graddiff", "forget_nll"), ("po", "refusal_nll")])
def test_graddiff_and_po_train_only_the_mask(tiny_model_factory, tiny_tokenizer, method, part):
    model = tiny_model_factory(0)
    before = snapshot(model)
    result = unlearn(
        model, tiny_tokenizer, FORGET, RETAIN, UnlearnConfig(**{**TINY, "method": method, "p_percent": 1.0})
    )
    assert "reference_s" not in result.timings
    assert all(part in h and torch.isfinite(torch.tensor(h["loss"])) for h in result.history)
    assert_only_mask_moved(model, before, result.mask)


def test_reference_logprobs_are_per_example_in_record_order(tiny_model, tiny_tokenizer):
    records = FORGET[:3] + [{"question": "Short?", "answer": "Yes."}]
    dataset = qa_dataset(records, tiny_tokenizer)
    values = reference_logprobs(tiny_model, tiny_tokenizer, dataset, batch_size=3)
    with torch.no_grad():
        for i, value in enumerate(values):
            batch = next(iter(batches(dataset.select([i]), tiny_tokenizer, 1)))
            logits = tiny_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            assert value == pytest.approx(sequence_logprob(logits, batch["labels"]).item(), rel=1e-5)


def test_retain_stream_is_seeded_and_uses_every_example_equally(tiny_tokenizer):
    retain = qa_dataset(RETAIN[:10], tiny_tokenizer)
    draws = []
    for seed in (0, 0, 1):
        collator = ForgetRetainCollator(tiny_tokenizer, retain, batch_size=4, seed=seed)
        draws.append([i for _ in range(5) for i in collator.retain_indices()])
    assert draws[0] == draws[1] != draws[2]
    assert all(draws[0].count(i) == 2 for i in range(10))


def test_collator_pairs_forget_and_retain_batches(tiny_model, tiny_tokenizer):
    forget = forget_with_reference(tiny_model, tiny_tokenizer)
    collator = ForgetRetainCollator(tiny_tokenizer, qa_dataset(RETAIN, tiny_tokenizer), batch_size=4, seed=0)
    batch = collator([forget[i] for i in range(3)])
    assert batch["input_ids"].shape[0] == 3 and batch[REF_COLUMN].shape == (3,)
    assert batch["retain_input_ids"].shape[0] == 4
    assert set(batch) == {
        "input_ids",
        "attention_mask",
        "labels",
        REF_COLUMN,
        "retain_input_ids",
        "retain_attention_mask",
        "retain_labels",
    }


def test_masked_update_restores_model_after_an_error(tiny_model_factory):
    model = tiny_model_factory(0)
    g = torch.Generator().manual_seed(0)
    mask = select_top_p({n: torch.rand(w.shape, generator=g) for n, w in eligible_parameters(model).items()}, 1)
    before = snapshot(model)
    with pytest.raises(RuntimeError), masked_update(model, mask, "sparse"):
        assert sum(p.numel() for p in model.parameters() if p.requires_grad) == mask.k
        raise RuntimeError("boom")
    assert not any(isinstance(m, SelectedValues) for m in model.modules())
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_measure_state_counts_shared_storage_once(tiny_model_factory):
    model = tiny_model_factory(0)
    n = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    state = measure_state(model, reference=[torch.zeros(10)])
    assert (state.weights, state.gradients, state.optimizer, state.reference) == (4 * n + buffers, 0, 0, 40)


def test_config_validates_and_documents_every_field():
    assert all(UnlearnConfig.help().values())
    defaults = UnlearnConfig()
    assert (defaults.method, defaults.beta, defaults.sigma2, defaults.update) == ("match", 0.3, 1e-3, "sparse")
    assert (defaults.p_percent, defaults.alpha, defaults.max_epochs) == (30.0, 4.0, 30)
    assert (defaults.relearn_guard, defaults.stop_rule) == (1.0, "attacks")
    json.dumps(defaults.to_dict())
    assert UnlearnConfig(eligible_modules=["q_proj"]).eligible_modules == ("q_proj",)
    for bad in (
        {"method": "dpo"},
        {"p_percent": 0},
        {"p_percent": 101},
        {"beta": 0},
        {"alpha": -1},
        {"learning_rate": 0},
        {"epochs": 0},
        {"batch_size": 0},
        {"sigma2": -1},
        {"update": "lora"},
        {"lr_scheduler": "nope"},
        {"eligible_modules": ()},
        {"eps": 0},
    ):
        with pytest.raises(ValueError):
            UnlearnConfig(**bad)


def test_npo_trainer_refuses_a_forget_set_without_reference(tiny_model, tiny_tokenizer):
    with pytest.raises(ValueError, match=REF_COLUMN):
        UnlearnTrainer(
            tiny_model,
            UnlearnConfig(method="npo"),
            qa_dataset(FORGET, tiny_tokenizer),
            qa_dataset(RETAIN, tiny_tokenizer),
            tiny_tokenizer,
        )
