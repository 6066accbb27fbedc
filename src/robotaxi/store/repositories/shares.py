"""Trip sharing: read-only links to a ride, made by its rider, revocable, token stored hashed."""

from __future__ import annotations

from sqlalchemy import select, update

from robotaxi.store.models import RideShareRow
from robotaxi.store.scope import Repository
from robotaxi.store.tokens import hash_token, new_token, token_matches

# how many live links one ride may have: a rider shares with a few people, not a crowd
MAX_LINKS_PER_RIDE = 10


class ShareRepository(Repository):
    def create(self, ride_id: str) -> str | None:
        """A new link token for `ride_id` (shown once), or None when the ride already has
        `MAX_LINKS_PER_RIDE` links that are not revoked."""
        with self._scope.writing("sharing a ride") as session:
            live = session.scalars(
                select(RideShareRow.token_hash).where(
                    RideShareRow.ride_id == ride_id, RideShareRow.revoked_at.is_(None)
                )
            ).all()
            if len(live) >= MAX_LINKS_PER_RIDE:
                return None
            token = new_token()
            session.add(
                RideShareRow(
                    token_hash=hash_token(token),
                    ride_id=ride_id,
                    created_at=self._scope.wall_clock(),
                )
            )
            session.flush()
            return token

    def ride_of(self, token: str) -> str | None:
        """The ride a link token shows, or None (unknown or revoked)."""
        if not token:
            return None
        with self._scope.reading("opening a shared ride") as session:
            row = session.get(RideShareRow, hash_token(token))
            if row is None or row.revoked_at is not None:
                return None
            if not token_matches(token, row.token_hash):
                return None
            return row.ride_id

    def revoke_all(self, ride_id: str) -> int:
        """Revoke every link of a ride; returns how many were live."""
        with self._scope.writing("stopping sharing a ride") as session:
            result = session.execute(
                update(RideShareRow)
                .where(RideShareRow.ride_id == ride_id, RideShareRow.revoked_at.is_(None))
                .values(revoked_at=self._scope.wall_clock())
            )
            return int(getattr(result, "rowcount", 0) or 0)
