"""A world without SUMO, for tests of the fleet, the runner and the service (`World` protocol).

Robotaxis, background cars and ambulances move along the routing graph's edges at each
edge's free-flow speed (ambulances a little faster), one `step_s` at a time: no lanes, no
signals, no car-following, no junctions. A robotaxi told to `DriveTo` a kerb spot drives
the fastest route there (once round the block if the spot is behind it) and parks beside
its lane; a `PullOver` stops it there, off the lane, until `Resume`. A car our stack drives
(`TakeOver`) is where `MoveEgo` puts it, taken as is; its snapshot row carries that pose,
and `around` lists every other vehicle within `SENSE_RADIUS_M`. Each ambulance has an
ordinary-car twin on the same route, as in `SumoWorld`, so its records read the same way.
Remote assistance's `LaneClosed` is checked against the map's lanes (taken or refused as
`SumoWorld` would) and, taken, changes nothing: there are no lanes to drive in here.
Everything random is drawn from the seed, so a run is a function of its seed and inputs.

It does not replace SUMO: anything that needs traffic, signals or lanes runs `SumoWorld`.
"""

from __future__ import annotations

import bisect
import copy
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robotaxi.config import FleetConfig, WorldConfig
from robotaxi.core import (
    AgentKind,
    AgentState,
    CommandFailure,
    DriveTo,
    EmergencyRecord,
    HandBack,
    MoveEgo,
    ParkEgo,
    PullOver,
    Resume,
    SirenState,
    TakeOver,
    TimePoint,
    UnparkEgo,
    VehicleCommand,
    WorldError,
    WorldSnapshot,
    WorldStats,
)
from robotaxi.core.commands import NO_LEAVE_FOR_WORLD_CARS, AvoidStreet, LaneClosed, PassOpposite
from robotaxi.map import RoadMap, RoutingGraph
from robotaxi.world.traffic import (
    AMBULANCE_LENGTH_M,
    AMBULANCE_WIDTH_M,
    PROBE_LAG_S,
    emergency_runs,
)

AMBULANCE_SPEED_FACTOR = 1.25  # lights and siren: a little over the limit, through red
BACKGROUND_MIN_ROUTE_EDGES = 3
BACKGROUND_ORIGINS = 32  # background trips start from this many edges: one Dijkstra each
BLOCKED_TRAVEL_TIME_S = 1e7  # a street remote assistance said is blocked (`AvoidStreet`)
SENSE_RADIUS_M = 120.0  # an ego's `around`, as SUMO's context subscription


@dataclass
class _Mover:
    """One vehicle on its route: edge `route[idx]`, `pos` metres along it."""

    vehicle_id: str
    kind: AgentKind
    route: tuple[str, ...]
    idx: int = 0
    pos: float = 0.0
    speed_factor: float = 1.0
    speed: float = 0.0
    odometer_m: float = 0.0
    stop_pos: float | None = None  # where on the last edge it stops (robotaxis), else its end
    parked: bool = False  # reached its stop and parked at the kerb
    held: bool = False  # pulled over where it stood
    arrived: bool = False
    ego: bool = False  # driven by our stack: it goes where `MoveEgo` puts it
    pose: tuple[float, float, float] | None = None  # x, y (front bumper), heading: an ego's

    @property
    def edge(self) -> str:
        return self.route[self.idx]


@dataclass
class _Pending:
    depart_s: float
    vehicle_id: str
    kind: AgentKind
    route: tuple[str, ...]
    speed_factor: float = 1.0
    ev_of: str = field(default="")  # the ambulance run this vehicle belongs to


