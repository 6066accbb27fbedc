"""Named callbacks of the runner: the event sink, progress, and trails for the map.

Each holds a bounded amount of state however long the run: the sink's batch is flushed at
a fixed size, and trails are thinned (every other point dropped, the interval doubled) when
a car's trail reaches its cap, so a whole day keeps the whole day at a coarser grain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from robotaxi.core import RideRequest, TripEvent, VehicleEvent
from robotaxi.core.types import FloatArray, IntArray
from robotaxi.sim.simulation import Callback, Simulation, Tick

# called with the new ride requests, trip events and vehicle events since the last call
EventSink = Callable[[Sequence[RideRequest], Sequence[TripEvent], Sequence[VehicleEvent]], None]
Progress = Callable[[float, float, str], None]  # (sim seconds done, total, status text)


class EventBatcher(Callback):
    """Hands rides, trip events and vehicle events to a sink in batches of `flush_events`."""

    name = "event_sink"

    def __init__(self, sink: EventSink, flush_events: int = 500) -> None:
        self.sink = sink
        self.flush_events = flush_events
        self._rides: list[RideRequest] = []
        self._events: list[TripEvent] = []
        self._vehicle: list[VehicleEvent] = []

    def on_tick(self, sim: Simulation, tick: Tick) -> None:
        if sim.fleet is None:
            return
        self._rides.extend(tick.requests)
        self._events.extend(tick.result.events)
        self._vehicle.extend(tick.result.vehicle_events)
        if len(self._events) >= self.flush_events:
            self.flush()

    def flush(self) -> None:
        if self._rides or self._events or self._vehicle:
            rides, events, vehicle = self._rides, self._events, self._vehicle
            self._rides, self._events, self._vehicle = [], [], []
            self.sink(rides, events, vehicle)

    def on_end(self, sim: Simulation) -> None:
        self.flush()

    @property
    def held(self) -> int:
        """Items waiting for the next flush."""
        return len(self._rides) + len(self._events) + len(self._vehicle)


class ProgressReporter(Callback):
    """Calls `progress(done_s, total_s, status)` every `every_s` of simulated time and once
    at the end, with `status(sim)` describing the run."""

    name = "progress"

    def __init__(
        self,
        progress: Progress,
        total_s: float,
        status: Callable[[Simulation], str],
        every_s: float = 60.0,
    ) -> None:
        self.progress = progress
        self.total_s = total_s
        self.status = status
        self.every_s = every_s
        self._next_s = 0.0

    def on_tick(self, sim: Simulation, tick: Tick) -> None:
        if tick.time_s >= self._next_s:
            self._next_s = (tick.time_s // self.every_s + 1) * self.every_s
            self.progress(min(tick.time_s, self.total_s), self.total_s, self.status(sim))

    def on_end(self, sim: Simulation) -> None:
        self.progress(self.total_s, self.total_s, self.status(sim))


class TrailRecorder(Callback):
    """Where every car in the snapshot was, every `every_s` (for the map picture).

    At most `max_points` samples: when there are that many, every other one is dropped and
    the interval doubles, so memory stays bounded over any run length. A sample is the
    snapshot's positions as one array (a thousand cars cost one copy, not a thousand
    appends); the trails are cut out of them when asked for.
    """

    name = "trails"

    def __init__(
        self,
        bounds: tuple[float, float, float, float],
        every_s: float = 10.0,
        max_points: int = 2048,
        margin_m: float = 100.0,
    ) -> None:
        xmin, ymin, xmax, ymax = bounds
        self._box = (xmin - margin_m, ymin - margin_m, xmax + margin_m, ymax + margin_m)
        self.every_s = every_s
        self.max_points = max_points
        self._next_s = 0.0
        self._column: dict[str, int] = {}  # each car's column, in the order first seen
        self._ids: tuple[str, ...] = ()  # the last sample's cars ...
        self._columns = np.zeros(0, dtype=np.int64)  # ... and their columns
        self._samples: list[tuple[float, IntArray, FloatArray]] = []  # (t, columns, N×2)

    def on_tick(self, sim: Simulation, tick: Tick) -> None:
        now = tick.time_s
        if now < self._next_s:
            return
        self._next_s += self.every_s
        snapshot = tick.snapshot
        if snapshot.ids != self._ids:
            self._ids = snapshot.ids
            column = self._column
            self._columns = np.array(
                [column.setdefault(vid, len(column)) for vid in snapshot.ids], dtype=np.int64
            )
        self._samples.append((now, self._columns, np.array(snapshot.xy, dtype=float)))
        if len(self._samples) >= self.max_points:
            self._samples = self._samples[::2]
            self.every_s *= 2.0

    def trails(self) -> dict[str, FloatArray]:
        """Each car's trail as an N×3 array of (t s, x m, y m); a position outside the map
        (a car between a teleport and its re-insertion reports a bogus one) is left out."""
        if not self._samples:
            return {}
        times = np.array([t for t, _, _ in self._samples])
        xy = np.full((len(self._samples), len(self._column), 2), np.nan)
        for k, (_, columns, points) in enumerate(self._samples):
            xy[k, columns] = points
        xmin, ymin, xmax, ymax = self._box
        with np.errstate(invalid="ignore"):  # NaN: not in that sample
            inside = (
                (xy[..., 0] >= xmin) & (xy[..., 0] <= xmax)
                & (xy[..., 1] >= ymin) & (xy[..., 1] <= ymax)
            )  # fmt: skip
        out: dict[str, FloatArray] = {}
        for vid, j in self._column.items():
            rows = np.flatnonzero(inside[:, j])
            if len(rows):
                out[vid] = np.column_stack([times[rows], xy[rows, j, 0], xy[rows, j, 1]])
        return out
