"""Evaluation: a memorised model scores high, a random one low; missing parts leave keys out."""

import math
from dataclasses import replace

import pytest

from grin_core.evaluation.evaluate import EvalSuite, evaluate, evaluate_suite
from grin_core.models.tiny_llama import build_model
from tests.fixtures.models import MEMORISED_MODEL_CONFIG


def test_missing_parts_leave_keys_out(tiny_model, tiny_tokenizer):
    suite = EvalSuite(forget=[{"question": "Who is X?", "answer": "X is a writer."}])
    metrics = evaluate(tiny_model, tiny_tokenizer, suite, max_new_tokens=4, progress=False)
    assert set(metrics) == {"forget_rougeL", "forget_prob"}
    assert 0 <= metrics["forget_prob"] <= 1


def test_memorised_model_scores_high_and_random_low(memorised_model):
    suite = replace(memorised_model.suite, retain=memorised_model.suite.retain[:20])  # keep it fast
    result = evaluate_suite(memorised_model.load(), memorised_model.tokenizer, suite, progress=False)
    m = result.metrics
    expected = {
        f"{p}_{s}"
        for p in ("forget", "retain", "real_authors", "world_facts")
        for s in ("rougeL", "prob", "truth_ratio")
    }
    assert expected | {"forget_keyword_acc", "forget_keyword_conf", "model_utility", "mia_auc"} <= set(m)
    assert m["forget_rougeL"] >= 0.85 and m["retain_rougeL"] >= 0.85
    assert m["forget_keyword_acc"] >= 0.8 and m["mia_auc"] >= 0.9 and m["model_utility"] >= 0.5
    # memorised answers against unseen authors' answers: every attack separates them, all leaks
    assert all(m[k] >= 0.9 for k in ("mia_zlib_auc", "mia_mink_auc", "mia_minkpp_auc"))
    assert m["privleak"] <= -80 and m["privleak_reference_auc"] == 0.5
    assert m["forget_holdout_prob_ratio"] > 10 and 0 < m["holdout_prob"] < m["forget_prob"]
    per = result.per_example
    typical = math.exp(
        sum(per["holdout_loss"]) / len(per["holdout_loss"]) - sum(per["forget_loss"]) / len(suite.forget)
    )
    assert m["forget_holdout_typical_prob_ratio"] == pytest.approx(typical) and typical > 10
    n_ratios, n_forget = len(result.per_example["forget_truth_ratio"]), len(suite.forget)
    assert n_ratios == n_forget  # counts only: a failing assert prints its operands

    small = replace(suite, retain=suite.retain[:5], real_authors=None, world_facts=None)
    random_model = build_model(MEMORISED_MODEL_CONFIG, memorised_model.tokenizer, seed=1)
    r = evaluate(
        random_model,
        memorised_model.tokenizer,
        small,
        max_new_tokens=16,
        progress=False,
        retrained_forget_truth_ratios=result.per_example["forget_truth_ratio"],
    )
    assert r["forget_rougeL"] < 0.2 and r["retain_rougeL"] < 0.2 and r["forget_prob"] < 0.05
    assert "model_utility" not in r and "forget_quality" in r
    assert r["forget_quality"] < 0.05  # a random model's truth ratios are not a memorised one's
