"""The one simulation loop (DESIGN.md, "One tick"): every mode is a set-up of `Simulation`.

    world.step()                          the `World` protocol: SumoWorld, or FakeWorld in tests
    snapshot = world.snapshot()           ground truth, read once per tick
    snapshot = drivers.patch(snapshot)    cars our stack drives report where they are
    fleet.tick(snapshot, requests)        dispatch, trips, pull-overs → typed commands
    drivers.take(commands)                the stack drives its own cars; the rest go to the world
    world.apply(commands)                 failures go back to the fleet
    drivers.drive(snapshot, dt)           sensors → stack → vehicle model → world, per car
    callbacks.on_tick(tick)               history, event sink, progress, pacing, publishing

Side work hangs off named `Callback`s (nuPlan's simulation callbacks): they see each tick
after it happened and never change what the next one does. Only this module steps a world.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from robotaxi.core import (
    CommandFailure,
    RideRequest,
    TimePoint,
    VehicleCommand,
    World,
    WorldSnapshot,
)
from robotaxi.fleet.manager import EvStop, FleetManager, FleetTickResult
from robotaxi.map import RoutingGraph


@dataclass(frozen=True, slots=True)
class Tick:
    """What one tick saw and did: the snapshot the fleet read, the ride requests that came
    due, and the fleet's commands and events (empty without a fleet)."""

    index: int
    snapshot: WorldSnapshot
    requests: tuple[RideRequest, ...]
    result: FleetTickResult

    @property
    def time(self) -> TimePoint:
        return self.snapshot.time

    @property
    def time_s(self) -> float:
        return self.snapshot.time.time_s


class Callback:
    """Named side work on the tick. Override what you need; each hook is a no-op here."""

    name = "callback"

    def on_start(self, sim: Simulation) -> None:
        """After the world started and the fleet is placed, before the first tick."""

    def on_tick(self, sim: Simulation, tick: Tick) -> None:
        """After every tick."""

    def on_end(self, sim: Simulation) -> None:
        """Once, when the simulation closes (before the world does): flush what is held."""


class CarDrivers(Protocol):
    """The cars our autonomy stack drives, at autonomy fidelity (`sim.autonomous`)."""

    def patch(self, snapshot: WorldSnapshot) -> WorldSnapshot:
        """The snapshot with our cars' own positions, odometers and stop flags."""
        ...

    def ev_stops(self) -> Mapping[str, EvStop]:
        """Our cars standing for an emergency vehicle by their own stack's decision."""
        ...

    def apply(
        self, commands: Sequence[VehicleCommand], snapshot: WorldSnapshot
    ) -> tuple[list[VehicleCommand], list[CommandFailure]]:
        """Take our cars' commands; return those the world must carry out, and those our
        cars could not (each with why, as the world reports its own failures)."""
        ...

    def drive(self, snapshot: WorldSnapshot, dt_s: float) -> None:
        """Run each car's sensors, stack and vehicle model from the world's `snapshot` (its
        ground truth at this tick) to the next tick, `dt_s` later, and place the cars."""
        ...


class RequestQueue:
    """Ride requests in time order, handed out as they come due; more may be added."""

    def __init__(self, requests: Sequence[RideRequest] = ()) -> None:
        self._requests = sorted(requests, key=lambda r: (r.time, r.request_id))
        self._next = 0

    def add(self, request: RideRequest) -> None:
        """A request for later (or now: it comes due at the next tick)."""
        keys = [(r.time, r.request_id) for r in self._requests[self._next :]]
        at = bisect.bisect_right(keys, (request.time, request.request_id))
        self._requests.insert(self._next + at, request)

    def due(self, now_s: float) -> tuple[RideRequest, ...]:
        start = self._next
        while self._next < len(self._requests) and self._requests[self._next].time.time_s <= now_s:
            self._next += 1
        due = tuple(self._requests[start : self._next])
        # what was handed out is the fleet's now: keep only what is still to come
        if self._next > 1024:
            del self._requests[: self._next]
            self._next = 0
        return due

    @property
    def remaining(self) -> int:
        return len(self._requests) - self._next

    def __len__(self) -> int:
        return self.remaining


