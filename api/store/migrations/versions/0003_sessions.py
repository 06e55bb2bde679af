"""sessions: API tokens expire

Revision ID: 0003_sessions
Revises: 0002_notify
Create Date: 2026-12-07 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_sessions"
down_revision = "0002_notify"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # nullable: tokens issued before this revision keep working until revoked (an operator re-issues them)
    op.add_column("api_tokens", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("expires_at")
