"""notifications hardening: parked contacts, contact confirmations for anonymous reports

Revision ID: 0005_notify_hardening
Revises: 0004_console
Create Date: 2026-12-07 03:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_notify_hardening"
down_revision = "0004_console"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a contact the planner cannot serve (bad time zone, language) is parked with its reason instead of failing scans
    with op.batch_alter_table("notify_contacts") as t:
        t.add_column(sa.Column("parked", sa.String(200), nullable=True))
    op.create_table(
        "notify_confirmations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("address", sa.String(200), nullable=False),
        sa.Column("confirmed", sa.Boolean(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=True),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("channel", "address", name="uq_notify_confirmations_address"),
    )
    op.create_index("ix_notify_confirmations_token_hash", "notify_confirmations", ["token_hash"])


def downgrade() -> None:
    op.drop_index("ix_notify_confirmations_token_hash", "notify_confirmations")
    op.drop_table("notify_confirmations")
    with op.batch_alter_table("notify_contacts") as t:
        t.drop_column("parked")
