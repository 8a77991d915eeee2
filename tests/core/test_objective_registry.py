"""The objective registry: a new objective is one function plus one registration line, and an unknown
name raises with the known ones."""

import pytest
import torch

from grin_core.registry import UnknownNameError
from grin_core.unlearning.methods import GRIN_OBJECTIVES, GRUN_OBJECTIVES
from grin_core.unlearning.objective_registry import OBJECTIVES, ForgetBatch, Objective
from grin_core.unlearning.objectives import answer_nll
from grin_core.unlearning.unlearn import unlearn
from grin_core.unlearning.unlearn_config import UnlearnConfig
from tests.core.test_unlearn import FORGET, RETAIN, TINY, assert_only_mask_moved, snapshot


def capped_ascent(batch: ForgetBatch) -> tuple[torch.Tensor, dict[str, float]]:
    """A toy objective: ascend the forget NLL until it reaches 5 nats/token, then stop pushing."""
    forget_nll = answer_nll(batch.logits, batch.labels)
    push = -torch.clamp(forget_nll, max=5.0)
    return batch.weight * push + batch.alpha * batch.retain_nll, {"toy_forget_nll": forget_nll.item()}


@pytest.fixture
def toy_objective():
    OBJECTIVES.register("capped_ascent", Objective(capped_ascent))  # the one registration line
    yield "capped_ascent"
    OBJECTIVES.unregister("capped_ascent")


def test_a_registered_objective_runs_through_unlearn(tiny_model_factory, tiny_tokenizer, toy_objective):
    model = tiny_model_factory(0)
    before = snapshot(model)
    result = unlearn(
        model, tiny_tokenizer, FORGET, RETAIN, UnlearnConfig(**{**TINY, "method": toy_objective, "p_percent": 1.0})
    )
    assert_only_mask_moved(model, before, result.mask)
    assert all("toy_forget_nll" in h and "retain_nll" in h for h in result.history)
    assert "reference_s" not in result.timings  # it asked for no reference pass
    assert result.summary()["config"]["method"] == toy_objective


def test_unknown_objectives_raise_with_the_known_ones():
    with pytest.raises(UnknownNameError, match="known: npo, match, graddiff, po, simnpo"):
        OBJECTIVES["dpo"]
    with pytest.raises(ValueError, match="unknown unlearning objective 'dpo'; known: npo"):
        UnlearnConfig(method="dpo")


def test_every_method_the_service_offers_is_registered():
    assert set(GRIN_OBJECTIVES) | set(GRUN_OBJECTIVES) <= set(OBJECTIVES)
    assert OBJECTIVES["npo"].needs_reference and OBJECTIVES["po"].refusal_targets


def test_a_name_is_registered_once():
    with pytest.raises(ValueError, match="already registered"):
        OBJECTIVES.register("npo", Objective(capped_ascent))
