"""GRUN: the gated intervention leaves the base alone, trains alone, saves apart and gates by input."""

import copy

import pytest
import torch

from grin_core.data.qa import qa_collator, qa_dataset
from grin_core.data.tofu import TofuSubset, load_tofu
from grin_core.models.checkpoint import save_checkpoint
from grin_core.scoring.gri import decoder_layers
from grin_core.unlearning.grun import (
    INTERVENTIONS,
    attach,
    detach,
    interventions_of,
    load_interventions,
    save_interventions,
)
from grin_core.unlearning.grun_config import GrunConfig, GrunShape
from grin_core.unlearning.grun_train import gate_targets, grun_unlearn
from tests.fixtures.models import TOFU_DIR


@pytest.fixture(scope="module")
def records():
    data = load_tofu(TofuSubset(n_authors=20, split="forget10", n_general=0), TOFU_DIR)
    return data.forget[:8], data.retain[:16]


def batch(tokenizer, rows):
    return qa_collator(tokenizer)(
        [{k: r[k] for k in ("input_ids", "attention_mask", "labels")} for r in qa_dataset(rows, tokenizer)]
    )


def logits(model, inputs):
    with torch.no_grad():
        return model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits


def gate_means(model, tokenizer, forget, retain):
    """Mean sigmoid of the newest module's gates on forget rows (from the prompt's end) and retain rows."""
    gates = list(interventions_of(model).requests[-1].at.values())
    means = []
    for rows, is_forget in ((forget, True), (retain, False)):
        inputs = batch(tokenizer, rows)
        for gate in gates:
            gate.recorded = []
        logits(model, inputs)
        _, weights = gate_targets(inputs["labels"], inputs["attention_mask"], forget=is_forget)
        values = torch.stack([torch.sigmoid(g.recorded[0]) for g in gates]).mean(0)
        for gate in gates:
            gate.recorded = None
        means.append(((values * weights).sum() / weights.sum()).item())
    return means


def test_a_gate_forced_shut_gives_the_base_model_bit_for_bit(tiny_model_factory, tiny_tokenizer, records):
    base, model = tiny_model_factory(0), tiny_model_factory(0)
    module = attach(model, GrunShape(rank=2, gate="linear", layers=(0, 1)), seed=1)
    inputs = batch(tiny_tokenizer, records[0])
    assert not torch.equal(logits(model, inputs), logits(base, inputs))  # the premise: it intervenes
    for gate in module.at.values():
        gate.force_gate = 0.0
    assert torch.equal(logits(model, inputs), logits(base, inputs))
    for gate in module.at.values():
        gate.force_gate = None
    detach(model)
    assert torch.equal(logits(model, inputs), logits(base, inputs))
    assert not any(name.startswith("grun") for name in model.state_dict())


def test_the_default_layers_are_in_the_upper_half_and_bad_ones_are_refused(tiny_model):
    assert GrunShape().resolved_layers(32) == (18, 25, 31)
    assert GrunShape().resolved_layers(2) == (0, 1)
    with pytest.raises(ValueError, match="has 2 decoder layers"):
        GrunShape(layers=(5,)).resolved_layers(2)
    with pytest.raises(ValueError, match="gate"):
        GrunShape(gate="attention")
    assert len(decoder_layers(tiny_model)) == 2


def test_training_changes_only_the_intervention_and_save_load_reproduces_it(
    tiny_model_factory, tiny_tokenizer, records, tmp_path
):
    forget, retain = records
    model = tiny_model_factory(0)
    base_state = {k: v.clone() for k, v in model.state_dict().items()}
    base_dir = tmp_path / "base"
    base_sha = save_checkpoint(model, tiny_tokenizer, base_dir)
    result = grun_unlearn(
        model, tiny_tokenizer, forget, retain, GrunConfig(epochs=2, batch_size=4, rank=2, gate="linear")
    )

    trained = model.state_dict()
    for name, value in base_state.items():
        assert torch.equal(trained[name], value), name  # every base weight bit-identical
    grun_state = {k: v for k, v in trained.items() if k.startswith("grun.")}
    assert grun_state and result.trainable_params == sum(v.numel() for v in result.module.parameters())
    assert result.history and all("gate_bce" in entry for entry in result.history)

    out = tmp_path / "grun"
    save_interventions(model, out, base={"sha256": base_sha})
    assert (out / INTERVENTIONS).stat().st_size < 0.25 * (base_dir / "model.safetensors").stat().st_size
    reloaded = tiny_model_factory(0)
    load_interventions(reloaded, out)
    inputs = batch(tiny_tokenizer, forget)
    assert torch.equal(logits(reloaded, inputs), logits(model, inputs))
    prompt = inputs["input_ids"][:1, :6]
    assert torch.equal(
        reloaded.generate(prompt, max_new_tokens=8, do_sample=False),
        model.generate(prompt, max_new_tokens=8, do_sample=False),
    )


def test_the_gate_bce_separates_forget_prompts_from_retain_prompts(memorised_model):
    """On a trained model (a random one's residual stream is too small for a gate to read in a few steps)."""
    mm = memorised_model
    model, forget, retain = mm.load(), mm.forget, mm.retain[:64]
    config = GrunConfig(epochs=4, gate="linear")
    probe = copy.deepcopy(model)
    attach(probe, config.shape(), seed=config.seed)
    before_forget, before_retain = gate_means(probe, mm.tokenizer, forget, retain)
    grun_unlearn(model, mm.tokenizer, forget, retain, config)
    after_forget, after_retain = gate_means(model, mm.tokenizer, forget, retain)
    assert after_forget - after_retain > max(0.3, 2 * abs(before_forget - before_retain)), (
        before_forget,
        before_retain,
        after_forget,
        after_retain,
    )


def test_a_second_request_keeps_the_first_ones_module_unchanged(tiny_model_factory, tiny_tokenizer, records):
    forget, retain = records
    model = tiny_model_factory(0)
    grun_unlearn(model, tiny_tokenizer, forget[:4], retain, GrunConfig(epochs=1, batch_size=4, rank=2))
    first = {k: v.clone() for k, v in interventions_of(model).requests[0].state_dict().items()}
    result = grun_unlearn(model, tiny_tokenizer, forget[4:], retain, GrunConfig(epochs=1, batch_size=4, rank=2, seed=1))
    stack = interventions_of(model)
    assert len(stack.requests) == 2 and result.module is stack.requests[1]
    for name, value in stack.requests[0].state_dict().items():
        assert torch.equal(value, first[name]), name
    assert result.total_intervention_params == 2 * result.trainable_params


def test_a_deep_copy_applies_its_own_interventions(tiny_model_factory, tiny_tokenizer, records):
    """The probes (quantisation, relearning) work on deep copies: a copy's hooks must use the copy's tensors."""
    model = tiny_model_factory(0)
    module = attach(model, GrunShape(rank=2, gate="linear", layers=(1,)), seed=1)
    copied = copy.deepcopy(model)
    inputs = batch(tiny_tokenizer, records[0])
    assert torch.equal(logits(copied, inputs), logits(model, inputs))
    for gate in interventions_of(copied).gates():
        gate.force_gate = 0.0
    base = tiny_model_factory(0)
    assert torch.equal(logits(copied, inputs), logits(base, inputs))
    assert not torch.equal(logits(model, inputs), logits(base, inputs))  # the original still intervenes
    assert module.at["1"].force_gate is None
