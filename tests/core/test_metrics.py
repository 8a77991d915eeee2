"""TOFU / GRIN metrics on fixed inputs with known answers."""

import math

import pytest
import torch

from grin_core.metrics.keywords import keyword_accuracy, keyword_confidence, keyword_token_positions
from grin_core.metrics.likelihood import mean_logprob, normalised_probability, option_probability
from grin_core.metrics.mia import mia_auc
from grin_core.metrics.rouge import rouge_l_recall
from grin_core.metrics.truth_ratio import (
    forget_quality,
    forget_truth_ratio_stat,
    retain_truth_ratio_stat,
    truth_ratio,
)
from grin_core.metrics.utility import UTILITY_KEYS, model_utility


def test_rouge_l_recall_known_values():
    refs = ["the cat sat on the mat", "the cat sat on the mat", "alpha beta", "alpha beta"]
    gens = ["the cat sat on the mat and then left", "the dog sat", "", "beta alpha"]
    # LCS/|ref|: all 6 words; "the sat" = 2/6; nothing; one of two words in order
    assert rouge_l_recall(gens, refs) == pytest.approx([1.0, 2 / 6, 0.0, 0.5])


def test_rouge_l_recall_stems_and_rejects_ragged():
    assert rouge_l_recall(["He writes novels"], ["he wrote novel"])[0] == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        rouge_l_recall(["a"], ["a", "b"])


def test_normalised_probability_is_geometric_mean_per_token():
    lps = [torch.log(torch.tensor([0.5, 0.5])), torch.log(torch.tensor([0.25, 1.0, 1.0, 0.25]))]
    assert normalised_probability(lps).tolist() == pytest.approx([0.5, 0.5])
    assert mean_logprob(lps).tolist() == pytest.approx([math.log(0.5), math.log(0.5)])


def test_option_probability():
    share = option_probability(torch.tensor([0.6, 0.1]), torch.tensor([[0.2, 0.2], [0.1, 0.2]]))
    assert share.tolist() == pytest.approx([0.6, 0.25])


def test_truth_ratio_is_geometric_mean_over_perturbed_known_values():
    log = math.log
    paraphrased = torch.tensor([log(0.8), log(0.2), log(0.5)], dtype=torch.float64)  # mean token log-probs
    perturbed = [torch.tensor([log(0.2), log(0.8)]), torch.tensor([log(0.4)]), torch.tensor([log(0.5)] * 3)]
    ratios = truth_ratio(paraphrased, perturbed)
    # wrong = sqrt(0.2 * 0.8) = 0.4 (an arithmetic mean would give 0.5 / 0.8 = 0.625); 0.4 / 0.2; 0.5 / 0.5
    assert ratios.tolist() == pytest.approx([0.5, 2.0, 1.0])
    assert forget_truth_ratio_stat(ratios) == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert retain_truth_ratio_stat(ratios) == pytest.approx((0.5 + 0.0 + 0.0) / 3)
    dense = torch.log(torch.tensor([[0.1, 0.4], [0.2, 0.2]], dtype=torch.float64))  # (N, K)
    assert truth_ratio(paraphrased[:2], dense).tolist() == pytest.approx([0.2 / 0.8, 1.0])


def test_truth_ratio_from_token_logprobs_matches_reference_formula():
    """OpenUnlearning: exp(-mean_k avg_loss_k) / exp(-avg_loss_para), avg_loss = mean token loss."""
    para_tokens = [torch.log(torch.tensor([0.9, 0.1]))]  # avg loss -(log .9 + log .1)/2
    pert_tokens = [torch.log(torch.tensor([0.5, 0.5, 0.5])), torch.log(torch.tensor([0.2]))]
    avg_losses = [-float(t.mean()) for t in pert_tokens]
    expected = math.exp(-sum(avg_losses) / 2) / math.exp(float(para_tokens[0].mean()))
    ratio = truth_ratio(mean_logprob(para_tokens), [mean_logprob(pert_tokens)])
    assert ratio.item() == pytest.approx(expected) and expected == pytest.approx(math.sqrt(0.1) / 0.3)


def test_forget_quality_is_ks_pvalue():
    same = [0.1, 0.2, 0.3, 0.4, 0.5]
    assert forget_quality(same, same) == pytest.approx(1.0)
    assert forget_quality([0.01 * i for i in range(20)], [1 + 0.01 * i for i in range(20)]) < 1e-6


def test_model_utility_harmonic_mean():
    metrics = dict.fromkeys(UTILITY_KEYS, 0.5) | {"retain_rougeL": 1.0}
    assert model_utility(metrics) == pytest.approx(9 / (8 / 0.5 + 1 / 1.0))
    assert model_utility(metrics | {"world_facts_prob": 0.0}) == 0.0
    assert model_utility(dict.fromkeys(UTILITY_KEYS[:-1], 1.0)) is None


def test_mia_auc_rank_based():
    assert mia_auc([0.1, 0.2], [0.3, 0.4]) == 1.0  # members have lower loss: perfect attack
    assert mia_auc([0.3, 0.4], [0.1, 0.2]) == 0.0
    assert mia_auc([0.1, 0.3], [0.2, 0.4]) == pytest.approx(0.75)  # 3 of 4 pairs ordered
    assert mia_auc([0.2], [0.2]) == 0.5  # ties count half


def test_keyword_accuracy_counts_pairs_case_insensitively():
    gens = ["Born in PARIS, France.", "no idea", "irrelevant"]
    keywords = [["Paris", "France"], ["Jane Doe"], []]
    assert keyword_accuracy(gens, keywords) == pytest.approx(2 / 3)
    assert keyword_accuracy(["x"], [[]]) is None


def test_keyword_token_positions_and_confidence(tiny_tokenizer):
    answer = "The author was born in Paris, France."
    positions = keyword_token_positions(answer, "Paris", tiny_tokenizer)
    tokens = tiny_tokenizer.encode(" " + answer, add_special_tokens=False)
    assert positions and tiny_tokenizer.decode([tokens[i] for i in positions]).strip() == "Paris"
    assert keyword_token_positions(answer, "Berlin", tiny_tokenizer) == []
    logprobs = [torch.log(torch.tensor([0.9, 0.5, 0.5, 0.9])), torch.log(torch.tensor([0.1, 0.1]))]
    conf = keyword_confidence(logprobs, [[[1, 2], [3]], [[0]]])
    assert conf == pytest.approx((0.5 + 0.9 + 0.1) / 3)
    assert keyword_confidence(logprobs, [[[]], []]) is None
