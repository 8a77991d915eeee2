"""Two CPU processes (gloo) under `accelerate launch` give one process's mask and weights."""

import json

import pytest
import torch

from grin_core.models.checkpoint import load_checkpoint, save_checkpoint
from grin_core.runtime.stage_job import CHECKPOINT, RESULT, SCORED_MASK, launch, progress_in, write_job
from grin_core.scoring.mask import Mask
from grin_core.unlearning.unlearn import score_and_select, unlearn
from grin_core.unlearning.unlearn_config import UnlearnConfig
from tests.core.test_unlearn import FORGET, RETAIN

# One step per epoch covers the whole forget set (batch 8 = 2 ranks x 4), so both runs see the same
# batches whatever order each sampler draws; the retain batch is one global draw of the seeded stream.
CONFIG = UnlearnConfig(
    method="npo", stop_rule="loss", p_percent=2.0, epochs=3, batch_size=8, learning_rate=1e-2, scoring_batch_size=4
)


@pytest.mark.slow
def test_two_processes_score_the_same_mask_and_unlearn_to_the_same_weights(
    tiny_model_factory, tiny_tokenizer, tmp_path
):
    parent = tmp_path / "parent"
    save_checkpoint(tiny_model_factory(0), tiny_tokenizer, parent)
    single_model, _ = load_checkpoint(parent)
    single = unlearn(single_model, tiny_tokenizer, FORGET, RETAIN, CONFIG)  # scores, then unlearns

    # One launch does both stages (no mask given: the ranks score first), which keeps the test short.
    epochs = []
    job = write_job(tmp_path / "job", "unlearn", parent, FORGET, RETAIN, CONFIG.to_dict(), card={"method": "GRIN-NPO"})
    launch(job, processes=2, log=epochs.append)
    assert [round(e["epoch"]) for e in epochs if "loss" in e] == [1, 2, 3]  # rank 0's lines, relayed
    result = json.loads((job / RESULT).read_text())
    assert result["processes"] == 2
    assert result["mask_sha256"] == single.mask.content_sha256()  # the same scores, the same top p %

    original, _ = load_checkpoint(parent)
    distributed, _ = load_checkpoint(job / CHECKPOINT)
    before, after, expected = (dict(m.named_parameters()) for m in (original, distributed, single_model))
    moved = 0
    for name, weight in after.items():
        torch.testing.assert_close(weight, expected[name], rtol=0, atol=1e-5)
        frozen = ~single.mask.tensors[name] if name in single.mask.tensors else torch.ones_like(weight, dtype=bool)
        assert torch.equal(weight[frozen], before[name][frozen]), name  # unselected: bit-identical
        moved += int((weight != before[name]).sum())
    assert 0 < moved <= single.mask.k


@pytest.mark.slow
def test_two_processes_score_the_same_mask_and_relay_rank_zeros_steps(tiny_model_factory, tiny_tokenizer, tmp_path):
    parent = tmp_path / "parent"
    save_checkpoint(tiny_model_factory(0), tiny_tokenizer, parent)
    model, _ = load_checkpoint(parent)
    expected = score_and_select(model, tiny_tokenizer, FORGET, RETAIN, CONFIG)

    relayed = []
    job = write_job(tmp_path / "job", "score", parent, FORGET, RETAIN, CONFIG.to_dict())
    launch(job, processes=2, log=relayed.append)
    assert Mask.load(job / SCORED_MASK).content_sha256() == expected.content_sha256()
    steps = [r for r in relayed if "step" in r]
    # rank 0's two gradient passes (forget, retain), each announced once, with their count
    assert [(r["done"], r["total"]) for r in steps] == [(0, 2), (1, 2)]


def test_a_progress_line_is_read_wherever_another_rank_left_it():
    line = '{"grin_progress": {"step": "retain", "done": 1, "total": 2}}\n'
    # rank 1's unterminated progress bar ran into rank 0's line on the shared pipe (seen once in CI)
    glued = "Loading weights: 100%|##########| 21/21 [00:00<00:00]\r" + line
    assert progress_in(line) == progress_in(glued) == {"step": "retain", "done": 1, "total": 2}
    assert progress_in("Loading weights:  0%|\n") is None
