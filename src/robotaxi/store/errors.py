"""The store's named error."""

from __future__ import annotations

from robotaxi.core.errors import RobotaxiError


class StoreError(RobotaxiError):
    """The database could not be opened, read or written, or was asked something inconsistent.

    The message is one line: what failed and what to do about it.
    """


class TicketClosedError(StoreError):
    """An operator replied to a closed support ticket (the rider reopens it by writing)."""
