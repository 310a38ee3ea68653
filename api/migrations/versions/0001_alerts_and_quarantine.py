"""alerts and quarantine tables

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("rule_id", sa.String(200), nullable=False),
        sa.Column("rule_name", sa.Text, nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("severity_rank", sa.SmallInteger, nullable=False),
        sa.Column("mitre", _JSON, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("audit_id", sa.String(512), nullable=False),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("user_name", sa.Text, nullable=False),
        sa.Column("groups", _JSON, nullable=False),
        sa.Column("impersonated_user", sa.Text),
        sa.Column("source_ips", _JSON, nullable=False),
        sa.Column("user_agent", sa.Text, nullable=False),
        sa.Column("verb", sa.String(64), nullable=False),
        sa.Column("resource", sa.String(255), nullable=False),
        sa.Column("subresource", sa.String(255), nullable=False),
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("origin", sa.Text, nullable=False),
        sa.Column("event", _JSON, nullable=False),
    )
    op.create_index("ix_alerts_time_id", "alerts", ["event_time", "id"])
    op.create_index("ix_alerts_rule", "alerts", ["rule_id"])
    op.create_index("ix_alerts_user", "alerts", ["user_name"])
    op.create_index("ix_alerts_namespace", "alerts", ["namespace"])
    op.create_table(
        "quarantine",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("origin", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("payload_truncated", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("quarantine")
    op.drop_index("ix_alerts_namespace", "alerts")
    op.drop_index("ix_alerts_user", "alerts")
    op.drop_index("ix_alerts_rule", "alerts")
    op.drop_index("ix_alerts_time_id", "alerts")
    op.drop_table("alerts")
