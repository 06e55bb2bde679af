"""notifications: contacts, opt-outs, ledger, delivery log, inbound SMS

Revision ID: 0002_notify
Revises: 0001
Create Date: 2026-11-24 10:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_notify"
down_revision = "0001"
branch_labels = None
depends_on = None

_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "notify_contacts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sp_id", sa.String(64), nullable=False),
        sa.Column("account", sa.String(64), nullable=True),
        sa.Column("name", sa.String(120), nullable=True),
        sa.Column("email", sa.String(200), nullable=True),
        sa.Column("sms", sa.String(32), nullable=True),
        sa.Column("voice", sa.String(32), nullable=True),
        sa.Column("webhook_url", sa.String(500), nullable=True),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("prefer", sa.String(16), nullable=False),
        sa.Column("proactive", sa.Boolean(), nullable=False),
        sa.Column("quiet_start", sa.Integer(), nullable=True),
        sa.Column("quiet_end", sa.Integer(), nullable=True),
        sa.Column("timezone", sa.String(64), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_index("ix_notify_contacts_sp_id", "notify_contacts", ["sp_id"])
    op.create_table(
        "notify_optouts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("address", sa.String(200), nullable=False),
        sa.Column("opted_out", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.UniqueConstraint("channel", "address", name="uq_notify_optouts_address"),
    )
    op.create_table(
        "notify_ledger",
        sa.Column("id", _BIGID, primary_key=True),
        sa.Column("audience", sa.String(220), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("digest", sa.String(32), nullable=False),
        sa.Column("etr", _TS, nullable=True),
        sa.Column("outbox_id", sa.BigInteger(), nullable=True),
        sa.Column("at", _TS, nullable=False),
        sa.UniqueConstraint("audience", "event_id", "kind", name="uq_notify_ledger"),
    )
    op.create_index("ix_notify_ledger_event_id", "notify_ledger", ["event_id"])
    op.create_table(
        "notify_deliveries",
        sa.Column("id", _BIGID, primary_key=True),
        sa.Column("outbox_id", sa.BigInteger(), nullable=False),
        sa.Column("idempotency_key", sa.String(120), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("worker", sa.String(80), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("provider_id", sa.String(160), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("at", _TS, nullable=False),
    )
    op.create_index("ix_notify_deliveries_outbox_id", "notify_deliveries", ["outbox_id"])
    op.create_index("ix_notify_deliveries_idempotency_key", "notify_deliveries", ["idempotency_key"])
    op.create_index("ix_notify_deliveries_at", "notify_deliveries", ["at"])
    op.create_table(
        "notify_inbound",
        sa.Column("id", _BIGID, primary_key=True),
        sa.Column("address", sa.String(32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("keyword", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(200), nullable=False),
        sa.Column("provider_id", sa.String(160), nullable=True),
        sa.Column("at", _TS, nullable=False),
    )
    op.create_index("ix_notify_inbound_address", "notify_inbound", ["address"])


def downgrade() -> None:
    for table in ("notify_inbound", "notify_deliveries", "notify_ledger", "notify_optouts", "notify_contacts"):
        op.drop_table(table)
