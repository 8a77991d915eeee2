"""Membership inference from per-example loss: can an attacker tell forget rows from unseen ones?"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata


def mia_auc(member_losses: Sequence[float], nonmember_losses: Sequence[float]) -> float:
    """ROC AUC of the attack "lower loss = member": P(loss_member < loss_nonmember), ties count 1/2.

    Rank-based (Mann-Whitney U / (n_m * n_n)). Members are the forget set, non-members the holdout
    set of unseen fictitious authors: 1.0 = fully memorised, ~0.5 = like a model that never saw
    them (TOFU's retrained baseline), < 0.5 = over-unlearned (forget rows look *less* likely).
    """
    members, others = np.asarray(member_losses, float), np.asarray(nonmember_losses, float)
    if not len(members) or not len(others):
        raise ValueError("need at least one member and one non-member")
    ranks = rankdata(np.concatenate([-members, -others]))  # higher score = more member-like
    u = ranks[: len(members)].sum() - len(members) * (len(members) + 1) / 2
    return float(u / (len(members) * len(others)))
