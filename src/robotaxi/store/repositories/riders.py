"""Registered riders and their bearer tokens (stored only as hashes)."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from robotaxi.store.errors import StoreError
from robotaxi.store.models import RiderRow
from robotaxi.store.records import Rider
from robotaxi.store.repositories.sql import utc
from robotaxi.store.scope import Repository
from robotaxi.store.tokens import hash_token, new_token, token_matches

NAME_MAX_CHARS = 200


class RiderRepository(Repository):
    def create(self, name: str) -> tuple[Rider, str]:
        """Register a rider; returns the rider and their bearer token, shown only this once."""
        name = name.strip()
        if not name or len(name) > NAME_MAX_CHARS:
            raise StoreError(
                f"a rider's name must have 1 to {NAME_MAX_CHARS} characters; choose another"
            )
        token = new_token()
        row = RiderRow(
            id=uuid.uuid4().hex,
            name=name,
            token_hash=hash_token(token),
            created_at=self._scope.wall_clock(),
        )
        with self._scope.writing("registering a rider") as session:
            session.add(row)
            session.flush()
            return _rider(row), token

    def get(self, rider_id: str) -> Rider | None:
        with self._scope.reading("reading a rider") as session:
            row = session.get(RiderRow, rider_id)
            return None if row is None else _rider(row)

    def by_token(self, token: str) -> Rider | None:
        """The rider whose bearer token this is, or None.

        The lookup is by the token's hash (an index cannot leak the token through timing);
        the hash found is compared again in constant time before it is trusted.
        """
        if not token:
            return None
        with self._scope.reading("checking a token") as session:
            row = session.scalars(
                select(RiderRow).where(RiderRow.token_hash == hash_token(token))
            ).first()
            if row is None or not token_matches(token, row.token_hash):
                return None
            return _rider(row)


def _rider(row: RiderRow) -> Rider:
    return Rider(id=row.id, name=row.name, created_at=utc(row.created_at))
