"""Pick-up ETA error: how long the car took to reach the rider, against the ETA it was assigned on.

A pure function of trips' event logs. For each trip that reached `arrived`, the assignment
that led there is the last `assigned` event before it (earlier ones were taken back or
reassigned); its `data["eta_s"]` is the pick-up ETA dispatch used (with what was left of the
car's drop-off, if it was finishing one), and the time the car then took is the `arrived`
event's time less that assignment's. Error = taken − assigned ETA (s): positive when the car
was late. Trips whose assignment carries no ETA, or whose arrival names another car, are left
out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from robotaxi.core.types import FloatArray, TripEvent, TripState


class HasEvents(Protocol):
    """A trip as far as this metric is concerned (`robotaxi.fleet.trips.Trip` is one)."""

    @property
    def events(self) -> Sequence[TripEvent]: ...


@dataclass(frozen=True)
class EtaErrorSummary:
    """Pick-up ETA error over trips (s; taken − assigned, positive = late)."""

    trips: int  # trips counted
    median_s: float
    p95_s: float
    mean_s: float
    median_abs_s: float
    p95_abs_s: float

    def to_json(self) -> dict[str, float | int]:
        return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in vars(self).items()}


def pickup_eta_error(trip: HasEvents) -> float | None:
    """taken − assigned pick-up ETA (s) for one trip; None if it never arrived at its rider,
    its last assignment carries no ETA, or the car that arrived is not the one assigned."""
    arrived: TripEvent | None = None
    for event in reversed(trip.events):
        if arrived is None:
            if event.state == TripState.ARRIVED:
                arrived = event
            continue
        if event.state != TripState.ASSIGNED:
            continue
        eta = event.data.get("eta_s")
        if eta is None:
            return None
        if arrived.vehicle_id is not None and event.vehicle_id != arrived.vehicle_id:
            return None
        taken_s = (arrived.time.time_us - event.time.time_us) / 1e6
        return taken_s - float(eta)
    return None


def pickup_eta_errors(trips: Iterable[HasEvents]) -> FloatArray:
    """`pickup_eta_error` of every trip that has one, in order."""
    errors = [pickup_eta_error(t) for t in trips]
    return np.array([e for e in errors if e is not None], dtype=float)


def eta_error_summary(trips: Iterable[HasEvents]) -> EtaErrorSummary:
    """Median, 95th percentile and mean of the pick-up ETA error (NaN with no trips)."""
    errors = pickup_eta_errors(trips)
    if not errors.size:
        nan = float("nan")
        return EtaErrorSummary(0, nan, nan, nan, nan, nan)
    magnitude = np.abs(errors)
    return EtaErrorSummary(
        trips=int(errors.size),
        median_s=float(np.median(errors)),
        p95_s=float(np.percentile(errors, 95)),
        mean_s=float(np.mean(errors)),
        median_abs_s=float(np.median(magnitude)),
        p95_abs_s=float(np.percentile(magnitude, 95)),
    )
