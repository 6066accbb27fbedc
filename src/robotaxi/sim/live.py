"""The live city behind `robotaxi serve`: one world, one fleet, stepped at a multiple of real time.

`LiveService` owns the map, the routing graph, the SUMO world and the `FleetManager`, plus an
optional trickle of synthetic riders drawn from the city's demand model (so real riders share
the city with others). A background thread steps the simulation at `speed` × real time in
`world.step_s` steps; tests call `step()` directly instead. One lock serialises ticks with
rider actions. After each of them a `LiveSnapshot` (every car and trip at that instant,
immutable) is published; trips and cars are read from it without the lock, so a reader never
waits for a tick and every answer is a consistent instant.

With `autonomous` > 0, that many fleet cars are driven by the autonomy stack instead of SUMO
(`sim.autonomous.AutonomousDriver`): each tick the fleet reads their positions from it, their
commands go to it, and their stacks then run in 0.1-s steps up to the next world step; the
snapshot carries what each stack tracks, its steering-wheel angle and its behaviour. They
sense as the car of `robotaxi drive` does (`hearing`, `city_blocks`, both on by default): roof
microphones feeding the stack's siren detector, and city blocks hiding what is behind them
from the cameras (built with `sim.drive`'s own settings).

Every `TripEvent` produced, by a tick or by a rider's action, goes first to the sink, in the
order things happened (the service queues it for its group-commit writer), and then to
subscribers (live streams); the sink gets the fleet's `VehicleEvent`s in the same calls (an
ambulance in range, the car pulled over for it, the car resumed). If the simulation
cannot keep its speed it does not skip steps: it runs as fast as it can and reports the
real-time factor it achieves.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from robotaxi.autonomy.planning.route import CURB_SHOULDER_M
from robotaxi.config import DemandConfig, RunConfig
from robotaxi.config.scenario import SensorsSpec
from robotaxi.config.sensors import MicArrayConfig
from robotaxi.core import (
    AgentState,
    RideRequest,
    RobotaxiError,
    TripEvent,
    TripState,
    VehicleEvent,
    World,
    WorldError,
)
from robotaxi.core.types import FloatArray
from robotaxi.fleet.demand import DemandModel, ServiceArea, SyntheticDemand, TncDemand
from robotaxi.fleet.kpis import ev_yield_kpis, trip_kpis, vehicle_kpis
from robotaxi.fleet.manager import (
    AVAILABLE,
    CurbStage,
    FleetManager,
    RideActionError,
    Vehicle,
    VehicleStatus,
)
from robotaxi.fleet.trips import greeting
from robotaxi.map import RoadMap, RoutingGraph
from robotaxi.sim.autonomous import STACK_STEP_S, AutonomousDriver, AutonomyView
from robotaxi.sim.drive import PAVEMENT_M
from robotaxi.sim.pacing import Clock, Pacer, SystemClock
from robotaxi.sim.runner import WorldFactory, load_city, sumo_world
from robotaxi.sim.sensors.cameras import map_block_occluders
from robotaxi.sim.simulation import RequestQueue, Simulation, TravelTimes

S = TripState
log = logging.getLogger(__name__)

# (new simulated ride requests, trip events, the cars' vehicle events) since the last call:
# the service's event log
EventSink = Callable[[Sequence[RideRequest], Sequence[TripEvent], Sequence[VehicleEvent]], None]
# rides, trip events and vehicle events for one sink call
_Batch = tuple[list[RideRequest], list[TripEvent], list[VehicleEvent]]
TRAVEL_TIME_UPDATE_S = 300.0
DRAIN_S = 3000.0
TRAIL_EVERY_S = 3.0
# an ended trip stays live this long (its final state and driven route on the rider's
# screen and receipt); then the store answers for it and its trail is dropped
ENDED_KEEP_S = 1800.0
MAX_TRAIL_POINTS = 2000  # a longer route driven is thinned to every other point
# states in which the rider sits in (or is getting into) the car
ON_BOARD = (S.BOARDED, S.STARTED, S.DRIVING, S.PULLED_OVER, S.ARRIVED_AT_DESTINATION)


class LiveServiceError(RobotaxiError):
    """The live simulation is not running, or has ended its service window."""


@dataclass(frozen=True, slots=True)
class LiveUpdate:
    """What one tick or one rider action changed: sent to subscribers."""

    time_s: float
    events: tuple[TripEvent, ...]
    version: int


@dataclass(frozen=True, slots=True)
class VehicleView:
    """One robotaxi at one instant (m, rad, m/s; map frame)."""

    vehicle_id: str
    status: str
    x: float
    y: float
    heading: float
    speed: float
    stopped: bool
    trip_id: str | None
    next_trip_id: str | None
    stage: CurbStage
    yielding_for: str | None  # the emergency vehicle it is pulled over for

    @property
    def available(self) -> bool:
        return (
            VehicleStatus(self.status) in AVAILABLE
            and self.trip_id is None
            and self.next_trip_id is None
            and self.yielding_for is None
        )


@dataclass(frozen=True, slots=True)
class TripView:
    """One trip as the rider app and the in-car screen show it (m, s since the sim start)."""

    trip_id: str
    rider_id: str
    rider_name: str
    controlled: bool
    state: TripState
    vehicle_id: str | None
    requested_s: float
    pickup_curb_xy: tuple[float, float]
    dropoff_curb_xy: tuple[float, float]
    pickup_walk_m: float
    dropoff_walk_m: float
    on_board: bool
    buckled: bool
    eta_s: float | None  # to the pick-up before arrival, to the drop-off while driving
    greeting: str | None
    vehicle_xy: tuple[float, float] | None
    yielding_for: str | None
    events: tuple[TripEvent, ...]

    @property
    def start_blocked_reason(self) -> str | None:
        """Why Start ride is refused now, or None when it is allowed."""
        if self.state != S.BOARDED:
            if self.state in (S.REQUESTED, S.ASSIGNED, S.EN_ROUTE):
                return "the car has not arrived yet"
            if self.state == S.ARRIVED:
                return "get in the car first"
            return f"the ride is {self.state.value}"
        if not self.buckled:
            return "fasten your seat belt first"
        return None


@dataclass(frozen=True, slots=True)
class Quote:
    """A price-free quote: how soon a car can be there and how long the ride takes."""

    pickup_eta_s: float | None  # None when no car is free now
    vehicle_id: str | None
    free_cars: int
    trip_s: float
    trip_m: float
    pickup_curb_xy: tuple[float, float]
    dropoff_curb_xy: tuple[float, float]
    pickup_walk_m: float
    dropoff_walk_m: float
    same_curb: bool


@dataclass(frozen=True, slots=True)
class Pacing:
    """How the clock keeps up: target speed and what was achieved over the last seconds."""

    sim_time_s: float
    speed: float
    real_time_factor: float | None  # sim seconds per wall second, None before enough ticks
    behind_s: float  # wall seconds the clock fell behind its schedule, summed since start
    running: bool
    ended: bool


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    """The city at one instant, published after every tick and rider action.

    Readers (status polls, live streams) take the current snapshot without any lock: it is
    never changed once published, so everything in it belongs to the same instant.
    """

    version: int
    time_s: float
    vehicles: dict[str, VehicleView]
    # the open trips, and those ended within the last `ENDED_KEEP_S` (older ones: the store)
    trips: dict[str, TripView]
    # cars driven by the autonomy stack: what each one's stack sees and does (empty if none)
    autonomy: dict[str, AutonomyView] = field(default_factory=dict)

    def open_trips(self) -> list[TripView]:
        return [t for t in self.trips.values() if not t.state.terminal]


EMPTY_SNAPSHOT = LiveSnapshot(version=0, time_s=0.0, vehicles={}, trips={})


class LiveService:
    """The service's city simulation. `start()`, then `run_clock()` or `step()`; `stop()`."""

    def __init__(
        self,
        config: RunConfig,
        work_dir: Path,
        *,
        speed: float = 1.0,
        riders_per_hour: float = 6.0,
        background_traffic: bool = True,
        sink: EventSink | None = None,
        ride_prefix: str = "sim",
        autonomous: int = 0,
        autonomy_step_s: float = STACK_STEP_S,
        hearing: bool = True,
        city_blocks: bool = True,
        world: WorldFactory = sumo_world,
        city: tuple[RoadMap, RoutingGraph] | None = None,
        clock: Clock | None = None,
    ) -> None:
        """`autonomous` fleet cars (the first ones by id) are driven by the autonomy stack,
        stepped every `autonomy_step_s` between the world's steps; SUMO drives the rest.
        `hearing` gives those cars roof microphones and the siren detector; `city_blocks`
        lets the blocks between streets hide things from their cameras. `world` builds the
        city (SUMO unless told otherwise, e.g. `FakeWorld` in tests); `city` is the map and
        routing graph ready-made (else built from `config`); `clock` is the wall clock of
        `run_clock` (the machine's unless a test gives its own)."""
        if not math.isfinite(speed) or speed <= 0:
            raise LiveServiceError(f"speed {speed} must be a positive multiple of real time")
        if not math.isfinite(riders_per_hour) or riders_per_hour < 0:
            raise LiveServiceError(f"riders_per_hour {riders_per_hour} must be 0 or more")
        self.config = config
        self.work_dir = work_dir
        self.speed = speed
        self.riders_per_hour = riders_per_hour
        self.background_traffic = background_traffic
        self.sink = sink
        self.ride_prefix = ride_prefix
        if autonomous < 0 or autonomous > config.fleet.size:
            raise LiveServiceError(
                f"autonomous {autonomous} must be between 0 and the fleet size {config.fleet.size}"
            )
        if not math.isfinite(autonomy_step_s) or not 0 < autonomy_step_s <= config.world.step_s:
            raise LiveServiceError(
                f"autonomy step {autonomy_step_s} s must be positive and at most the world's "
                f"step of {config.world.step_s} s"
            )
        self.autonomous = autonomous
        self.autonomy_step_s = autonomy_step_s
        self.hearing = hearing
        self.city_blocks = city_blocks
        self.world_factory = world
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._pacer = Pacer(config.world.step_s, speed, self.clock)
        self._city = city
        self.driver: AutonomousDriver | None = None
        # no new rides after end_s; trips under way may finish for DRAIN_S more (SUMO runs
        # an hour past the window, see SumoWorld.start)
        self.end_s = config.hours * 3600.0
        self.stop_s = self.end_s + DRAIN_S
        self._lock = threading.RLock()
        self._subscribers: dict[int, Callable[[LiveUpdate], None]] = {}
        self._next_sub = 0
        self._version = 0
        self._thread: threading.Thread | None = None
        self._started = False
        self._synthetic: list[RideRequest] = []
        self._unsaved_rides: list[RideRequest] = []
        self._unsaved_events: list[TripEvent] = []
        self._unsaved_vehicle_events: list[VehicleEvent] = []
        # lock order: _lock, then _sink_lock, then _queue_lock (held only briefly)
        self._sink_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._snapshot = EMPTY_SNAPSHOT
        self._trails: dict[str, list[tuple[float, float]]] = {}
        self._ended_at: dict[str, float] = {}  # trip id → sim time it ended, in that order
        self._next_trail_s = 0.0
        self._ticks = 0
        self._tick_wall_s = 0.0
        self._tick_wall_max_s = 0.0
        self.map: RoadMap
        self.graph: RoutingGraph
        self.world: World
        self.fleet: FleetManager
        self.sim: Simulation

    # --- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Load the city, start SUMO and park the fleet at its starting curbs."""
        cfg = self.config
        self.map, self.graph = self._city or load_city(cfg)
        day, start_hour = cfg.start_day_hour
        demand = self._demand(self.map)
        self.fleet = FleetManager(
            self.map, self.graph, cfg.fleet, cfg.dispatch,
            demand=demand, day=day, start_hour=start_hour, seed=cfg.seed,
        )  # fmt: skip
        if self.riders_per_hour > 0:
            sample = demand.sample(day, start_hour, cfg.hours, seed=cfg.seed)
            self._synthetic = self._thin(list(sample.requests))
        self.world = self.world_factory(
            self.map, self.graph, cfg.world, cfg.fleet,
            seed=cfg.seed, end_s=self.end_s, work_dir=self.work_dir,
            background=self.background_traffic,
        )  # fmt: skip
        self.sim = Simulation(
            self.world, self.graph,
            fleet=self.fleet,
            requests=RequestQueue(self._synthetic),
            callbacks=[TravelTimes(TRAVEL_TIME_UPDATE_S)],
            step_s=cfg.world.step_s,
        )  # fmt: skip
        self.sim.start()
        try:
            if self.autonomous:
                chosen = sorted(self.fleet.vehicles)[: self.autonomous]
                sensors = SensorsSpec(microphones=self.hearing, city_blocks=self.city_blocks)
                self.driver = AutonomousDriver(
                    self.map, self.graph, self.world,
                    {vid: _start_curb(self.fleet.vehicles[vid]) for vid in chosen},
                    seed=cfg.seed, step_s=self.autonomy_step_s,
                    mic_config=self._mic_config() if self.hearing else None,
                    occluders=(
                        map_block_occluders(self.map, sidewalk_m=CURB_SHOULDER_M + PAVEMENT_M)
                        if self.city_blocks
                        else None
                    ),
                    sensors=sensors,
                )  # fmt: skip
                self.sim.drivers = self.driver
        except BaseException:
            self.sim.close()
            raise
        self._started = True
        with self._lock:
            self._publish_snapshot(self._record((), ()), tuple(self.fleet.trips))

    def _mic_config(self) -> MicArrayConfig:
        """The roof array of `robotaxi drive`, over the recorded street clips where the data
        folder has them (else synthetic background only)."""
        negatives = Path(self.config.map.data_dir) / "audio" / "negatives"
        return MicArrayConfig(
            background_level_db_spl=SensorsSpec().background_db_spl,
            negatives_dir=negatives if negatives.is_dir() else None,
            seed=self.config.seed,
        )

    def run_clock(self) -> None:
        """Step the simulation in a background thread at `speed` × real time (`Pacer`)."""
        self._require_started()
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._clock, name="robotaxi-live", daemon=True)
        self._thread.start()

    def _clock(self) -> None:
        def tick() -> float:
            self.step()
            return self.now_s

        def failed(_: Exception) -> None:
            log.exception("live simulation tick failed; retrying in 1 s")

        self._pacer.run(tick, ended=lambda: self.ended, on_error=failed)

    def stop(self) -> None:
        """Stop the clock thread (if any) and close the world. Safe to call twice."""
        self._pacer.stop()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        with self._lock:
            batch = self._take_batch()
        self._write(batch, strict=False)
        with self._lock:
            if self._started:
                self.sim.close()
                self._started = False

    def __enter__(self) -> LiveService:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def now_s(self) -> float:
        return self._snapshot.time_s

    def snapshot(self) -> LiveSnapshot:
        """The latest published instant (no lock taken: safe from any thread, never blocks)."""
        return self._snapshot

    @property
    def ended(self) -> bool:
        return self._started and self.now_s >= self.stop_s

    # --- the tick -----------------------------------------------------------------------

    def step(self) -> LiveUpdate:
        """Advance the world by one step, run the fleet, record and publish what happened."""
        wall0 = time.perf_counter()
        with self._lock:
            self._require_started()
            if self.world.time.time_s >= self.stop_s:
                raise LiveServiceError(
                    f"the service window of {self.config.hours} h has ended; restart the server"
                )
            tick = self.sim.step()
            now = tick.time_s
            update = self._record(tick.requests, tick.result.events, tick.result.vehicle_events)
            batch = self._take_batch()
            self._record_trails(now)
            self._ticks += 1
            self._publish_snapshot(update, (), moved=True)
        self._write(batch, strict=False)
        tick_s = time.perf_counter() - wall0
        self._tick_wall_s += tick_s
        self._tick_wall_max_s = max(self._tick_wall_max_s, tick_s)
        self._publish(update)
        return update

    def step_until(self, done: Callable[[], bool], max_sim_s: float) -> bool:
        """Step until `done()` (checked after each step) or `max_sim_s` of sim time passed."""
        deadline = self.now_s + max_sim_s
        while self.now_s < deadline and self.now_s < self.stop_s:
            self.step()
            if done():
                return True
        return done()

    def pacing(self) -> Pacing:
        rtf = self._pacer.real_time_factor
        return Pacing(
            sim_time_s=self.now_s,
            speed=self.speed,
            real_time_factor=None if rtf is None else round(rtf, 2),
            behind_s=round(self._pacer.behind_s, 2),
            running=self.running,
            ended=self.ended,
        )

    # --- a real rider's actions ---------------------------------------------------------

    def request_ride(
        self,
        request_id: str,
        rider_id: str,
        rider_name: str,
        pickup_xy: tuple[float, float],
        dropoff_xy: tuple[float, float],
        *,
        patience_s: float = 1800.0,
        on_open: Callable[[RideRequest], None] | None = None,
    ) -> TripView:
        """Open a trip for a real rider at the current sim time; dispatch assigns it next tick.

        `on_open(request)` runs first (the service stores the ride there, so the ride exists
        before its first event), outside the lock so that a slow disk stalls neither the clock
        nor readers; if it raises, no trip is opened.
        """
        with self._lock:
            self._require_open()
            request = RideRequest(
                request_id=request_id,
                rider_id=rider_id,
                rider_name=rider_name,
                time=self.world.time,
                pickup_x=float(pickup_xy[0]),
                pickup_y=float(pickup_xy[1]),
                dropoff_x=float(dropoff_xy[0]),
                dropoff_y=float(dropoff_xy[1]),
                patience_s=patience_s,
            )
        if on_open is not None:
            on_open(request)
        with self._lock:
            # a tick may have passed meanwhile: the trip still starts at the request's time
            self._require_started()
            _, events = self.fleet.request_ride(request)
            update = self._record((), events)
            batch = self._take_batch()
            view = self._publish_snapshot(update, (request_id,))[request_id]
        self._write(batch, strict=True)
        self._publish(update)
        return view

    def board(self, trip_id: str) -> TripView:
        return self._act(trip_id, lambda now: self.fleet.board(trip_id, now))

    def buckle(self, trip_id: str, buckled: bool) -> TripView:
        def action(_now: float) -> list[TripEvent]:
            self.fleet.buckle(trip_id, buckled)
            return []

        return self._act(trip_id, action)

    def start_ride(self, trip_id: str) -> TripView:
        return self._act(trip_id, lambda now: self.fleet.start_ride(trip_id, now))

    def cancel(self, trip_id: str) -> TripView:
        return self._act(trip_id, lambda now: self.fleet.cancel(trip_id, now))

    def pull_over(self, trip_id: str) -> TripView:
        return self._act(trip_id, lambda now: self.fleet.pull_over(trip_id, now))

    def _act(self, trip_id: str, action: Callable[[float], list[TripEvent]]) -> TripView:
        """Run one rider action under the lock; raises `RideActionError` when not allowed."""
        with self._lock:
            self._require_started()
            events = action(self.world.time.time_s)
            update = self._record((), events)
            batch = self._take_batch()
            view = self._publish_snapshot(update, (trip_id,))[trip_id]
        self._write(batch, strict=True)
        self._publish(update)
        return view

    # --- reading ------------------------------------------------------------------------

    def refresh(self) -> LiveSnapshot:
        """Publish the current instant again, every trip rebuilt (after a change made to the
        fleet from outside a tick or an action, e.g. by a test or a debugger)."""
        with self._lock:
            self._require_started()
            live = [t for t in self.fleet.trips if t in self._snapshot.trips]
            live += [t.trip_id for t in self.fleet.open_trips()]
            self._publish_snapshot(self._record((), ()), tuple(dict.fromkeys(live)))
            return self._snapshot

    # Trips and vehicles are read from the published snapshot: no lock, so a reader never
    # waits for a tick (or for a rider action queued behind one).

    def has_trip(self, trip_id: str) -> bool:
        return trip_id in self._snapshot.trips

    def trip(self, trip_id: str) -> TripView | None:
        return self._snapshot.trips.get(trip_id)

    def vehicles(self) -> list[VehicleView]:
        self._require_started()
        return list(self._snapshot.vehicles.values())

    def vehicle(self, vehicle_id: str) -> VehicleView | None:
        self._require_started()
        return self._snapshot.vehicles.get(vehicle_id)

    def open_trips(self) -> list[TripView]:
        self._require_started()
        return self._snapshot.open_trips()

    def route_xy(self, vehicle_id: str) -> FloatArray:
        """N×2 polyline (m) of where the car is driving: from its position to its target curb.

        Empty (0×2) when the car is parked at its target or is not moving anywhere.
        """
        with self._lock:
            self._require_started()
            v = self.fleet.vehicles.get(vehicle_id)
            if (
                v is None
                or v.target_curb is None
                or v.status
                not in (
                    VehicleStatus.TO_PICKUP,
                    VehicleStatus.TO_DROPOFF,
                    VehicleStatus.REBALANCING,
                )
            ):
                return np.zeros((0, 2))
            edge, pos = self.fleet.locate(v)
            curbs = self.map.curbs
            target_edge = curbs.edge_ids[v.target_curb]
            target_pos = float(curbs.pos[v.target_curb])
            return self._route_polyline(edge, pos, target_edge, target_pos)

    def trip_route_xy(self, trip_id: str) -> FloatArray:
        """N×2 polyline (m) of the fastest route from the trip's pick-up curb to its drop-off."""
        with self._lock:
            self._require_started()
            trip = self.fleet.trips.get(trip_id)
            if trip is None:
                return np.zeros((0, 2))
            return self.route_between(
                (trip.request.pickup_x, trip.request.pickup_y),
                (trip.request.dropoff_x, trip.request.dropoff_y),
            )

    def route_between(self, from_xy: tuple[float, float], to_xy: tuple[float, float]) -> FloatArray:
        """N×2 polyline (m) of the fastest route between the curbs nearest two points."""
        with self._lock:
            self._require_started()
            idx, _ = self.map.curbs.nearest(np.array([from_xy, to_xy], dtype=float))
            a, b = int(idx[0]), int(idx[1])
            curbs = self.map.curbs
            return self._route_polyline(
                curbs.edge_ids[a], float(curbs.pos[a]), curbs.edge_ids[b], float(curbs.pos[b])
            )

    def driven_xy(self, trip_id: str) -> FloatArray:
        """N×2 positions (m) the car drove through with the rider on board, every few s."""
        with self._lock:
            trail = self._trails.get(trip_id, [])
            return np.array(trail, dtype=float).reshape(-1, 2)

    def nearby(self, vehicle_id: str, radius_m: float = 60.0) -> tuple[AgentState, ...]:
        """SUMO's road users within `radius_m` of the car (what it 'sees' at fleet fidelity)."""
        with self._lock:
            self._require_started()
            try:
                return self.world.vehicles_near(vehicle_id, radius_m)
            except WorldError:
                return ()  # not inserted yet (before the first step) or left the network

    def quote(self, pickup_xy: tuple[float, float], dropoff_xy: tuple[float, float]) -> Quote:
        """Pick-up ETA from the nearest free car and the trip's time and length (s, m)."""
        with self._lock:
            self._require_started()
            curbs = self.map.curbs
            idx, walk = curbs.nearest(np.array([pickup_xy, dropoff_xy], dtype=float))
            a, b = int(idx[0]), int(idx[1])
            free = [
                v
                for v in sorted(self.fleet.vehicles.values(), key=lambda x: x.vehicle_id)
                if _vehicle_view(v).available
            ]
            pickup_eta: float | None = None
            best: str | None = None
            if free:
                origins = [self.fleet.locate(v) for v in free]
                eta = self.graph.eta_matrix(
                    [o[0] for o in origins],
                    np.array([o[1] for o in origins]),
                    [curbs.edge_ids[a]],
                    np.array([curbs.pos[a]]),
                )[:, 0]
                k = int(np.argmin(eta))
                if np.isfinite(eta[k]):
                    pickup_eta, best = float(eta[k]), free[k].vehicle_id
            trip_eta = float(
                self.graph.eta_matrix(
                    [curbs.edge_ids[a]], np.array([curbs.pos[a]]),
                    [curbs.edge_ids[b]], np.array([curbs.pos[b]]),
                )[0, 0]
            )  # fmt: skip
            polyline = self._route_polyline(
                curbs.edge_ids[a], float(curbs.pos[a]), curbs.edge_ids[b], float(curbs.pos[b])
            )
            return Quote(
                pickup_eta_s=None if pickup_eta is None else round(pickup_eta, 1),
                vehicle_id=best,
                free_cars=len(free),
                trip_s=round(trip_eta, 1) if a != b and math.isfinite(trip_eta) else 0.0,
                trip_m=round(_polyline_length(polyline), 1) if a != b else 0.0,
                pickup_curb_xy=(float(curbs.xy[a, 0]), float(curbs.xy[a, 1])),
                dropoff_curb_xy=(float(curbs.xy[b, 0]), float(curbs.xy[b, 1])),
                pickup_walk_m=round(float(walk[0]), 1),
                dropoff_walk_m=round(float(walk[1]), 1),
                same_curb=a == b,
            )

    def yields(self) -> list[dict[str, Any]]:
        """Emergency-vehicle yields so far, finished and in progress (times in sim s)."""
        with self._lock:
            self._require_started()
            active = [v.yielding for v in self.fleet.vehicles.values() if v.yielding is not None]
            rows = []
            for record, is_active in [(y, False) for y in self.fleet.yields] + [
                (y, True) for y in active
            ]:
                rows.append(
                    {
                        "vehicle_id": record.vehicle_id,
                        "ev_id": record.ev_id,
                        "trip_id": record.trip_id,
                        "approach": record.approach,
                        "in_range_s": record.in_range_s,
                        "stopped_s": record.stopped_s,
                        "resumed_s": record.resumed_s,
                        "active": is_active,
                        "decided_by": record.decided_by,
                        "basis": record.basis,
                    }
                )
            return rows

    def kpis(self) -> dict[str, Any]:
        """The fleet KPIs so far, each defined as `robotaxi simulate`'s (`fleet.kpis`, over
        the trips, cars and EV yields up to now), and live readings: trips by state, cars
        busy now, pacing and tick times."""
        with self._lock:
            self._require_started()
            now_s = self.world.time.time_s
            trips = list(self.fleet.trips.values())
            vehicles = list(self.fleet.vehicles.values())
            # finished yields and those under way, as simulate's history records them
            yields = self.fleet.yields + [v.yielding for v in vehicles if v.yielding is not None]
            shared = {
                **trip_kpis(trips),
                **vehicle_kpis(vehicles, now_s),
                **ev_yield_kpis(yields),
            }
            busy = sum(1 for v in vehicles if v.trip_id is not None or v.next_trip_id is not None)
            riders = sum(1 for t in trips if self.fleet.riders[t.trip_id].controlled)
            states: dict[str, int] = {}
            for t in trips:
                states[t.state.value] = states.get(t.state.value, 0) + 1
        pacing = self.pacing()
        return {
            "sim_time_s": round(now_s, 1),
            "requests_from_app": riders,
            "completed": states.get(S.COMPLETED.value, 0),
            "cancelled": states.get(S.CANCELLED.value, 0),
            "open": sum(1 for t in trips if not t.state.terminal),
            "states": states,
            **shared,
            "fleet": len(vehicles),
            "busy_vehicles": busy,
            "speed": self.speed,
            "real_time_factor": pacing.real_time_factor,
            "behind_s": pacing.behind_s,
            "tick_ms_mean": round(1000 * self._tick_wall_s / self._ticks, 2)
            if self._ticks
            else None,
            "tick_ms_max": round(1000 * self._tick_wall_max_s, 2) if self._ticks else None,
        }

    def held(self) -> dict[str, int]:
        """How much the live service holds in memory now, container by container: what
        grows with the open trips (bounded) and what grows with the run (the fleet's trips)."""
        with self._lock:
            return {
                "live_trips": len(self._snapshot.trips),
                "ended_trips_kept": len(self._ended_at),
                "trails": len(self._trails),
                "trail_points": sum(len(t) for t in self._trails.values()),
                "trips_before_pickup": self.fleet.trips_before_pickup,
                "fleet_trips": len(self.fleet.trips),
                "subscribers": len(self._subscribers),
            }

    # --- subscribers --------------------------------------------------------------------

    def subscribe(self, callback: Callable[[LiveUpdate], None]) -> Callable[[], None]:
        """Call `callback` (from the ticking thread) after every tick and action.

        Returns the function that unsubscribes. Callbacks must be quick and must not call
        back into this service (hand the update to a queue instead).
        """
        with self._lock:
            key = self._next_sub
            self._next_sub += 1
            self._subscribers[key] = callback

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers.pop(key, None)

        return unsubscribe

    @property
    def version(self) -> int:
        """Increases with every tick and action: cheap change detection for pollers."""
        return self._version

    # --- internals ----------------------------------------------------------------------

    def _require_started(self) -> None:
        if not self._started:
            raise LiveServiceError("the live simulation is not running: call start() first")

    def _require_open(self) -> None:
        self._require_started()
        if self.world.time.time_s >= self.end_s:
            raise LiveServiceError(
                f"the service window of {self.config.hours} h has ended: no new rides"
            )

    def _demand(self, road_map: RoadMap) -> DemandModel:
        cfg = self.config
        if cfg.map.city == "grid":
            demand_cfg = cfg.demand.model_copy(update={"requests_per_hour": self.riders_per_hour})
            return SyntheticDemand(
                road_map.bounds,
                DemandConfig.model_validate(demand_cfg.model_dump()),
                layout_seed=cfg.seed,
                inside=road_map.inside,
            )
        from robotaxi.fleet.demand import load_tnc_zones

        zones = load_tnc_zones(cfg.map.data_dir)
        area = ServiceArea(
            to_xy=road_map.projection.lonlat_to_xy, inside=road_map.inside, bbox_m=road_map.bounds
        )
        return TncDemand(zones, area, cfg.demand)

    def _thin(self, requests: list[RideRequest]) -> list[RideRequest]:
        """Keep about `riders_per_hour` of the model's requests (seeded), with unique ids."""
        target = self.riders_per_hour * self.config.hours
        if requests and len(requests) > target:
            rng = np.random.default_rng([self.config.seed, 0x11FE])
            keep = rng.random(len(requests)) < target / len(requests)
            requests = [r for r, k in zip(requests, keep, strict=True) if k]
        # ids unique across server restarts (the store keeps every run's rides)
        return [
            replace(
                r, request_id=f"{self.ride_prefix}-{r.request_id}", rider_id=f"sim-{r.rider_id}"
            )
            for r in requests
        ]

    def _record(
        self,
        rides: Sequence[RideRequest],
        events: Sequence[TripEvent],
        vehicle_events: Sequence[VehicleEvent] = (),
    ) -> LiveUpdate:
        """Queue what happened for the sink (call under `_lock`)."""
        with self._queue_lock:
            self._unsaved_rides.extend(rides)
            self._unsaved_events.extend(events)
            self._unsaved_vehicle_events.extend(vehicle_events)
        self._version += 1
        return LiveUpdate(self.world.time.time_s, tuple(events), self._version)

    def _take_batch(self) -> _Batch | None:
        """Everything queued, with the writer's turn taken (call under `_lock`).

        Taking the sink lock while still holding `_lock` keeps writes in the order things
        happened; the write itself then runs after `_lock` is released, so readers never wait
        for the disk.
        """
        queues = (self._unsaved_rides, self._unsaved_events, self._unsaved_vehicle_events)
        with self._queue_lock:
            if self.sink is None or not any(queues):
                for queue in queues:
                    queue.clear()
                return None
            batch = (list(queues[0]), list(queues[1]), list(queues[2]))
            for queue in queues:
                queue.clear()
        self._sink_lock.acquire()
        return batch

    def _write(self, batch: _Batch | None, *, strict: bool) -> None:
        """Hand a batch to the sink and release the writer's turn; keep it queued on failure."""
        if batch is None:
            return
        try:
            if self.sink is not None:
                self.sink(*batch)
        except Exception:
            # queued again in front: the next write retries it (the store skips duplicates)
            with self._queue_lock:
                self._unsaved_rides[:0] = batch[0]
                self._unsaved_events[:0] = batch[1]
                self._unsaved_vehicle_events[:0] = batch[2]
            if strict:
                raise
            log.exception(
                "writing %d trip and %d vehicle events failed; retrying",
                len(batch[1]),
                len(batch[2]),
            )
        finally:
            self._sink_lock.release()

    def _publish(self, update: LiveUpdate) -> None:
        with self._lock:
            callbacks = list(self._subscribers.values())
        for callback in callbacks:
            try:
                callback(update)
            except Exception:
                log.exception("a live-update subscriber failed")

    def _record_trails(self, now: float) -> None:
        """Sample where cars with a rider on board are, for receipts ("route driven")."""
        if now < self._next_trail_s:
            return
        self._next_trail_s = now + TRAIL_EVERY_S
        for v in self.fleet.vehicles.values():
            if v.status == VehicleStatus.TO_DROPOFF and v.trip_id is not None:
                trail = self._trails.setdefault(v.trip_id, [])
                trail.append(v.xy)
                if len(trail) > MAX_TRAIL_POINTS:
                    trail[:] = trail[::2]
            elif v.status == VehicleStatus.AT_DROPOFF and v.trip_id in self._trails:
                trail = self._trails[v.trip_id]
                if trail[-1] != v.xy:
                    trail.append(v.xy)  # where it stopped

    def _route_polyline(
        self, from_edge: str, from_pos: float, to_edge: str, to_pos: float
    ) -> FloatArray:
        if from_edge == to_edge and to_pos >= from_pos:
            edges: tuple[str, ...] = (from_edge,)
        else:
            edges = ()
            if from_edge == to_edge:
                # behind us on the same edge: once around the block
                for lane_id in self.map.edges[from_edge].lane_ids:
                    for succ in self.map.lanes[lane_id].successors:
                        nxt = self.map.lanes[succ].edge_id
                        if nxt in self.graph.index:
                            loop = self.graph.route(nxt, to_edge)
                            if loop and (not edges or len(loop) + 1 < len(edges)):
                                edges = (from_edge, *loop)
            else:
                edges = self.graph.route(from_edge, to_edge)
        if not edges:
            return np.zeros((0, 2))
        parts: list[FloatArray] = []
        for k, edge_id in enumerate(edges):
            line = self.map.curb_lane(edge_id).centerline
            start = from_pos if k == 0 else 0.0
            end = to_pos if k == len(edges) - 1 else math.inf
            parts.append(_cut(line, start, end))
        return np.concatenate(parts, axis=0)

    def _publish_snapshot(
        self, update: LiveUpdate, touched: Sequence[str], *, moved: bool = False
    ) -> dict[str, TripView]:
        """Publish the instant after `update` (call under `_lock`); returns its trips.

        Only trips that can have changed are rebuilt: those with events in the update,
        those a rider just acted on and, when the cars `moved` (a tick), those a car is
        serving (position, ETA, yield). A trip changes in no other way: a waiting trip with
        no car does not change without an event, and a rider's action moves no car.
        """
        vehicles = {v.vehicle_id: _vehicle_view(v) for v in self.fleet.vehicles.values()}
        changed = set(touched)
        changed.update(e.trip_id for e in update.events)
        for v in self.fleet.vehicles.values() if moved else ():
            if v.trip_id is not None:
                changed.add(v.trip_id)
            if v.next_trip_id is not None:
                changed.add(v.next_trip_id)
        changed.intersection_update(self.fleet.trips)
        etas = self._etas(sorted(changed))
        trips = dict(self._snapshot.trips)
        now = self.world.time.time_s
        for trip_id in changed:
            view = self._trip_view(trip_id, etas.get(trip_id), eta_known=True)
            trips[trip_id] = view
            if view.state.terminal:
                self._ended_at.setdefault(trip_id, now)
        self._forget_ended(trips, now)
        autonomy = self.driver.views() if self.driver is not None else {}
        self._snapshot = LiveSnapshot(
            update.version, self.world.time.time_s, vehicles, trips, autonomy
        )
        return trips

    def _forget_ended(self, trips: dict[str, TripView], now: float) -> None:
        """Drop trips ended over `ENDED_KEEP_S` ago from what is live, with their trails: per
        tick work and memory then follow the open trips, not every trip of the run."""
        while self._ended_at:
            trip_id, ended = next(iter(self._ended_at.items()))
            if now - ended <= ENDED_KEEP_S:
                break
            del self._ended_at[trip_id]
            trips.pop(trip_id, None)
            self._trails.pop(trip_id, None)

    def _eta_target(self, trip_id: str) -> tuple[Vehicle, int] | None:
        """The car serving a trip and the curb it is driving to, when it is driving to one."""
        trip = self.fleet.trips[trip_id]
        car = self.fleet.vehicles.get(trip.vehicle_id) if trip.vehicle_id else None
        if car is None or car.trip_id != trip_id:
            return None
        if trip.state in (S.ASSIGNED, S.EN_ROUTE):
            return car, trip.pickup_curb
        if trip.state in (S.STARTED, S.DRIVING):
            return car, trip.dropoff_curb
        return None

    def _etas(self, trip_ids: Sequence[str]) -> dict[str, float | None]:
        """ETA (s) of each trip's car to its next curb, all in one routing call."""
        legs = [(t, leg) for t in trip_ids if (leg := self._eta_target(t)) is not None]
        if not legs:
            return {}
        curbs = self.map.curbs
        origins = [self.fleet.locate(car) for _, (car, _) in legs]
        targets = [curb for _, (_, curb) in legs]
        matrix = self.graph.eta_matrix(
            [o[0] for o in origins], np.array([o[1] for o in origins]),
            [curbs.edge_ids[c] for c in targets], np.array([curbs.pos[c] for c in targets]),
        )  # fmt: skip
        out: dict[str, float | None] = {}
        for k, (trip_id, _) in enumerate(legs):
            value = float(matrix[k, k])
            out[trip_id] = round(max(value, 0.0), 1) if math.isfinite(value) else None
        return out

    def _trip_view(
        self, trip_id: str, eta: float | None = None, *, eta_known: bool = False
    ) -> TripView:
        """One trip now; `eta` is its car's ETA from `_etas` (computed here unless known)."""
        trip = self.fleet.trips[trip_id]
        rider = self.fleet.riders[trip_id]
        car = self.fleet.vehicles.get(trip.vehicle_id) if trip.vehicle_id else None
        own_car = car is not None and car.trip_id == trip_id
        curbs = self.map.curbs
        if not eta_known:
            eta = self._etas([trip_id]).get(trip_id)
        arrived = trip.time_of(S.ARRIVED) is not None
        return TripView(
            trip_id=trip_id,
            rider_id=trip.request.rider_id,
            rider_name=trip.request.rider_name,
            controlled=rider.controlled,
            state=trip.state,
            vehicle_id=trip.vehicle_id,
            requested_s=trip.request.time.time_s,
            pickup_curb_xy=(
                float(curbs.xy[trip.pickup_curb, 0]),
                float(curbs.xy[trip.pickup_curb, 1]),
            ),
            dropoff_curb_xy=(
                float(curbs.xy[trip.dropoff_curb, 0]),
                float(curbs.xy[trip.dropoff_curb, 1]),
            ),
            pickup_walk_m=round(trip.pickup_walk_m, 1),
            dropoff_walk_m=round(trip.dropoff_walk_m, 1),
            on_board=trip.state in ON_BOARD,
            buckled=rider.buckled,
            eta_s=eta,
            greeting=greeting(trip.request.rider_name) if arrived else None,
            vehicle_xy=car.xy if car is not None and own_car else None,
            yielding_for=car.yielding.ev_id
            if own_car and car is not None and car.yielding
            else None,
            events=tuple(trip.events),
        )


