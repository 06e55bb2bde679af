"""notifications hardening: parked contacts, contact confirmations for anonymous reports

Revision ID: 0003_notify_hardening
Revises: 0002_notify
Create Date: 2026-12-07 03:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_notify_hardening"
down_revision = "0002_notify"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a contact the planner cannot serve (bad time zone, language) is parked with its reason instead of failing scans
    with op.batch_alter_table("notify_contacts") as t:
        t.add_column(sa.Column("parked", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notify_contacts") as t:
        t.drop_column("parked")