class Simulation:
    """Owns the tick. `start()`, then `step()` or `run(until)`; `close()` (or use `with`)."""

    def __init__(
        self,
        world: World,
        graph: RoutingGraph | None = None,
        *,
        fleet: FleetManager | None = None,
        requests: RequestQueue | None = None,
        callbacks: Sequence[Callback] = (),
        step_s: float = 1.0,
    ) -> None:
        """`graph` is the city's routing graph (None for a world without one, e.g. a recorded
        CommonRoad scenario); `step_s` is the world's step length (s), which the drivers
        fill with their own steps."""
        self.world = world
        self.graph = graph
        self.fleet = fleet
        self.requests = requests if requests is not None else RequestQueue()
        self.callbacks = list(callbacks)
        self.step_s = step_s
        self.drivers: CarDrivers | None = None
        self.ticks = 0
        self._started = False

    # --- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the world and park the fleet's cars at their starting kerbs."""
        self.world.start()
        self._started = True
        try:
            if self.fleet is not None:
                for k, curb in enumerate(self.fleet.initial_curbs()):
                    vehicle_id = f"taxi{k:03d}"
                    curb = self.fleet.add_vehicle(vehicle_id, curb)  # a free spot near it
                    self.world.add_robotaxi(vehicle_id, curb)
            for callback in self.callbacks:
                callback.on_start(self)
        except BaseException:
            self._started = False
            self.world.close()
            raise

    def close(self) -> None:
        """Let every callback flush, then close the world. Safe to call twice."""
        if not self._started:
            return
        self._started = False
        try:
            for callback in self.callbacks:
                callback.on_end(self)
        finally:
            self.world.close()

    def __enter__(self) -> Simulation:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def started(self) -> bool:
        return self._started

    # --- the tick -----------------------------------------------------------------------

    def step(self) -> Tick:
        world = self.world
        world.step()
        snapshot = world.snapshot()
        drivers = self.drivers
        # the fleet reads our own cars where our vehicle model has them
        patched = drivers.patch(snapshot) if drivers is not None else snapshot
        now = snapshot.time.time_s
        due = self.requests.due(now)
        if self.fleet is not None:
            result = self.fleet.tick(
                patched, due, drivers.ev_stops() if drivers is not None else None
            )
        else:
            result = FleetTickResult()
        commands: Sequence[VehicleCommand] = result.commands
        failures: list[CommandFailure] = []
        if drivers is not None:
            commands, failures = drivers.apply(commands, patched)
        failures += world.apply(commands)
        if self.fleet is not None:
            for failure in failures:
                self.fleet.on_command_failed(failure)
        if drivers is not None:
            drivers.drive(snapshot, self.step_s)
        tick = Tick(self.ticks, patched, due, result)
        self.ticks += 1
        for callback in self.callbacks:
            callback.on_tick(self, tick)
        return tick

    def run(self, until: Callable[[Tick], bool]) -> Tick:
        """Step until `until(tick)` holds after a tick; returns that tick."""
        while True:
            tick = self.step()
            if until(tick):
                return tick


# --- the callbacks every set-up shares --------------------------------------------------


class TravelTimes(Callback):
    """Feed the world's current edge travel times to the routing graph every `every_s`."""

    name = "travel_times"

    def __init__(self, every_s: float = 300.0) -> None:
        self.every_s = every_s
        self._next_s = every_s

    def on_tick(self, sim: Simulation, tick: Tick) -> None:
        if tick.time_s >= self._next_s and sim.graph is not None:
            self._next_s += self.every_s
            sim.graph.update_travel_times(sim.world.edge_travel_times(sim.graph.edge_ids))