@dataclass(frozen=True, slots=True)
class _EdgeLine:
    """An edge's kerb-lane centreline as plain lists: a position along the edge in a few µs
    (the snapshot places every car each tick)."""

    lane_id: str
    width: float  # of the kerb lane, m
    scale: float  # lane metres per edge metre
    cum: list[float]  # arc length at each vertex
    xy: list[tuple[float, float]]
    heading: list[float]  # of each segment

    @classmethod
    def of(cls, road_map: RoadMap, edge_id: str) -> _EdgeLine:
        lane = road_map.curb_lane(edge_id)
        pts = [(float(x), float(y)) for x, y in lane.centerline]
        cum, heading = [0.0], []
        for (x0, y0), (x1, y1) in itertools.pairwise(pts):
            cum.append(cum[-1] + math.hypot(x1 - x0, y1 - y0))
            heading.append(math.atan2(y1 - y0, x1 - x0))
        edge_len = road_map.edges[edge_id].length
        scale = lane.length / edge_len if edge_len > 0 else 0.0
        return cls(lane.lane_id, lane.width, scale, cum, pts, heading or [0.0])

    def at(self, pos_m: float) -> tuple[float, float, float]:
        """x, y, heading at `pos_m` along the edge (clamped to the lane's ends)."""
        cum = self.cum
        s = min(max(pos_m * self.scale, 0.0), cum[-1])
        i = min(max(bisect.bisect_right(cum, s) - 1, 0), len(self.heading) - 1)
        if len(cum) < 2:
            x, y = self.xy[0]
            return x, y, self.heading[0]
        seg = cum[i + 1] - cum[i]
        frac = (s - cum[i]) / seg if seg > 0 else 0.0
        (x0, y0), (x1, y1) = self.xy[i], self.xy[i + 1]
        return x0 + frac * (x1 - x0), y0 + frac * (y1 - y0), self.heading[i]


