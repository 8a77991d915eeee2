"""model_versions: the lineage of data a version stands on, and what superseded versions still hold.

- `training_manifest_sha256`: the content address of the manifest the version stands on (its
  parent's minus every forget record of the tickets it answers);
- `lineage_deletions`: `[{"ticket_id", "forget_sha256"}, ...]` removed along its lineage;
- `holds_deleted_data_of`: ids of tickets whose deleted data this (superseded) version still holds;
- `superseded_at`: when it was first so marked (the grace period of the purge counts from here);
- `purged_at`: when its checkpoint and manifest were purged.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("training_manifest_sha256", sa.String(64), nullable=True))
        batch.add_column(sa.Column("lineage_deletions", JSON, nullable=False, server_default=sa.text("'[]'")))
        batch.add_column(sa.Column("holds_deleted_data_of", JSON, nullable=False, server_default=sa.text("'[]'")))
        batch.add_column(sa.Column("superseded_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("purged_at", TIMESTAMP, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        for column in (
            "purged_at",
            "superseded_at",
            "holds_deleted_data_of",
            "lineage_deletions",
            "training_manifest_sha256",
        ):
            batch.drop_column(column)
