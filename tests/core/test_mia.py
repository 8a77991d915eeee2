"""Membership-inference scores, their AUCs and PrivLeak on constructed inputs with known answers."""

import math

import pytest
import torch

from grin_core.evaluation.evaluate import EvalSuite, evaluate_suite
from grin_core.metrics.likelihood import answer_logprobs, answer_token_stats
from grin_core.metrics.mia import (
    mia_auc,
    min_k_plus_plus_score,
    min_k_score,
    privleak,
    scored_answer_text,
    without_eos,
    zlib_scores,
)


def _roc_auc_forget0_holdout1(forget_scores, holdout_scores):
    """OpenUnlearning's call, roc_auc_score([0]*n_f + [1]*n_h, scores), by its definition:
    P(score of a label-1 row > score of a label-0 row), ties 1/2."""
    pairs = [(h > f) + 0.5 * (h == f) for f in forget_scores for h in holdout_scores]
    return sum(pairs) / len(pairs)


def test_auc_orientation_separated_identical_and_hand_computed():
    assert mia_auc([0.1, 0.2, 0.3], [1.0, 2.0]) == 1.0  # members far likelier: fully memorised
    assert mia_auc([1.0, 2.0], [0.1, 0.2, 0.3]) == 0.0  # members far less likely: over-unlearned
    same = [0.5, 1.0, 1.5, 2.0]
    assert mia_auc(same, same) == 0.5  # indistinguishable
    # members [1, 3, 5], non-members [2, 4]: member < non-member in (1,2) (1,4) (3,4) = 3 of 6 pairs
    assert mia_auc([1, 3, 5], [2, 4]) == pytest.approx(3 / 6)
    assert mia_auc([1, 2, 2], [2, 3]) == pytest.approx((2 + 0.5 + 1 + 0.5 + 1) / 6)
    for members, others in (([1, 3, 5], [2, 4]), ([0.2, 0.2, 0.9], [0.2, 0.5])):
        assert mia_auc(members, others) == pytest.approx(_roc_auc_forget0_holdout1(members, others))
    with pytest.raises(ValueError):
        mia_auc([], [1.0])


def test_zlib_scores_divide_loss_by_compressed_bytes():
    texts = ["", "a", "a" * 40, "The author was born in Paris."]
    # zlib.compress at the default level: 8 bytes of header/trailer, then the deflate stream
    assert zlib_scores([8.0, 9.0, 12.0, 3.7], texts).tolist() == pytest.approx([1.0, 1.0, 1.0, 0.1])
    with pytest.raises(ValueError):
        zlib_scores([1.0], ["a", "b"])


def test_scored_answer_text_is_the_decoded_labels(tiny_tokenizer):
    text = scored_answer_text("The author was born in Paris.", tiny_tokenizer)
    assert text.strip() == "The author was born in Paris."


def test_min_k_score_known_values():
    lp = torch.tensor([-1.0, -2.0, -3.0, -4.0, -5.0])
    assert min_k_score(lp, k=0.4) == pytest.approx(4.5)  # lowest int(0.4 * 5) = 2: -5, -4
    assert min_k_score(lp[:4], k=0.4) == pytest.approx(4.0)  # int(1.6) = 1 token
    assert min_k_score(lp[:1], k=0.4) == pytest.approx(1.0)  # at least one token
    assert min_k_score(lp, k=1.0) == pytest.approx(3.0)  # k = 1 is the mean loss
    with pytest.raises(ValueError):
        min_k_score(torch.tensor([]))


def test_min_k_plus_plus_standardises_by_the_vocabulary_distribution():
    logp = torch.tensor([-1.0, -2.0, -2.001, -0.5], dtype=torch.float64)
    mu = torch.tensor([-2.0, -2.0, -2.0, -1.0], dtype=torch.float64)
    sigma = torch.tensor([0.5, 1.0, 0.0, 0.25], dtype=torch.float64)
    # z = [2, 0, -0.001 / 1e-3 (sigma floor) = -1, 2]; lowest int(0.4 * 4) = 1 -> -(-1)
    assert min_k_plus_plus_score(logp, mu, sigma, k=0.4) == pytest.approx(1.0)
    assert min_k_plus_plus_score(logp, mu, sigma, k=1.0) == pytest.approx(-(2 + 0 - 1 + 2) / 4)
    assert without_eos(logp).tolist() == logp[:3].tolist() and without_eos(logp[:1]).tolist() == [-1.0]


