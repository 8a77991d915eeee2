"""GRUN: tickets may ask for method `grun`; a version may stand on another checkpoint's weights.

- `tickets.method` accepts "grun" (the CHECK constraint is rebuilt);
- `model_versions.base_checkpoint_uri` / `base_checkpoint_sha256`: for a version whose checkpoint is
  an intervention (GRUN), the full-weight checkpoint it applies to; NULL when the checkpoint holds
  the weights itself.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

METHODS_BEFORE = ("npo", "graddiff", "po")
METHODS = (*METHODS_BEFORE, "grun")


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _method_check(values: Sequence[str]) -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_constraint(op.f("ck_tickets_method"), type_="check")
        batch.create_check_constraint(op.f("ck_tickets_method"), _in("method", values))


def upgrade() -> None:
    _method_check(METHODS)
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("base_checkpoint_uri", sa.Text(), nullable=True))
        batch.add_column(sa.Column("base_checkpoint_sha256", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("base_checkpoint_sha256")
        batch.drop_column("base_checkpoint_uri")
    _method_check(METHODS_BEFORE)
