"""When a line is due for a rebuild, and the rebuilt version's gate (utility against the origin only)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from policy.gate import rebuild_decision
from policy.gate_policy import GatePolicy
from policy.rebuild_policy import RebuildPolicy, rebuild_due


def test_a_line_is_due_after_n_deletions_or_n_days_with_a_ticket_waiting() -> None:
    now = datetime(2026, 12, 3, tzinfo=UTC)
    policy = RebuildPolicy(every_days=30, after_deletions=3)
    assert rebuild_due(policy, 0, now - timedelta(days=99), now) is None
    assert rebuild_due(policy, 2, now - timedelta(days=29), now) is None
    assert "after 3" in rebuild_due(policy, 3, now, now)
    assert "every 30 days" in rebuild_due(policy, 1, now - timedelta(days=30), now)
    assert rebuild_due(RebuildPolicy(), 100, now - timedelta(days=999), now) is None


def test_a_rebuild_is_held_to_the_origin_and_its_privacy_rows_are_reported_not_gated() -> None:
    policy = GatePolicy(retain_rougeL_min_origin_ratio=0.8, model_utility_min_origin_ratio=0.8)
    origin = {"retain_rougeL": 1.0, "model_utility": 0.5}
    passed = rebuild_decision(policy, origin, {"retain_rougeL": 0.9, "model_utility": 0.45, "mia_auc": 0.99})
    assert passed.passed and [c.name for c in passed.checks] == ["retain_rougeL_origin", "model_utility_origin"]
    failed = rebuild_decision(policy, origin, {"retain_rougeL": 0.5, "model_utility": 0.45})
    assert not failed.passed and "retain ROUGE-L vs origin" in failed.reason
    assert rebuild_decision(policy, None, {}).passed