def test_privleak_percent_against_reference():
    assert privleak(0.5) == 0.0  # a never-seen level against the default 0.5
    assert privleak(1.0) == pytest.approx(-100.0)  # fully memorised: all leaks
    assert privleak(0.0) == pytest.approx(100.0)  # over-unlearned
    assert privleak(0.8, reference_auc=0.7) == pytest.approx((0.2 - 0.3) / 0.3 * 100)
    assert privleak(0.7, reference_auc=0.7) == 0.0
    with pytest.raises(ValueError):
        privleak(0.5, reference_auc=1.0)


def test_answer_token_stats_match_the_full_distribution(tiny_model, tiny_tokenizer):
    questions = ["Who is X?", "Where was the author born?", "Why?"]
    answers = ["X is a writer.", "In Paris, France, in 1970.", "Because."]
    stats = answer_token_stats(tiny_model, tiny_tokenizer, questions, answers, batch_size=2)
    plain = answer_logprobs(tiny_model, tiny_tokenizer, questions, answers, batch_size=2)
    from grin_core.data.qa import encode_qa

    for q, a, s, lp in zip(questions, answers, stats, plain):
        assert torch.allclose(s.logp, lp, atol=1e-5)
        enc = encode_qa(q, a, tiny_tokenizer)
        with torch.no_grad():
            logits = tiny_model(input_ids=torch.tensor([enc["input_ids"]])).logits[0, :-1]
        positions = torch.tensor(enc["labels"][1:]) != -100
        logp_v = torch.log_softmax(logits[positions].double(), -1)
        mu = (logp_v.exp() * logp_v).sum(-1)
        var = (logp_v.exp() * logp_v**2).sum(-1) - mu**2
        assert len(s.mu) == len(lp) == int(positions.sum())
        assert torch.allclose(s.mu.double(), mu, atol=1e-4) and torch.allclose(s.sigma.double(), var.sqrt(), atol=1e-4)


def test_evaluate_suite_privacy_keys_and_identical_sets(tiny_model, tiny_tokenizer):
    rows = [
        {"question": "Who is X?", "answer": "X is a writer."},
        {"question": "Where was the author born?", "answer": "In Paris, France, in 1970."},
        {"question": "What did the author write?", "answer": "Three novels about the sea."},
    ]
    # holdout = forget: every attack sees identical scores -> chance level exactly, no leak
    result = evaluate_suite(
        tiny_model, tiny_tokenizer, EvalSuite(forget=rows, holdout=rows), max_new_tokens=4, progress=False
    )
    m = result.metrics
    keys = {
        "mia_auc",
        "mia_zlib_auc",
        "mia_mink_auc",
        "mia_minkpp_auc",
        "forget_holdout_prob_ratio",
        "holdout_prob",
        "privleak",
        "privleak_reference_auc",
    }
    assert keys <= set(m)
    assert all(m[k] == pytest.approx(0.5) for k in ("mia_auc", "mia_zlib_auc", "mia_mink_auc", "mia_minkpp_auc"))
    assert m["privleak"] == pytest.approx(0.0) and m["privleak_reference_auc"] == 0.5
    assert m["forget_holdout_prob_ratio"] == pytest.approx(1.0) and m["holdout_prob"] == pytest.approx(m["forget_prob"])
    for key in ("forget_loss", "holdout_loss", "forget_mink", "holdout_minkpp", "forget_zlib"):
        assert len(result.per_example[key]) == len(rows)
    with_ref = evaluate_suite(
        tiny_model,
        tiny_tokenizer,
        EvalSuite(forget=rows, holdout=rows),
        max_new_tokens=4,
        progress=False,
        reference_auc=0.75,
    ).metrics
    assert (
        with_ref["privleak"] == pytest.approx((0.5 - 0.25) / 0.25 * 100) and with_ref["privleak_reference_auc"] == 0.75
    )
    no_holdout = evaluate_suite(tiny_model, tiny_tokenizer, EvalSuite(forget=rows), max_new_tokens=4, progress=False)
    assert not keys & set(no_holdout.metrics)
    assert math.isfinite(m["mia_minkpp_auc"])
