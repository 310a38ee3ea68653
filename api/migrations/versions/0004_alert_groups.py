"""alert_groups, and alerts.group_id: alerts of one rule and key folded within a suppression window

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_groups",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("rule_id", sa.String(200), nullable=False),
        sa.Column("rule_name", sa.Text, nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("severity_rank", sa.SmallInteger, nullable=False),
        sa.Column("group_key", sa.Text, nullable=False),
        sa.Column("user_name", sa.Text, nullable=False),
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("suppress_s", sa.Integer, nullable=False),
        sa.Column("last_alert_id", sa.String(64), nullable=False),
        sa.Column("last_message", sa.Text, nullable=False),
    )
    op.create_index("ix_groups_lookup", "alert_groups", ["rule_id", "group_key", "last_seen"])
    op.create_index("ix_groups_last_seen_id", "alert_groups", ["last_seen", "id"])
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("group_id", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("group_id")
    op.drop_index("ix_groups_last_seen_id", "alert_groups")
    op.drop_index("ix_groups_lookup", "alert_groups")
    op.drop_table("alert_groups")
