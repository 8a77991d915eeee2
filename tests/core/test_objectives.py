"""Unlearning losses on fixed inputs with known answers."""

import math

import pytest
import torch

from grin_core.data.qa import IGNORE_INDEX
from grin_core.unlearning.objectives import (
    answer_nll,
    answer_token_count,
    graddiff_objective,
    npo_loss,
    npo_objective,
    po_objective,
    sequence_logprob,
    simnpo_loss,
    token_logprobs,
)
from grin_core.unlearning.refusals import REFUSALS, refusal_for, refusal_records

X = IGNORE_INDEX


def hand_logits() -> tuple[torch.Tensor, torch.Tensor]:
    """Two sequences of 4 positions over a 3-token vocabulary with chosen probabilities.

    Row 0 predicts token 1 at position 0 with p=1/2 and token 2 at position 1 with p=1/4;
    row 1 has one answer token, predicted at position 2 with p=1/3 (uniform logits).
    """
    probs = torch.full((2, 4, 3), 1 / 3)
    probs[0, 0] = torch.tensor([0.25, 0.5, 0.25])
    probs[0, 1] = torch.tensor([0.5, 0.25, 0.25])
    labels = torch.tensor([[X, 1, 2, X], [X, X, X, 0]])
    return probs.log(), labels


def test_sequence_logprob_on_hand_made_logits():
    logits, labels = hand_logits()
    assert sequence_logprob(logits, labels).tolist() == pytest.approx([math.log(0.5) + math.log(0.25), math.log(1 / 3)])
    assert answer_token_count(labels).tolist() == [2, 1]
    per_token = token_logprobs(logits, labels)
    assert per_token.shape == (2, 3) and per_token[1, :2].tolist() == [0.0, 0.0]


def test_sequence_logprob_is_shift_invariant_to_logit_offsets_and_ignores_padding():
    logits, labels = hand_logits()
    shifted = logits + torch.randn(2, 4, 1)  # softmax ignores a per-position constant
    assert torch.allclose(sequence_logprob(shifted, labels), sequence_logprob(logits, labels), atol=1e-6)
    garbage = logits.clone()
    garbage[1, :2] = 100 * torch.randn(2, 3)  # positions whose targets are ignored
    assert torch.allclose(sequence_logprob(garbage, labels), sequence_logprob(logits, labels))


def test_answer_nll_is_token_mean_and_matches_hf_loss():
    logits, labels = hand_logits()
    expected = -(math.log(0.5) + math.log(0.25) + math.log(1 / 3)) / 3
    assert answer_nll(logits, labels).item() == pytest.approx(expected)
    hf = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 3), labels[:, 1:].reshape(-1))
    assert answer_nll(logits, labels).item() == pytest.approx(hf.item())


def test_npo_loss_equals_formula_on_fixed_logprobs():
    theta = torch.tensor([-10.0, -3.0, -50.0])
    ref = torch.tensor([-12.0, -3.0, -20.0])
    beta = 0.1

    def sig(x):
        return 1 / (1 + math.exp(-x))

    expected = -(2 / beta) * sum(math.log(sig(-beta * (t - r))) for t, r in zip(theta.tolist(), ref.tolist())) / 3
    assert npo_loss(theta, ref, beta).item() == pytest.approx(expected, rel=1e-6)
    # at theta == ref the loss is (2/beta) log 2, and it falls as the forget likelihood falls
    assert npo_loss(ref, ref, beta).item() == pytest.approx(2 / beta * math.log(2), rel=1e-6)
    assert npo_loss(ref - 5, ref, beta) < npo_loss(ref, ref, beta)
    total = npo_objective(theta, ref, torch.tensor(0.7), beta=beta, alpha=2.0)
    assert total.item() == pytest.approx(expected + 1.4, rel=1e-6)


def test_npo_gradient_vanishes_as_forget_likelihood_collapses():
    theta = torch.tensor([-1.0, -500.0], requires_grad=True)
    npo_loss(theta, torch.tensor([-1.0, -1.0]), 0.1).backward()
    assert theta.grad[0].item() == pytest.approx(0.5)  # (2/beta) * sigmoid(0) * beta / n = 1 * 0.5
    assert abs(theta.grad[1].item()) < 1e-6  # NPO's bounded, self-limiting ascent


def test_simnpo_loss_is_npo_on_the_length_normalised_likelihood_without_a_reference():
    logp, lengths, beta, gamma = torch.tensor([-30.0, -2.0]), torch.tensor([10, 4]), 0.3, 0.5

    def sig(x):
        return 1 / (1 + math.exp(-x))

    expected = -(2 / beta) * sum(math.log(sig(-beta * lp / n - gamma)) for lp, n in ((-30, 10), (-2, 4))) / 2
    assert simnpo_loss(logp, lengths, beta, gamma).item() == pytest.approx(expected, rel=1e-6)
    # the same per-token likelihood gives the same loss whatever the answer's length
    assert simnpo_loss(torch.tensor([-6.0]), torch.tensor([3]), beta).item() == pytest.approx(
        simnpo_loss(torch.tensor([-60.0]), torch.tensor([30]), beta).item()
    )


def test_simnpo_keeps_pushing_where_npo_has_saturated():
    """30 answer tokens at a per-token log-prob of -3 (prob 0.05): NPO's weight on the sequence has
    all but vanished at beta 0.1, SimNPO's at beta 0.3 has not (why the push reaches unseen levels)."""
    theta = torch.tensor([-90.0], requires_grad=True)
    npo_loss(theta, torch.tensor([-1.0]), 0.1).backward()
    npo_grad, theta.grad = theta.grad.abs().item(), None
    simnpo_loss(theta, torch.tensor([30]), 0.3).backward()
    assert npo_grad < 1e-3 and theta.grad.abs().item() * 30 > 0.5


def test_graddiff_and_po_objectives():
    forget, retain = torch.tensor(2.5), torch.tensor(0.4)
    assert graddiff_objective(forget, retain, alpha=1.0).item() == pytest.approx(-2.1)
    assert graddiff_objective(forget, retain, alpha=0.5).item() == pytest.approx(-2.3)
    assert po_objective(torch.tensor(1.2), retain, alpha=2.0).item() == pytest.approx(2.0)


def test_refusals_are_deterministic_varied_and_keep_only_the_question():
    questions = [f"Who wrote book number {i}?" for i in range(200)]
    picked = [refusal_for(q) for q in questions]
    assert picked == [refusal_for(q) for q in questions]
    assert 10 <= len(REFUSALS) <= 20 and len(set(picked)) >= 10
    records = refusal_records([{"question": "Q?", "answer": "secret", "author_id": 3}])
    assert records == [{"question": "Q?", "answer": refusal_for("Q?")}]
