"""The fleet's brain at fleet fidelity: trips, dispatch, rebalancing and pull-overs.

`FleetManager.tick(snapshot, new_requests)` reads the robotaxis and emergency vehicles in a
world snapshot and returns the commands for the world and the trip events of this tick.
It never talks to SUMO; the runner carries the commands out. All randomness (riders'
boarding and buckling times, no-shows) is drawn per request from the run's seed, so a run
is a deterministic function of its seed and inputs.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections import deque
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from robotaxi.config import DispatchConfig, FleetConfig
from robotaxi.core import (
    AgentKind,
    CommandFailure,
    DriveTo,
    EvApproach,
    PullOver,
    PullOverReason,
    Resume,
    RideRequest,
    RobotaxiError,
    TimePoint,
    TripEvent,
    TripState,
    VehicleCommand,
    VehicleEvent,
    VehicleEventKind,
    WorldSnapshot,
    YieldBasis,
    YieldDecider,
)
from robotaxi.core.commands import AvoidStreet, LaneClosed, PassOpposite
from robotaxi.core.types import BoolArray, FloatArray, IntArray
from robotaxi.fleet.assistance import (
    MOVING_MPS,
    SENT_ANSWERS,
    AssistanceDesk,
    AssistAnswer,
    StandingCar,
)
from robotaxi.fleet.charging import FleetCharging
from robotaxi.fleet.demand import DemandModel
from robotaxi.fleet.dispatch import PairFilter, PickupEtaModel, assign_nearby, make_policy
from robotaxi.fleet.energy import route_m_upper_bound
from robotaxi.fleet.kpis import TripRecord
from robotaxi.fleet.rebalance import pool_into_cells, rebalance_moves
from robotaxi.fleet.trips import ALLOWED, Trip, greeting, new_trip
from robotaxi.map import RoadMap, RoutingGraph
from robotaxi.map.routing import RouteWeights

S = TripState
WALK_SPEED_MPS = 1.3
ARRIVAL_TOLERANCE_M = 25.0
EV_YIELD_TIMEOUT_S = 120.0
EV_YIELD_DELAY_S = 30.0  # expected delay of a car pulled over for an ambulance, for dispatch
# the margin (m) of the box around a siren within which a car takes the exact yield test:
# floating point (numpy's cosine against math's) cannot move a car across it
_NEAR_MARGIN_M = 1.0


class VehicleStatus(enum.StrEnum):
    IDLE = "idle"  # parked at a curb, or driving to one after a cancelled pick-up
    REBALANCING = "rebalancing"
    TO_PICKUP = "to_pickup"
    AT_PICKUP = "at_pickup"
    TO_DROPOFF = "to_dropoff"
    AT_DROPOFF = "at_dropoff"
    TO_CHARGER = "to_charger"  # driving to a charging depot
    CHARGING = "charging"  # at the depot: in line for a charger or plugged in


class CurbStage(enum.StrEnum):
    """A car's curbside stage: what it waits for at the curb (until `Vehicle.timer_s`), or
    that it is pulling over because its rider asked to stop."""

    NONE = ""  # no curbside stage: driving, or parked with nothing to wait for
    WAITING_FOR_START = "waiting_for_start"  # a real rider got in: Start ride is theirs
    NO_SHOW = "no_show"  # waiting for a rider who may not come (or a real rider to get in)
    BOARDING = "boarding"
    BUCKLING = "buckling"
    ALIGHTING = "alighting"
    RIDER_PULL_OVER = "rider_pull_over"  # the rider asked to stop: the car pulls over


OCCUPIED = (VehicleStatus.TO_DROPOFF,)
MOVING = (VehicleStatus.TO_PICKUP, VehicleStatus.TO_DROPOFF, VehicleStatus.REBALANCING)
AVAILABLE = (VehicleStatus.IDLE, VehicleStatus.REBALANCING)
# `_advance` moves a car in these on only once it stands (arrived, or pulled over for its
# rider): while it drives, the tick passes it by
_ARRIVES_STOPPED = (VehicleStatus.TO_DROPOFF, VehicleStatus.REBALANCING, VehicleStatus.TO_CHARGER)
# standing at a rider's curb: `_advance` moves it on when its curbside stage ends
_AT_CURB = (VehicleStatus.AT_PICKUP, VehicleStatus.AT_DROPOFF)


@dataclass(frozen=True)
class DispatchPool:
    """The cars one dispatch batch may assign (`FleetManager.dispatch_pool`)."""

    cars: list[Vehicle]
    origins: list[tuple[str, float]]  # per car: the edge it starts from, m along it
    extra_s: list[float]  # per car: seconds before it can start (the rest of a drop-off)
    holding: dict[str, str]  # trip → the car driving to it now (it may lose the trip)


@dataclass
class YieldRecord:
    """A robotaxi pulling over for an emergency vehicle: when the ambulance came in range
    (or the car's own stack first heard or saw it), when the car stood, when it drove on."""

    vehicle_id: str
    ev_id: str  # "" when a car's own decision had no ambulance to name
    in_range_at: TimePoint
    trip_id: str | None
    approach: EvApproach  # BEHIND or HEAD_ON; for a car's own decision any
    stopped_at: TimePoint | None = None
    resumed_at: TimePoint | None = None
    failed_attempts: int = 0
    decided_by: YieldDecider = YieldDecider.FLEET
    basis: YieldBasis | None = None  # the car's own decision only

    def to_json(self) -> dict[str, object]:
        """The record as `yields.json` and the ops API have always written it: instants as
        `…_s`, seconds since the start."""
        return {
            "vehicle_id": self.vehicle_id,
            "ev_id": self.ev_id,
            "in_range_s": self.in_range_at.time_s,
            "trip_id": self.trip_id,
            "approach": self.approach,
            "stopped_s": _seconds(self.stopped_at),
            "resumed_s": _seconds(self.resumed_at),
            "failed_attempts": self.failed_attempts,
            "decided_by": self.decided_by,
            "basis": self.basis,
        }


def _seconds(at: TimePoint | None) -> float | None:
    return None if at is None else at.time_s


@dataclass(frozen=True, slots=True)
class EvStop:
    """An autonomous car standing for an emergency vehicle by its own stack's decision, as
    its driver reports it every tick (times in s since the start).

    `reacting_since_at` is when the stack first heard or saw the emergency (its stop's
    reason), `since_at` when the car came to a stand; `ev_id` is the nearest ambulance with
    its siren on (ground truth, for the record), None if there is none.
    """

    since_at: TimePoint
    reacting_since_at: TimePoint
    basis: YieldBasis
    behaviour: str  # the stack's behaviour when it stopped ("yield_to_ev", "ev_caution")
    ev_id: str | None


@dataclass
class Rider:
    """What the simulated rider will do, drawn when the request arrives.

    A `controlled` rider is a real person (the service's app and in-car screen): unlocking,
    boarding, buckling and Start ride come from them through `unlock`, `board`, `buckle` and
    `start_ride`; the car's doors stay locked at the pick-up until its rider unlocks them.
    """

    at_curb_at: TimePoint  # when the rider is at the pick-up curb
    boarding_s: float
    buckle_s: float
    alighting_s: float
    no_show: bool
    controlled: bool = False
    buckled: bool = False
    unbuckled_at: TimePoint | None = None  # the belt came undone mid-ride (None: fastened)
    unlocked: bool = False  # a controlled rider unlocked the doors at the pick-up
    signalled_at: TimePoint | None = None  # the last "find my car" (horn and lights)


class RideActionError(RobotaxiError):
    """A rider asked for something the trip's state does not allow (e.g. Start before boarding)."""


@dataclass
class Vehicle:
    vehicle_id: str
    status: VehicleStatus = VehicleStatus.IDLE
    trip_id: str | None = None
    next_trip_id: str | None = None
    target_curb: int | None = None  # the curb spot it drives to or stands at; None: none
    edge: str = ""
    lane_pos: float = 0.0
    xy: tuple[float, float] = (0.0, 0.0)
    heading: float = 0.0
    speed: float = 0.0
    stopped: bool = True
    odometer_m: float = 0.0
    timer_s: float = math.inf  # when the current curbside stage ends
    stage: CurbStage = CurbStage.NONE
    yielding: YieldRecord | None = None
    pending_command: VehicleCommand | None = None
    km_empty: float = 0.0
    km_occupied: float = 0.0
    busy_s: float = 0.0
    occupied_s: float = 0.0


@dataclass
class FleetTickResult:
    commands: list[VehicleCommand] = field(default_factory=list)
    events: list[TripEvent] = field(default_factory=list)
    vehicle_events: list[VehicleEvent] = field(default_factory=list)


class FleetManager:
    """Runs the trip life cycle, dispatch, rebalancing and EV pull-overs for N robotaxis."""

    def __init__(
        self,
        road_map: RoadMap,
        graph: RoutingGraph,
        fleet: FleetConfig,
        dispatch: DispatchConfig,
        *,
        demand: DemandModel | None,
        day: int,
        start_hour: float,
        seed: int,
        charging: FleetCharging | None = None,
    ) -> None:
        """`charging`: the cars' batteries, depots and charging policy (None: cars that
        never run out, as before energy was modelled)."""
        self.map = road_map
        self.graph = graph
        self.config = fleet
        self.dispatch_config = dispatch
        self.policy = make_policy(dispatch.policy)
        self.demand = demand
        self.day = day
        self.start_hour = start_hour
        self.seed = seed
        self.vehicles: dict[str, Vehicle] = {}
        self.trips: dict[str, Trip] = {}
        self.riders: dict[str, Rider] = {}
        # ended trips moved out of `trips` by `retire_ended`, as compact KPI records
        self.retired: list[TripRecord] = []
        self._ended: deque[tuple[float, str]] = deque()  # (ended at, trip id), oldest first
        self.yields: list[YieldRecord] = []
        # the car stands for an EV since …: that stop's yield is recorded (or the fleet's
        # own yield covered it), so a report that goes on opens nothing new
        self._ev_stops_handled: dict[str, TimePoint] = {}
        self.command_failures = 0
        self._waiting: list[str] = []  # requested, not yet assigned (arrival order)
        self._unbuckled: set[str] = set()  # trips whose rider undid the belt mid-ride
        self._last_rows: _Rows | None = None  # the last snapshot's rows (`_observe`)
        # the snapshots' cars as the fleet's (`_row_cars`)
        self._rows_of: tuple[tuple[tuple[str, ...], int], _RowCars] | None = None
        # trips whose rider still waits for the car (requested, assigned, en route): the
        # patience check looks at these, not at every trip of the run
        self._before_pickup: dict[str, Trip] = {}
        self._next_batch_s = -math.inf  # batches keep to a grid of batch_interval_s
        # the cars free (not on their way to a pick-up) at the last batch
        self._free_at_batch: frozenset[str] = frozenset()
        self.eta_model = PickupEtaModel()  # route time on the graph → the time cars take
        self._last_rebalance_s = 0.0
        self._last_t = 0.0
        self._rng = np.random.default_rng([seed, 0xF1EE7])
        self.charging = charging
        self._dt = 0.0
        # curb spot → the car that stands at it or drives to it: one car per spot (spots are
        # CURB_SPACING_M apart, so cars at different spots never overlap)
        self._holder: dict[int, str] = {}
        # cars whose spot another car took (`_hold`) and that have not been looked at since
        # as idle cars: every other car with a target curb holds it (the tick's spot check
        # looks only at these, not at a thousand cars)
        self._spot_lost: set[str] = set()
        # length (m) of each open trip's ride, for the battery check at dispatch; until the
        # check needs it, only upper bounds and the travel times it opened under (most
        # cars can finish even the bound: the ride's route is searched only if one cannot)
        self._ride_m: dict[str, float] = {}
        self._direct_at_start: dict[str, float] = {}  # `_begin_driving`, per ride under way
        self.completed = 0  # trips completed so far (the progress line's count)
        self._sorted_cars: list[Vehicle] = []  # `_by_id`
        self._ride_bound: dict[str, _RideBound] = {}
        # trip → the car an operator pulled over on its way to that rider (stuck): never
        # sent to the same rider again while the rider still waits
        self._gave_up: dict[str, str] = {}
        # the last batch had more riders than cars near them: the next starts from the full
        # matrix (`assign_nearby`)
        self._saturated = False
        # each car's price at the last full-matrix optimum: where the next one starts from
        # (`assign_nearby`'s `car_prices`)
        self._car_prices: Mapping[Hashable, float] = {}
        # the fastest a car can go on this map: ETA × this bounds the pick-up route's length
        self._top_speed_mps = max(
            (lane.speed_limit for lane in road_map.lanes.values()), default=fleet.max_speed_mps
        )
        # remote assistance: cars stuck on their way ask a person (`answer_assistance`)
        self.assistance = AssistanceDesk(road_map, fleet.assist_after_s)

    # --- set-up -------------------------------------------------------------------------

    def initial_curbs(self) -> list[int]:
        """Curb spots where the N robotaxis start, spread by the seed."""
        n = len(self.map.curbs)
        return [
            int(i) for i in self._rng.choice(n, size=self.config.size, replace=n < self.config.size)
        ]

    def add_vehicle(self, vehicle_id: str, curb: int) -> int:
        """Place a car parked at `curb`, or at the nearest free spot if another car holds
        it; returns the spot it was given."""
        curb = self._free_curb_near(curb)
        v = Vehicle(vehicle_id, target_curb=curb)
        self._hold(curb, vehicle_id)
        v.edge = self.map.curbs.edge_ids[curb]
        v.lane_pos = float(self.map.curbs.pos[curb])
        v.xy = (float(self.map.curbs.xy[curb, 0]), float(self.map.curbs.xy[curb, 1]))
        self.vehicles[vehicle_id] = v
        if self.charging is not None:
            self.charging.add_car(vehicle_id)
        return curb

    # --- the tick -----------------------------------------------------------------------

    def tick(
        self,
        snapshot: WorldSnapshot,
        new_requests: Sequence[RideRequest],
        ev_stops: Mapping[str, EvStop] | None = None,
    ) -> FleetTickResult:
        """`ev_stops`: the autonomous cars standing for an emergency vehicle by their own
        decision now (None: no car decides that by itself)."""
        now = snapshot.time.time_s
        out = FleetTickResult()
        self._observe(snapshot, now)
        for request in new_requests:
            self._open_trip(request, out)
        self._check_patience(now, out)
        self._check_seatbelts(now, out)
        idle, charging = VehicleStatus.IDLE, VehicleStatus.CHARGING
        holder, lost = self._holder, self._spot_lost
        to_pickup, at_curb, trips = VehicleStatus.TO_PICKUP, _AT_CURB, self.trips
        assigned = S.ASSIGNED
        for v in self.vehicles.values():
            status = v.status
            if status is not idle:
                # an idle or charging car has nothing to move on; nor, this tick, has one that
                # `_advance` would pass by (the same tests, cheaper)
                if status is charging:
                    continue
                if v.stopped:
                    if status in at_curb and now < v.timer_s:
                        continue  # its rider is still at it
                elif status in _ARRIVES_STOPPED or (
                    status is to_pickup
                    and (
                        not v.trip_id
                        or getattr(trips.get(v.trip_id), "state", None) is not assigned
                    )
                ):
                    continue  # on its way, and under way already
                self._advance(v, now, out)
                if v.status is not idle:
                    continue
            # (a car not in `lost` holds its target curb)
            if lost and v.vehicle_id in lost and v.trip_id is None and v.target_curb is not None:
                lost.discard(v.vehicle_id)
                if holder.get(v.target_curb) != v.vehicle_id:
                    self._park_idle(v, v.target_curb)  # its spot went to another car
        batch = self._dispatch_due(now)
        if self.charging is not None:
            self._charge(now, plan=batch)
        if ev_stops is not None:
            self._own_yields(ev_stops, snapshot, now, out)
        self._yield_to_emergency(snapshot, now, out)
        self.assistance.observe(self._standing_cars(), now, out.vehicle_events, out.commands)
        self._dispatch(now, out)
        # right after a batch: the cars still idle are the ones no waiting rider got
        if (
            batch
            and self.dispatch_config.rebalance
            and self.demand is not None
            and now - self._last_rebalance_s >= self.dispatch_config.rebalance_interval_s
        ):
            self._last_rebalance_s = now
            self._rebalance(now, out)
        for v, command in [
            (v, c) for v in self.vehicles.values() if (c := v.pending_command) is not None
        ]:
            out.commands.append(command)
            v.pending_command = None
        if self.charging is not None and self.charging.sample_due(now):
            available = sum(
                1 for v in self.vehicles.values() if v.status in AVAILABLE and v.trip_id is None
            )
            self.charging.sample(now, available)
        return out

    def _dispatch_due(self, now: float) -> bool:
        """A decision round this tick: every tick for `nearest`, every batch interval for
        the batch (charging decides in the same rounds, before dispatch): the first tick at
        or after each multiple of the interval from the first batch, so that ticks that do
        not divide it (10 s against 15 s) keep its pace on average."""
        return self.dispatch_config.policy == "nearest" or now >= self._next_batch_s - 1e-6

    def on_command_failed(self, failure: CommandFailure) -> None:
        """The world could not carry out a command: retry at a neighbouring curb next tick."""
        self.command_failures += 1
        command = failure.command
        if isinstance(command, AvoidStreet | PassOpposite | LaneClosed):
            self.assistance.world_refused(command, failure.reason, self._last_t)
            return
        v = self.vehicles.get(command.vehicle_id)
        if v is None:
            return
        if isinstance(command, PullOver) and v.yielding is not None:
            v.yielding.failed_attempts += 1
            return
        if isinstance(command, DriveTo) and v.target_curb is not None:
            curbs = self.map.curbs
            if command.edge != curbs.edge_ids[v.target_curb]:
                return  # a command since has sent the car elsewhere
            # the nearest spots on other streets (the street may be what failed: jammed, or
            # no way there), then the rest of the nearest on the same street
            _, idx = curbs.tree.query(curbs.xy[v.target_curb], k=min(12, len(curbs.xy)))
            near = [
                int(i) for i in np.atleast_1d(idx) if int(i) not in (v.target_curb, len(curbs.xy))
            ]
            street = curbs.edge_ids[v.target_curb]
            alternatives = [i for i in near if curbs.edge_ids[i] != street][:3] or near[:3]
            if alternatives:
                choice = alternatives[self.command_failures % len(alternatives)]
                if v.trip_id is None:
                    self._park_idle(v, choice)
                else:
                    self._send_to(v, choice)

    # --- observation --------------------------------------------------------------------

    def _observe(self, snapshot: WorldSnapshot, now: float) -> None:
        dt = max(now - self._last_t, 0.0)
        self._last_t = now
        self._dt = dt
        rows, keep, slots, fleet_rows = self._row_cars(snapshot.ids)
        same = np.asarray(self._unchanged_rows(snapshot), dtype=bool)
        # the rows that changed (most of a large fleet stands at kerbs: their rows are last
        # tick's, and only time passed for them); plain lists, as indexing numpy arrays one
        # element at a time costs more than the rest
        changed = np.flatnonzero(~same)
        metres = np.zeros(len(rows))
        if len(changed):
            xy = snapshot.xy[changed]
            xs, ys = xy[:, 0].tolist(), xy[:, 1].tolist()
            lane_pos = snapshot.lane_pos[changed].tolist()
            heading = snapshot.heading[changed].tolist()
            speed = snapshot.speed[changed].tolist()
            odometer = (
                np.asarray(snapshot.odometer_m)[changed].tolist()
                if len(snapshot.odometer_m)
                else None
            )
            roads, stopped = snapshot.road_ids, snapshot.stopped
            for j, i in enumerate(changed.tolist()):
                v = rows[i]
                if v is None:
                    continue
                road = roads[i] if roads else ""
                if road and road[0] != ":":
                    v.edge = road
                v.lane_pos = lane_pos[j]
                v.xy = (xs[j], ys[j])
                v.heading = heading[j]
                v.speed = speed[j]
                v.stopped = bool(stopped[i]) if stopped else False
                odo = odometer[j] if odometer is not None else v.odometer_m
                step_m = odo - v.odometer_m
                delta_km = step_m / 1000.0 if step_m > 0.0 else 0.0
                v.odometer_m = odo
                # a car that runs empty is recorded there (`energy.rides_lost_...`): the
                # dispatch check below is what keeps that at zero
                metres[i] = 1000.0 * delta_km
                if v.status in OCCUPIED:
                    v.km_occupied += delta_km
                else:
                    v.km_empty += delta_km
        # every car in the snapshot: its time (the busy ones: most of a large fleet stands
        # idle at kerbs, passed over in a comprehension), and whether it stands (its battery)
        idle, occupied = VehicleStatus.IDLE, VehicleStatus.TO_DROPOFF
        for v in [v for v in fleet_rows if v.status is not idle or v.trip_id is not None]:
            if v.status is occupied:
                v.occupied_s += dt
            v.busy_s += dt
        if self.charging is not None and dt > 0:
            parked = np.array(
                [v.stopped and v.status not in MOVING for v in fleet_rows], dtype=bool
            )
            self.charging.consume_slots(
                slots, metres[keep], parked,
                lambda k: fleet_rows[k].trip_id,
                dt, now,
            )  # fmt: skip

    def _row_cars(self, ids: tuple[str, ...]) -> _RowCars:
        """Per row of a snapshot with these `ids`: the fleet's car (None: not one of ours);
        the rows that are cars of the fleet, their battery slots (`FleetBatteries.slot`) and
        their cars. Kept while the snapshots name the same cars in the same order."""
        key = (ids, len(self.vehicles))
        cached = self._rows_of
        if cached is not None and cached[0] == key:
            return cached[1]
        rows = [self.vehicles.get(vid) for vid in ids]
        keep = np.array([i for i, v in enumerate(rows) if v is not None], dtype=np.int64)
        slots = np.array(
            [self.charging.batteries.slot(ids[i]) for i in keep.tolist()]
            if self.charging is not None
            else [],
            dtype=np.int64,
        )
        found = _RowCars(rows, keep, slots, [v for v in rows if v is not None])
        self._rows_of = (key, found)
        return found

    def _unchanged_rows(self, snapshot: WorldSnapshot) -> BoolArray | list[bool]:
        """Per row of `snapshot`: True where the car's row equals the last tick's (the same
        cars in the same order, every field equal): most of a large fleet stands at kerbs."""
        now = _Rows.of(snapshot)
        last, self._last_rows = self._last_rows, now
        if last is None or not now.comparable(last):
            return [False] * len(snapshot.ids)
        same = (now.xy == last.xy).all(axis=1)
        same &= (now.lane_pos == last.lane_pos) & (now.heading == last.heading)
        same &= now.speed == last.speed
        n = len(now.ids)
        for a, b in ((now.odometer, last.odometer), (now.stopped, last.stopped)):
            if len(a) == n:  # else not reported (empty in both)
                same &= a == b
        # (a car at the same point, heading and distance along its street, with the same
        # odometer, is on the same street: the streets are not compared)
        return same

    def _at_target(self, v: Vehicle) -> bool:
        if not v.stopped or v.yielding is not None or v.target_curb is None:
            return False
        curbs = self.map.curbs
        return (
            v.edge == curbs.edge_ids[v.target_curb]
            and abs(v.lane_pos - float(curbs.pos[v.target_curb])) <= ARRIVAL_TOLERANCE_M
        )

    # --- trips --------------------------------------------------------------------------

    def _open_trip(
        self, request: RideRequest, out: FleetTickResult, *, controlled: bool = False
    ) -> Trip:
        trip = new_trip(request)
        points = np.array(
            [[request.pickup_x, request.pickup_y], [request.dropoff_x, request.dropoff_y]]
        )
        idx, walk = self.map.curbs.nearest(points)
        trip.pickup_curb, trip.dropoff_curb = int(idx[0]), int(idx[1])
        trip.pickup_walk_m, trip.dropoff_walk_m = float(walk[0]), float(walk[1])
        rng = np.random.default_rng([self.seed, 0x71D, int.from_bytes(request.request_id.encode())])
        c = self.config
        self.riders[trip.trip_id] = Rider(
            at_curb_at=request.time + trip.pickup_walk_m / WALK_SPEED_MPS,
            boarding_s=float(rng.uniform(*c.boarding_s)),
            buckle_s=float(rng.uniform(*c.buckle_up_s)),
            alighting_s=float(rng.uniform(*c.alighting_s)),
            no_show=not controlled and bool(rng.random() < c.no_show_probability),
            controlled=controlled,
        )
        if controlled:
            self.riders[trip.trip_id].at_curb_at = request.time
        self.trips[trip.trip_id] = trip
        self._before_pickup[trip.trip_id] = trip
        if self.charging is not None:
            self._note_ride(trip)
        self._waiting.append(trip.trip_id)
        out.events.extend(trip.events)  # the "requested" event
        return trip

    @property
    def trips_before_pickup(self) -> int:
        """Trips whose rider still waits for the car (what the patience check looks at)."""
        return len(self._before_pickup)

    def open_trips(self) -> list[Trip]:
        """Trips not ended yet (a scan of every trip: for rare calls, not for the tick)."""
        return [t for t in self.trips.values() if not t.state.terminal]

    def retire_ended(self, now_s: float, keep_s: float) -> int:
        """Move trips that ended over `keep_s` ago out of `trips` and `riders` into compact
        KPI records (`retired`); returns how many. For a service that runs for days: its
        memory then follows the open trips, and `trip_records` still counts every trip.
        The full history of a retired trip is in the event log (the store)."""
        retired = 0
        while self._ended and now_s - self._ended[0][0] > keep_s:
            _, trip_id = self._ended.popleft()
            trip = self.trips.get(trip_id)
            if trip is None:
                continue
            car = self.vehicles.get(trip.vehicle_id) if trip.vehicle_id else None
            if car is not None and trip_id in (car.trip_id, car.next_trip_id):
                self._ended.append((now_s, trip_id))  # still referenced: look again later
                break
            del self.trips[trip_id]
            rider = self.riders.pop(trip_id)
            self.retired.append(TripRecord.of(trip, controlled=rider.controlled))
            retired += 1
        return retired

    @property
    def riders_waiting(self) -> int:
        """Riders waiting for their car now (requested, assigned or with a car on its way)."""
        return len(self._before_pickup)

    def trip_records(self) -> list[TripRecord]:
        """Every trip of the run as a KPI record: the retired ones and those still held."""
        return self.retired + [
            TripRecord.of(t, controlled=self.riders[t.trip_id].controlled)
            for t in self.trips.values()
        ]

    # --- a real rider's actions (the service calls these between ticks) -------------------

    def request_ride(self, request: RideRequest) -> tuple[Trip, list[TripEvent]]:
        """Open a trip for a real rider now; dispatch picks it up at the next tick."""
        if request.request_id in self.trips:
            raise RideActionError(f"ride {request.request_id} already exists")
        out = FleetTickResult()
        trip = self._open_trip(request, out, controlled=True)
        return trip, out.events

    def _trip_for_action(self, trip_id: str) -> tuple[Trip, Vehicle | None]:
        trip = self.trips.get(trip_id)
        if trip is None:
            raise RideActionError(f"no ride {trip_id}")
        car = self.vehicles.get(trip.vehicle_id) if trip.vehicle_id else None
        return trip, car

    def unlock(self, trip_id: str, now_s: float) -> list[VehicleEvent]:
        """The rider unlocked the car from the app: only at the pick-up, once it has arrived
        (before, the doors stay locked: nobody else gets in). Unlocking again does nothing."""
        _, car = self._trip_at_pickup(trip_id, "unlock the car")
        rider = self.riders[trip_id]
        if rider.unlocked:
            return []
        rider.unlocked = True
        return [
            VehicleEvent(
                car.vehicle_id,
                TimePoint.from_s(now_s),
                VehicleEventKind.DOORS_UNLOCKED,
                {"trip": trip_id},
            )
        ]

    def find_my_car(self, trip_id: str, now_s: float) -> list[VehicleEvent]:
        """The car honks briefly and flashes its lights so its rider can spot it (only once
        it waits at the pick-up)."""
        _, car = self._trip_at_pickup(trip_id, "honk and flash")
        self.riders[trip_id].signalled_at = TimePoint.from_s(now_s)
        return [
            VehicleEvent(
                car.vehicle_id,
                TimePoint.from_s(now_s),
                VehicleEventKind.HORN_AND_LIGHTS,
                {"trip": trip_id},
            )
        ]

    def _trip_at_pickup(self, trip_id: str, what: str) -> tuple[Trip, Vehicle]:
        trip, car = self._trip_for_action(trip_id)
        if trip.state != S.ARRIVED or car is None or car.trip_id != trip_id:
            raise RideActionError(
                f"cannot {what} for ride {trip_id}: the car has not arrived ({trip.state})"
            )
        return trip, car

    def board(self, trip_id: str, now_s: float) -> list[TripEvent]:
        """The rider got in (the car's door sensor): the doors must have been unlocked."""
        trip, car = self._trip_at_pickup(trip_id, "board")
        if not self.riders[trip_id].unlocked:
            raise RideActionError(
                f"cannot board ride {trip_id}: the doors are locked; unlock the car first"
            )
        out = FleetTickResult()
        self._event(trip, S.BOARDED, now_s, out, cause="rider", data={"seatbelt": False})
        car.stage, car.timer_s = CurbStage.WAITING_FOR_START, math.inf
        return out.events

    def buckle(self, trip_id: str, buckled: bool, now_s: float = 0.0) -> list[VehicleEvent]:
        """The seat-belt sensor (a toggle in the in-car screen). Undone mid-ride it is an
        event, the screen asks the rider to fasten it, and if it stays open for
        `seatbelt_grace_s` the car pulls over at the next safe kerb (`tick`)."""
        trip, car = self._trip_for_action(trip_id)
        if trip.state not in (S.ARRIVED, S.BOARDED, S.STARTED, S.DRIVING):
            raise RideActionError(f"ride {trip_id} has no rider on board ({trip.state})")
        rider = self.riders[trip_id]
        was, rider.buckled = rider.buckled, buckled
        if trip.state not in (S.STARTED, S.DRIVING) or was == buckled or car is None:
            return []
        rider.unbuckled_at = None if buckled else TimePoint.from_s(now_s)
        if buckled:
            self._unbuckled.discard(trip_id)
        else:
            self._unbuckled.add(trip_id)
        kind = (
            VehicleEventKind.SEATBELT_FASTENED if buckled else VehicleEventKind.SEATBELT_UNFASTENED
        )
        return [VehicleEvent(car.vehicle_id, TimePoint.from_s(now_s), kind, {"trip": trip_id})]

    def _check_seatbelts(self, now: float, out: FleetTickResult) -> None:
        """A car whose rider left the belt open past the grace time pulls over."""
        if not self._unbuckled:
            return  # every belt fastened: nothing to look at
        for v in self.vehicles.values():
            if v.status != VehicleStatus.TO_DROPOFF or v.trip_id is None:
                continue
            rider = self.riders[v.trip_id]
            trip = self.trips[v.trip_id]
            if (
                rider.unbuckled_at is not None
                and trip.state == S.DRIVING
                and now - rider.unbuckled_at.time_s >= self.config.seatbelt_grace_s
            ):
                self._event(trip, S.PULLED_OVER, now, out, cause="seatbelt")
                v.stage = CurbStage.RIDER_PULL_OVER
                v.pending_command = PullOver(v.vehicle_id, PullOverReason.RIDER)

    def start_ride(self, trip_id: str, now_s: float) -> list[TripEvent]:
        """The rider pressed Start ride: allowed once boarded and buckled."""
        trip, car = self._trip_for_action(trip_id)
        if trip.state != S.BOARDED:
            raise RideActionError(
                f"Start ride needs the rider on board first (ride is {trip.state})"
            )
        if not self.riders[trip_id].buckled:
            raise RideActionError("Start ride needs the seat belt fastened first")
        if car is None:
            raise RideActionError(f"ride {trip_id} has no car")
        out = FleetTickResult()
        self._begin_driving(car, trip, now_s, out)
        return out.events

    def cancel(self, trip_id: str, now_s: float) -> list[TripEvent]:
        """The rider cancels; after the car arrived this is recorded as such."""
        trip, car = self._trip_for_action(trip_id)
        if S.CANCELLED not in ALLOWED[trip.state]:
            raise RideActionError(f"ride {trip_id} cannot be cancelled now ({trip.state})")
        cause = "rider_after_arrival" if trip.state in (S.ARRIVED, S.BOARDED) else "rider"
        out = FleetTickResult()
        self._event(trip, S.CANCELLED, now_s, out, cause=cause)
        if trip_id in self._waiting:
            self._waiting.remove(trip_id)
        if car is not None and car.trip_id == trip_id:
            car.stage, car.timer_s = CurbStage.NONE, math.inf
        self._release_vehicle_of(trip)
        return out.events

    def pull_over(self, trip_id: str, now_s: float) -> list[TripEvent]:
        """The rider asked to stop: the car parks at the next safe curb and the trip ends there."""
        trip, car = self._trip_for_action(trip_id)
        if trip.state != S.DRIVING or car is None:
            raise RideActionError(f"ride {trip_id} is not under way ({trip.state})")
        out = FleetTickResult()
        self._event(trip, S.PULLED_OVER, now_s, out, cause="rider")
        car.stage = CurbStage.RIDER_PULL_OVER
        car.pending_command = PullOver(car.vehicle_id, PullOverReason.RIDER)
        return out.events

    # --- remote assistance --------------------------------------------------------------

    def _standing_cars(self) -> list[StandingCar]:
        """The cars the assistance desk looks at this tick: those standing on their way to a
        rider or a drop-off, and those it already follows."""
        watched, cars = self.assistance.watched(), []
        to_pickup, to_dropoff = VehicleStatus.TO_PICKUP, VehicleStatus.TO_DROPOFF
        # (the rest, most of a large fleet, passed over in a comprehension)
        for v in [
            v
            for v in self.vehicles.values()
            if v.status is to_pickup or v.status is to_dropoff or v.vehicle_id in watched
        ]:
            status = v.status
            if status is to_pickup:
                leg = "pickup"
            elif status is to_dropoff:
                leg = "dropoff"
            elif v.vehicle_id not in watched:
                continue  # parked with no ride: nothing to follow
            else:
                leg = ""
            if leg and v.speed >= MOVING_MPS and v.vehicle_id not in watched:
                continue  # moving: nothing to follow
            held = (
                bool(leg)
                and v.trip_id is not None
                and not v.stopped
                and v.yielding is None
                and v.stage != CurbStage.RIDER_PULL_OVER
            )
            car = StandingCar(
                v.vehicle_id, v.trip_id, leg, held, v.edge, v.xy,
                v.heading, v.speed,
            )  # fmt: skip
            cars.append(car)
        return cars

    def answer_assistance(
        self, request_id: str, answer: AssistAnswer, now_s: float
    ) -> tuple[list[TripEvent], list[VehicleEvent]]:
        """An operator's answer to a car's request for help. The car checks it: another way
        goes to the world (refused there if every way crosses the blocked street); leave to
        pass through the oncoming lane goes to the car (refused where there is no such lane,
        or by a car the world drives; taken, the car still waits for a gap); pull over
        ends a ride at the next safe kerb (the rider gets out there) or, on the way to a
        pick-up, hands the rider to another car; wait is taken as it is. Raises
        `AssistanceError` for an unknown or closed request."""
        desk = self.assistance
        request, record, events = desk.answer(request_id, answer, now_s)
        v = self.vehicles[request.vehicle_id]
        trip = self.trips.get(v.trip_id) if v.trip_id else None
        out = FleetTickResult()
        if answer in SENT_ANSWERS:
            desk.send(request, record)
        elif answer == AssistAnswer.WAIT:
            events.append(desk.accept(request, record, now_s))
        elif v.status == VehicleStatus.TO_DROPOFF and trip is not None and trip.state == S.DRIVING:
            self._event(trip, S.PULLED_OVER, now_s, out, cause="remote_assistance")
            v.stage = CurbStage.RIDER_PULL_OVER
            v.pending_command = PullOver(v.vehicle_id, PullOverReason.RIDER)
            events.append(desk.accept(request, record, now_s))
        elif v.status == VehicleStatus.TO_PICKUP and trip is not None:
            # the rider is handed to another car at the next dispatch; this one parks
            self._gave_up[trip.trip_id] = v.vehicle_id
            v.trip_id, v.status = None, VehicleStatus.IDLE
            if v.target_curb is not None and self._holder.get(v.target_curb) == v.vehicle_id:
                del self._holder[v.target_curb]
            v.target_curb = None
            self._waiting.append(trip.trip_id)
            v.pending_command = PullOver(v.vehicle_id, PullOverReason.RIDER)
            events.append(desk.accept(request, record, now_s))
        else:
            reason = f"the car is not on its way with a ride ({v.status.value})"
            events.append(desk.refuse(request, record, reason, now_s))
        return out.events, events

    def _event(
        self,
        trip: Trip,
        state: TripState,
        now: float,
        out: FleetTickResult,
        *,
        cause: str,
        vehicle_id: str | None = None,
        data: dict[str, object] | None = None,
    ) -> None:
        event = trip.transition(
            state, TimePoint.from_s(now), vehicle_id=vehicle_id, cause=cause, data=data
        )
        out.events.append(event)
        if state in (S.STARTED, S.CANCELLED):
            self._ride_m.pop(trip.trip_id, None)  # no more dispatch checks for it
            self._ride_bound.pop(trip.trip_id, None)
        if state.terminal:
            self._ended.append((now, trip.trip_id))
            self._direct_at_start.pop(trip.trip_id, None)
            if state == S.COMPLETED:
                self.completed += 1

    def _check_patience(self, now: float, out: FleetTickResult) -> None:
        for trip in list(self._before_pickup.values()):
            if trip.state not in (S.REQUESTED, S.ASSIGNED, S.EN_ROUTE):
                del self._before_pickup[trip.trip_id]  # picked up or ended: never back
                continue
            if now - trip.request.time.time_s <= trip.request.patience_s:
                continue
            self._event(trip, S.CANCELLED, now, out, cause="rider_patience")
            if trip.trip_id in self._waiting:
                self._waiting.remove(trip.trip_id)
            self._release_vehicle_of(trip)

    def _release_vehicle_of(self, trip: Trip) -> None:
        for v in self.vehicles.values():
            if v.trip_id == trip.trip_id:
                v.trip_id = None
                v.status = VehicleStatus.IDLE  # it parks at the spot it was heading to
                self._start_next(v)
            elif v.next_trip_id == trip.trip_id:
                v.next_trip_id = None

    def _start_next(self, v: Vehicle) -> None:
        """A car that finished (or lost) its trip starts the one queued for it, if any."""
        if v.next_trip_id is None or v.trip_id is not None:
            return
        trip = self.trips[v.next_trip_id]
        v.next_trip_id = None
        if trip.state.terminal:
            return
        v.trip_id = trip.trip_id
        v.status = VehicleStatus.TO_PICKUP
        self._send_to(v, trip.pickup_curb)

    def _free_curb_near(self, curb: int, vehicle_id: str = "") -> int:
        """`curb` if no other car holds it, else the nearest spot no car holds."""
        if self._holder.get(curb, vehicle_id) == vehicle_id:
            return curb
        curbs = self.map.curbs
        k = 8
        while True:
            _, near = curbs.tree.query(curbs.xy[curb], k=min(k, len(curbs.xy)))
            for i in np.atleast_1d(near):
                if int(i) < len(curbs.xy) and self._holder.get(int(i), vehicle_id) == vehicle_id:
                    return int(i)
            if k >= len(curbs.xy):
                return curb  # every spot is held: share
            k *= 4

    def _hold(self, curb: int, vehicle_id: str) -> None:
        """`vehicle_id` holds `curb` from now on; the car that held it, if another, lost it."""
        before = self._holder.get(curb)
        if before is not None and before != vehicle_id:
            self._spot_lost.add(before)
        self._holder[curb] = vehicle_id

    def _park_idle(self, v: Vehicle, curb: int) -> None:
        """Send a car with no rider to park at `curb`, or the nearest free spot."""
        self._send_to(v, self._free_curb_near(curb, v.vehicle_id))

    def _send_to(self, v: Vehicle, curb: int) -> None:
        curbs = self.map.curbs
        holder = self._holder.get(curb)
        if holder is not None and holder != v.vehicle_id:
            other = self.vehicles[holder]
            if other.trip_id is None and other.status == VehicleStatus.IDLE:
                # a rider's spot: the car parked there moves to a free one nearby
                self._park_idle(other, curb)
        if v.target_curb is not None and self._holder.get(v.target_curb) == v.vehicle_id:
            del self._holder[v.target_curb]
        self._hold(curb, v.vehicle_id)
        v.target_curb = curb
        v.pending_command = DriveTo(
            v.vehicle_id,
            edge=curbs.edge_ids[curb],
            pos=float(curbs.pos[curb]),
            lane_index=int(curbs.lane_index[curb]),
        )

    def _advance(self, v: Vehicle, now: float, out: FleetTickResult) -> None:
        """Move a car's trip along: arrivals, boarding, Start ride, drop-off."""
        trip = self.trips.get(v.trip_id) if v.trip_id else None
        if v.status == VehicleStatus.TO_PICKUP and trip is not None:
            if trip.state == S.ASSIGNED:
                self._event(trip, S.EN_ROUTE, now, out, cause="dispatch")
            if self._at_target(v):
                v.status = VehicleStatus.AT_PICKUP
                rider = self.riders[trip.trip_id]
                self._learn_eta(trip, now)
                self._event(
                    trip, S.ARRIVED, now, out, cause="car",
                    data={
                        "greeting": greeting(trip.request.rider_name),
                        "walk_m": round(trip.pickup_walk_m, 1),
                    },
                )  # fmt: skip
                if rider.no_show or rider.controlled:
                    # a real rider has until the no-show wait ends to get in
                    wait = (
                        self.config.app_no_show_wait_s
                        if rider.controlled
                        else self.config.no_show_wait_s
                    )
                    v.stage, v.timer_s = CurbStage.NO_SHOW, now + wait
                else:
                    v.stage = CurbStage.BOARDING
                    v.timer_s = max(now, rider.at_curb_at.time_s) + rider.boarding_s
        elif v.status == VehicleStatus.AT_PICKUP and trip is not None and now >= v.timer_s:
            rider = self.riders[trip.trip_id]
            if v.stage == CurbStage.NO_SHOW:
                self._event(trip, S.CANCELLED, now, out, cause="no_show")
                v.trip_id, v.status = None, VehicleStatus.IDLE
                v.stage, v.timer_s = CurbStage.NONE, math.inf
                self._start_next(v)
            elif v.stage == CurbStage.BOARDING:
                self._event(trip, S.BOARDED, now, out, cause="rider", data={"seatbelt": True})
                v.stage, v.timer_s = CurbStage.BUCKLING, now + rider.buckle_s
            elif v.stage == CurbStage.BUCKLING:
                self._begin_driving(v, trip, now, out)
        elif (
            v.status == VehicleStatus.TO_DROPOFF
            and trip is not None
            and v.stage == CurbStage.RIDER_PULL_OVER
            and v.stopped
        ):
            v.status = VehicleStatus.AT_DROPOFF
            v.stage, v.timer_s = CurbStage.ALIGHTING, now + self.riders[trip.trip_id].alighting_s
        elif v.status == VehicleStatus.TO_DROPOFF and trip is not None and self._at_target(v):
            start_odo = _driving_odometer(trip)
            self._event(
                trip, S.ARRIVED_AT_DESTINATION, now, out, cause="car",
                data={
                    "ride_m": round(v.odometer_m - start_odo, 1),
                    "direct_m": round(self._ride_direct_m(trip), 1),
                },
            )  # fmt: skip
            v.status = VehicleStatus.AT_DROPOFF
            v.stage, v.timer_s = CurbStage.ALIGHTING, now + self.riders[trip.trip_id].alighting_s
        elif v.status == VehicleStatus.AT_DROPOFF and trip is not None and now >= v.timer_s:
            data: dict[str, object] = {}
            # let out early (pulled over at the rider's request): the fare's distance
            if trip.time_of(S.ARRIVED_AT_DESTINATION) is None and trip.time_of(S.DRIVING):
                data["ride_m"] = round(v.odometer_m - _driving_odometer(trip), 1)
            self._event(trip, S.COMPLETED, now, out, cause="rider", data=data)
            v.trip_id, v.status = None, VehicleStatus.IDLE
            v.stage, v.timer_s = CurbStage.NONE, math.inf
            self._start_next(v)
        elif v.status == VehicleStatus.REBALANCING and self._at_target(v):
            v.status = VehicleStatus.IDLE
        elif v.status == VehicleStatus.TO_CHARGER and self._at_target(v):
            assert self.charging is not None  # only `_charge` sends a car to a charger
            self.charging.arrived(v.vehicle_id, now)  # plugged in, or in line
            v.status = VehicleStatus.CHARGING

    # --- charging -----------------------------------------------------------------------

    def _charge(self, now: float, *, plan: bool = True) -> None:
        """Charge the plugged cars over the tick; cars at their target are in service again
        (parked at the depot); with `plan` (a decision round), idle cars the policy picks
        drive to a depot."""
        assert self.charging is not None
        for vid in self.charging.step(now, self._dt):
            self.vehicles[vid].status = VehicleStatus.IDLE
        if not plan:
            return
        idle_status = VehicleStatus.IDLE
        idle = {
            v.vehicle_id: v.xy
            for v in self.vehicles.values()
            if v.status is idle_status
            and v.trip_id is None
            and v.next_trip_id is None
            and v.yielding is None
        }
        for order in self.charging.plan(now, idle):
            v = self.vehicles[order.vehicle_id]
            idx, _walk = self.map.curbs.nearest(np.array([order.depot.xy]))
            v.status = VehicleStatus.TO_CHARGER
            self._park_idle(v, int(idx[0]))

    def _direct_m(self, trip: Trip, weights: RouteWeights | None = None) -> float:
        """Length (m) of the fastest route between the trip's curb spots: the detour baseline
        (by the travel times now, or by `weights`)."""
        curbs = self.map.curbs
        a, b = curbs.edge_ids[trip.pickup_curb], curbs.edge_ids[trip.dropoff_curb]
        route = self.graph.route(a, b) if weights is None else self.graph.route_under(weights, a, b)
        if not route:
            return 0.0
        return self._curb_to_curb_m(trip, sum(self.map.edges[e].length for e in route))

    def _curb_to_curb_m(self, trip: Trip, edges_m: float) -> float:
        """From the summed length (m) of a route's edges, pick-up edge to drop-off edge, to
        the metres between the trip's two curb spots."""
        curbs = self.map.curbs
        b = curbs.edge_ids[trip.dropoff_curb]
        return (
            edges_m
            - float(curbs.pos[trip.pickup_curb])
            - (self.map.edges[b].length - float(curbs.pos[trip.dropoff_curb]))
        )

    def _note_ride(self, trip: Trip) -> None:
        """At a trip's request: upper bounds on its ride's length (`_direct_m`) for the
        battery check, and the travel times to find the length by if the bounds are too long
        (`_ride_length`). The check's verdict only falls as the ride grows
        (`can_accept_pairs`), so a pair it passes on a bound it passes on the length."""
        if self.charging is None or not self.charging.model.plan_kwh(1.0) >= 0.0:
            # (a model that plans less energy for a longer ride: no bound stands in)
            self._ride_m[trip.trip_id] = self._direct_m(trip)
            return
        curbs = self.map.curbs
        a, b = curbs.edge_ids[trip.pickup_curb], curbs.edge_ids[trip.dropoff_curb]
        upper = self._curb_to_curb_m(trip, self.graph.route_length_upper_m(a, b))
        self._ride_bound[trip.trip_id] = _RideBound(max(upper, 0.0), self.graph.weights())

    def _ride_bound_m(self, trip: Trip, noted: _RideBound) -> float:
        """The tighter of the ride's two bounds (m), by the travel times of its request
        (`RoutingGraph.route_length_bound_m`; at most `noted.upper_m`): found when the check
        first refuses a pair on the looser one."""
        if noted.bound_m is None:
            curbs = self.map.curbs
            a, b = curbs.edge_ids[trip.pickup_curb], curbs.edge_ids[trip.dropoff_curb]
            bound = self.graph.route_length_bound_m(a, b, noted.weights)
            noted.bound_m = max(self._curb_to_curb_m(trip, bound), 0.0)
        return noted.bound_m

    def _ride_length(self, trip: Trip) -> float:
        """The ride's length (m) by the travel times of its request (`_direct_m` then)."""
        known = self._ride_m.get(trip.trip_id)
        if known is not None:
            return known
        noted = self._ride_bound.pop(trip.trip_id, None)
        if noted is None:
            return 0.0  # no battery check for it (it has started, or was never noted)
        length = self._ride_m[trip.trip_id] = self._direct_m(trip, noted.weights)
        return length

    def _begin_driving(self, v: Vehicle, trip: Trip, now: float, out: FleetTickResult) -> None:
        self._event(
            trip,
            S.STARTED,
            now,
            out,
            cause="rider",
            data={"button": "Start ride", "seatbelt": True},
        )
        self._event(trip, S.DRIVING, now, out, cause="car", data={"odometer_m": v.odometer_m})
        v.status, v.stage, v.timer_s = VehicleStatus.TO_DROPOFF, CurbStage.NONE, math.inf
        if trip.trip_id not in self._direct_at_start:
            # the detour's baseline, by the travel times the ride starts under: the route the
            # car is about to be given (searched once, for both)
            self._direct_at_start[trip.trip_id] = self._direct_m(trip)
        self._send_to(v, trip.dropoff_curb)

    def _ride_direct_m(self, trip: Trip) -> float:
        """The detour baseline of a ride that arrived: `_direct_m` when it started."""
        known = self._direct_at_start.pop(trip.trip_id, None)
        return self._direct_m(trip) if known is None else known

    # --- emergency vehicles -------------------------------------------------------------

    def _yield_to_emergency(
        self, snapshot: WorldSnapshot, now: float, out: FleetTickResult
    ) -> None:
        sirens, kinds = snapshot.sirens, snapshot.kinds
        ev_rows = (
            [
                i
                for i in range(sirens.index(True), len(sirens))
                if sirens[i] and kinds[i] == AgentKind.EMERGENCY
            ]
            if True in sirens
            else []
        )  # (no siren on: no row to look at; none before the first siren)
        ev_index = {snapshot.ids[i]: i for i in ev_rows}
        evs = [
            (i, float(snapshot.xy[i, 0]), float(snapshot.xy[i, 1]), float(snapshot.heading[i]))
            for i in ev_rows
        ]
        reach, lateral_m = self.config.ev_yield_range_m, self.config.ev_yield_lateral_m
        # no siren on the road: only the cars still pulled over for one have anything to do;
        # with sirens on, also those near one
        cars = (
            self._near_sirens(snapshot, evs, reach + _NEAR_MARGIN_M, lateral_m + _NEAR_MARGIN_M)
            if ev_rows
            else [v for v in self.vehicles.values() if v.yielding is not None]
        )
        for v in cars:
            if v.yielding is not None and v.yielding.decided_by != YieldDecider.FLEET:
                continue  # the car's own yield: its stack decides when it ends
            if v.yielding is not None:
                record = v.yielding
                if record.stopped_at is None and v.stopped:
                    record.stopped_at = TimePoint.from_s(now)
                    out.vehicle_events.append(
                        _yield_event(v, record, now, VehicleEventKind.EV_PULLED_OVER)
                    )
                i = ev_index.get(record.ev_id)
                passed = i is None or now - record.in_range_at.time_s > EV_YIELD_TIMEOUT_S
                if i is not None and not passed:
                    lon, _lat, _cos = _relative(v, snapshot, i)
                    gone = math.hypot(*(snapshot.xy[i] - np.array(v.xy))) > 1.5 * reach
                    ahead_now = (
                        lon > self.config.vehicle_length_m
                        if record.approach == EvApproach.BEHIND
                        else lon < -self.config.vehicle_length_m
                    )
                    passed = gone or ahead_now
                if passed and (
                    record.stopped_at is not None or record.failed_attempts > 3 or i is None
                ):
                    record.resumed_at = TimePoint.from_s(now)
                    v.yielding = None
                    self.yields.append(record)
                    out.vehicle_events.append(
                        _yield_event(v, record, now, VehicleEventKind.EV_RESUMED)
                    )
                    if v.status in MOVING and v.target_curb is not None:
                        # drive_to ends the pull-over stop and restores the way to the target
                        self._send_to(v, v.target_curb)
                    else:
                        v.pending_command = Resume(v.vehicle_id)
                elif (
                    record.stopped_at is None
                    and record.failed_attempts
                    and v.pending_command is None
                ):
                    v.pending_command = PullOver(v.vehicle_id)
                continue
            if v.stopped or (
                v.speed < 0.1
                and v.status
                in (VehicleStatus.IDLE, VehicleStatus.AT_PICKUP, VehicleStatus.AT_DROPOFF)
            ):
                continue  # parked at the curb, off the lane already
            # `_relative` against each EV, its arithmetic term by term
            vx, vy, vh = v.xy[0], v.xy[1], v.heading
            ch, sh = math.cos(vh), math.sin(vh)
            for i, ex, ey, eh in evs:
                dx, dy = ex - vx, ey - vy
                lon, lat, cos = dx * ch + dy * sh, -dx * sh + dy * ch, math.cos(eh - vh)
                if abs(lat) > lateral_m:
                    continue
                behind = cos > 0.7 and -reach <= lon < 0
                head_on = cos < -0.7 and 0 < lon <= reach
                if behind or head_on:
                    v.yielding = YieldRecord(
                        v.vehicle_id, snapshot.ids[i], TimePoint.from_s(now), v.trip_id,
                        EvApproach.BEHIND if behind else EvApproach.HEAD_ON,
                    )  # fmt: skip
                    v.pending_command = PullOver(v.vehicle_id)
                    out.vehicle_events.append(
                        _yield_event(v, v.yielding, now, VehicleEventKind.EV_IN_RANGE)
                    )
                    break

    def _near_sirens(
        self,
        snapshot: WorldSnapshot,
        evs: Sequence[tuple[int, float, float, float]],
        reach_m: float,
        lateral_m: float,
    ) -> list[Vehicle]:
        """The cars `_yield_to_emergency` looks at while sirens are on, in the fleet's order:
        those pulled over for one, those with no row in `snapshot`, and those whose row lies
        within `reach_m` ahead or behind and `lateral_m` aside of an EV (`evs`: its row, x, y,
        heading) in the car's frame, all cars' rows at once (a wider box than the test each
        car then takes: most of a large fleet is far from every siren). A car's row is where
        it is: `_observe` has just copied it."""
        found = self._row_cars(snapshot.ids)
        xy, heading = snapshot.xy[found.keep], snapshot.heading[found.keep]
        ch, sh = np.cos(heading), np.sin(heading)
        near = np.zeros(len(found.keep), dtype=bool)
        for _, ex, ey, _ in evs:
            dx, dy = ex - xy[:, 0], ey - xy[:, 1]
            lon, lat = dx * ch + dy * sh, dy * ch - dx * sh
            near |= (np.abs(lon) <= reach_m) & (np.abs(lat) <= lateral_m)
        picked = {v.vehicle_id for v in itertools.compress(found.cars, near.tolist())}
        if len(found.cars) < len(self.vehicles):  # cars with no row: each looked at
            picked |= self.vehicles.keys() - {v.vehicle_id for v in found.cars}
        return [
            v for v in self.vehicles.values() if v.yielding is not None or v.vehicle_id in picked
        ]

    def _own_yields(
        self,
        ev_stops: Mapping[str, EvStop],
        snapshot: WorldSnapshot,
        now: float,
        out: FleetTickResult,
    ) -> None:
        """Record the pull-overs the cars' stacks decide by themselves (a siren heard on a
        cross street, lights seen where the range check does not look) as yields, unless the
        fleet has one open for that car already; close them when the car drives on. No
        command is sent either way: the stack stops and moves off by itself."""
        for vid in [x for x in self._ev_stops_handled if x not in ev_stops]:
            del self._ev_stops_handled[vid]
        for v in self.vehicles.values():
            record = v.yielding
            if (
                record is not None
                and record.decided_by == YieldDecider.CAR
                and v.vehicle_id not in ev_stops
            ):
                record.resumed_at = TimePoint.from_s(now)
                v.yielding = None
                self.yields.append(record)
                out.vehicle_events.append(_yield_event(v, record, now, VehicleEventKind.EV_RESUMED))
        for vid, stop in sorted(ev_stops.items()):
            car = self.vehicles.get(vid)
            if car is None or self._ev_stops_handled.get(vid) == stop.since_at:
                continue
            self._ev_stops_handled[vid] = stop.since_at
            if car.yielding is not None:
                continue  # the fleet's yield for this car covers its stop
            i = snapshot.ids.index(stop.ev_id) if stop.ev_id in snapshot.ids else None
            car.yielding = YieldRecord(
                vid,
                stop.ev_id or "",
                stop.reacting_since_at,
                car.trip_id,
                _approach(car, snapshot, i) if i is not None else EvApproach.UNKNOWN,
                stopped_at=stop.since_at,
                decided_by=YieldDecider.CAR,
                basis=stop.basis,
            )
            out.vehicle_events.append(
                _yield_event(car, car.yielding, now, VehicleEventKind.EV_PULLED_OVER)
            )

    # --- dispatch -----------------------------------------------------------------------

    def locate(self, v: Vehicle) -> tuple[str, float]:
        """Where a car is on the routing graph: its edge and m along it (while it is inside a
        junction: its curb target, or with none the curb spot nearest to it)."""
        if v.edge in self.graph.index:
            return v.edge, v.lane_pos
        if v.target_curb is not None:
            return self._curb_location(v.target_curb)
        idx, _ = self.map.curbs.nearest(np.array([v.xy]))
        return self._curb_location(int(idx[0]))

    def _by_id(self) -> list[Vehicle]:
        """The fleet's cars sorted by id (kept while no car is added: a batch's order)."""
        if len(self._sorted_cars) != len(self.vehicles):
            self._sorted_cars = sorted(self.vehicles.values(), key=lambda x: x.vehicle_id)
        return self._sorted_cars

    def _curb_location(self, curb: int) -> tuple[str, float]:
        """Curb spot `curb` on the routing graph: its edge and m along it."""
        return self.map.curbs.edge_ids[curb], float(self.map.curbs.pos[curb])

    def _dispatch(self, now: float, out: FleetTickResult) -> None:
        cfg = self.dispatch_config
        if cfg.policy == "nearest":
            if self._waiting:
                self._assign(now, out, [self.trips[t] for t in self._waiting], soon_free=False)
            return
        if not self._dispatch_due(now):
            return
        interval = cfg.batch_interval_s
        due = self._next_batch_s if math.isfinite(self._next_batch_s) else now
        self._next_batch_s = due + interval * (math.floor((now - due) / interval + 1e-9) + 1)
        # only trips whose car is already driving to them may move to a closer car
        to_pickup = VehicleStatus.TO_PICKUP
        reassignable = [
            self.trips[v.trip_id]
            for v in self.vehicles.values()
            if v.status is to_pickup and v.trip_id is not None
        ]
        waiting = [self.trips[t] for t in self._waiting]
        if not (waiting or reassignable):
            return
        cars, starts, extra, holding = self._pool_members(now, soon_free=True)
        free = frozenset(v.vehicle_id for v in cars if v.status is not to_pickup)
        new_free, self._free_at_batch = free - self._free_at_batch, free
        if not waiting and not new_free:
            # no rider waits and no car came free since the last batch: the cars on their way
            # were the best of these at that batch and have only come nearer since
            return
        trips = waiting + sorted(reassignable, key=lambda t: t.trip_id)
        pool = self._located(cars, starts, extra, holding)
        self._assign(now, out, trips, soon_free=True, pool=pool)

    def dispatch_pool(self, now: float, *, soon_free: bool = True) -> DispatchPool:
        """The cars a batch may assign at `now` (sorted by id), where each starts from and the
        delay before it can (a drop-off's rest); with `soon_free`, also the cars already on
        their way to a pick-up (which may lose their trip to a closer car) and those finishing
        a drop-off within `soon_free_s`."""
        return self._located(*self._pool_members(now, soon_free=soon_free))

    def _pool_members(
        self, now: float, *, soon_free: bool
    ) -> tuple[list[Vehicle], list[int | None], list[float], dict[str, str]]:
        """`dispatch_pool`'s cars, delays and held trips, and per car the curb spot it starts
        from (None: where it is, `locate`): finding where the cars are, the dearer part, is
        left to `_located` (a batch with no rider waiting and no car come free needs none)."""
        cfg = self.dispatch_config
        cars: list[Vehicle] = []
        starts: list[int | None] = []
        extra: list[float] = []
        holding: dict[str, str] = {}
        to_pickup, at_dropoff = VehicleStatus.TO_PICKUP, VehicleStatus.AT_DROPOFF
        for v in self._by_id():
            status = v.status
            if soon_free and status is to_pickup and v.trip_id is not None:
                # a car pulled over for an ambulance still holds its trip (so that it is
                # released if the trip moves to another car), a little later than its route
                holding[v.trip_id] = v.vehicle_id
                cars.append(v)
                starts.append(None)
                extra.append(EV_YIELD_DELAY_S if v.yielding is not None else 0.0)
            elif v.yielding is not None:
                continue  # no new work while pulled over for an ambulance
            elif status in AVAILABLE and v.trip_id is None and v.next_trip_id is None:
                cars.append(v)
                starts.append(None)
                extra.append(0.0)
            elif soon_free and v.next_trip_id is None and status is at_dropoff:
                remaining = max(v.timer_s - now, 0.0)
                if remaining <= cfg.soon_free_s:
                    # it stands at its drop-off curb (where it is, should it have none)
                    cars.append(v)
                    starts.append(v.target_curb)
                    extra.append(remaining)
        return cars, starts, extra, holding

    def _located(
        self,
        cars: list[Vehicle],
        starts: list[int | None],
        extra: list[float],
        holding: dict[str, str],
    ) -> DispatchPool:
        """`_pool_members` as a `DispatchPool`: each car's start, its curb spot's or where it
        is (`locate`)."""
        locate, curb_location = self.locate, self._curb_location
        origins = [
            curb_location(curb) if curb is not None else locate(v)
            for v, curb in zip(cars, starts, strict=True)
        ]
        return DispatchPool(cars, origins, extra, holding)

    def _assign(
        self,
        now: float,
        out: FleetTickResult,
        trips: list[Trip],
        *,
        soon_free: bool,
        pool: DispatchPool | None = None,
    ) -> None:
        """Assign `trips` to the cars of `pool` (`dispatch_pool(now, soon_free=…)` if None)."""
        pool = pool if pool is not None else self.dispatch_pool(now, soon_free=soon_free)
        cars, origins, extra, holding = pool.cars, pool.origins, pool.extra_s, pool.holding
        if not cars:
            return
        curbs = self.map.curbs
        trip_index = {t.trip_id: r for r, t in enumerate(trips)}
        # a car already driving to a pick-up may keep its trip or lose it to a closer car,
        # never switch: so every pair below is consistent and no trip has two cars
        only = np.array(
            [
                trip_index[v.trip_id]
                if v.status == VehicleStatus.TO_PICKUP and v.trip_id is not None
                else -1
                for v in cars
            ],
            dtype=np.int64,
        )
        decided = assign_nearby(
            self.policy,
            self.graph,
            [o[0] for o in origins],
            np.array([o[1] for o in origins]),
            [curbs.edge_ids[t.pickup_curb] for t in trips],
            np.array([curbs.pos[t.pickup_curb] for t in trips]),
            # solved in route seconds: the ETA model's cut-off, delays at its scale
            self.eta_model.to_route_s(self.dispatch_config.max_pickup_eta_s),
            car_delay_s=np.array(extra) / self.eta_model.scale,
            only_request=only,
            pair_ok=self._pair_filter(cars, trips),
            saturated=self._saturated,
            car_keys=[v.vehicle_id for v in cars],
            car_prices=self._car_prices,
        )
        self._saturated = decided.saturated
        # only the last batch's: on a recorded evening (~650 cars, 300 riders) prices from 15 s
        # before halved the assignment's time, from 150 s before saved ~10 %, from 10 minutes
        # before doubled it against none
        self._car_prices = decided.car_prices or {}
        pairs = decided.pairs
        route_of = {
            (c, r): eta - extra[c] / self.eta_model.scale
            for (c, r), eta in zip(pairs, decided.eta_s.tolist(), strict=True)
        }
        for c, r in pairs:
            v, trip = cars[c], trips[r]
            holder = holding.get(trip.trip_id)
            if holder == v.vehicle_id:
                continue  # kept
            if holder is not None:
                loser = self.vehicles[holder]
                loser.trip_id, loser.status = (
                    None,
                    VehicleStatus.IDLE,
                )  # it parks where it was going
            self._event(
                trip, S.ASSIGNED, now, out, vehicle_id=v.vehicle_id,
                cause="dispatch" if trip.state == S.REQUESTED else "reassigned",
                data={
                    "eta_s": round(self.eta_model.expected_s(route_of[c, r], extra[c]), 1),
                    "route_s": round(route_of[c, r], 1),
                    "delay_s": round(extra[c], 1),
                    "policy": self.policy.name,
                },
            )  # fmt: skip
            if trip.trip_id in self._waiting:
                self._waiting.remove(trip.trip_id)
            if v.status == VehicleStatus.AT_DROPOFF:
                v.next_trip_id = trip.trip_id
            else:
                v.trip_id, v.status = trip.trip_id, VehicleStatus.TO_PICKUP
                self._send_to(v, trip.pickup_curb)

    def _learn_eta(self, trip: Trip, now: float) -> None:
        """A car reached its rider: how long its route took against the graph's time."""
        assigned = next((e for e in reversed(trip.events) if e.state == S.ASSIGNED), None)
        if assigned is None or "route_s" not in assigned.data:
            return
        taken = now - assigned.time.time_s - float(assigned.data.get("delay_s", 0.0))
        self.eta_model.observe(float(assigned.data["route_s"]), taken)

    def _pair_filter(self, cars: list[Vehicle], trips: list[Trip]) -> PairFilter | None:
        """The pairs dispatch may not make: a trip to the car that gave it up on an operator's
        pull-over (`answer_assistance`), a trip a car cannot finish on its battery."""
        battery = self._battery_check(cars, trips)
        self._gave_up = {t: car for t, car in self._gave_up.items() if t in self._before_pickup}
        if not self._gave_up:
            return battery
        index = {v.vehicle_id: c for c, v in enumerate(cars)}
        gave_up = np.array([index.get(self._gave_up.get(t.trip_id, ""), -1) for t in trips])

        def allowed(car: IntArray, request: IntArray, eta_s: FloatArray) -> BoolArray:
            ok = gave_up[request] != car
            return ok if battery is None else ok & np.asarray(battery(car, request, eta_s))

        return allowed

    def _battery_check(self, cars: list[Vehicle], trips: list[Trip]) -> PairFilter | None:
        """No car gets a trip it cannot finish and still reach a charger with its reserve
        (None when the fleet does not model batteries)."""
        charging = self.charging
        if charging is None:
            return None
        ids = [v.vehicle_id for v in cars]
        # each ride's length, or a bound on it: only a pair refused on a bound asks for the
        # length (and the check runs again), so the verdicts are the lengths' verdicts; the
        # looser bound likewise stands in for the tighter (which costs tables of the travel
        # times: `RoutingGraph.route_length_upper_m`) until a pair is refused on it
        ride_m = np.zeros(len(trips))
        exact = np.ones(len(trips), dtype=bool)
        loose = np.zeros(len(trips), dtype=bool)
        notes: list[_RideBound | None] = []
        for r, t in enumerate(trips):
            known = self._ride_m.get(t.trip_id)
            noted = self._ride_bound.get(t.trip_id)
            notes.append(noted)
            if known is not None or noted is None:
                ride_m[r] = known or 0.0
            elif noted.bound_m is None:
                ride_m[r], exact[r], loose[r] = noted.upper_m, False, True
            else:
                ride_m[r], exact[r] = noted.bound_m, False
        dropoff_xy = self.map.curbs.xy[[t.dropoff_curb for t in trips]]
        top_speed = self._top_speed_mps

        def can_finish(car: IntArray, request: IntArray, eta_s: FloatArray) -> BoolArray:
            pickup_m = route_m_upper_bound(eta_s, top_speed)
            ok = charging.feasible(ids, car, request, pickup_m, ride_m, dropoff_xy)
            on_loose = np.unique(np.asarray(request)[~ok & loose[request]])
            if on_loose.size:
                for r in on_loose.tolist():
                    noted = notes[r]
                    assert noted is not None  # (a loose bound is a noted one)
                    ride_m[r], loose[r] = self._ride_bound_m(trips[r], noted), False
                ok = charging.feasible(ids, car, request, pickup_m, ride_m, dropoff_xy)
            on_bound = np.unique(np.asarray(request)[~ok & ~exact[request]])
            if not on_bound.size:
                return ok
            for r in on_bound.tolist():
                ride_m[r], exact[r] = self._ride_length(trips[r]), True
            return charging.feasible(ids, car, request, pickup_m, ride_m, dropoff_xy)

        return can_finish

    # --- rebalancing --------------------------------------------------------------------

    def _rebalance(self, now: float, out: FleetTickResult) -> None:
        """Move idle cars toward where demand is expected an hour ahead: run right after a
        batch (a rider still waiting then has no idle car within reach, so the idle cars are
        free to move), at most `rebalance_max_share` of them a round."""
        if self.demand is None:
            return
        idle = [
            v
            for v in self._by_id()
            if v.status == VehicleStatus.IDLE
            and v.trip_id is None
            and v.stopped
            and v.yielding is None
        ]
        if len(idle) < 2:
            return
        zones_xy, rate = self.demand.expected_pickups(self.day, self.start_hour + now / 3600 + 1.0)
        cell_xy, cell_rate = pool_into_cells(
            np.asarray(zones_xy, dtype=float), np.asarray(rate, dtype=float),
            self.dispatch_config.rebalance_cell_m,
        )  # fmt: skip
        car_xy = np.array([v.xy for v in idle])
        cover_h = self.dispatch_config.rebalance_cover_s / 3600.0
        cap = math.ceil(self.dispatch_config.rebalance_max_share * len(idle))
        for car, cell in rebalance_moves(
            car_xy, cell_xy, cell_rate, cover_h=cover_h, max_moves=cap
        ):
            v = idle[car]
            # spread arrivals over the curb spots near the cell's centre
            _, near = self.map.curbs.tree.query(cell_xy[cell], k=8)
            curb = int(np.atleast_1d(near)[int(self._rng.integers(len(np.atleast_1d(near))))])
            v.status = VehicleStatus.REBALANCING
            self._park_idle(v, curb)


@dataclass(slots=True)
class _RideBound:
    """What the battery check knows of an open trip's ride before it needs the length: an
    upper bound on it (m), the tighter bound once asked (`FleetManager._ride_bound_m`), and
    the travel times of the request."""

    upper_m: float
    weights: RouteWeights
    bound_m: float | None = None


class _RowCars(NamedTuple):
    """`FleetManager._row_cars`: a snapshot's rows as the fleet's cars."""

    rows: list[Vehicle | None]  # per row: the fleet's car, None for another road user
    keep: IntArray  # the rows that are cars of the fleet
    slots: IntArray  # their battery slots (`FleetBatteries.slot`)
    cars: list[Vehicle]  # their cars, in row order


@dataclass(frozen=True, slots=True)
class _Rows:
    """What `_observe` reads of a snapshot, to tell the cars whose row did not change."""

    ids: tuple[str, ...]
    xy: FloatArray
    lane_pos: FloatArray
    heading: FloatArray
    speed: FloatArray
    odometer: FloatArray  # empty: the world reports none
    stopped: BoolArray  # empty: the world reports none

    @staticmethod
    def of(snapshot: WorldSnapshot) -> _Rows:
        return _Rows(
            snapshot.ids, snapshot.xy, snapshot.lane_pos, snapshot.heading, snapshot.speed,
            np.asarray(snapshot.odometer_m, dtype=float),
            np.array(snapshot.stopped, dtype=bool),
        )  # fmt: skip

    def comparable(self, other: _Rows) -> bool:
        """The same cars in the same order, with the same fields reported."""
        return (
            self.ids == other.ids
            and len(self.odometer) == len(other.odometer)
            and len(self.stopped) == len(other.stopped)
        )


def _yield_event(
    v: Vehicle, record: YieldRecord, now: float, kind: VehicleEventKind
) -> VehicleEvent:
    data: dict[str, object] = {"ev": record.ev_id, "approach": record.approach}
    if record.trip_id is not None:
        data["trip"] = record.trip_id
    if record.decided_by != YieldDecider.FLEET:
        data["decided_by"] = record.decided_by
        data["basis"] = record.basis
        data["in_range_s"] = record.in_range_at.time_s
    return VehicleEvent(v.vehicle_id, TimePoint.from_s(now), kind, data)


def _relative(v: Vehicle, snapshot: WorldSnapshot, i: int) -> tuple[float, float, float]:
    """EV i relative to car v: (longitudinal m, lateral m, cos of heading difference)."""
    dx = float(snapshot.xy[i, 0]) - v.xy[0]
    dy = float(snapshot.xy[i, 1]) - v.xy[1]
    ch, sh = math.cos(v.heading), math.sin(v.heading)
    return dx * ch + dy * sh, -dx * sh + dy * ch, math.cos(float(snapshot.heading[i]) - v.heading)


def _approach(v: Vehicle, snapshot: WorldSnapshot, i: int) -> EvApproach:
    """Where EV i comes from, seen from car v: behind, ahead, head-on or a cross street."""
    lon, _lat, cos = _relative(v, snapshot, i)
    if cos > 0.7:
        return EvApproach.BEHIND if lon < 0 else EvApproach.AHEAD
    return EvApproach.HEAD_ON if cos < -0.7 else EvApproach.CROSS_STREET


def _driving_odometer(trip: Trip) -> float:
    for event in reversed(trip.events):
        if event.state == S.DRIVING:
            return float(event.data.get("odometer_m", 0.0))
    return 0.0
