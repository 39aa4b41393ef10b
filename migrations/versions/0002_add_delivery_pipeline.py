"""add delivery pipeline: outbox leases, reminders, opt-outs, delivery reports

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("appointment_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("appointment_starts_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("status_reason", sa.String(length=60), nullable=True))
        batch_op.add_column(sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(
            op.f("fk_outbox_messages_appointment_id_appointments"),
            "appointments",
            ["appointment_id"],
            ["id"],
        )
        batch_op.create_index(
            "ix_outbox_messages_provider_message_id", ["provider_message_id"], unique=False
        )
        batch_op.create_index(
            "ix_outbox_messages_appointment_id", ["appointment_id"], unique=False
        )

    op.create_table(
        "opt_outs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("scope", sa.String(length=40), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_opt_outs_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opt_outs")),
        sa.UniqueConstraint("phone", "scope", name="uq_opt_outs_phone_scope"),
    )
    op.create_table(
        "delivery_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("provider_message_id", sa.String(length=100), nullable=False),
        sa.Column("provider_status", sa.String(length=40), nullable=False),
        sa.Column("failure_reason", sa.String(length=80), nullable=True),
        sa.Column("outbox_message_id", sa.Integer(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["outbox_message_id"],
            ["outbox_messages.id"],
            name=op.f("fk_delivery_reports_outbox_message_id_outbox_messages"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_reports")),
        sa.UniqueConstraint(
            "provider_message_id",
            "provider",
            "provider_status",
            name="uq_delivery_reports_provider_message_status",
        ),
    )


def downgrade() -> None:
    op.drop_table("delivery_reports")
    op.drop_table("opt_outs")
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_messages_appointment_id")
        batch_op.drop_index("ix_outbox_messages_provider_message_id")
        batch_op.drop_constraint(
            op.f("fk_outbox_messages_appointment_id_appointments"), type_="foreignkey"
        )
        batch_op.drop_column("delivered_at")
        batch_op.drop_column("lease_expires_at")
        batch_op.drop_column("enqueued_at")
        batch_op.drop_column("status_reason")
        batch_op.drop_column("appointment_starts_at")
        batch_op.drop_column("appointment_id")
        batch_op.drop_column("kind")
