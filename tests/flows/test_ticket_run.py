"""A ticket run's own decisions, without Prefect or services: what it still has to purge when it
ends, and how it climbs the retry ladder round after round."""

from __future__ import annotations

from flows.ticket_run import Leftovers, TicketRun
from policy.gate import GateCheck, GateDecision
from policy.round_setting import RoundSetting
from tasks.contracts import CheckpointRef, ObjectRef, ParentVersion, RunPlan

FORGET = ObjectRef(uri="file:///scratch/run/forget.jsonl", sha256="f" * 64)
CANDIDATES = [CheckpointRef(uri=f"file:///runs/run/round{n}", sha256=str(n) * 64) for n in (1, 2, 3)]
MASKS = [ObjectRef(uri=f"file:///runs/run/mask{n}", sha256=str(n) * 64) for n in (1, 2)]
PASSED = GateDecision(passed=True, reason="passed", checks=[])


def _failing(metric: str) -> GateDecision:
    check = GateCheck(
        name=metric,
        metric=metric,
        value=1.0,
        limit=0.0,
        passed=False,
        detail=metric,
        asks="stronger" if metric.startswith("forget") else "weaker",
    )
    return GateDecision(passed=False, reason="failed", checks=[check])


def _run(**policy: object) -> TicketRun:
    run = TicketRun("ticket-7", [7], "local:test")
    run.plan = RunPlan(
        ticket_ids=[7],
        parent=ParentVersion(
            model_name="m",
            version_id=1,
            version=1,
            checkpoint=CheckpointRef(uri="file:///v1", sha256="a" * 64),
            training_manifest_uri=None,
            eval_suite_uri=None,
        ),
        setting=RoundSetting(p_percent=1.0, epochs=8),
        policy=policy,
    )
    return run


class _Round:  # what TicketRun.retry reads of a gated round
    def __init__(self, setting: RoundSetting, decision: GateDecision) -> None:
        self.setting, self.decision = setting, decision


def test_a_run_that_made_nothing_has_nothing_to_purge() -> None:
    assert _run().leftovers() is None


def test_a_run_that_ends_before_registering_purges_its_snapshot_and_every_candidate() -> None:
    run = _run()
    run.forget_snapshot, run.candidates, run.masks = FORGET, list(CANDIDATES), list(MASKS)
    assert run.leftovers() == Leftovers(FORGET, CANDIDATES, MASKS)
    run.forget_snapshot = None  # e.g. the purge at registration ran, but the registration was lost
    assert run.leftovers() == Leftovers(None, CANDIDATES, MASKS)


def test_a_registered_run_keeps_its_candidate_and_mask_and_purges_the_rest() -> None:
    run = _run()
    run.forget_snapshot, run.candidates, run.masks = FORGET, list(CANDIDATES), list(MASKS)
    run.kept = (CANDIDATES[2], MASKS[1])
    assert run.leftovers() == Leftovers(FORGET, CANDIDATES[:2], MASKS[:1])
    run.forget_snapshot = None  # purged at registration: nothing is left for the clean-up
    assert run.leftovers() is None


def test_a_registered_grun_candidate_has_no_mask_to_keep() -> None:
    run = _run()
    run.forget_snapshot, run.candidates, run.kept = FORGET, list(CANDIDATES[:2]), (CANDIDATES[1], None)
    assert run.leftovers() == Leftovers(FORGET, CANDIDATES[:1], [])


def test_the_run_climbs_the_ladder_and_rescores_only_when_p_moves() -> None:
    run = _run(max_rounds=3, ladder_lr_factor=0.5)
    first = run.plan.setting
    stronger = run.retry(_Round(first, _failing("forget_rougeL")))
    assert stronger.rescore and (stronger.setting.p_percent, stronger.setting.epochs) == (2.0, 12)
    gentler = run.retry(_Round(stronger.setting, _failing("retain_rougeL")))
    assert not gentler.rescore and gentler.setting.alpha == stronger.setting.alpha * 2
    assert run.retry(_Round(gentler.setting, _failing("forget_rougeL"))) is None  # max_rounds used up
    assert [s for s, _ in run.tried] == [first, stronger.setting, gentler.setting]


def test_a_passing_round_ends_the_ladder() -> None:
    run = _run()
    assert run.retry(_Round(run.plan.setting, PASSED)) is None
