"""Every metric name an evaluation reports, as constants the evaluator, the probes, the gate and the
reports import: grepping a constant finds its producer and its readers.

Names are `{part}_{stat}`, the keys of `EvalResult.metrics` (and of `per_example`, where noted).
The evaluator writes through the per-part tables (`ROUGEL[part]`, ...); the probes build their
families (`{part}_paraphrase_...`, `forget_format_{name}_...`, `forget_int{bits}_...`) with the
members listed here as their defaults. `check(name)` raises on a name no evaluation reports,
with the known ones. No torch here: policy/ and the reports read it.
"""

from __future__ import annotations

QA_PARTS = ("forget", "retain")  # question/answer parts
CHOICE_PARTS = ("real_authors", "world_facts")  # multiple-choice parts

# per part (evaluation/evaluate.py): greedy ROUGE-L recall, answer probability, truth ratio
FORGET_ROUGEL = "forget_rougeL"
RETAIN_ROUGEL = "retain_rougeL"
REAL_AUTHORS_ROUGEL = "real_authors_rougeL"
WORLD_FACTS_ROUGEL = "world_facts_rougeL"
FORGET_PROB = "forget_prob"
RETAIN_PROB = "retain_prob"
REAL_AUTHORS_PROB = "real_authors_prob"
WORLD_FACTS_PROB = "world_facts_prob"
FORGET_TRUTH_RATIO = "forget_truth_ratio"
RETAIN_TRUTH_RATIO = "retain_truth_ratio"
REAL_AUTHORS_TRUTH_RATIO = "real_authors_truth_ratio"
WORLD_FACTS_TRUTH_RATIO = "world_facts_truth_ratio"
FORGET_KEYWORD_ACC = "forget_keyword_acc"
FORGET_KEYWORD_CONF = "forget_keyword_conf"
RETAIN_KEYWORD_ACC = "retain_keyword_acc"
RETAIN_KEYWORD_CONF = "retain_keyword_conf"
FORGET_LOSS = "forget_loss"  # per example only
RETAIN_LOSS = "retain_loss"  # per example only

ROUGEL = {
    "forget": FORGET_ROUGEL,
    "retain": RETAIN_ROUGEL,
    "real_authors": REAL_AUTHORS_ROUGEL,
    "world_facts": WORLD_FACTS_ROUGEL,
}
PROB = {
    "forget": FORGET_PROB,
    "retain": RETAIN_PROB,
    "real_authors": REAL_AUTHORS_PROB,
    "world_facts": WORLD_FACTS_PROB,
    "holdout": "holdout_prob",
}
TRUTH_RATIO = {
    "forget": FORGET_TRUTH_RATIO,
    "retain": RETAIN_TRUTH_RATIO,
    "real_authors": REAL_AUTHORS_TRUTH_RATIO,
    "world_facts": WORLD_FACTS_TRUTH_RATIO,
}
KEYWORD_ACC = {"forget": FORGET_KEYWORD_ACC, "retain": RETAIN_KEYWORD_ACC}
KEYWORD_CONF = {"forget": FORGET_KEYWORD_CONF, "retain": RETAIN_KEYWORD_CONF}
LOSS = {"forget": FORGET_LOSS, "retain": RETAIN_LOSS, "holdout": "holdout_loss"}

# privacy: forget (members) against holdout (non-members)
HOLDOUT_PROB = PROB["holdout"]
HOLDOUT_LOSS = LOSS["holdout"]  # per example only
FORGET_HOLDOUT_PROB_RATIO = "forget_holdout_prob_ratio"
FORGET_HOLDOUT_TYPICAL_PROB_RATIO = "forget_holdout_typical_prob_ratio"
MIA_AUC = "mia_auc"  # the loss attack
MIA_ZLIB_AUC = "mia_zlib_auc"
MIA_MINK_AUC = "mia_mink_auc"
MIA_MINKPP_AUC = "mia_minkpp_auc"
ATTACK_AUC = {"loss": MIA_AUC, "zlib": MIA_ZLIB_AUC, "mink": MIA_MINK_AUC, "minkpp": MIA_MINKPP_AUC}
# per-example attack scores, by (part, attack)
ATTACK_SCORES = {
    (part, attack): f"{part}_{attack}" for part in ("forget", "holdout") for attack in ("zlib", "mink", "minkpp")
}
# each attack's non-member level: never-seen (calibration) records against the holdout
NONMEMBER_AUC = {attack: f"nonmember_{metric}" for attack, metric in ATTACK_AUC.items()}
NONMEMBER_PROB_RATIO = "nonmember_prob_ratio"
NONMEMBER_TYPICAL_PROB_RATIO = "nonmember_typical_prob_ratio"
PRIVLEAK = "privleak"
PRIVLEAK_REFERENCE_AUC = "privleak_reference_auc"

MODEL_UTILITY = "model_utility"
FORGET_QUALITY = "forget_quality"

# robustness probes (evaluation/probes.py)
FORGET_PARAPHRASE_ROUGEL = "forget_paraphrase_rougeL"
FORGET_PARAPHRASE_PROB = "forget_paraphrase_prob"
FORGET_SAMPLED_BEST_ROUGEL = "forget_sampled_best_rougeL"
FORGET_SAMPLED_MEAN_ROUGEL = "forget_sampled_mean_rougeL"
FORGET_FORMAT_MAX_ROUGEL = "forget_format_max_rougeL"
FORGET_FORMAT_MAX_PROB = "forget_format_max_prob"
FORGET_FORMATS = {
    f"forget_format_{name}_{stat}" for name in ("short", "lower", "instruction") for stat in ("rougeL", "prob")
}  # probes.PROMPT_FORMATS
FORGET_INT8_ROUGEL = "forget_int8_rougeL"
FORGET_INT8_PROB = "forget_int8_prob"
MIA_INT8_AUC = "mia_int8_auc"
FORGET_INT4_ROUGEL = "forget_int4_rougeL"
FORGET_INT4_PROB = "forget_int4_prob"
MIA_INT4_AUC = "mia_int4_auc"
RELEARN_FORGET_ROUGEL = "relearn_forget_rougeL"
RELEARN_FORGET_PROB = "relearn_forget_prob"
RELEARN_BEFORE_FORGET_ROUGEL = "relearn_before_forget_rougeL"
RELEARN_BEFORE_FORGET_PROB = "relearn_before_forget_prob"
# the same attack on never-seen records shaped like the forget set: the level a clean model shows
RELEARN_NONMEMBER_ROUGEL = "relearn_nonmember_rougeL"
RELEARN_NONMEMBER_PROB = "relearn_nonmember_prob"
RELEARN_SECONDS = "relearn_seconds"


class UnknownMetricError(ValueError):
    """A metric name no evaluation reports; the message lists the known ones."""


METRICS: frozenset[str] = frozenset(
    {v for k, v in dict(globals()).items() if k.isupper() and isinstance(v, str)}
    | {
        v
        for table in (
            ROUGEL,
            PROB,
            TRUTH_RATIO,
            KEYWORD_ACC,
            KEYWORD_CONF,
            LOSS,
            ATTACK_AUC,
            ATTACK_SCORES,
            NONMEMBER_AUC,
        )
        for v in table.values()
    }
    | FORGET_FORMATS
)


def check(name: str) -> str:
    """`name` itself if an evaluation reports it; UnknownMetricError with the known names otherwise."""
    if name not in METRICS:
        raise UnknownMetricError(f"unknown metric {name!r}; known: {', '.join(sorted(METRICS))}")
    return name
