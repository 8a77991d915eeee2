"""Queue claim throughput: W claimer processes drain T queued tickets; how fast, and is any ticket claimed twice?

    python benchmarks/queue_claims.py [--tickets 200] [--workers 8] [--admin-url URL] [--json FILE]

Runs against PostgreSQL in a throwaway database (created, migrated, dropped). Each claim is
its own transaction (claim + audit record + commit), as a worker does it. `run()` takes any
migrated database URL; the tests also run it on SQLite.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
import uuid
from typing import Any

from sqlalchemy import func, select

from infra import audit, filing, queue, registry
from infra.db.models import AuditRecord, Ticket
from infra.db.session import make_engine, make_sessionmaker
from infra.ticket_request import TicketRequest
from infra.ticket_status import TicketStatus

MODEL = "bench"
DEFAULT_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


def seed(url: str, tickets: int) -> None:
    """A model with one version and `tickets` queued tickets against it."""
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine).begin() as session:
            registry.register_model(MODEL, session=session)
            registry.add_version(
                MODEL,
                session=session,
                checkpoint_uri="file:///bench/v1",
                checkpoint_sha256="0" * 64,
            )
            for n in range(tickets):
                request = TicketRequest(
                    subject=f"benchmark subject {n}",
                    model=MODEL,
                    forget_uris=[f"file:///bench/forget/{n}.json"],
                    requested_by="benchmark",
                    legal_basis="benchmark",
                )
                filing.file_ticket(request, session=session)
    finally:
        engine.dispose()


def _claimer(url: str, owner: str, ready: Any, results: Any) -> None:
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    claimed: list[int] = []
    error = None
    ready.wait()
    started = time.monotonic()
    try:
        while True:
            with factory.begin() as session:
                ticket = queue.claim(owner, 600, session=session, model_name=MODEL)
                if ticket is None:
                    break
                claimed.append(ticket.id)
    except Exception as exc:  # noqa: BLE001  (reported, so one failing claimer cannot hang the run)
        error = f"{type(exc).__name__}: {exc}".splitlines()[0]
    report = {
        "owner": owner,
        "claimed": claimed,
        "started": started,
        "finished": time.monotonic(),
        "error": error,
    }
    results.put(report)
    engine.dispose()


def run(url: str, *, tickets: int = 200, workers: int = 8) -> dict[str, Any]:
    """Seed `url` (a migrated, empty database), drain it with `workers` processes, and report."""
    seed(url, tickets)
    # Spawned, not forked: a fork inherits the parent's threading at-exit hooks, and once Prefect has
    # run in the parent (a test session) its events worker's hook fails in the child, exit code 1.
    context = mp.get_context("spawn")
    ready, results = context.Barrier(workers + 1), context.Queue()
    processes = [context.Process(target=_claimer, args=(url, f"claimer-{n}", ready, results)) for n in range(workers)]
    for process in processes:
        process.start()
    ready.wait()
    reports = [results.get(timeout=300) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    ids = [ticket_id for report in reports for ticket_id in report["claimed"]]
    seconds = max(r["finished"] for r in reports) - min(r["started"] for r in reports)

    engine = make_engine(url)
    try:
        with make_sessionmaker(engine).begin() as session:
            still_queued = session.scalar(
                select(func.count()).select_from(Ticket).where(Ticket.status == TicketStatus.queued)
            )
            claim_records = session.scalar(
                select(func.count()).select_from(AuditRecord).where(AuditRecord.payload["to"].as_string() == "claimed")
            )
            chain = audit.verify(session=session)
    finally:
        engine.dispose()
    return {
        "backend": url.split(":", 1)[0],
        "tickets": tickets,
        "workers": workers,
        "claims": len(ids),
        "unique_tickets_claimed": len(set(ids)),
        "duplicates": len(ids) - len(set(ids)),
        "still_queued": still_queued,
        "claim_audit_records": claim_records,
        "audit_chain_ok": chain.ok,
        "seconds": round(seconds, 3),
        "claims_per_second": round(len(ids) / seconds, 1) if seconds > 0 else None,
        "per_worker": {r["owner"]: len(r["claimed"]) for r in reports},
        "errors": [r["error"] for r in reports if r["error"]],
        "exit_codes": [p.exitcode for p in processes],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=200)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL, help="a PostgreSQL superuser URL")
    parser.add_argument("--json", dest="json_path", help="also write the result as JSON to this file")
    args = parser.parse_args()

    from infra.db.migrate import upgrade
    from infra.db.provision import create_database, drop_database

    name = f"grin_bench_{uuid.uuid4().hex[:10]}"
    url = create_database(args.admin_url, name)
    try:
        upgrade(url)
        result = run(url, tickets=args.tickets, workers=args.workers)
    finally:
        drop_database(args.admin_url, name)
    print(
        f"{result['claims']} claims of {result['tickets']} tickets by {result['workers']} processes in "
        f"{result['seconds']} s: {result['claims_per_second']} claims/s, {result['duplicates']} duplicates, "
        f"{result['still_queued']} left queued, audit chain {'ok' if result['audit_chain_ok'] else 'BROKEN'}"
    )
    print(json.dumps(result, sort_keys=True))
    if args.json_path:
        with open(args.json_path, "w") as out:
            json.dump(result, out, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()
