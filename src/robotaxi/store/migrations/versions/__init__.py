"""Alembic revisions of the store's schema, oldest first (never edit a shipped one)."""
