"""The sweep's named errors: each message says what was wrong and what to do, in one line."""

from __future__ import annotations

from robotaxi.core.errors import RobotaxiError


class SweepError(RobotaxiError):
    """A sweep cannot start or cannot answer (bad results folder, bad target)."""


class GridError(SweepError):
    """The grid is empty or malformed, or names a setting `simulate` does not have."""


class ClusterError(SweepError):
    """Ray could not be started, or the cluster at --address could not be reached."""
