"""model_versions.eval_suite_uri: the evaluation QA sets a version's gate metrics were measured on.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("eval_suite_uri", sa.Text(), nullable=True))


def downgrade() -> None:
    # SQLite cannot drop a column in place; batch mode rebuilds the table there.
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("eval_suite_uri")
