"""Persistence of riders, trips and the append-only event log (SQLAlchemy)."""
