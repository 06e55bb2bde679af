"""report review: a dispatcher's decision on a public report no service point matched

Revision ID: 0006_report_review
Revises: 0005_notify_hardening
Create Date: 2026-12-07 07:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_report_review"
down_revision = "0005_notify_hardening"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # all nullable: a report nobody reviewed (every report so far) has none of them
    with op.batch_alter_table("reports") as t:
        t.add_column(sa.Column("review", sa.String(16), nullable=True))
        t.add_column(sa.Column("reviewed_by", sa.String(64), nullable=True))
        t.add_column(sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True))
        t.add_column(sa.Column("review_note", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reports") as t:
        for name in ("review_note", "reviewed_at", "reviewed_by", "review"):
            t.drop_column(name)