class FakeWorld:
    """The `World` protocol over the routing graph alone; see the module docstring."""

    def __init__(
        self,
        road_map: RoadMap,
        graph: RoutingGraph,
        world: WorldConfig,
        fleet: FleetConfig,
        *,
        seed: int,
        end_s: float,
        work_dir: Path | None = None,
        background: bool = True,
        start_day_hour: tuple[int, float] = (1, 8.0),
        data_dir: Path | None = None,
    ) -> None:
        """`work_dir`, `start_day_hour` and `data_dir` are accepted for the same set-up as
        `SumoWorld` and not used: FakeWorld's background cars are random trips."""
        self.road_map = road_map
        self.graph = graph
        self.config = world
        self.fleet_config = fleet
        self.seed = seed
        self.end_s = end_s
        self.background = background
        self.stats = WorldStats()
        self.emergency: dict[str, EmergencyRecord] = {}
        self.robotaxis: list[str] = []
        self._movers: dict[str, _Mover] = {}
        self._pending: list[_Pending] = []  # departures still to come, latest first
        self._ev_of: dict[str, str] = {}
        self._time_us = 0
        self._step_us = round(world.tick_s * 1e6)  # one tick a step
        self._speed = graph.length / graph.travel_time
        self._started = False
        self._rng = np.random.default_rng([seed, 0xFA4E])
        self._lines: dict[str, _EdgeLine] = {}  # each edge's kerb lane, ready to interpolate

    # --- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        if self._started:
            raise WorldError("this FakeWorld has already started")
        self._started = True
        pending: list[_Pending] = []
        runs = emergency_runs(
            self.road_map, self.graph, self.config.emergency_per_hour, self.end_s, self.seed
        )
        for run in runs:
            route_m = sum(self.road_map.edges[e].length for e in run.edges)
            self.emergency[run.vehicle_id] = EmergencyRecord(run.vehicle_id, run.probe_id, route_m)
            pending.append(
                _Pending(
                    run.depart_s, run.vehicle_id, AgentKind.EMERGENCY, run.edges,
                    AMBULANCE_SPEED_FACTOR, run.vehicle_id,
                )
            )  # fmt: skip
            pending.append(
                _Pending(
                    run.depart_s + PROBE_LAG_S, run.probe_id, AgentKind.CAR, run.edges, 1.0,
                    run.vehicle_id,
                )
            )  # fmt: skip
        if self.background:
            pending += self._background_trips()
        pending.sort(key=lambda p: (p.depart_s, p.vehicle_id), reverse=True)
        self._pending = pending

    def _background_trips(self) -> list[_Pending]:
        per_hour = self.config.background_vehicles_per_hour_per_km2 * self.road_map.area_km2
        if per_hour <= 0:
            return []
        count = int(self._rng.poisson(per_hour * self.end_s / 3600.0))
        departs = np.sort(self._rng.uniform(0.0, self.end_s, size=count))
        edges = self.graph.edge_ids
        origins = self._rng.choice(len(edges), size=min(BACKGROUND_ORIGINS, len(edges)))
        origin_of = self._rng.integers(len(origins), size=count)
        targets = self._rng.integers(len(edges), size=count)
        routes: dict[int, tuple[str, ...]] = {}
        for o, origin in enumerate(origins):
            mine = np.flatnonzero(origin_of == o)
            found = self.graph.routes_from(edges[origin], [edges[t] for t in targets[mine]])
            routes.update(zip(mine.tolist(), found, strict=True))
        return [
            _Pending(float(depart), f"bg{k}", AgentKind.CAR, routes[k])
            for k, depart in enumerate(departs)
            if len(routes[k]) >= BACKGROUND_MIN_ROUTE_EDGES
        ]

    def close(self) -> None:
        self._started = False

    def __enter__(self) -> FakeWorld:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def time(self) -> TimePoint:
        return TimePoint(self._time_us)

    # --- robotaxis and commands -----------------------------------------------------------

    def add_robotaxi(self, vehicle_id: str, curb_index: int) -> None:
        curbs = self.road_map.curbs
        edge = curbs.edge_ids[curb_index]
        self._movers[vehicle_id] = _Mover(
            vehicle_id, AgentKind.ROBOTAXI, (edge,), pos=float(curbs.pos[curb_index]),
            stop_pos=float(curbs.pos[curb_index]), parked=True,
        )  # fmt: skip
        self.robotaxis.append(vehicle_id)

    def apply(self, commands: Iterable[VehicleCommand]) -> list[CommandFailure]:
        failed: list[CommandFailure] = []
        for cmd in commands:
            car = self._movers.get(cmd.vehicle_id)
            reason = ""
            if car is None or car.kind != AgentKind.ROBOTAXI:
                reason = f"{cmd.vehicle_id} is not a robotaxi in this world"
            else:
                match cmd:
                    case DriveTo(_, edge, pos, _lane):
                        reason = self._drive_to(car, edge, pos)
                    case PullOver():
                        car.held, car.speed = True, 0.0
                    case Resume():
                        car.held = False
                    case TakeOver():
                        car.ego = True
                    case HandBack():
                        car.ego, car.pose = False, None
                    case MoveEgo(_, x, y, heading, speed, lane_id):
                        car.pose, car.speed = (x, y, heading), speed
                        car.odometer_m += self._moved_m(car, x, y)
                        lane = self.road_map.lanes.get(lane_id)
                        if lane is not None and lane.edge_id in self.graph.index:
                            car.route, car.idx, car.pos = (lane.edge_id,), 0, 0.0
                    case ParkEgo():
                        car.parked, car.speed = True, 0.0
                    case UnparkEgo():
                        car.parked = False
                    case AvoidStreet(_, edge):
                        reason = self._avoid_street(car, edge)
                    case PassOpposite():
                        reason = NO_LEAVE_FOR_WORLD_CARS
                    case LaneClosed(_, edge):
                        reason = self._leave_closed_lane(car, edge)
            if reason:
                self.stats.command_failures += 1
                failed.append(CommandFailure(cmd, reason))
        return failed

    def _drive_to(self, car: _Mover, edge: str, pos: float) -> str:
        here = car.edge
        if edge not in self.graph.index:
            return f"{edge} is not a drivable edge"
        if here == edge and pos >= car.pos:
            route: tuple[str, ...] = (here,)
        elif here == edge:
            route = self.graph.route_around(here)
        else:
            route = self.graph.route(here, edge)
        if not route:
            return f"no route from {here} to {edge}"
        car.route, car.idx, car.stop_pos = route, 0, pos
        car.parked = car.held = False
        return ""

    def _avoid_street(self, car: _Mover, edge: str) -> str:
        """The fastest way to the car's target with `edge` made prohibitively slow (as
        SumoWorld does); "" when taken (or not needed), else why not (the route is kept)."""
        if car.edge == edge:
            return f"it stands on {edge} itself: no turn off before the blockage"
        if edge not in car.route[car.idx :]:
            return ""
        target = car.route[-1]
        if target == edge:
            return f"its stop is on {edge}, the blocked street"
        graph = copy.deepcopy(self.graph)  # a test world: the copy's cost does not matter
        graph.update_travel_times({edge: BLOCKED_TRAVEL_TIME_S})
        route = graph.route(car.edge, target)
        if not route or edge in route:
            return f"every way from {car.edge} to {target} crosses {edge}"
        car.route, car.idx = route, 0
        return ""

    def _leave_closed_lane(self, car: _Mover, edge: str) -> str:
        """Check an operator's "the car's lane on `edge` is closed" as SumoWorld does, with
        the map's lanes: taken ("") when `edge` has at least two lanes its way that lead on
        to the next edge of the car's route (whichever the car is in, another one does);
        else why not. Taken, nothing changes here: this world has no lanes to drive in."""
        if car.edge != edge:
            return f"it is on {car.edge} now, no longer on {edge}"
        street = self.road_map.edges[edge].name or edge
        lanes = self.road_map.robotaxi_lanes(self.road_map.edges[edge])
        if len(lanes) < 2:
            return f"{street} has one lane in its direction: there is no other lane to use"
        ahead = car.route[car.idx + 1 : car.idx + 2]
        onward = [
            x
            for x in lanes
            if not ahead or any(self.road_map.lanes[n].edge_id == ahead[0] for n in x.successors)
        ]
        if len(onward) < 2:
            return f"no other lane of {street} leads on along its way"
        return ""

    # --- stepping -----------------------------------------------------------------------

    def step(self) -> None:
        if not self._started:
            raise WorldError("start the FakeWorld before stepping it")
        self._time_us += self._step_us
        now_s = self._time_us / 1e6
        while self._pending and self._pending[-1].depart_s <= now_s:
            self._depart(self._pending.pop(), now_s)
        dt = self._step_us / 1e6
        for mover in list(self._movers.values()):
            if mover.ego:
                continue  # it goes where it is put
            if mover.parked or mover.held:
                mover.speed = 0.0
                continue
            self._advance(mover, dt)
            if mover.arrived:
                self._arrive(mover, now_s)

    def _depart(self, p: _Pending, now_s: float) -> None:
        self.stats.departed += 1
        self._movers[p.vehicle_id] = _Mover(
            p.vehicle_id, p.kind, p.route, speed_factor=p.speed_factor
        )
        if p.ev_of:
            record = self.emergency[p.ev_of]
            if p.kind == AgentKind.EMERGENCY:
                record.depart_at = TimePoint.from_s(now_s)
            else:
                record.probe_depart_at = TimePoint.from_s(now_s)
            self._ev_of[p.vehicle_id] = p.ev_of

    def _arrive(self, mover: _Mover, now_s: float) -> None:
        del self._movers[mover.vehicle_id]
        ev = self._ev_of.pop(mover.vehicle_id, "")
        if ev:
            record = self.emergency[ev]
            if mover.kind == AgentKind.EMERGENCY:
                record.arrive_at = TimePoint.from_s(now_s)
            else:
                record.probe_arrive_at = TimePoint.from_s(now_s)

    def _advance(self, m: _Mover, dt: float) -> None:
        budget = dt
        while budget > 1e-9:
            i = self.graph.index[m.edge]
            v = float(self._speed[i]) * m.speed_factor
            last = m.idx == len(m.route) - 1
            end = float(self.graph.length[i])
            if last and m.stop_pos is not None:
                end = min(end, m.stop_pos)
            reach = v * budget
            if m.pos + reach < end:
                m.pos += reach
                m.odometer_m += reach
                m.speed = v
                return
            gap = max(end - m.pos, 0.0)
            m.pos = end
            m.odometer_m += gap
            budget -= gap / v
            if last:
                m.speed = 0.0
                if m.kind == AgentKind.ROBOTAXI:
                    m.parked = True
                else:
                    m.arrived = True
                return
            m.idx += 1
            m.pos = 0.0
        m.speed = float(self._speed[self.graph.index[m.edge]]) * m.speed_factor

    # --- reading ------------------------------------------------------------------------

    def _moved_m(self, car: _Mover, x: float, y: float) -> float:
        if car.pose is None:
            return 0.0
        return float(np.hypot(x - car.pose[0], y - car.pose[1]))

    def _place(self, m: _Mover) -> tuple[float, float, float, str]:
        """x, y (front bumper, m), heading (rad) and lane id of a vehicle now."""
        line = self._lines.get(m.edge)
        if line is None:
            line = self._lines[m.edge] = _EdgeLine.of(self.road_map, m.edge)
        if m.pose is not None:
            return (*m.pose, line.lane_id)
        x, y, h = line.at(m.pos)
        if m.parked or m.held:
            # parked off the lane, beside it at the kerb (as SUMO parks a stopped car)
            off = 0.5 * line.width + 0.5 * self._dims(m)[1]
            x, y = x + off * math.sin(h), y - off * math.cos(h)
        return x, y, h, line.lane_id

    def _agent(self, m: _Mover, length: float, width: float) -> AgentState:
        """A vehicle as ground truth, centred on its footprint."""
        x, y, h, lane_id = self._place(m)
        ev = m.kind == AgentKind.EMERGENCY
        return AgentState(
            m.vehicle_id, m.kind,
            x - 0.5 * length * float(np.cos(h)), y - 0.5 * length * float(np.sin(h)),
            h, m.speed, length=length, width=width, lane_id=lane_id, lane_pos=m.pos,
            siren=SirenState.ON if ev else SirenState.OFF,
        )  # fmt: skip

    def _dims(self, m: _Mover) -> tuple[float, float]:
        if m.kind == AgentKind.EMERGENCY:
            return AMBULANCE_LENGTH_M, AMBULANCE_WIDTH_M
        if m.kind == AgentKind.ROBOTAXI:
            return self.fleet_config.vehicle_length_m, self.fleet_config.vehicle_width_m
        return 4.5, 1.8

    def vehicles_near(self, vehicle_id: str, radius_m: float) -> tuple[AgentState, ...]:
        car = self._movers.get(vehicle_id)
        if car is None:
            raise WorldError(f"vehicle {vehicle_id} is not in this world")
        cx, cy, _, _ = self._place(car)
        found = []
        for m in self._movers.values():
            if m is car:
                continue
            agent = self._agent(m, *self._dims(m))
            d = float(np.hypot(agent.x - cx, agent.y - cy))
            if d <= radius_m:
                found.append((d, m.vehicle_id, agent))
        return tuple(a for _, _, a in sorted(found))

    def snapshot(self) -> WorldSnapshot:
        rows = [self._movers[v] for v in self.robotaxis if v in self._movers]
        rows += [
            self._movers[v]
            for v in sorted(self._movers)
            if self._movers[v].kind == AgentKind.EMERGENCY
        ]
        n = len(rows)
        xy = np.zeros((n, 2))
        heading = np.zeros(n)
        lane_ids: list[str] = []
        for k, m in enumerate(rows):
            x, y, h, lane_id = self._place(m)
            xy[k] = (x, y)
            heading[k] = h
            lane_ids.append(lane_id)
        egos = sorted(v for v, m in self._movers.items() if m.ego)
        around = {
            ego: tuple(sorted(self.vehicles_near(ego, SENSE_RADIUS_M), key=lambda a: a.agent_id))
            for ego in egos
        }
        ev = np.array([m.kind == AgentKind.EMERGENCY for m in rows], dtype=bool)
        return WorldSnapshot(
            time=self.time,
            ids=tuple(m.vehicle_id for m in rows),
            kinds=tuple(m.kind for m in rows),
            xy=xy,
            heading=heading,
            speed=np.array([m.speed for m in rows], dtype=float),
            length=np.where(ev, AMBULANCE_LENGTH_M, self.fleet_config.vehicle_length_m),
            width=np.where(ev, AMBULANCE_WIDTH_M, self.fleet_config.vehicle_width_m),
            lane_ids=tuple(lane_ids),
            lane_pos=np.array([m.pos for m in rows], dtype=float),
            sirens=tuple(bool(e) for e in ev),
            teleports=self.stats.teleports,
            road_ids=tuple(m.edge for m in rows),
            stopped=tuple(m.parked or m.held for m in rows),
            odometer_m=np.array([m.odometer_m for m in rows], dtype=float),
            around=around,
        )

    def vehicle_count(self) -> int:
        return len(self._movers)

    def edge_travel_times(self, edges: Sequence[str]) -> dict[str, float]:
        """Free-flow times: nothing in this world slows a car down."""
        return {
            e: self.road_map.edges[e].length / max(self.road_map.edges[e].speed_limit, 0.1)
            for e in edges
        }
