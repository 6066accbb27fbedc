"""Alembic environment: migrates the connection that `robotaxi.store` hands over.

`Store.open` runs `alembic upgrade head` through alembic's command API with
`config.attributes["connection"]` set, so this never reads an alembic.ini or creates an
engine of its own (and the connection keeps the store's SQLite pragmas). Offline mode
(`--sql`) is supported for printing the DDL of a URL's dialect.
"""

from __future__ import annotations

from alembic import context

from robotaxi.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("robotaxi.store migrations run only through Store.open/migrate")
    # render_as_batch: SQLite cannot ALTER most things in place; batch mode copies tables.
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
