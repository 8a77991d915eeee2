"""`grin demo`: the whole pipeline on the embedded defaults, from a fresh state to a verified audit.

A small TOFU model (20 authors + general knowledge) is trained or taken from the cache, registered,
and a ticket asks it to forget two authors (TOFU's 198-199) with their key phrases; the ticket runs
through `process_ticket` and the audit chain is verified. State lives in `<state_dir>/demo` and is
reset on every run; the trained model is cached in `<state_dir>/cache` so a warm run does not train.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.table import Table

from grin_core.data.records import to_jsonl
from grin_core.data.tofu import TofuSubset, load_calibration, load_eval_suite, load_tofu
from grin_core.metrics import names as m
from infra import audit, intake
from infra.db.migrate import upgrade
from infra.settings import Settings
from infra.storage import open_store
from infra.ticket_request import TicketRequest

MODEL = "tofu-demo"
SUBSET = TofuSubset(n_authors=20, split="forget10")  # retains authors 0-17, forgets 198-199
EVAL_RETAIN = 100  # retain questions the gate reads (with their perturbed answers)
SHOWN = (  # the before/after table's rows
    m.FORGET_ROUGEL,
    m.FORGET_KEYWORD_ACC,
    m.FORGET_KEYWORD_CONF,
    m.FORGET_TRUTH_RATIO,
    m.FORGET_PROB,
    m.HOLDOUT_PROB,
    *(row for attack in m.ATTACK_AUC for row in (m.ATTACK_AUC[attack], m.NONMEMBER_AUC[attack])),
    m.FORGET_HOLDOUT_PROB_RATIO,
    m.NONMEMBER_PROB_RATIO,
    m.FORGET_HOLDOUT_TYPICAL_PROB_RATIO,
    m.RELEARN_FORGET_ROUGEL,
    m.RELEARN_NONMEMBER_ROUGEL,
    m.FORGET_PARAPHRASE_ROUGEL,
    m.FORGET_SAMPLED_BEST_ROUGEL,
    m.FORGET_FORMAT_MAX_ROUGEL,
    m.FORGET_INT4_ROUGEL,
    m.RETAIN_ROUGEL,
    m.RETAIN_PROB,
    m.MODEL_UTILITY,
)


@contextmanager
def _timed(timings: dict[str, float], stage: str):
    started = time.perf_counter()
    yield
    timings[stage] = round(time.perf_counter() - started, 1)


def _publish_data(settings: Settings) -> dict:
    """Put the training manifest, eval suite and the 'customer's' forget objects into the store."""
    data = load_tofu(SUBSET, settings.tofu_dir)
    suite = load_eval_suite(SUBSET, settings.tofu_dir)
    store = open_store(settings)
    manifest = store.put_bytes(f"datasets/{MODEL}/train.jsonl", to_jsonl(data.train))
    eval_suite = store.put_bytes(
        f"datasets/{MODEL}/eval_suite.json",
        json.dumps(
            {
                "retain": suite.retain[:EVAL_RETAIN],
                "real_authors": suite.real_authors,
                "world_facts": suite.world_facts,
                # Non-members: membership inference and the privacy schedule compare the forget
                # set with these; the calibration authors set the line's non-member AUC level.
                "holdout": suite.holdout,
                "calibration": load_calibration(SUBSET, settings.tofu_dir),
            }
        ).encode(),
    )
    forget_rows = [{k: v for k, v in r.items() if k != "keywords"} for r in suite.forget]
    phrases = sorted({k for r in suite.forget for k in r["keywords"]})
    forget = store.put_bytes("inbox/demo-request/forget.json", json.dumps(forget_rows).encode())
    keywords = store.put_bytes("inbox/demo-request/keywords.json", json.dumps(phrases).encode())
    return {
        "manifest": manifest,
        "eval_suite": eval_suite,
        "forget": forget,
        "keywords": keywords,
        "counts": {"train": len(data.train), "forget": len(forget_rows), "keywords": len(phrases)},
    }


def _request(objects: dict) -> TicketRequest:
    """The 'customer's' deletion request: the published forget set and key phrases."""
    return TicketRequest(
        subject="TOFU authors 198 and 199",
        model=f"{MODEL}@production",
        forget_uris=[objects["forget"].uri],
        keywords_uri=objects["keywords"].uri,
        requested_by="demo@grin.local",
        legal_basis="GDPR Art. 17 (demo)",
        idempotency_key="demo-request",
    )


def run_demo(settings: Settings, console: Console | None = None) -> dict:
    """Run the demo in `settings`' (fresh) state and return the summary `grin demo --json` writes."""
    import datasets

    from flows.tickets import process_ticket
    from flows.train_line import train_line
    from tasks.contracts import ObjectRef
    from tasks.resources import sessions

    datasets.disable_progress_bars()  # TOFU files load in milliseconds; the demo logs its own steps
    console = console or Console(stderr=True)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with _timed(timings, "setup"):
        upgrade(settings.database_url)
        objects = _publish_data(settings)
    console.log(
        f"published {objects['counts']['train']} training QA, a forget set of "
        f"{objects['counts']['forget']} QA and {objects['counts']['keywords']} key phrases"
    )
    with _timed(timings, "train_or_load_model"):
        trained = train_line(
            MODEL,
            ObjectRef(uri=objects["manifest"].uri, sha256=objects["manifest"].sha256),
            ObjectRef(uri=objects["eval_suite"].uri, sha256=objects["eval_suite"].sha256),
            description="TOFU authors 0-17 + 198-199 and general knowledge, from scratch",
        )
    console.log(
        f"{MODEL} v{trained['version']} registered: {trained['epochs']} epochs, stopped by its "
        f"{trained['stopped_by'].replace('_', ' ')} (training took {trained['train_s']:.0f} s when it ran)"
    )
    with _timed(timings, "file_ticket"), sessions(settings).begin() as session:
        ticket_id = intake.file_request(_request(objects), session=session, settings=settings).id
    console.log(f"ticket {ticket_id} filed")
    with _timed(timings, "process_ticket"):
        report = process_ticket(ticket_id)
    with sessions(settings).begin() as session:
        check = audit.verify(session=session)
    timings["total"] = round(time.perf_counter() - started, 1)
    summary = {
        "ticket_id": ticket_id,
        "outcome": report.outcome,
        "model_version": report.version,
        "gate": {"passed": bool(report.gate and report.gate.passed), "reason": report.reason},
        "before": report.before,
        "after": report.after,
        "rounds": [r.model_dump() for r in report.rounds],
        "audit_verified": check.ok,
        "audit_records": check.records,
        "timings_s": {**timings, **{f"pipeline_{k}": v for k, v in report.timings_s.items()}},
    }
    _print(console, summary)
    return summary


def _print(console: Console, summary: dict) -> None:
    table = Table(title=f"ticket {summary['ticket_id']}: {MODEL} before → after unlearning")
    for column in ("metric", "before", "after"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for name in SHOWN:
        if name in summary["before"] or name in summary["after"]:
            b, a = summary["before"].get(name), summary["after"].get(name)
            table.add_row(name, "—" if b is None else f"{b:.3f}", "—" if a is None else f"{a:.3f}")
    console.print(table)
    console.print(f"gate: {'PASSED' if summary['gate']['passed'] else 'FAILED'} — {summary['gate']['reason']}")
    console.print(
        f"version: {summary['model_version']}   audit chain verified: {summary['audit_verified']} "
        f"({summary['audit_records']} records)   total {summary['timings_s']['total']:.0f} s"
    )


def write_summary(summary: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
