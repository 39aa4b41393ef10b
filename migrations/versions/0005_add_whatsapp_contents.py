"""add the cache of WhatsApp Content API resources

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "whatsapp_contents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_sid", sa.String(length=34), nullable=False),
        sa.Column("content_key", sa.String(length=100), nullable=False),
        sa.Column("content_sid", sa.String(length=34), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whatsapp_contents")),
        sa.UniqueConstraint("account_sid", "content_key", name="uq_whatsapp_contents_account_key"),
    )


def downgrade() -> None:
    op.drop_table("whatsapp_contents")
