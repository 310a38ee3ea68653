"""Alembic environment: runs on the connection AlertStore.migrate() hands over (no alembic.ini needed)."""

from __future__ import annotations

from alembic import context

from api.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through api.store.AlertStore.migrate()")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
