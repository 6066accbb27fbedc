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
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from robotaxi.config import DemandConfig, RunConfig
from robotaxi.core import (
    AgentState,
    RideRequest,
    TripEvent,
    TripState,
    VehicleEvent,
    World,
    WorldError,
)
from robotaxi.core.types import FloatArray
from robotaxi.fleet.assistance import AHEAD_M, AssistAnswer
from robotaxi.fleet.charging import fleet_charging_for_map
from robotaxi.fleet.demand import DemandModel, ServiceArea, SyntheticDemand, TncDemand
from robotaxi.fleet.kpis import ev_yield_kpis, trip_kpis, vehicle_kpis
from robotaxi.fleet.manager import FleetManager, RideActionError
from robotaxi.map import RoadMap, RoutingGraph
from robotaxi.sim.autonomous import STACK_STEP_S, AutonomousDriver, AutonomyView
from robotaxi.sim.live_autonomy import AutonomyWiring
from robotaxi.sim.live_read import (
    ENDED_KEEP_S,
    MAX_TRAIL_POINTS,
    ON_BOARD,
    TRAIL_EVERY_S,
    ReadModel,
)
from robotaxi.sim.live_timeline import KpiSample, KpiTimeline
from robotaxi.sim.live_views import (
    EMPTY_SNAPSHOT,
    LiveServiceError,
    LiveSnapshot,
    LiveUpdate,
    Pacing,
    Quote,
    TripView,
    VehicleView,
)
from robotaxi.sim.live_write import EventLog, EventSink
from robotaxi.sim.pacing import Clock, Pacer, SystemClock
from robotaxi.sim.runner import WorldFactory, load_city, sumo_world
from robotaxi.sim.simulation import RequestQueue, Simulation, TravelTimes

S = TripState
log = logging.getLogger(__name__)

TRAVEL_TIME_UPDATE_S = 300.0
DRAIN_S = 3000.0


