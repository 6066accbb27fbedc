"""`Scope`: the one transaction that every repository of a unit of work runs its SQL in."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from robotaxi.store.engine import translate_errors
from robotaxi.store.errors import StoreError


@dataclass(frozen=True, slots=True)
class Scope:
    """A session and what repositories need to know about it.

    `where` names the database in error messages; `wall_clock` stamps rows that carry a
    wall-clock time (riders, runs, tickets). A read-only scope refuses writes, so that a
    write can never slip into a transaction that is not going to be committed.
    """

    session: Session
    writable: bool
    where: str
    wall_clock: Callable[[], datetime]

    @contextmanager
    def reading(self, action: str) -> Iterator[Session]:
        """The session, with driver errors turned into StoreErrors that name `action`."""
        with translate_errors(self.where, action):
            yield self.session

    @contextmanager
    def writing(self, action: str) -> Iterator[Session]:
        """As `reading`, for a write; StoreError in a read-only scope."""
        if not self.writable:
            raise StoreError(
                f"{action} is a write: do it in Store.unit_of_work(), not Store.reading()"
            )
        with translate_errors(self.where, action):
            yield self.session


class Repository:
    """One aggregate's queries, run in the scope of the unit of work that made it."""

    def __init__(self, scope: Scope) -> None:
        self._scope = scope
