"""notify_outbox and notify_resends: notifications delivered from the database (at least once, with retries)

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notify_outbox",
        # one row per (alert, sink), written in the alert's own transaction
        sa.Column("alert_id", sa.String(64), primary_key=True),
        sa.Column("sink", sa.String(200), primary_key=True),
        sa.Column("group_id", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),  # pending | delivered | failed | dropped
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("leased_until", sa.DateTime(timezone=True)),  # a sender is delivering it until then
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.Text),
    )
    op.create_index("ix_outbox_due", "notify_outbox", ["sink", "status", "next_attempt_at"])
    op.create_index("ix_outbox_status_created", "notify_outbox", ["status", "created_at"])
    op.create_table(
        "notify_resends",
        # Alertmanager's copy of an alert group: re-sent while it fires, then resolved
        sa.Column("sink", sa.String(200), primary_key=True),
        sa.Column("group_id", sa.String(64), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),  # firing | resolved
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("leased_until", sa.DateTime(timezone=True)),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.Text),
    )
    op.create_index("ix_resends_due", "notify_resends", ["sink", "next_at"])


def downgrade() -> None:
    op.drop_index("ix_resends_due", "notify_resends")
    op.drop_table("notify_resends")
    op.drop_index("ix_outbox_status_created", "notify_outbox")
    op.drop_index("ix_outbox_due", "notify_outbox")
    op.drop_table("notify_outbox")
