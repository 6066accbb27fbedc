"""Simulation time as integer microseconds (as nuPlan does): exact, hashable, no float drift."""

from __future__ import annotations

from dataclasses import dataclass

MICROS_PER_S = 1_000_000


@dataclass(frozen=True, order=True, slots=True)
class TimePoint:
    """A point in simulation time, in integer microseconds since the simulation's epoch."""

    time_us: int

    @classmethod
    def from_s(cls, seconds: float) -> TimePoint:
        return cls(round(seconds * MICROS_PER_S))

    @property
    def time_s(self) -> float:
        return self.time_us / MICROS_PER_S

    def __add__(self, seconds: float) -> TimePoint:
        return TimePoint(self.time_us + round(seconds * MICROS_PER_S))

    def __sub__(self, other: TimePoint) -> float:
        """Difference in seconds."""
        return (self.time_us - other.time_us) / MICROS_PER_S
