"""alerts.details: format-specific extras (Falco priority/output, Sigma level...)

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("details", _JSON, nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("details")
