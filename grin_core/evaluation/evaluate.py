"""Evaluate a model on an unlearning suite: TOFU metrics for whichever parts the suite has.

Per QA part (forget, retain): `{part}_rougeL` (ROUGE-L recall of the greedy answer), `{part}_prob`
(mean P(a|q)^(1/|a|)), `{part}_truth_ratio` (forget: mean min(R, 1/R); retain: mean max(0, 1-R),
R = geometric-mean wrong / paraphrased probability as in TOFU's reference code, metrics/truth_ratio.py)
when the records carry paraphrased and perturbed answers; `forget_keyword_acc` / `_conf` when they
carry keywords. Per multiple-choice part (real_authors, world_facts): ROUGE-L against the correct
answer, the correct option's probability share, and the truth-ratio stat with the correct answer
as the "paraphrase". Then `model_utility` (all 9 utility numbers present) and `forget_quality`
(given the retrained model's forget truth ratios).

Privacy (forget and holdout present; forget = members, holdout = non-members, metrics/mia.py):
`holdout_prob`, `forget_holdout_prob_ratio` (forget_prob / holdout_prob: > 1 = forget answers
likelier than unseen ones), `forget_holdout_typical_prob_ratio` (the same with geometric means:
exp(mean holdout loss - mean forget loss), which a few outlying answers cannot dominate), and the
attack AUCs `mia_auc` (loss), `mia_zlib_auc`, `mia_mink_auc`
(Min-K%, k 0.4) and `mia_minkpp_auc` (Min-K%++, k 0.4) - 1.0 memorised, ~0.5 never seen - and
`privleak` (percent, from `mia_mink_auc` as OpenUnlearning's TOFU config does) against
`privleak_reference_auc` (the retrained model's `mia_mink_auc` when given, else 0.5). The Min-K%++
statistics come from the same forward pass as the forget losses; the holdout costs one pass.

With a `calibration` part too: each attack's non-member level on this model, `nonmember_mia_auc`,
`nonmember_mia_zlib_auc` (text-aware: for the forget texts), `nonmember_mia_mink_auc`,
`nonmember_mia_minkpp_auc`, and `nonmember_prob_ratio` / `nonmember_typical_prob_ratio` (never-seen
over holdout answer probability): what the gate's bands centre on.

A part that is missing leaves its keys out; it never reports 0. Per-example values (`forget_loss`,
`holdout_loss`, `forget_truth_ratio`, `{forget,holdout}_{zlib,mink,minkpp}` attack scores, ...)
are in `EvalResult.per_example`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from grin_core.evaluation.calibration import non_member_levels
from grin_core.evaluation.generation import generate_answers
from grin_core.metrics import names as m
from grin_core.metrics.attacks import ATTACKS, attack_scores
from grin_core.metrics.keywords import keyword_accuracy, keyword_confidence, keyword_token_positions
from grin_core.metrics.likelihood import (
    AnswerTokenStats,
    answer_logprobs,
    answer_token_stats,
    mean_logprob,
    normalised_probability,
    option_probability,
)
from grin_core.metrics.mia import mia_auc, privleak, scored_answer_text
from grin_core.metrics.rouge import rouge_l_recall
from grin_core.metrics.truth_ratio import (
    forget_quality,
    forget_truth_ratio_stat,
    retain_truth_ratio_stat,
    truth_ratio,
)
from grin_core.metrics.utility import model_utility
from grin_core.runtime.steps import StepCallback, Steps


@dataclass
class EvalSuite:
    """Records per part; any part may be None (a ticket's forget set may have question/answer only).

    forget / retain: {question, answer[, paraphrased_answer, perturbed_answer: list, keywords,
    paraphrased_question (read by probes.py)]}
    real_authors / world_facts: {question, answer, perturbed_answer: list} (multiple choice)
    holdout: {question, answer}, the non-members for membership inference against forget
    calibration: {question, answer}, never-seen records drawn like the training data: each attack's
    non-member level against the holdout (evaluation/calibration.py)
    """

    forget: list[dict] | None = None
    retain: list[dict] | None = None
    real_authors: list[dict] | None = None
    world_facts: list[dict] | None = None
    holdout: list[dict] | None = None
    calibration: list[dict] | None = None


@dataclass
class EvalResult:
    """Aggregate metrics, plus per-example values (e.g. `forget_truth_ratio`: the raw R of each
    forget question, which forget quality compares against the retrained model's)."""

    metrics: dict[str, float] = field(default_factory=dict)
    per_example: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class _Evaluator:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    batch_size: int
    max_new_tokens: int | None
    progress: bool
    steps: Steps
    result: EvalResult = field(default_factory=EvalResult)

    def put(self, key: str, value: float | None, per_example: torch.Tensor | list | None = None) -> None:
        m.check(key)  # every key is a constant of metrics/names.py
        if value is not None:
            self.result.metrics[key] = float(value)
        if per_example is not None:
            self.result.per_example[key] = [float(v) for v in per_example]

    def generate(self, part: str, records: list[dict]) -> list[str]:
        longest = max(len(self.tokenizer.encode(" " + r["answer"], add_special_tokens=False)) for r in records)
        self.steps.begin(f"{part}: greedy answers to {len(records)} questions")
        return generate_answers(
            self.model,
            self.tokenizer,
            [r["question"] for r in records],
            max_new_tokens=self.max_new_tokens or longest + 8,
            batch_size=self.batch_size,
            progress=self.progress,
        )

    def likelihood(
        self,
        part: str,
        questions: list[str],
        answers: list[str],
        stats: bool = False,
    ) -> tuple[list[torch.Tensor], list[AnswerTokenStats] | None]:
        """Token log-probs of each pair, and with `stats` the Min-K%++ statistics of the same pass."""
        kwargs = {"batch_size": self.batch_size, "progress": self.progress, "desc": f"{part}: likelihood"}
        self.steps.begin(f"{part}: likelihood of {len(answers)} answers")
        if not stats:
            return answer_logprobs(self.model, self.tokenizer, questions, answers, **kwargs), None
        token_stats = answer_token_stats(self.model, self.tokenizer, questions, answers, **kwargs)
        return [t.logp for t in token_stats], token_stats

    def rouge(self, part: str, records: list[dict]) -> list[str]:
        generations = self.generate(part, records)
        scores = rouge_l_recall(generations, [r["answer"] for r in records])
        self.put(m.ROUGEL[part], sum(scores) / len(scores), scores)
        return generations

    def answer_and_options(self, part: str, records: list[dict], with_paraphrase: bool, stats: bool = False):
        """Log-probs of the answers, the paraphrases (if asked) and every perturbed answer, in one
        batched pass: answer token log-probs (and their stats if asked), paraphrase token log-probs,
        and per record a (K,) tensor of the perturbed answers' mean token log-probs."""
        questions = [r["question"] for r in records]
        answers = [r["answer"] for r in records]
        paraphrases = [r["paraphrased_answer"] for r in records] if with_paraphrase else []
        counts = [len(r["perturbed_answer"]) for r in records]
        flat_q = questions + questions[: len(paraphrases)] + [q for q, n in zip(questions, counts) for _ in range(n)]
        flat_a = answers + paraphrases + [a for r in records for a in r["perturbed_answer"]]
        lps, token_stats = self.likelihood(part, flat_q, flat_a, stats)
        n = len(records)
        answer_lp, paraphrase_lp, rest = lps[:n], lps[n : n + len(paraphrases)], lps[n + len(paraphrases) :]
        perturbed, start = [], 0
        for count in counts:
            perturbed.append(mean_logprob(rest[start : start + count]))
            start += count
        return answer_lp, (token_stats[:n] if token_stats else None), paraphrase_lp, perturbed

    def qa_part(self, part: str, records: list[dict], stats: bool = False) -> list[AnswerTokenStats] | None:
        """The part's metrics; returns the answers' Min-K%++ statistics when `stats` is asked."""
        generations = self.rouge(part, records)
        has_tr = all(r.get("paraphrased_answer") and r.get("perturbed_answer") for r in records)
        if has_tr:
            answer_lp, answer_stats, paraphrase_lp, perturbed = self.answer_and_options(
                part, records, with_paraphrase=True, stats=stats
            )
            ratios = truth_ratio(mean_logprob(paraphrase_lp), perturbed)
            stat = forget_truth_ratio_stat if part == "forget" else retain_truth_ratio_stat
            self.put(m.TRUTH_RATIO[part], stat(ratios), ratios)
        else:
            answer_lp, answer_stats = self.likelihood(
                part, [r["question"] for r in records], [r["answer"] for r in records], stats
            )
        probs = normalised_probability(answer_lp)
        self.put(m.PROB[part], probs.mean().item(), probs)
        self.put(m.LOSS[part], None, -mean_logprob(answer_lp))
        keywords = [list(r.get("keywords") or []) for r in records]
        if any(keywords):
            self.put(m.KEYWORD_ACC[part], keyword_accuracy(generations, keywords))
            positions = [
                [keyword_token_positions(r["answer"], k, self.tokenizer) for k in ks]
                for r, ks in zip(records, keywords)
            ]
            self.put(m.KEYWORD_CONF[part], keyword_confidence(answer_lp, positions))
        return answer_stats

    def choice_part(self, part: str, records: list[dict]) -> None:
        self.rouge(part, records)
        answer_lp, _, _, perturbed = self.answer_and_options(part, records, with_paraphrase=False)
        correct_lp = mean_logprob(answer_lp)
        shares = torch.stack([option_probability(c, p.exp()) for c, p in zip(correct_lp.exp(), perturbed)])
        self.put(m.PROB[part], shares.mean().item(), shares)
        ratios = truth_ratio(correct_lp, perturbed)
        self.put(m.TRUTH_RATIO[part], retain_truth_ratio_stat(ratios), ratios)

    def non_member_levels(self, calibration: list[dict], holdout: list[dict], forget: list[dict]) -> None:
        """Each attack's level on records this model never saw (evaluation/calibration.py), which the
        gate's bands centre on; zlib's for the forget texts."""
        self.steps.begin(f"calibration: likelihood of {len(calibration)} never-seen answers")
        levels = non_member_levels(self.model, self.tokenizer, calibration, holdout, forget, self.batch_size)
        for attack, auc in levels.aucs.items():
            self.put(m.NONMEMBER_AUC[attack], auc)
        self.put(m.NONMEMBER_PROB_RATIO, levels.mean_prob_ratio)
        self.put(m.NONMEMBER_TYPICAL_PROB_RATIO, levels.typical_prob_ratio)

    def privacy(
        self, forget: list[dict], holdout: list[dict], forget_stats: list[AnswerTokenStats], reference_auc: float | None
    ) -> None:
        """Forget (members) against holdout (non-members): probability ratio, four attack AUCs and
        PrivLeak; one likelihood pass over the holdout."""
        holdout_lp, holdout_stats = self.likelihood(
            "holdout", [r["question"] for r in holdout], [r["answer"] for r in holdout], stats=True
        )
        holdout_probs = normalised_probability(holdout_lp)
        self.put(m.HOLDOUT_PROB, holdout_probs.mean().item(), holdout_probs)
        self.put(m.HOLDOUT_LOSS, None, -mean_logprob(holdout_lp))
        if holdout_probs.mean() > 0:
            self.put(m.FORGET_HOLDOUT_PROB_RATIO, self.result.metrics[m.FORGET_PROB] / holdout_probs.mean().item())
        per = self.result.per_example
        # Typical (geometric) per-token likelihood ratio: robust to the few answers that dominate a mean.
        self.put(
            m.FORGET_HOLDOUT_TYPICAL_PROB_RATIO,
            math.exp(sum(per[m.HOLDOUT_LOSS]) / len(holdout) - sum(per[m.FORGET_LOSS]) / len(forget)),
        )
        texts = {
            part: [scored_answer_text(r["answer"], self.tokenizer) for r in records]
            for part, records in (("forget", forget), ("holdout", holdout))
        }
        scores = {
            "forget": attack_scores(forget_stats, texts["forget"]),
            "holdout": attack_scores(holdout_stats, texts["holdout"]),
        }
        for attack in ATTACKS:
            for part in ("forget", "holdout"):
                if (part, attack) in m.ATTACK_SCORES:  # the loss attack's are the parts' losses
                    self.put(m.ATTACK_SCORES[part, attack], None, scores[part][attack])
            self.put(ATTACKS[attack].auc_metric, mia_auc(scores["forget"][attack], scores["holdout"][attack]))
        reference = 0.5 if reference_auc is None else reference_auc
        self.put(m.PRIVLEAK, privleak(self.result.metrics[m.MIA_MINK_AUC], reference))
        self.put(m.PRIVLEAK_REFERENCE_AUC, reference)


def evaluate_suite(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    suite: EvalSuite,
    *,
    batch_size: int = 64,
    max_new_tokens: int | None = None,
    retrained_forget_truth_ratios: list[float] | None = None,
    reference_auc: float | None = None,
    progress: bool = True,
    on_step: StepCallback | None = None,
) -> EvalResult:
    """All metrics the suite's parts allow, and the per-example values behind them.

    `max_new_tokens` defaults, per part, to the longest gold answer + 8 tokens. Pass the retrained
    model's `per_example["forget_truth_ratio"]` as `retrained_forget_truth_ratios` to get
    `forget_quality`, and its `metrics["mia_mink_auc"]` as `reference_auc` to measure `privleak`
    against it (0.5 otherwise; the value used is `privleak_reference_auc`). `on_step` hears each
    generation or likelihood pass begin (grin_core/runtime/steps.py).
    """
    with_privacy = bool(suite.forget and suite.holdout)
    parts = [p for p in ("forget", "retain", "real_authors", "world_facts") if getattr(suite, p)]
    levels = with_privacy and bool(suite.calibration)
    steps = Steps(2 * len(parts) + with_privacy + levels, on_step)  # a part: answers + likelihood; privacy: holdout
    ev = _Evaluator(model, tokenizer, batch_size, max_new_tokens, progress, steps)
    forget_stats = ev.qa_part("forget", suite.forget, stats=with_privacy) if suite.forget else None
    if suite.retain:
        ev.qa_part("retain", suite.retain)
    for part in ("real_authors", "world_facts"):
        if getattr(suite, part):
            ev.choice_part(part, getattr(suite, part))
    if with_privacy:
        ev.privacy(suite.forget, suite.holdout, forget_stats, reference_auc)
    if with_privacy and suite.calibration:
        ev.non_member_levels(suite.calibration, suite.holdout, suite.forget)
    ev.put(m.MODEL_UTILITY, model_utility(ev.result.metrics))
    forget_ratios = ev.result.per_example.get(m.FORGET_TRUTH_RATIO)
    if retrained_forget_truth_ratios is not None and forget_ratios:
        ev.put(m.FORGET_QUALITY, forget_quality(forget_ratios, retrained_forget_truth_ratios))
    return ev.result


def evaluate(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, suite: EvalSuite, **kwargs
) -> dict[str, float]:
    """The aggregate metrics of `evaluate_suite` (same keyword arguments)."""
    return evaluate_suite(model, tokenizer, suite, **kwargs).metrics
