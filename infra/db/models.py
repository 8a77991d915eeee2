"""Tables: the ticket queue, the model registry and the audit chain."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Column,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from infra.db.base import Base, JSONDocument, utcnow
from infra.ticket_status import TicketStatus
from policy.methods import Method


def _values(enum: type[StrEnum]) -> list[str]:
    return [member.value for member in enum]


model_version_tickets = Table(
    "model_version_tickets",
    Base.metadata,
    Column("version_id", ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True),
    Column("ticket_id", ForeignKey("tickets.id"), primary_key=True),
)


class Ticket(Base):
    """One deletion request and where it stands in the pipeline."""

    __tablename__ = "tickets"
    __table_args__ = (Index("ix_tickets_claim_order", "status", "model_name", "due_date", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(Text)  # personal data: never logged, hashed in audit payloads
    model_name: Mapped[str] = mapped_column(String(100), ForeignKey("registered_models.name"))
    model_ref: Mapped[str] = mapped_column(String(200))  # as filed: name, name@alias or name@version
    forget_uris: Mapped[list[str]]
    retain_uris: Mapped[list[str] | None]
    keywords_uri: Mapped[str | None] = mapped_column(Text)
    method: Mapped[Method] = mapped_column(
        Enum(
            Method,
            name="method",
            native_enum=False,
            create_constraint=True,
            length=16,
            values_callable=_values,
        )
    )
    hparams: Mapped[dict[str, Any]]
    requested_by: Mapped[str] = mapped_column(String(200))
    legal_basis: Mapped[str] = mapped_column(String(500))
    due_date: Mapped[date | None]
    status: Mapped[TicketStatus] = mapped_column(
        Enum(
            TicketStatus,
            name="status",
            native_enum=False,
            create_constraint=True,
            length=16,
            values_callable=_values,
        ),
        default=TicketStatus.queued,
    )
    attempts: Mapped[int] = mapped_column(default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(index=True)
    error_reason: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    request_sha256: Mapped[str] = mapped_column(String(64))
    result_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    result_version: Mapped[ModelVersion | None] = relationship(foreign_keys=[result_version_id])


class RegisteredModel(Base):
    """A named model line; its versions form a lineage of unlearned checkpoints."""

    __tablename__ = "registered_models"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    gate_policy: Mapped[dict[str, Any] | None]  # overrides merged over the settings' GatePolicy
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    versions: Mapped[list[ModelVersion]] = relationship(back_populates="model", order_by="ModelVersion.version")
    aliases: Mapped[list[ModelAlias]] = relationship(back_populates="model", order_by="ModelAlias.alias")


class ModelVersion(Base):
    """A registered checkpoint with everything an auditor needs to tie it to its inputs."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id"))
    version: Mapped[int]
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    checkpoint_uri: Mapped[str] = mapped_column(Text)
    checkpoint_sha256: Mapped[str] = mapped_column(String(64))
    training_manifest_uri: Mapped[str | None] = mapped_column(Text)  # QA records it was trained on
    eval_suite_uri: Mapped[str | None] = mapped_column(Text)  # QA sets its gate metrics are measured on
    training_manifest_sha256: Mapped[str | None] = mapped_column(String(64))
    # GRUN: the full-weight checkpoint this version's intervention applies to (None: it holds its weights)
    base_checkpoint_uri: Mapped[str | None] = mapped_column(Text)
    base_checkpoint_sha256: Mapped[str | None] = mapped_column(String(64))
    mask_uri: Mapped[str | None] = mapped_column(Text)
    mask_sha256: Mapped[str | None] = mapped_column(String(64))
    hparams: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    gate: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # [{"ticket_id", "forget_sha256"}, ...]: every deletion along the lineage, this version's included
    lineage_deletions: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONDocument, default=list, server_default=text("'[]'")
    )
    # tickets answered by a later version whose deleted data this checkpoint still holds
    holds_deleted_data_of: Mapped[list[int]] = mapped_column(JSONDocument, default=list, server_default=text("'[]'"))
    superseded_at: Mapped[datetime | None]  # first marked as holding deleted data
    purged_at: Mapped[datetime | None]  # checkpoint and manifest purged after the grace period
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    model: Mapped[RegisteredModel] = relationship(back_populates="versions")
    parent: Mapped[ModelVersion | None] = relationship(remote_side=[id])
    tickets: Mapped[list[Ticket]] = relationship(secondary=model_version_tickets, order_by=Ticket.id)


class ModelAlias(Base):
    """A movable name (e.g. `production`) for one version of a model."""

    __tablename__ = "model_aliases"

    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(100), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    model: Mapped[RegisteredModel] = relationship(back_populates="aliases")
    version: Mapped[ModelVersion] = relationship()


class AuditRecord(Base):
    """One link of the hash chain. Rows are never updated or deleted (a trigger enforces it on PostgreSQL).

    `id` is assigned by the appender (previous id + 1) rather than a sequence so that it is known
    before the insert, is part of the hash, and a deleted row shows up as a gap.
    `ticket_id` has no foreign key: the chain must outlive, and never block, changes to other tables.
    """

    __tablename__ = "audit_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(64))
    ticket_id: Mapped[int | None] = mapped_column(index=True)
    payload: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)
