"""Profile matching and the relearning guard: the maths with known answers, and the signature test
(only selected weights move) with both on."""

import pytest
import torch
import torch.nn.functional as F

from grin_core.data.qa import qa_collator, qa_dataset
from grin_core.evaluation.calibration import text_aware_zlib_auc
from grin_core.metrics.likelihood import AnswerTokenStats, answer_token_stats
from grin_core.metrics.mia import zlib_size
from grin_core.scoring.masked_update import masked_update
from grin_core.unlearning.nonmember_profiles import NonMemberProfiles, ProfileTargets, resample_sorted
from grin_core.unlearning.objectives import answer_token_logprobs_and_z, profile_excess_loss, profile_match_loss
from grin_core.unlearning.relearn_guard import attacker_weights, relearn_guard_backward
from grin_core.unlearning.unlearn import score_and_select, unlearn
from grin_core.unlearning.unlearn_config import UnlearnConfig
from tests.core.test_unlearn import FORGET, RETAIN, assert_only_mask_moved, snapshot

NEVER_SEEN = [
    {"question": f"What did writer {i} study?", "answer": f"Writer {i} studied marine biology in Oslo."}
    for i in range(6)
]


def _stats(*logps):
    return [AnswerTokenStats(torch.tensor(lp), torch.zeros(len(lp)), torch.ones(len(lp))) for lp in logps]


def test_profile_match_loss_by_hand():
    # one row: sorted (-3, -1) against target (-2, -2): Huber(beta 1) of |1| each = 0.5; z the same
    logp = torch.tensor([-1.0, -3.0])
    target = (torch.tensor([-2.0, -2.0]), torch.tensor([-2.0, -2.0]))
    assert profile_match_loss(logp, logp, [2], [target], z_weight=0.0).item() == pytest.approx(0.5)
    assert profile_match_loss(logp, logp, [2], [target], z_weight=2.0).item() == pytest.approx(1.5)
    # two-sided: an answer below its target is pulled up, the gradient points up
    low = torch.tensor([-9.0, -8.0], requires_grad=True)
    profile_match_loss(low, low.detach(), [2], [target], z_weight=0.0).backward()
    assert (low.grad < 0).all()  # minimising raises the log-probs
    # one-sided excess: only what sits above the target counts
    assert profile_excess_loss(logp, [2], [target]).item() == pytest.approx((0 + 1) / 2)


def test_resampled_profiles_and_rank_quantiles_by_hand():
    assert resample_sorted([0.0, 1.0], 4).tolist() == pytest.approx([0.0, 0.25, 0.75, 1.0])
    profiles = NonMemberProfiles(_stats([-1.0, -3.0], [-5.0, -7.0, -6.0], [-0.5, -0.1]))
    assert profiles.means.tolist() == pytest.approx([-6.0, -2.0, -0.3])  # ordered by mean
    logp, z = profiles.targets(0.0, 3)
    assert logp.tolist() == pytest.approx([-7.0, -6.0, -5.0]) and z.tolist() == pytest.approx([-7.0, -6.0, -5.0])
    targets = ProfileTargets(profiles, 3)
    targets.set_ranks([-0.2, -9.0, -1.0])  # the likeliest answer gets the likeliest never-seen profile
    assert targets.quantiles.tolist() == pytest.approx([5 / 6, 1 / 6, 3 / 6])
    ((first, _),) = targets.for_rows([0], [2], torch.device("cpu"))
    assert first.tolist() == pytest.approx([-0.5, -0.1])


def test_token_z_scores_equal_the_min_k_plus_plus_statistics(tiny_model, tiny_tokenizer):
    stats = answer_token_stats(
        tiny_model, tiny_tokenizer, [r["question"] for r in FORGET[:3]], [r["answer"] for r in FORGET[:3]]
    )
    batch = qa_collator(tiny_tokenizer)(qa_dataset(FORGET[:3], tiny_tokenizer).remove_columns(["length"]).to_list())
    with torch.no_grad():
        logits = tiny_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logp, z, counts = answer_token_logprobs_and_z(logits, batch["labels"])
    assert counts == [len(s.logp) for s in stats]
    expected = torch.cat([(s.logp - s.mu) / s.sigma.clamp(min=1e-3) for s in stats])
    assert torch.allclose(logp, torch.cat([s.logp for s in stats]), atol=1e-4)
    assert torch.allclose(z, expected, atol=1e-3)


