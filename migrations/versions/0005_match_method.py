"""Profile matching: tickets may ask for method `match` (GRIN with the never-seen profile objective).

The CHECK constraint on `tickets.method` is rebuilt with the new name.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

METHODS_BEFORE = ("npo", "graddiff", "po", "grun")
METHODS = ("match", *METHODS_BEFORE)


def _method_check(values: Sequence[str]) -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_constraint(op.f("ck_tickets_method"), type_="check")
        batch.create_check_constraint(op.f("ck_tickets_method"), f"method IN ({', '.join(repr(v) for v in values)})")


def upgrade() -> None:
    _method_check(METHODS)


def downgrade() -> None:
    _method_check(METHODS_BEFORE)
