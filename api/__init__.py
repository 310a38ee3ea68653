"""The alert store (SQLAlchemy, Alembic migrations) and the REST API over it."""
