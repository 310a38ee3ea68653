"""event_receipts: one row per received audit event (opt-in), to prove every event sent was received

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_receipts",
        # (auditID, stage, stageTimestamp): the pipeline's dedupe identity; auditID alone is client-chosen
        sa.Column("audit_id", sa.String(255), primary_key=True),
        sa.Column("stage", sa.String(32), primary_key=True),
        sa.Column("stage_timestamp", sa.String(64), primary_key=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_receipts_received_at", "event_receipts", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_receipts_received_at", "event_receipts")
    op.drop_table("event_receipts")
