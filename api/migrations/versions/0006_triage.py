"""triage: status and assignee of alerts and alert groups, their history and notes, and rule exceptions

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")
_SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _triage_columns(table: str) -> None:
    # a constant default: PostgreSQL adds the column without rewriting the table, SQLite with ALTER TABLE
    with op.batch_alter_table(table) as batch:
        batch.add_column(sa.Column("status", sa.String(20), nullable=False, server_default="open"))
        batch.add_column(sa.Column("assignee", sa.String(200)))


def upgrade() -> None:
    _triage_columns("alerts")
    op.create_index("ix_alerts_status_time_id", "alerts", ["status", "event_time", "id"])
    op.create_index("ix_alerts_assignee", "alerts", ["assignee"])
    _triage_columns("alert_groups")
    op.create_index("ix_groups_status_last_seen_id", "alert_groups", ["status", "last_seen", "id"])
    op.create_index("ix_groups_assignee", "alert_groups", ["assignee"])
    op.create_table(
        "triage_history",
        sa.Column("id", _SERIAL, primary_key=True, autoincrement=True),
        sa.Column("target", sa.String(8), nullable=False),
        sa.Column("target_id", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("field", sa.String(16), nullable=False),
        sa.Column("old_value", sa.Text),
        sa.Column("new_value", sa.Text),
        sa.Column("via_group", sa.String(64)),
    )
    op.create_index("ix_history_target", "triage_history", ["target", "target_id", "id"])
    op.create_table(
        "triage_notes",
        sa.Column("id", _SERIAL, primary_key=True, autoincrement=True),
        sa.Column("target", sa.String(8), nullable=False),
        sa.Column("target_id", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
    )
    op.create_index("ix_notes_target", "triage_notes", ["target", "target_id", "id"])
    op.create_table(
        "rule_exceptions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("rule_id", sa.String(200), nullable=False),
        sa.Column("match", _JSON, nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("from_alert", sa.String(64)),
        sa.Column("hits", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("last_hit", sa.DateTime(timezone=True)),
    )


def downgrade() -> None:
    op.drop_table("rule_exceptions")
    op.drop_index("ix_notes_target", "triage_notes")
    op.drop_table("triage_notes")
    op.drop_index("ix_history_target", "triage_history")
    op.drop_table("triage_history")
    for table, indexes in (
        ("alert_groups", ("ix_groups_assignee", "ix_groups_status_last_seen_id")),
        ("alerts", ("ix_alerts_assignee", "ix_alerts_status_time_id")),
    ):
        for index in indexes:
            op.drop_index(index, table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("assignee")
            batch.drop_column("status")