def test_text_aware_zlib_level_by_hand():
    texts = ["aaaaaaaaaa", "the quick brown fox"]
    sizes = [zlib_size(t) for t in texts]
    losses = [1.0, 2.0]
    paired = sorted(loss / size for loss in losses for size in sizes)
    # a holdout score between the 2nd and 3rd of the 4 paired scores: 2 of 4 members rank below it
    holdout = [(paired[1] + paired[2]) / 2]
    assert text_aware_zlib_auc(losses, texts, holdout) == pytest.approx(0.5)


def test_the_attacker_moves_every_weight_by_its_sign_step(tiny_model_factory, tiny_tokenizer):
    model = tiny_model_factory(0)
    batch = qa_collator(tiny_tokenizer)(qa_dataset(FORGET[:2], tiny_tokenizer).remove_columns(["length"]).to_list())
    moved = attacker_weights(model, batch, eps=1e-3)
    for name, param in model.named_parameters():
        delta = (moved[name] - param).abs()
        assert torch.all((delta < 1.01e-3) & ((delta > 0.99e-3) | (delta == 0))), name
        assert not param.requires_grad or moved[name].requires_grad


def test_the_guard_adds_gradient_to_the_selected_weights_only(tiny_model_factory, tiny_tokenizer):
    model = tiny_model_factory(0)
    config = UnlearnConfig(p_percent=5.0, scoring_batch_size=8)
    mask = score_and_select(model, tiny_tokenizer, FORGET, RETAIN, config)
    profiles = ProfileTargets(NonMemberProfiles.of_records(model, tiny_tokenizer, NEVER_SEEN), len(FORGET))
    rows = torch.arange(4)
    batch = qa_collator(tiny_tokenizer)(qa_dataset(FORGET[:4], tiny_tokenizer).remove_columns(["length"]).to_list())
    before = snapshot(model)
    with masked_update(model, mask, "sparse"):
        excess = relearn_guard_backward(model, batch, profiles, rows, eps=1e-2, weight=1.0)
        grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
        frozen_grads = [p.grad for p in model.parameters() if not p.requires_grad]
    assert excess is not None and excess >= 0
    assert grads and all(g is not None for g in grads.values())
    assert all(g is None for g in frozen_grads)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())  # nothing stepped yet


def test_match_with_the_guard_moves_only_selected_weights(tiny_model_factory, tiny_tokenizer):
    model = tiny_model_factory(0)
    config = UnlearnConfig(
        method="match",
        p_percent=2.0,
        epochs=2,
        batch_size=4,
        learning_rate=1e-2,
        scoring_batch_size=8,
        sigma2=0.0,
        relearn_guard=1.0,
        relearn_eps=1e-3,
        stop_rule="attacks",
        max_epochs=2,
    )
    mask = score_and_select(model, tiny_tokenizer, FORGET, RETAIN, config)
    before = snapshot(model)
    result = unlearn(
        model,
        tiny_tokenizer,
        FORGET,
        RETAIN,
        config,
        mask=mask,
        holdout_records=NEVER_SEEN[:3],
        calibration_records=NEVER_SEEN[3:],
    )
    assert_only_mask_moved(model, before, mask)
    parts = {k for entry in result.history for k in entry}
    assert {"forget_match", "relearn_excess"} <= parts
    assert set(result.levels["aucs"]) == {"loss", "zlib", "mink", "minkpp"}
    assert all(f"mia_{a}_auc" in result.probes[0] for a in ("zlib", "mink", "minkpp"))
    stages = result.flops["stages"]
    assert "scoring" not in stages and stages["probes"]["forward_tokens"] > 0  # the mask was given
    assert stages["training"]["trained_tokens"] > 0 and stages["nonmember"]["forward_tokens"] > 0


def test_match_without_never_seen_records_is_refused(tiny_model, tiny_tokenizer):
    with pytest.raises(ValueError, match="never-seen records"):
        unlearn(tiny_model, tiny_tokenizer, FORGET, RETAIN, UnlearnConfig(method="match", epochs=1))


def test_huber_threshold_bounds_a_far_tokens_pull():
    far = torch.tensor([-30.0], requires_grad=True)
    profile_match_loss(
        far, far.detach(), [1], [(torch.tensor([-2.0]), torch.tensor([0.0]))], z_weight=0.0, delta=1.0
    ).backward()
    assert far.grad.abs().item() == pytest.approx(1.0)
    assert F.smooth_l1_loss(torch.tensor([0.5]), torch.tensor([0.0])).item() == pytest.approx(0.125)