class LiveService:
    """The service's city simulation. `start()`, then `run_clock()` or `step()`; `stop()`.

    It owns the lock, the tick and the rider actions, and composes the rest: the clock
    (`sim.pacing.Pacer`), the read model (`sim.live_read.ReadModel`: snapshots, trails, route
    polylines), the write path (`sim.live_write.EventLog`: sink batches, versions,
    subscribers) and, with `autonomous` cars, the autonomy wiring
    (`sim.live_autonomy.AutonomyWiring`).

    Lock order: `_lock` (ticks, rider actions, the fleet, the read model and the subscriber
    list), then the event log's writer turn (its `_sink_lock`, taken under `_lock` by
    `take_batch` and released by `write` after `_lock` is let go), then its `_queue_lock`
    (held only briefly). Subscribers are called with no lock held.
    """

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
        self._pacer = Pacer(config.world.tick_s, speed, self.clock)
        self._city = city
        self.driver: AutonomousDriver | None = None
        # no new rides after end_s; trips under way may finish for DRAIN_S more (SUMO runs
        # an hour past the window, see SumoWorld.start)
        self.end_s = config.hours * 3600.0
        self.stop_s = self.end_s + DRAIN_S
        self._lock = threading.RLock()
        self._log = EventLog(sink, self._lock)
        self._read = ReadModel()
        self._thread: threading.Thread | None = None
        self._started = False
        self._synthetic: list[RideRequest] = []
        self._ticks = 0
        self._tick_wall_s = 0.0
        self._tick_wall_max_s = 0.0
        self._timeline = KpiTimeline()
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
        charging = fleet_charging_for_map(
            cfg.energy, self.map, demand=demand, day=day, start_hour=start_hour, seed=cfg.seed
        )
        self.fleet = FleetManager(
            self.map, self.graph, cfg.fleet, cfg.dispatch,
            demand=demand, day=day, start_hour=start_hour, seed=cfg.seed, charging=charging,
        )  # fmt: skip
        if self.riders_per_hour > 0:
            sample = demand.sample(day, start_hour, cfg.hours, seed=cfg.seed)
            self._synthetic = self._thin(list(sample.requests))
        self.world = self.world_factory(
            self.map, self.graph, cfg.world, cfg.fleet,
            seed=cfg.seed, end_s=self.end_s, work_dir=self.work_dir,
            background=self.background_traffic, start_day_hour=(day, start_hour),
            data_dir=cfg.map.data_dir,
        )  # fmt: skip
        self.sim = Simulation(
            self.world, self.graph,
            fleet=self.fleet,
            requests=RequestQueue(self._synthetic),
            callbacks=[TravelTimes(TRAVEL_TIME_UPDATE_S)],
            step_s=cfg.world.tick_s,
        )  # fmt: skip
        self.sim.start()
        try:
            if self.autonomous:
                wiring = AutonomyWiring(
                    self.autonomous, self.autonomy_step_s, self.hearing, self.city_blocks
                )
                self.driver = wiring.build(cfg, self.map, self.graph, self.world, self.fleet)
                self.sim.drivers = self.driver
        except BaseException:
            self.sim.close()
            raise
        self._read.attach(self.map, self.graph, self.fleet, self.world, self.driver)
        self.fleet.assistance.connect(
            self._look, self.driver.says if self.driver is not None else None
        )
        self._started = True
        with self._lock:
            self._read.publish(self._record((), ()), tuple(self.fleet.trips))

    def run_clock(self) -> None:
        """Step the simulation in a background thread at `speed` × real time (`Pacer`)."""
        self._require_started()
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._clock, name="robotaxi-live", daemon=True)
        self._thread.start()

    def _clock(self) -> None:
        keeping_up = True

        def tick() -> float:
            nonlocal keeping_up
            self.step()
            pacing = self.pacing()
            if pacing.keeping_up != keeping_up:
                keeping_up = pacing.keeping_up
                if keeping_up:
                    log.info("the live simulation keeps its speed again (%gx)", pacing.speed)
                else:
                    log.warning("falling behind: %s", pacing.falling_behind_note)
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
            batch = self._log.take_batch()
        self._log.write(batch, strict=False)
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
        return self._read.snapshot.time_s

    def snapshot(self) -> LiveSnapshot:
        """The latest published instant (no lock taken: safe from any thread, never blocks)."""
        return self._read.snapshot

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
            batch = self._log.take_batch()
            self._read.record_trails(now)
            self._timeline.sample(now, self.fleet.vehicles.values(), self.fleet.riders_waiting)
            self._ticks += 1
            self._read.publish(update, (), moved=True)
            # the read model forgot them too: memory follows the open trips, not the run
            self.fleet.retire_ended(now, ENDED_KEEP_S)
        self._log.write(batch, strict=False)
        tick_s = time.perf_counter() - wall0
        self._tick_wall_s += tick_s
        self._tick_wall_max_s = max(self._tick_wall_max_s, tick_s)
        self._log.publish(update)
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
            batch = self._log.take_batch()
            view = self._read.publish(update, (request_id,))[request_id]
        self._log.write(batch, strict=True)
        self._log.publish(update)
        return view

    def board(self, trip_id: str) -> TripView:
        return self._act(trip_id, lambda now: self.fleet.board(trip_id, now))

    def unlock(self, trip_id: str) -> TripView:
        return self._car_act(trip_id, self.fleet.unlock)

    def find_my_car(self, trip_id: str) -> TripView:
        return self._car_act(trip_id, self.fleet.find_my_car)

    def _car_act(
        self, trip_id: str, action: Callable[[str, float], list[VehicleEvent]]
    ) -> TripView:
        """A rider action that is a car's event, not a trip transition."""
        vehicle_events: list[VehicleEvent] = []

        def act(now: float) -> list[TripEvent]:
            vehicle_events.extend(action(trip_id, now))
            return []

        return self._act(trip_id, act, vehicle_events)

    def buckle(self, trip_id: str, buckled: bool) -> TripView:
        vehicle_events: list[VehicleEvent] = []

        def action(now: float) -> list[TripEvent]:
            vehicle_events.extend(self.fleet.buckle(trip_id, buckled, now))
            return []

        return self._act(trip_id, action, vehicle_events)

    def start_ride(self, trip_id: str) -> TripView:
        return self._act(trip_id, lambda now: self.fleet.start_ride(trip_id, now))

    def cancel(self, trip_id: str) -> TripView:
        return self._act(trip_id, lambda now: self.fleet.cancel(trip_id, now))

    def pull_over(self, trip_id: str) -> TripView:
        return self._act(trip_id, lambda now: self.fleet.pull_over(trip_id, now))

    def _act(
        self,
        trip_id: str,
        action: Callable[[float], list[TripEvent]],
        vehicle_events: Sequence[VehicleEvent] = (),
    ) -> TripView:
        """Run one rider action under the lock; raises `RideActionError` when not allowed.
        `vehicle_events`: filled by the action with the car's events it caused."""
        with self._lock:
            self._require_started()
            events = action(self.world.time.time_s)
            update = self._record((), events, vehicle_events)
            batch = self._log.take_batch()
            view = self._read.publish(update, (trip_id,))[trip_id]
        self._log.write(batch, strict=True)
        self._log.publish(update)
        return view

    # --- reading ------------------------------------------------------------------------

    def refresh(self) -> LiveSnapshot:
        """Publish the current instant again, every trip rebuilt (after a change made to the
        fleet from outside a tick or an action, e.g. by a test or a debugger)."""
        with self._lock:
            self._require_started()
            live = [t for t in self.fleet.trips if t in self._read.snapshot.trips]
            live += [t.trip_id for t in self.fleet.open_trips()]
            self._read.publish(self._record((), ()), tuple(dict.fromkeys(live)))
            return self._read.snapshot

    # Trips and vehicles are read from the published snapshot: no lock, so a reader never
    # waits for a tick (or for a rider action queued behind one).

    def has_trip(self, trip_id: str) -> bool:
        return trip_id in self._read.snapshot.trips

    def trip(self, trip_id: str) -> TripView | None:
        return self._read.snapshot.trips.get(trip_id)

    def vehicles(self) -> list[VehicleView]:
        self._require_started()
        return list(self._read.snapshot.vehicles.values())

    def vehicle(self, vehicle_id: str) -> VehicleView | None:
        self._require_started()
        return self._read.snapshot.vehicles.get(vehicle_id)

    def open_trips(self) -> list[TripView]:
        self._require_started()
        return self._read.snapshot.open_trips()

    def route_xy(self, vehicle_id: str) -> FloatArray:
        """N×2 polyline (m) of where the car is driving: from its position to its target curb.

        Empty (0×2) when the car is parked at its target or is not moving anywhere.
        """
        with self._lock:
            self._require_started()
            return self._read.route_to_target(vehicle_id)

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
            return self._read.route_between(from_xy, to_xy)

    def driven_xy(self, trip_id: str) -> FloatArray:
        """N×2 positions (m) the car drove through with the rider on board, every few s."""
        with self._lock:
            return self._read.driven_xy(trip_id)

    def nearby(self, vehicle_id: str, radius_m: float = 60.0) -> tuple[AgentState, ...]:
        """SUMO's road users within `radius_m` of the car (what it 'sees' at fleet fidelity)."""
        with self._lock:
            self._require_started()
            try:
                return self.world.vehicles_near(vehicle_id, radius_m)
            except WorldError:
                return ()  # not inserted yet (before the first step) or left the network

    def _look(self, vehicle_id: str) -> tuple[AgentState, ...]:
        """What a car that asks for help sees around it (called by the fleet in a tick)."""
        try:
            return self.world.vehicles_near(vehicle_id, AHEAD_M + 10.0)
        except WorldError:
            return ()

    def assistance(self) -> list[dict[str, Any]]:
        """Remote-assistance requests: the open ones and those closed lately (sim s, m)."""
        with self._lock:
            self._require_started()
            now = self.world.time.time_s
            return [r.to_json(now) for r in self.fleet.assistance.requests.values()]

    def answer_assistance(self, request_id: str, answer: AssistAnswer) -> dict[str, Any]:
        """An operator's answer to a request; the car checks and acts on it from the next
        tick. Raises `AssistanceError` (unknown or closed request)."""
        with self._lock:
            self._require_started()
            now = self.world.time.time_s
            events, vehicle_events = self.fleet.answer_assistance(request_id, answer, now)
            update = self._record((), events, vehicle_events)
            batch = self._log.take_batch()
            self._read.publish(update, ())
            row = self.fleet.assistance.requests[request_id].to_json(now)
        self._log.write(batch, strict=True)
        self._log.publish(update)
        return row

    def quote(self, pickup_xy: tuple[float, float], dropoff_xy: tuple[float, float]) -> Quote:
        """Pick-up ETA from the nearest free car and the trip's time and length (s, m)."""
        with self._lock:
            self._require_started()
            return self._read.quote(pickup_xy, dropoff_xy)

    def yields(self) -> list[dict[str, Any]]:
        """Emergency-vehicle yields so far, finished and in progress (times in sim s)."""
        with self._lock:
            self._require_started()
            active = [v.yielding for v in self.fleet.vehicles.values() if v.yielding is not None]
            rows = []
            for record, is_active in [(y, False) for y in self.fleet.yields] + [
                (y, True) for y in active
            ]:
                data = record.to_json()
                rows.append(
                    {
                        **{k: data[k] for k in ("vehicle_id", "ev_id", "trip_id", "approach")},
                        **{k: data[k] for k in ("in_range_s", "stopped_s", "resumed_s")},
                        "active": is_active,
                        "decided_by": record.decided_by,
                        "basis": record.basis,
                    }
                )
            return rows

    def kpi_history(self, since_s: float = 0.0) -> list[KpiSample]:
        """The KPIs once a simulated minute since `since_s` (`KpiTimeline`), oldest first."""
        with self._lock:
            self._require_started()
            return list(self._timeline.samples(since_s))

    def kpis(self) -> dict[str, Any]:
        """The fleet KPIs so far, each defined as `robotaxi simulate`'s (`fleet.kpis`, over
        the trips, cars and EV yields up to now), and live readings: trips by state, cars
        busy now, pacing and tick times."""
        with self._lock:
            self._require_started()
            now_s = self.world.time.time_s
            records = self.fleet.trip_records()  # retired trips included
            vehicles = list(self.fleet.vehicles.values())
            # finished yields and those under way, as simulate's history records them
            yields = self.fleet.yields + [v.yielding for v in vehicles if v.yielding is not None]
            shared = {
                **trip_kpis(records),
                **vehicle_kpis(vehicles, now_s),
                **ev_yield_kpis(yields),
            }
            busy = sum(1 for v in vehicles if v.trip_id is not None or v.next_trip_id is not None)
            riders = sum(1 for r in records if r.controlled)
            states: dict[str, int] = {}
            for r in records:
                states[r.state.value] = states.get(r.state.value, 0) + 1
        pacing = self.pacing()
        return {
            "sim_time_s": round(now_s, 1),
            "requests_from_app": riders,
            "completed": states.get(S.COMPLETED.value, 0),
            "cancelled": states.get(S.CANCELLED.value, 0),
            "interrupted": states.get(S.INTERRUPTED.value, 0),
            "open": sum(1 for r in records if not r.state.terminal),
            "states": states,
            **shared,
            "fleet": len(vehicles),
            "busy_vehicles": busy,
            "speed": self.speed,
            "real_time_factor": pacing.real_time_factor,
            "behind_s": pacing.behind_s,
            "falling_behind": pacing.falling_behind_note,
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
                **self._read.held(),
                "trips_before_pickup": self.fleet.trips_before_pickup,
                "fleet_trips": len(self.fleet.trips),
                "retired_trips": len(self.fleet.retired),
                "subscribers": self._log.subscriber_count,
            }

    # --- subscribers --------------------------------------------------------------------

    def subscribe(self, callback: Callable[[LiveUpdate], None]) -> Callable[[], None]:
        """Call `callback` (from the ticking thread) after every tick and action.

        Returns the function that unsubscribes. Callbacks must be quick and must not call
        back into this service (hand the update to a queue instead).
        """
        return self._log.subscribe(callback)

    @property
    def version(self) -> int:
        """Increases with every tick and action: cheap change detection for pollers."""
        return self._log.version

    @property
    def sink(self) -> EventSink | None:
        """Where every ride and event goes first (the service's event log), or None."""
        return self._log.sink

    @sink.setter
    def sink(self, sink: EventSink | None) -> None:
        self._log.sink = sink

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
        from robotaxi.map.zones import load_tnc_zones

        zones = load_tnc_zones(cfg.map.data_dir)
        area = ServiceArea.of_map(road_map)
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
        """Queue what happened now for the sink, and count it (call under `_lock`)."""
        self._timeline.observe(events, self.fleet.trips)
        return self._log.record(self.world.time.time_s, rides, events, vehicle_events)

    def _trip_view(
        self, trip_id: str, eta: float | None = None, *, eta_known: bool = False
    ) -> TripView:
        """One trip now, built afresh (call under `_lock`)."""
        return self._read.trip_view(trip_id, eta, eta_known=eta_known)


__all__ = [
    "EMPTY_SNAPSHOT",
    "ENDED_KEEP_S",
    "MAX_TRAIL_POINTS",
    "ON_BOARD",
    "TRAIL_EVERY_S",
    "AutonomyView",
    "EventSink",
    "LiveService",
    "LiveServiceError",
    "LiveSnapshot",
    "LiveUpdate",
    "Pacing",
    "Quote",
    "RideActionError",
    "TripView",
    "VehicleView",
]