def _start_curb(v: Vehicle) -> int:
    """The curb spot a car stands at when the run starts (`Simulation.start` parks it there)."""
    if v.target_curb is None:
        raise LiveServiceError(f"car {v.vehicle_id} was not parked at a curb spot at the start")
    return v.target_curb


def _vehicle_view(v: Vehicle) -> VehicleView:
    return VehicleView(
        vehicle_id=v.vehicle_id,
        status=v.status.value,
        x=v.xy[0],
        y=v.xy[1],
        heading=v.heading,
        speed=v.speed,
        stopped=v.stopped,
        trip_id=v.trip_id,
        next_trip_id=v.next_trip_id,
        stage=v.stage,
        yielding_for=v.yielding.ev_id if v.yielding is not None else None,
    )


def _cut(line: FloatArray, start_m: float, end_m: float) -> FloatArray:
    """The part of a polyline (N×2) between arc lengths start_m and end_m (clamped)."""
    seg = np.hypot(*np.diff(line, axis=0).T)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    total = float(cum[-1])
    s0 = min(max(start_m, 0.0), total)
    s1 = min(max(end_m, s0), total)
    inner = line[(cum > s0) & (cum < s1)]
    return np.vstack([_at(line, cum, s0), inner, _at(line, cum, s1)])


def _at(line: FloatArray, cum: FloatArray, s: float) -> FloatArray:
    i = int(np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(line) - 2))
    span = cum[i + 1] - cum[i]
    frac = (s - cum[i]) / span if span > 0 else 0.0
    return (line[i] + frac * (line[i + 1] - line[i]))[None, :]


def _polyline_length(line: FloatArray) -> float:
    if len(line) < 2:
        return 0.0
    return float(np.hypot(*np.diff(line, axis=0).T).sum())


__all__ = [
    "AutonomyView",
    "EventSink",
    "LiveService",
    "LiveServiceError",
    "LiveUpdate",
    "Pacing",
    "Quote",
    "RideActionError",
    "TripView",
    "VehicleView",
]
