"""Connecting to a database: the engine, SQLite's pragmas, Alembic migrations, driver errors.

Everything here is about the connection, nothing about riders or trips; the repositories
(`robotaxi.store.repositories`) hold the queries.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.exc import (
    DatabaseError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
    StatementError,
)

from robotaxi.store.errors import StoreError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SqliteSync = Literal["FULL", "NORMAL"]

# execution option read by the SQLite "begin" hook: writers take the write lock up front
WRITE_OPTION = "robotaxi_store_write"
_SQLITE_BUSY_TIMEOUT_S = 30.0


def create_store_engine(url: URL, sqlite_synchronous: SqliteSync) -> Engine:
    """An engine for `url`: SQLite in WAL mode with foreign keys on, others pre-pinged."""
    where = describe(url)
    try:
        if url.get_backend_name() == "sqlite":
            engine = create_engine(url, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_S})
            _configure_sqlite(engine, sqlite_synchronous)
        else:
            engine = create_engine(url, pool_pre_ping=True)
    except NoSuchModuleError as exc:
        raise StoreError(
            f"unknown database kind in {where}; use sqlite:/// or postgresql+psycopg://"
        ) from exc
    except ModuleNotFoundError as exc:
        raise StoreError(
            f"the driver for {where} is not installed ({exc.name}); "
            "install it, e.g. pip install 'psycopg[binary]'"
        ) from exc
    return engine


def _configure_sqlite(engine: Engine, synchronous: SqliteSync) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # We issue BEGIN ourselves (below): pysqlite's own implicit BEGIN comes only before
        # DML, which would leave reads and DDL (migrations) outside the transaction.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers lock up front so that a read-then-write never fails half-way with "database
        # is locked" when another writer got in between (WAL cannot upgrade a stale read).
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


# --- schema -------------------------------------------------------------------------------


def migrate(writer: Engine) -> None:
    """Upgrade the schema to the newest revision; a no-op when it is already there."""
    where = describe(writer.url)
    config = _alembic_config(writer.url)
    with translate_errors(where, "upgrading the schema"), writer.begin() as conn:
        if conn.dialect.name == "postgresql":
            # two servers starting on one empty database must not both create tables
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(4120250001)")
        current = MigrationContext.configure(conn).get_current_revision()
        script = ScriptDirectory.from_config(config)
        if current is not None and current not in {r.revision for r in script.walk_revisions()}:
            raise StoreError(
                f"{where} has schema revision {current}, unknown to this robotaxi "
                "(made by a newer version?); upgrade robotaxi or use another database"
            )
        config.attributes["connection"] = conn
        try:
            command.upgrade(config, "head")
        except CommandError as exc:
            raise StoreError(f"cannot migrate {where}: {exc}; use a fresh database file") from exc


def schema_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at (None before the first migration)."""
    where = describe(engine.url)
    with translate_errors(where, "reading the schema revision"), engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _alembic_config(url: URL) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # only for offline (--sql) use; online runs get the store's own connection
    config.set_main_option(
        "sqlalchemy.url", url.render_as_string(hide_password=True).replace("%", "%%")
    )
    return config


# --- errors -------------------------------------------------------------------------------


def describe(url: URL) -> str:
    """The database as error messages name it (never with its password)."""
    if url.get_backend_name() == "sqlite":
        return f"SQLite database {url.database or ':memory:'}"
    return f"database {url.render_as_string(hide_password=True)}"


@contextmanager
def translate_errors(where: str, action: str) -> Iterator[None]:
    """Turn driver errors into one-line StoreErrors that say what to do."""
    try:
        yield
    except IntegrityError as exc:
        raise StoreError(
            f"{action} was refused by the schema ({_first_line(exc.orig)}); "
            "check that every id it refers to exists and that new ids are unique"
        ) from exc
    except (DatabaseError, OperationalError) as exc:
        raise _unavailable(where, exc) from exc
    except NoSuchModuleError as exc:
        raise StoreError(
            f"no database driver for {where}; install it "
            "(e.g. pip install 'psycopg[binary]' for postgresql+psycopg)"
        ) from exc
    except StatementError as exc:
        if isinstance(exc.orig, TypeError | ValueError):
            raise StoreError(
                f"{action}: a value cannot be stored ({_first_line(exc.orig)}); "
                "event data must be JSON (dicts, lists, str, numbers, bools, None)"
            ) from exc
        raise StoreError(f"{action} failed on {where}: {_first_line(exc)}") from exc
    except SQLAlchemyError as exc:
        raise StoreError(f"{action} failed on {where}: {_first_line(exc)}") from exc
    except TypeError as exc:
        # psycopg serialises JSON itself, outside SQLAlchemy's StatementError wrapping
        if "JSON serializable" not in str(exc):
            raise
        raise StoreError(
            f"{action}: a value cannot be stored ({exc}); "
            "event data must be JSON (dicts, lists, str, numbers, bools, None)"
        ) from exc


def _first_line(exc: object) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _unavailable(where: str, exc: SQLAlchemyError) -> StoreError:
    message = _first_line(getattr(exc, "orig", None) or exc)
    if "file is not a database" in message or "malformed" in message:
        return StoreError(
            f"{where} is not a robotaxi database ({message}); "
            "point the database URL at a new file or at one robotaxi made"
        )
    if "unable to open database file" in message:
        return StoreError(
            f"cannot open {where} ({message}); check that its folder exists and is writable"
        )
    if "readonly" in message or "read-only" in message:
        return StoreError(f"{where} is read-only ({message}); make it writable or copy it")
    return StoreError(
        f"cannot use {where} ({message}); check that the database server is running and the "
        "database URL (--database-url) is right"
    )
