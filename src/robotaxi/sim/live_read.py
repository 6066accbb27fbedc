"""The live service's read model: builds and publishes each immutable `LiveSnapshot` (trip and car
views, ETAs) and answers the reads of the fleet now (quotes, route polylines, trails driven)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from robotaxi.core import TripState, World
from robotaxi.core.types import FloatArray
from robotaxi.fleet.manager import FleetManager, Vehicle, VehicleStatus
from robotaxi.fleet.trips import greeting
from robotaxi.map import RoadMap, RoutingGraph
from robotaxi.sim.autonomous import AutonomousDriver
from robotaxi.sim.live_views import (
    EMPTY_SNAPSHOT,
    LiveSnapshot,
    LiveUpdate,
    Quote,
    TripView,
    VehicleView,
)

S = TripState
TRAIL_EVERY_S = 3.0
# an ended trip stays live this long (its final state and driven route on the rider's
# screen and receipt); then the store answers for it and its trail is dropped
ENDED_KEEP_S = 1800.0
MAX_TRAIL_POINTS = 2000  # a longer route driven is thinned to every other point
# states in which the rider sits in (or is getting into) the car
ON_BOARD = (S.BOARDED, S.STARTED, S.DRIVING, S.PULLED_OVER, S.ARRIVED_AT_DESTINATION)


class ReadModel:
    """What readers see of the live city: the latest `LiveSnapshot`, the trails driven.

    Everything but `snapshot` runs under the service's lock (it reads the fleet); `snapshot`
    is read without any lock. `attach` gives it the city once the service has started.
    """

    def __init__(self) -> None:
        self.snapshot: LiveSnapshot = EMPTY_SNAPSHOT
        self.trails: dict[str, list[tuple[float, float]]] = {}
        self.ended_at: dict[str, float] = {}  # trip id → sim time it ended, in that order
        self._next_trail_s = 0.0
        self.map: RoadMap
        self.graph: RoutingGraph
        self.fleet: FleetManager
        self.world: World
        self.driver: AutonomousDriver | None = None

    def attach(
        self,
        road_map: RoadMap,
        graph: RoutingGraph,
        fleet: FleetManager,
        world: World,
        driver: AutonomousDriver | None,
    ) -> None:
        """Read this city from now on (`LiveService.start`)."""
        self.map, self.graph, self.fleet, self.world = road_map, graph, fleet, world
        self.driver = driver

    def record_trails(self, now: float) -> None:
        """Sample where cars with a rider on board are, for receipts ("route driven")."""
        if now < self._next_trail_s:
            return
        self._next_trail_s = now + TRAIL_EVERY_S
        for v in self.fleet.vehicles.values():
            if v.status == VehicleStatus.TO_DROPOFF and v.trip_id is not None:
                trail = self.trails.setdefault(v.trip_id, [])
                trail.append(v.xy)
                if len(trail) > MAX_TRAIL_POINTS:
                    trail[:] = trail[::2]
            elif v.status == VehicleStatus.AT_DROPOFF and v.trip_id in self.trails:
                trail = self.trails[v.trip_id]
                if trail[-1] != v.xy:
                    trail.append(v.xy)  # where it stopped

    def driven_xy(self, trip_id: str) -> FloatArray:
        """N×2 positions (m) the car drove through with the rider on board, every few s."""
        trail = self.trails.get(trip_id, [])
        return np.array(trail, dtype=float).reshape(-1, 2)

    def held(self) -> dict[str, int]:
        """What it holds now: trips live, ended ones kept, trails and their points."""
        return {
            "live_trips": len(self.snapshot.trips),
            "ended_trips_kept": len(self.ended_at),
            "trails": len(self.trails),
            "trail_points": sum(len(t) for t in self.trails.values()),
        }

    def route_polyline(
        self, from_edge: str, from_pos: float, to_edge: str, to_pos: float
    ) -> FloatArray:
        if from_edge == to_edge and to_pos >= from_pos:
            edges: tuple[str, ...] = (from_edge,)
        elif from_edge == to_edge:
            edges = self.graph.route_around(from_edge)  # behind us: once round the block
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

    def route_to_target(self, vehicle_id: str) -> FloatArray:
        """N×2 polyline (m) from the car to its target curb; 0×2 when it is going nowhere."""
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
        return self.route_polyline(edge, pos, target_edge, target_pos)

    def route_between(self, from_xy: tuple[float, float], to_xy: tuple[float, float]) -> FloatArray:
        """N×2 polyline (m) of the fastest route between the curbs nearest two points."""
        idx, _ = self.map.curbs.nearest(np.array([from_xy, to_xy], dtype=float))
        a, b = int(idx[0]), int(idx[1])
        curbs = self.map.curbs
        return self.route_polyline(
            curbs.edge_ids[a], float(curbs.pos[a]), curbs.edge_ids[b], float(curbs.pos[b])
        )

    def quote(self, pickup_xy: tuple[float, float], dropoff_xy: tuple[float, float]) -> Quote:
        """Pick-up ETA from the nearest free car and the trip's time and length (s, m)."""
        curbs = self.map.curbs
        idx, walk = curbs.nearest(np.array([pickup_xy, dropoff_xy], dtype=float))
        a, b = int(idx[0]), int(idx[1])
        free = [
            v
            for v in sorted(self.fleet.vehicles.values(), key=lambda x: x.vehicle_id)
            if vehicle_view(v).available
        ]
        pickup_eta: float | None = None
        best: str | None = None
        if free:
            # the nearest free car by a search from the pick-up (not one from every car),
            # timed as cars drive (the fleet's ETA model)
            origins = [self.fleet.locate(v) for v in free]
            found = self.graph.pickup_candidates(
                [o[0] for o in origins],
                np.array([o[1] for o in origins]),
                [curbs.edge_ids[a]],
                np.array([curbs.pos[a]]),
                self.fleet.eta_model.to_route_s(self.fleet.dispatch_config.max_pickup_eta_s),
                nearest=1,
            )
            if len(found):
                k = int(np.argmin(found.eta_s))
                route_s = float(found.eta_s[k])
                pickup_eta = self.fleet.eta_model.expected_s(route_s)
                best = free[int(found.origin[k])].vehicle_id
        trip_eta = float(
            self.graph.eta_matrix(
                [curbs.edge_ids[a]], np.array([curbs.pos[a]]),
                [curbs.edge_ids[b]], np.array([curbs.pos[b]]),
            )[0, 0]
        )  # fmt: skip
        polyline = self.route_polyline(
            curbs.edge_ids[a], float(curbs.pos[a]), curbs.edge_ids[b], float(curbs.pos[b])
        )
        return Quote(
            pickup_eta_s=None if pickup_eta is None else round(pickup_eta, 1),
            vehicle_id=best,
            free_cars=len(free),
            trip_s=round(trip_eta, 1) if a != b and math.isfinite(trip_eta) else 0.0,
            trip_m=round(polyline_length(polyline), 1) if a != b else 0.0,
            pickup_curb_xy=(float(curbs.xy[a, 0]), float(curbs.xy[a, 1])),
            dropoff_curb_xy=(float(curbs.xy[b, 0]), float(curbs.xy[b, 1])),
            pickup_walk_m=round(float(walk[0]), 1),
            dropoff_walk_m=round(float(walk[1]), 1),
            same_curb=a == b,
        )

    def publish(
        self, update: LiveUpdate, touched: Sequence[str], *, moved: bool = False
    ) -> dict[str, TripView]:
        """Publish the instant after `update` (call under the service's lock); returns its trips.

        Only trips that can have changed are rebuilt: those with events in the update,
        those a rider just acted on and, when the cars `moved` (a tick), those a car is
        serving (position, ETA, yield). A trip changes in no other way: a waiting trip with
        no car does not change without an event, and a rider's action moves no car.
        """
        vehicles = {v.vehicle_id: vehicle_view(v) for v in self.fleet.vehicles.values()}
        changed = set(touched)
        changed.update(e.trip_id for e in update.events)
        for v in self.fleet.vehicles.values() if moved else ():
            if v.trip_id is not None:
                changed.add(v.trip_id)
            if v.next_trip_id is not None:
                changed.add(v.next_trip_id)
        changed.intersection_update(self.fleet.trips)
        etas = self.etas(sorted(changed))
        trips = dict(self.snapshot.trips)
        now = self.world.time.time_s
        for trip_id in changed:
            view = self.trip_view(trip_id, etas.get(trip_id), eta_known=True)
            trips[trip_id] = view
            if view.state.terminal:
                self.ended_at.setdefault(trip_id, now)
        self._forget_ended(trips, now)
        autonomy = self.driver.views() if self.driver is not None else {}
        self.snapshot = LiveSnapshot(
            update.version, self.world.time.time_s, vehicles, trips, autonomy
        )
        return trips

    def _forget_ended(self, trips: dict[str, TripView], now: float) -> None:
        """Drop trips ended over `ENDED_KEEP_S` ago from what is live, with their trails: per
        tick work and memory then follow the open trips, not every trip of the run."""
        while self.ended_at:
            trip_id, ended = next(iter(self.ended_at.items()))
            if now - ended <= ENDED_KEEP_S:
                break
            del self.ended_at[trip_id]
            trips.pop(trip_id, None)
            self.trails.pop(trip_id, None)

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

    def etas(self, trip_ids: Sequence[str]) -> dict[str, float | None]:
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
            value = self.fleet.eta_model.expected_s(max(float(matrix[k, k]), 0.0))
            out[trip_id] = round(value, 1) if math.isfinite(value) else None
        return out

    def trip_view(
        self, trip_id: str, eta: float | None = None, *, eta_known: bool = False
    ) -> TripView:
        """One trip now; `eta` is its car's ETA from `etas` (computed here unless known)."""
        trip = self.fleet.trips[trip_id]
        rider = self.fleet.riders[trip_id]
        car = self.fleet.vehicles.get(trip.vehicle_id) if trip.vehicle_id else None
        own_car = car is not None and car.trip_id == trip_id
        curbs = self.map.curbs
        if not eta_known:
            eta = self.etas([trip_id]).get(trip_id)
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
            unlocked=rider.unlocked,
            signalled_s=rider.signalled_at.time_s if rider.signalled_at else None,
            eta_s=eta,
            greeting=greeting(trip.request.rider_name) if arrived else None,
            vehicle_xy=car.xy if car is not None and own_car else None,
            yielding_for=car.yielding.ev_id
            if own_car and car is not None and car.yielding
            else None,
            events=tuple(trip.events),
            assisted=self.fleet.assistance.open_for_trip(trip_id),
        )


def vehicle_view(v: Vehicle) -> VehicleView:
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


def polyline_length(line: FloatArray) -> float:
    if len(line) < 2:
        return 0.0
    return float(np.hypot(*np.diff(line, axis=0).T).sum())
