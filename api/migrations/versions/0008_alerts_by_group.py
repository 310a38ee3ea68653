"""ix_alerts_group: the alerts of one group, found without reading them all (group triage, a group's alerts)

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_alerts_group", "alerts", ["group_id"])


def downgrade() -> None:
    op.drop_index("ix_alerts_group", table_name="alerts")
