"""Alembic environment of the store, shipped inside the package (run by `Store.open`)."""
