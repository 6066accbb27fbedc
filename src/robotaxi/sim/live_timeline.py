"""The live service's KPIs over time, for the operations view's small charts.

Once a simulated minute `KpiTimeline` takes a sample: rides requested, completed and cancelled
so far, riders waiting for their car now, the median pick-up wait of the riders their car
reached in that minute, and the cars by what they are doing. Counts come from the trip events
as they are recorded (the app's riders and simulated ones alike); a day of samples is kept.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from robotaxi.core import TripEvent, TripState
from robotaxi.fleet.manager import Vehicle, VehicleStatus
from robotaxi.fleet.trips import Trip

SAMPLE_EVERY_S = 60.0
KEEP_SAMPLES = 24 * 60  # a day of minutes

# the cars' groups in the charts, by the fleet's statuses
CAR_GROUPS: Mapping[str, frozenset[VehicleStatus]] = {
    "idle": frozenset({VehicleStatus.IDLE, VehicleStatus.REBALANCING}),
    "to_pickup": frozenset({VehicleStatus.TO_PICKUP, VehicleStatus.AT_PICKUP}),
    "with_rider": frozenset({VehicleStatus.TO_DROPOFF, VehicleStatus.AT_DROPOFF}),
    "charging": frozenset({VehicleStatus.TO_CHARGER, VehicleStatus.CHARGING}),
}


@dataclass(frozen=True, slots=True)
class KpiSample:
    """The service at one simulated minute."""

    time_s: float
    requests: int  # rides requested so far
    completed: int  # so far
    cancelled: int  # so far
    waiting: int  # riders waiting for their car now
    wait_p50_s: float | None  # median wait of the riders reached in the last minute
    cars: Mapping[str, int]  # by `CAR_GROUPS`


class KpiTimeline:
    """Samples of the live service's KPIs, one a simulated minute (not thread-safe: the
    live service calls it under its lock)."""

    def __init__(self, every_s: float = SAMPLE_EVERY_S, keep: int = KEEP_SAMPLES) -> None:
        self.every_s = every_s
        self._samples: deque[KpiSample] = deque(maxlen=keep)
        self._next_s = 0.0
        self._requests = self._completed = self._cancelled = 0
        self._waits: list[float] = []

    def observe(self, events: Iterable[TripEvent], trips: Mapping[str, Trip]) -> None:
        """Count the trip events just recorded (`trips`: the fleet's trips, for when each
        rider asked)."""
        for e in events:
            if e.state == TripState.REQUESTED:
                self._requests += 1
            elif e.state == TripState.COMPLETED:
                self._completed += 1
            elif e.state == TripState.CANCELLED:
                self._cancelled += 1
            elif e.state == TripState.ARRIVED:
                trip = trips.get(e.trip_id)
                if trip is None:
                    continue
                first = next(x for x in trip.events if x.state == TripState.ARRIVED)
                if first.seq == e.seq:  # the car's first arrival: the rider's wait ends
                    self._waits.append(e.time.time_s - trip.events[0].time.time_s)

    def sample(self, now_s: float, vehicles: Iterable[Vehicle], waiting: int) -> None:
        """Take a sample if a minute has passed since the last."""
        if now_s < self._next_s:
            return
        self._next_s = now_s + self.every_s
        cars = dict.fromkeys(CAR_GROUPS, 0)
        for v in vehicles:
            for name, statuses in CAR_GROUPS.items():
                if v.status in statuses:
                    cars[name] += 1
        wait = float(np.median(self._waits)) if self._waits else None
        self._waits = []
        self._samples.append(
            KpiSample(
                round(now_s, 1), self._requests, self._completed, self._cancelled, waiting,
                None if wait is None else round(wait, 1), cars,
            )
        )  # fmt: skip

    def samples(self, since_s: float = 0.0) -> Sequence[KpiSample]:
        """The samples taken at or after `since_s` (sim s), oldest first."""
        return [s for s in self._samples if s.time_s >= since_s]
