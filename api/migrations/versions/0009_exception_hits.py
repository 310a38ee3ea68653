"""rule_exception_hits: the alerts each rule exception kept out, so that a redelivered one is not counted again

Hits counted before this revision stay in rule_exceptions.hits; the alerts behind them are not known, so an
event redelivered after the upgrade whose alert was suppressed before it counts once more.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rule_exception_hits",
        # one row per (exception, the id of the alert it suppressed), written in the batch's transaction
        sa.Column("exception_id", sa.String(32), primary_key=True),
        sa.Column("alert_id", sa.String(64), primary_key=True),
        sa.Column("hit_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rule_exception_hits")
