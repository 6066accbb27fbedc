"""The city in SUMO, through libsumo (in-process). Nothing else in robotaxi imports SUMO.

One `SumoWorld` per process: libsumo is a process-wide singleton, so a second start while
one runs raises `WorldError` instead of silently sharing state.
"""

from __future__ import annotations

import contextlib
import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import libsumo
import numpy as np
from libsumo import constants as tc

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
from robotaxi.core.types import FloatArray
from robotaxi.map import RoadMap, RoutingGraph
from robotaxi.world.background import DAY_S, count_vehicles, plan_bay_area_routes
from robotaxi.world.meso_fleet import MESO_CAR_VARS, MesoFleet, Spot
from robotaxi.world.sumo_log import QuietStderr, teleports_in_log
from robotaxi.world.traffic import (
    AMBULANCE_LENGTH_M,
    AMBULANCE_TYPE,
    AMBULANCE_WIDTH_M,
    CAR_TYPE,
    REROUTING_OPTIONS,
    ROBOTAXI_TYPE,
    EmergencyRun,
    SumoSetup,
    background_routes,
    emergency_routes_xml,
    emergency_runs,
    sumo_env,
    sumo_heading,
    vehicle_types_xml,
)

PARK_FOREVER_S = 1e7
PREEMPTION_AMBER_S = 3.0  # amber for the cross streets before an ambulance's green
_STUCK_CHECK_S = 10.0  # how often robotaxis crawling in traffic are looked at
_PARKED = 1 | 2  # VAR_STOPSTATE bits: stopped, parking (off the lane)
# a held robotaxi parks short only on a street at least this many of its lengths long
_PARK_LANE_CARS = 2.0
_BLOCKED_TRAVEL_TIME_S = 1e7  # a street remote assistance said is blocked, for one reroute
_CAR_VARS = [
    tc.VAR_POSITION,
    tc.VAR_ANGLE,
    tc.VAR_SPEED,
    tc.VAR_ROAD_ID,
    tc.VAR_LANE_ID,
    tc.VAR_LANEPOSITION,
    tc.VAR_STOPSTATE,
    tc.VAR_DISTANCE,
]
_CONTEXT_VARS = [tc.VAR_ROAD_ID, tc.VAR_LANEPOSITION, tc.VAR_SPEED, tc.VAR_LANE_INDEX]
_EGO_CONTEXT_VARS = [
    tc.VAR_POSITION,
    tc.VAR_ANGLE,
    tc.VAR_SPEED,
    tc.VAR_TYPE,
    tc.VAR_LANE_ID,
    tc.VAR_LANEPOSITION,
    tc.VAR_LENGTH,
    tc.VAR_WIDTH,
]
# SUMO's defaults: obey speed limits, safe gaps and junction rules; strategic, cooperative,
# speed-gain and keep-right lane changes, respecting others' safety
_SUMO_SPEED_MODE = 31
_SUMO_LANE_CHANGE_MODE = 1621


# SUMO's mesoscopic model with junction control, a delay for red signals and overtaking:
# on the whole city within ~20 % of the micro model's speeds at ~14× its pace (SUMO-NOTES)
MESO_OPTIONS = (
    "--mesosim", "true",
    "--meso-junction-control", "true",
    "--meso-tls-penalty", "1",
    "--meso-overtaking", "true",
)  # fmt: skip


MESO_NO_AUTONOMY = (
    "the mesoscopic traffic model has no lanes or lateral positions, so our own autonomy "
    "stack cannot drive in it: use --traffic-model micro for cars our stack drives"
)


def sumo_command(
    net_file: Path,
    types_file: Path,
    route_files: Sequence[Path],
    world: WorldConfig,
    seed: int,
    *,
    end_s: float,
    routing_algorithm: str = "dijkstra",
) -> list[str]:
    """SUMO's command line for our city, shared by every simulation we start (our world and
    the SUMO-taxi baseline), so that they run the same traffic the same way."""
    cmd = [
        "sumo", "-n", str(net_file),
        "--additional-files", str(types_file),
        "--step-length", str(world.step_s),
        "--seed", str(seed),
        "--time-to-teleport", str(world.teleport_time_s),
        "--no-step-log", "true", "--no-warnings", "true",
        "--device.bluelight.reactiondist", "40",
        "--routing-algorithm", routing_algorithm,
        # only real overlaps are collisions (by default a minGap violation counts as one)
        "--collision.action", "warn",
        "--collision.mingap-factor", "0",
        "--ignore-route-errors", "true",
        "--end", str(end_s),
    ]  # fmt: skip
    if world.traffic_model == "meso":
        # queues per edge; junction control and signal delays as SUMO-NOTES measured them
        cmd += list(MESO_OPTIONS)
    elif world.junction_blocker_s >= 0:
        cmd += ["--ignore-junction-blocker", f"{world.junction_blocker_s:g}"]
    if world.route_around_jams:
        cmd += list(REROUTING_OPTIONS)
    if route_files:
        cmd += ["-r", ",".join(str(p) for p in route_files)]
    return cmd


def teleport_causes(statistics_file: Path) -> dict[str, int]:
    """Why SUMO teleported its cars, from its `--statistic-output` file (written when the
    simulation closes): {"jam": n, "yield": n, "wrong_lane": n}; {} if there is none."""
    try:
        root = ET.parse(statistics_file).getroot()
    except (OSError, ET.ParseError):
        return {}
    node = root.find("teleports")
    if node is None:
        return {}
    names = {"jam": "jam", "yield": "yield", "wrongLane": "wrong_lane"}
    return {ours: int(node.get(theirs, "0")) for theirs, ours in names.items()}


_T = TypeVar("_T")


def _pick(column: Sequence[_T], keep: Sequence[int]) -> list[_T]:
    return [column[k] for k in keep]


@dataclass
class _ClearedCar:
    vehicle_id: str
    for_ev: str
    since_s: float


@dataclass(frozen=True)
class _Preemption:
    ev: str  # the ambulance holding the signal
    edge: str  # its approach: the incoming edge whose movements are green
    program: str  # the signal's programme, restored once the ambulance has passed
    state: str  # the pre-emption state: green on the approach, red elsewhere
    clear_until_s: float | None  # amber for the movements losing their green until then


def _edge_of_lane(lane_id: str) -> str:
    return lane_id.rsplit("_", 1)[0]


def claim_sumo() -> None:
    """libsumo runs one simulation per process: refuse a second, whichever world (the city,
    a CommonRoad scenario's network) holds the first."""
    if libsumo.simulation.isLoaded():
        raise WorldError("a SUMO simulation is already running in this process: close it first")


def close_sumo(moved: Iterable[str], subscribed: Collection[str] = frozenset()) -> None:
    """Close this process's simulation. Cars moved with moveToXY leave the network first, or
    the next simulation in this process segfaults in its first step (libsumo 1.28,
    SUMO-NOTES); those with a variable subscription are unsubscribed before, or it would name
    them in the closing step after their removal."""
    moved = list(moved)
    for vid in moved:
        if vid in subscribed:
            libsumo.vehicle.unsubscribe(vid)
        libsumo.vehicle.remove(vid)
    if moved:
        libsumo.simulation.step()
    libsumo.close()


class SumoWorld:
    """Start, step, read and command a SUMO simulation of the city."""

    def __init__(
        self,
        road_map: RoadMap,
        graph: RoutingGraph,
        world: WorldConfig,
        fleet: FleetConfig,
        *,
        seed: int,
        end_s: float,
        work_dir: Path,
        background: bool = True,
        setup: SumoSetup | None = None,
        start_day_hour: tuple[int, float] = (1, 8.0),
        data_dir: Path | None = None,
    ) -> None:
        """`start_day_hour`: the day (0 = Monday) and clock hour at simulation time 0, and
        `data_dir` the shared data, for background demand that depends on them (Plan Bay
        Area's district trips)."""
        self.road_map = road_map
        self.graph = graph
        self.config = world
        self.fleet_config = fleet
        self.seed = seed
        self.end_s = end_s
        self.work_dir = work_dir
        self._statistics_file = work_dir / "sumo-statistics.xml"
        # meso: SUMO names the cars it teleported only in its warnings (`world.sumo_log`)
        self._warnings_file = work_dir / "sumo-warnings.log"
        self._quiet: QuietStderr | None = None
        self._last_rows: dict[str, dict[int, Any]] = {}  # the last tick's subscriptions
        self.background = background
        self.setup = setup if setup is not None else SumoSetup()
        self.start_day_hour = start_day_hour
        self.data_dir = data_dir
        self.stats = WorldStats()
        self.robotaxis: list[str] = []
        self.emergency: dict[str, EmergencyRecord] = {}
        self._probe_of: dict[str, str] = {}
        self._active_evs: set[str] = set()
        self._ev_route: dict[str, tuple[str, ...]] = {}
        self._cleared: dict[str, _ClearedCar] = {}
        self._robotaxi_set: set[str] = set()
        # robotaxis parked off the lane with no command since: their subscription is dropped
        # (reading 1,000 cars' results costs ~10 ms a step) and their last row stands in
        # until a command wakes them (`_wake`) and their subscription reports again
        self._held_rows: dict[str, dict[int, Any]] = {}
        self._dormant: set[str] = set()
        self._egos: set[str] = set()
        self._moved: set[str] = set()  # every car ever placed by `move_ego`
        # robotaxis crawling in traffic (not at a stop): since when, and their last reroute
        self._slow_since: dict[str, float] = {}
        self._rerouted_at: dict[str, float] = {}
        # meso: where each robotaxi in SUMO was at the last stuck check (street, m along it);
        # meso reports a queued car at the speed it entered its segment with, so a car that
        # has not moved is told by its place, not its speed
        self._stuck_where: dict[str, tuple[str, float]] = {}
        # DriveTo commands given up on after they were applied (a car held short of a jam):
        # returned by the next `apply`, so that the fleet sends the car elsewhere
        self._given_up: list[CommandFailure] = []
        self._started = False
        self._time_s = 0.0
        self._background_file: Path | None = None
        # the signals that give an ambulance the green (None: all of them)
        self._preemption_signals = road_map.preemption_signals
        self._preempted: dict[str, _Preemption] = {}  # signal id → the call holding it
        # meso: robotaxis are in SUMO only between kerbs (`world.meso_fleet`)
        self._meso = (
            MesoFleet(road_map, ROBOTAXI_TYPE, self._loop_edges, self.graph.route)
            if world.traffic_model == "meso"
            else None
        )
        self._car_vars = MESO_CAR_VARS if self._meso is not None else _CAR_VARS
        # meso: the streets asked about, their index, each one's travel time while empty
        # (`_meso_travel_times`)
        self._empty_travel_time: tuple[tuple[str, ...], dict[str, int], FloatArray] | None = None

    # --- life cycle ---------------------------------------------------------------------

    @property
    def background_file(self) -> Path | None:
        """The background traffic's route file this world runs (None without background)."""
        return self._background_file

    def start(self) -> None:
        claim_sumo()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        types_file = self.work_dir / "types.add.xml"
        types_file.write_text(
            self.setup.types_xml
            or vehicle_types_xml(
                self.fleet_config.vehicle_length_m,
                self.fleet_config.vehicle_width_m,
                self.fleet_config.max_speed_mps,
                # meso: our routing graph routes every leg; with SUMO's device each car
                # would also be routed again by SUMO when it enters (`world.meso_fleet`)
                rerouting=self.config.route_around_jams and self._meso is None,
            )
        )
        route_files: list[Path] = []
        if self.background:
            files = self._background_routes()
            route_files += files
            self._background_file = files[0] if files else None
        runs = emergency_runs(
            self.road_map, self.graph, self.config.emergency_per_hour, self.end_s, self.seed
        )
        for run in runs:
            self._register_run(run)
        if runs:
            ev_file = self.work_dir / "emergency.rou.xml"
            ev_file.write_text(emergency_routes_xml(runs))
            route_files.append(ev_file)
        route_files += self.setup.route_files
        sumo_end_s = self.setup.sumo_end_s
        cmd = sumo_command(
            self.road_map.net_file, types_file, route_files, self.config, self.seed,
            end_s=self.end_s + 3600 if sumo_end_s is None else sumo_end_s,
            routing_algorithm=self.setup.routing_algorithm,
        )  # fmt: skip
        cmd += self.setup.extra_args
        # SUMO's own tally at the end: why its cars teleported (read by `close`)
        cmd += ["--statistic-output", str(self._statistics_file)]
        if self._meso is not None:
            cmd[cmd.index("--no-warnings") + 1] = "false"
            cmd += ["--error-log", str(self._warnings_file)]
            self._quiet = QuietStderr()
        os.environ.setdefault("SUMO_HOME", sumo_env()["SUMO_HOME"])
        try:
            with self._quiet or contextlib.nullcontext():
                libsumo.start(cmd)
        except libsumo.TraCIException as exc:
            raise WorldError(f"SUMO did not start: {exc}") from None
        self._started = True
        libsumo.simulation.subscribe(
            [
                tc.VAR_DEPARTED_VEHICLES_IDS,
                tc.VAR_ARRIVED_VEHICLES_IDS,
                tc.VAR_TELEPORT_STARTING_VEHICLES_IDS,
            ]
        )

    def _background_routes(self) -> list[Path]:
        out_dir = self.road_map.net_file.parent / "routes"
        if self.config.background_demand == "random":
            vph = self.config.background_vehicles_per_hour_per_km2 * self.road_map.area_km2
            bg = background_routes(self.road_map, vph, self.end_s, self.seed, out_dir)
            if bg is not None:
                self.stats.background_vehicles = count_vehicles(bg)
            return [] if bg is None else [bg]
        if self.data_dir is None:
            raise WorldError("Plan Bay Area background traffic needs the shared data folder")
        # the service window in clock time, cut at midnight into windows of one day each
        day, hour = self.start_day_hour
        start, files = hour * 3600.0, []
        sim_s = 0.0
        while sim_s < self.end_s:
            length = min(DAY_S - start, self.end_s - sim_s)
            demand = plan_bay_area_routes(
                self.road_map.net_file, self.data_dir, start, start + length,
                out_dir=out_dir, scale=self.config.background_scale, seed=self.seed,
                day=day % 7, sim_begin_s=sim_s, allowed_edges=frozenset(self.graph.index),
            )  # fmt: skip
            self.stats.background_vehicles += demand.vehicles
            files.append(demand.path)
            sim_s += length
            start, day = 0.0, day + 1
        return files

    def close(self) -> None:
        if self._started:
            # libsumo keeps context subscriptions across close(); a later start() in the same
            # process then crashes on them, so drop every one first
            alive = set(libsumo.vehicle.getIDList())
            for vid in (self._egos | self._active_evs) & alive:
                libsumo.vehicle.unsubscribeContext(vid, tc.CMD_GET_VEHICLE_VARIABLE, 0.0)
            # a robotaxi taken over (`take_over`) is subscribed; our own egos are not
            with self._quiet or contextlib.nullcontext():
                close_sumo(sorted((self._egos | self._moved) & alive), self._robotaxi_set)
            self._started = False
            self.stats.teleports_by_cause = teleport_causes(self._statistics_file)
            if self._quiet is not None:
                self._quiet.close()
                self._quiet = None
                self._count_logged_teleports()

    def _count_logged_teleports(self) -> None:
        """meso: the run's teleports from SUMO's warnings (`world.sumo_log`), robotaxis' with
        where they stood; the total from SUMO's statistics when it wrote them."""
        logged = teleports_in_log(self._warnings_file)
        by_cause = self.stats.teleports_by_cause
        self.stats.teleports = sum(by_cause.values()) if by_cause else len(logged)
        ours = [t for t in logged if t.vehicle in self._robotaxi_set]
        self.stats.robotaxi_teleports = len(ours)
        for t in ours:
            street = self.road_map.edges[t.edge].name if t.edge in self.road_map.edges else ""
            place = f"{street} ({t.edge})" if street else t.edge
            self.stats.robotaxi_teleport_places.append((t.time_s, t.vehicle, place))

    def __enter__(self) -> SumoWorld:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _register_run(self, run: EmergencyRun) -> None:
        route_m = sum(self.road_map.edges[e].length for e in run.edges)
        self.emergency[run.vehicle_id] = EmergencyRecord(run.vehicle_id, run.probe_id, route_m)
        self._probe_of[run.probe_id] = run.vehicle_id
        self._ev_route[run.vehicle_id] = run.edges

    @property
    def time(self) -> TimePoint:
        return TimePoint.from_s(self._time_s)

    # --- robotaxis ----------------------------------------------------------------------

    def add_robotaxi(self, vehicle_id: str, curb_index: int) -> None:
        """Put a robotaxi in the world, parked at a curb spot (off the lane)."""
        curbs = self.road_map.curbs
        edge, pos, lane = (
            curbs.edge_ids[curb_index],
            float(curbs.pos[curb_index]),
            int(curbs.lane_index[curb_index]),
        )
        if self._meso is not None:
            self._meso.add(vehicle_id, Spot(edge, pos, lane))
            self.robotaxis.append(vehicle_id)
            self._robotaxi_set.add(vehicle_id)
            return
        route_id = f"route_{vehicle_id}"
        libsumo.route.add(route_id, [edge])
        libsumo.vehicle.add(
            vehicle_id, route_id, typeID=ROBOTAXI_TYPE, depart="now",
            departPos=f"{max(0.0, pos - 1.0):.2f}", departLane=str(lane), departSpeed="0",
        )  # fmt: skip
        libsumo.vehicle.setStop(
            vehicle_id, edge, pos=pos, laneIndex=lane, duration=PARK_FOREVER_S,
            flags=tc.STOP_PARKING, startPos=max(0.0, pos - 5.0),
        )  # fmt: skip
        if self.config.route_around_jams:
            libsumo.vehicle.setRoutingMode(vehicle_id, tc.ROUTING_MODE_AGGREGATED)
        libsumo.vehicle.subscribe(vehicle_id, self._car_vars)
        self.robotaxis.append(vehicle_id)
        self._robotaxi_set.add(vehicle_id)

    def apply(self, commands: Iterable[VehicleCommand]) -> list[CommandFailure]:
        """Carry out commands; returns those that failed with the reason (the fleet retries)."""
        # DriveTos given up on since the last call (a car held short of a jam) come first
        failed, self._given_up = self._given_up, []
        if self._meso is not None:
            # SUMO's warnings about our commands go to its log, not the console (`sumo_log`)
            with self._quiet or contextlib.nullcontext():
                return failed + self._apply_meso(commands)
        for cmd in commands:
            if cmd.vehicle_id in self._dormant:
                self._wake(cmd.vehicle_id)
            try:
                match cmd:
                    case DriveTo(vid, edge, pos, lane_index):
                        self._drive_to(vid, edge, pos, lane_index)
                    case PullOver(vid):
                        self._pull_over(vid)
                    case Resume(vid):
                        self._resume(vid)
                    case MoveEgo(vid, x, y, heading, speed, lane_id):
                        self._move_ego(vid, x, y, heading, speed, lane_id)
                    case ParkEgo(vid):
                        self._park_ego(vid)
                    case UnparkEgo(vid):
                        self._unpark_ego(vid)
                    case TakeOver(vid):
                        self._take_over(vid)
                    case HandBack(vid):
                        self._hand_back(vid)
                    case AvoidStreet(vid, edge):
                        self._avoid_street(vid, edge)
                    case PassOpposite():
                        raise WorldError(NO_LEAVE_FOR_WORLD_CARS)
                    case LaneClosed(vid, edge):
                        self._leave_closed_lane(vid, edge)
            except (libsumo.TraCIException, WorldError) as exc:
                self.stats.command_failures += 1
                failed.append(CommandFailure(cmd, str(exc)))
        return failed

    def _apply_meso(self, commands: Iterable[VehicleCommand]) -> list[CommandFailure]:
        """`apply` in the mesoscopic model: robotaxis leave SUMO at the kerb
        (`world.meso_fleet`); cars our own stack drives need lanes, so micro."""
        meso = self._meso
        assert meso is not None
        failed: list[CommandFailure] = []
        for cmd in commands:
            try:
                match cmd:
                    case DriveTo(vid, edge, pos, lane_index):
                        meso.drive_to(vid, Spot(edge, pos, lane_index))
                    case PullOver(vid):
                        meso.pull_over(vid)
                    case Resume(vid):
                        meso.resume(vid)
                    case AvoidStreet(vid, edge):
                        self._avoid_street_meso(vid, edge)
                    case PassOpposite():
                        raise WorldError(NO_LEAVE_FOR_WORLD_CARS)
                    case _:
                        raise WorldError(MESO_NO_AUTONOMY)
            except (libsumo.TraCIException, WorldError) as exc:
                self.stats.command_failures += 1
                failed.append(CommandFailure(cmd, str(exc)))
        return failed

    def _wake(self, vid: str) -> None:
        """A parked robotaxi gets a command: read it every step again."""
        self._dormant.discard(vid)
        libsumo.vehicle.subscribe(vid, self._car_vars)

    def _doze(self, vid: str, row: dict[int, Any]) -> None:
        """A robotaxi parked off the lane stays where it is until its next command."""
        self._dormant.add(vid)
        self._held_rows[vid] = row
        libsumo.vehicle.unsubscribe(vid)

    def _clear_stops(self, vid: str) -> None:
        veh = libsumo.vehicle
        if veh.getStopState(vid) & 1:
            veh.resume(vid)
        for _ in range(len(veh.getStops(vid))):
            veh.replaceStop(vid, 0, "")

    def _drive_to(self, vid: str, edge: str, pos: float, lane: int) -> None:
        veh = libsumo.vehicle
        self._clear_stops(vid)
        here = veh.getRoadID(vid)
        lane_pos = veh.getLanePosition(vid)
        speed = veh.getSpeed(vid)
        brake_m = speed * speed / (2 * 4.0) + 2.0
        if here == edge and pos < lane_pos + brake_m:
            # the spot is behind us (or too close to stop): go once around the block
            self._route_via_loop(vid, here, edge)
        else:
            try:
                veh.changeTarget(vid, edge)
            except libsumo.TraCIException:
                self._route_via_loop(vid, here, edge)
        veh.setStop(
            vid, edge, pos=pos, laneIndex=lane, duration=PARK_FOREVER_S,
            flags=tc.STOP_PARKING, startPos=max(0.0, pos - 10.0),
        )  # fmt: skip

    def _route_via_loop(self, vid: str, here: str, target: str) -> None:
        libsumo.vehicle.setRoute(vid, self._loop_edges(here, target))

    def _loop_edges(self, here: str, target: str) -> tuple[str, ...]:
        """The shortest route from `here` once around the block back to `target`."""
        if here not in self.graph.index:
            raise libsumo.TraCIException(f"{here} is not a routable edge")
        best: tuple[str, ...] = ()
        for lane_id in self.road_map.edges[here].lane_ids:
            for succ_lane in self.road_map.lanes[lane_id].successors:
                succ = self.road_map.lanes[succ_lane].edge_id
                if succ in self.graph.index:
                    route = self.graph.route(succ, target)
                    if route and (not best or len(route) < len(best)):
                        best = route
        if not best:
            raise libsumo.TraCIException(f"no way from {here} back to {target}")
        return (here, *best)

    def _avoid_street(self, vid: str, edge: str) -> None:
        """Reroute to the current target without `edge` (remote assistance said it is
        blocked): the car's own travel time for it is made prohibitive for one reroute by
        SUMO's router. Raises `WorldError` (the car keeps its route) when the car stands on
        `edge` or inside a junction, or every way to its target crosses `edge`."""
        veh = libsumo.vehicle
        here = veh.getRoadID(vid)
        if here == edge:
            raise WorldError(f"it stands on {edge} itself: no turn off before the blockage")
        if here.startswith(":"):
            raise WorldError(f"it is inside junction {here}: answer again in a moment")
        route, idx = veh.getRoute(vid), veh.getRouteIndex(vid)
        ahead = route[idx:]
        if edge not in ahead:
            return  # its way does not use that street
        if ahead[-1] == edge:
            raise WorldError(f"its stop is on {edge}, the blocked street")
        mode = veh.getRoutingMode(vid)
        veh.setAdaptedTraveltime(vid, edge, _BLOCKED_TRAVEL_TIME_S)
        veh.setRoutingMode(vid, tc.ROUTING_MODE_DEFAULT)  # where the car's own times count
        try:
            veh.rerouteTraveltime(vid, False)
        finally:
            veh.setRoutingMode(vid, mode)
            veh.setAdaptedTraveltime(vid, edge)  # no time: the car's own value is removed
        if edge in veh.getRoute(vid)[veh.getRouteIndex(vid) :]:
            veh.setRoute(vid, ahead)
            raise WorldError(f"every way from {here} to {ahead[-1]} crosses {edge}")

    def _leave_closed_lane(self, vid: str, edge: str) -> None:
        """Move to a lane beside the car's own on `edge` (remote assistance said its lane is
        closed ahead) that leads on along its route (SUMO's best lanes), and keep to it for
        about the rest of `edge`: a `changeLane` request, which SUMO's lane changer carries
        out only into a safe gap. Raises `WorldError` (the car keeps its lane) when it is not
        on `edge`, `edge` has one lane its way, or no lane beside its own leads on."""
        veh = libsumo.vehicle
        here = veh.getRoadID(vid)
        if here.startswith(":"):
            raise WorldError(f"it is inside junction {here}: answer again in a moment")
        if here != edge or edge not in self.road_map.edges:
            raise WorldError(f"it is on {here} now, no longer on {edge}")
        street = self.road_map.edges[edge].name or edge
        lanes = self.road_map.robotaxi_lanes(self.road_map.edges[edge])
        if len(lanes) < 2:
            raise WorldError(
                f"{street} has one lane in its direction: there is no other lane to use"
            )
        own = veh.getLaneIndex(vid)
        # per lane of the edge: (lane id, length, occupation, offset, continues, next lanes)
        onward = {row[0] for row in veh.getBestLanes(vid) if row[4]}
        beside = sorted(
            (x for x in lanes if abs(x.index - own) == 1 and x.lane_id in onward),
            key=lambda x: -x.index,  # to the left first, as a driver passes
        )
        if not beside:
            raise WorldError(
                f"no lane beside it on {street} leads on along its way: only its own lane does"
            )
        target = beside[0]
        rest_m = max(target.length - veh.getLanePosition(vid), 0.0)
        # time to find a gap and drive the rest of the street at half its limit
        duration_s = 20.0 + rest_m / max(0.5 * target.speed_limit, 1.0)
        veh.changeLane(vid, target.index, duration_s)

    def _avoid_street_meso(self, vid: str, edge: str) -> None:
        """`_avoid_street` in meso: the routing graph's fastest way around `edge` (SUMO's own
        rerouting corrupts a meso car's state, `world.meso_fleet`)."""
        meso = self._meso
        assert meso is not None
        if vid in meso.parked:
            raise WorldError("it stands at the kerb: no route to change")
        veh = libsumo.vehicle
        here = veh.getRoadID(vid)
        if here == edge:
            raise WorldError(f"it stands on {edge} itself: no turn off before the blockage")
        ahead = veh.getRoute(vid)[veh.getRouteIndex(vid) :]
        if edge not in ahead:
            return  # its way does not use that street
        if ahead[-1] == edge:
            raise WorldError(f"its stop is on {edge}, the blocked street")
        route = self.graph.route(here, ahead[-1], avoid=(edge,))
        if not route:
            raise WorldError(f"every way from {here} to {ahead[-1]} crosses {edge}")
        meso.set_route(vid, route)

    def _pull_over(self, vid: str) -> None:
        """Park at the curb just ahead, off the lane, so an ambulance can pass."""
        veh = libsumo.vehicle
        if veh.getStopState(vid) & 1:
            return  # already parked at the curb
        edge = veh.getRoadID(vid)
        route = veh.getRoute(vid)
        idx = veh.getRouteIndex(vid)
        speed = veh.getSpeed(vid)
        need = speed * speed / (2 * 4.5) + 1.0  # a firm but normal stop (I-PACE brakes ~9)
        candidates: list[tuple[str, float]] = []
        if not edge.startswith(":"):
            candidates.append((edge, veh.getLanePosition(vid) + need))
        for nxt in route[idx + 1 : idx + 3]:
            candidates.append((nxt, max(need - 5.0, 5.0)))
        last_error = "no edge ahead"
        for cand_edge, pos in candidates:
            if cand_edge not in self.road_map.edges:
                continue
            lane = self.road_map.curb_lane(cand_edge)
            if pos >= lane.length - 0.5:
                continue
            try:
                veh.setStop(
                    vid, cand_edge, pos=pos, laneIndex=lane.index, duration=PARK_FOREVER_S,
                    flags=tc.STOP_PARKING, startPos=max(0.0, pos - 15.0),
                )  # fmt: skip
                return
            except libsumo.TraCIException as exc:
                last_error = str(exc)
        raise libsumo.TraCIException(last_error)

    def _resume(self, vid: str) -> None:
        veh = libsumo.vehicle
        if veh.getStopState(vid) & 1:
            veh.resume(vid)
        else:
            # asked to resume before the pull-over stop was reached: drop that stop
            stops = veh.getStops(vid)
            if stops and stops[0].duration >= PARK_FOREVER_S / 2 and len(stops) > 1:
                veh.replaceStop(vid, 0, "")

    def _reroute_stuck(self) -> None:
        """A robotaxi that has crawled (under 1 m/s, not at a stop; in meso: not moved from
        its place) for `stuck_reroute_s` looks for another way by the travel times SUMO
        measured (its routing mode), at most once per `stuck_reroute_s`: a queue that does
        not move is where SUMO would otherwise teleport it. In meso, a car still held two
        checks before SUMO's time-to-teleport ends its leg at the end of the street it is on
        (`_hold_short`). Cars our stack drives and parked cars are left alone."""
        now, wait = self._time_s, self.config.stuck_reroute_s
        slow = self._slow_since
        cars: Iterable[str]
        meso = self._meso
        if meso is not None:
            # meso's robotaxis are read, not subscribed, and only those in SUMO can crawl
            results = meso.read()
            for vid in [v for v in slow if v not in results]:
                del slow[vid]
            for vid in [v for v in self._stuck_where if v not in results]:
                del self._stuck_where[vid]
            cars = tuple(results)
        else:
            results = libsumo.vehicle.getAllSubscriptionResults()
            cars = self.robotaxis
        for vid in cars:
            row = results.get(vid)
            if not row or vid in self._egos or vid in self._moved:
                slow.pop(vid, None)
                continue
            if meso is not None:
                where = (row[tc.VAR_ROAD_ID], row[tc.VAR_LANEPOSITION])
                moved = not where[0] or self._stuck_where.get(vid) != where
                self._stuck_where[vid] = where
            else:
                moved = row[tc.VAR_SPEED] >= 1.0 or bool(row.get(tc.VAR_STOPSTATE, 0) & 1)
            if moved:
                slow.pop(vid, None)
                continue
            since = slow.setdefault(vid, now)
            # (SUMO's wait, from when the car could have left its segment, is never longer
            # than the time it has stood at its place: read only past that)
            hold_s = self.config.teleport_time_s - 2.0 * _STUCK_CHECK_S
            if now - since >= hold_s:
                waited = libsumo.vehicle.getWaitingTime(vid)
                if waited >= hold_s:
                    if meso is not None:
                        self._hold_short(vid, waited)
                    else:
                        self._park_short(vid, waited)
                    continue
            if now - since >= wait and now - self._rerouted_at.get(vid, -wait) >= wait:
                try:
                    if meso is not None:
                        # SUMO warns about the old arrival position: to its log (`sumo_log`)
                        with self._quiet or contextlib.nullcontext():
                            meso.reroute(vid)
                    else:
                        libsumo.vehicle.rerouteTraveltime(vid, False)
                except (libsumo.TraCIException, WorldError):
                    continue  # e.g. inside a junction: try again at the next check
                self._rerouted_at[vid] = now
                self.stats.stuck_reroutes += 1

    def _park_short(self, vid: str, waited_s: float) -> None:
        """Micro: `_hold_short`: a robotaxi held in a queue (SUMO's wait `waited_s` two stuck
        checks short of its time-to-teleport) parks off the lane where it stands, rather
        than be teleported; its DriveTo comes back as failed from the next `apply`. Not
        inside a junction, nor on a street too short to hold it (a connector of a few
        metres inside a junction cluster): a car parked there stays in the junction and
        blocks it for every foe, while its hold keeps SUMO from ever clearing it (measured:
        background teleports around that junction rose by half); on such a connector it
        takes another way out if it has one (`_leave_by_another_way`), else SUMO may
        teleport it."""
        veh = libsumo.vehicle
        here = veh.getRoadID(vid)
        stops = veh.getStops(vid, 1)
        if here.startswith(":") or here not in self.road_map.edges or not stops:
            return
        goal = stops[0]
        goal_edge, _, goal_lane = goal.lane.rpartition("_")
        lane = self.road_map.lanes.get(veh.getLaneID(vid))
        if lane is None or lane.length < _PARK_LANE_CARS * veh.getLength(vid):
            self._leave_by_another_way(vid)
            return
        pos = min(veh.getLanePosition(vid) + 1.0, lane.length - 0.1)
        try:
            self._clear_stops(vid)
            veh.setStop(
                vid, here, pos=pos, laneIndex=veh.getLaneIndex(vid), duration=PARK_FOREVER_S,
                flags=tc.STOP_PARKING, startPos=max(0.0, pos - 10.0),
            )  # fmt: skip
        except libsumo.TraCIException:
            return  # e.g. no room to stop: the next check tries again
        self._slow_since.pop(vid, None)
        self.stats.held_short += 1
        street = self.road_map.edges[goal_edge].name if goal_edge in self.road_map.edges else ""
        self._given_up.append(
            CommandFailure(
                DriveTo(vid, goal_edge, float(goal.endPos), int(goal_lane or 0)),
                f"held in a queue on {here} for {waited_s:.0f} s: stopped short of "
                f"{street or goal_edge}",
            )
        )

    def _leave_by_another_way(self, vid: str) -> None:
        """Micro: a robotaxi held on a connector too short to park on (the few metres between
        the joined nodes of a junction cluster, e.g. Market Street at Octavia Boulevard),
        waiting to enter a street that does not move, turns another way if it has one: SUMO
        routes it again without that street (`_avoid_street`), straight on, say, instead of
        a blocked left turn. Counted in `stats.turned_elsewhere`; when every way on goes
        through that street (or it is the car's target) its route stays as it was."""
        veh = libsumo.vehicle
        route, index = veh.getRoute(vid), veh.getRouteIndex(vid)
        if index + 1 >= len(route):
            return
        try:
            self._avoid_street(vid, route[index + 1])
        except (WorldError, libsumo.TraCIException):
            return
        self.stats.turned_elsewhere += 1

    def _hold_short(self, vid: str, waited_s: float) -> None:
        """Meso: a robotaxi held in a queue that rerouting did not free (SUMO's wait
        `waited_s` two stuck checks short of its time-to-teleport) ends its leg at the end
        of the street it is on and stands there, rather than be teleported by SUMO; its
        DriveTo comes back as failed from the next `apply`, so that the fleet sends it
        elsewhere. (A car already on its target's street cannot end sooner: left as is.)"""
        assert self._meso is not None
        with self._quiet or contextlib.nullcontext():
            try:
                goal = self._meso.hold_short(vid)
            except (libsumo.TraCIException, WorldError):
                return  # e.g. inside a junction: the next check tries again
        if goal is None:
            return
        self._slow_since.pop(vid, None)
        self.stats.held_short += 1
        here = self._meso.road_of(vid)
        street = self.road_map.edges[goal.edge].name if goal.edge in self.road_map.edges else ""
        self._given_up.append(
            CommandFailure(
                DriveTo(vid, goal.edge, goal.pos, goal.lane),
                f"held in a queue on {here} for {waited_s:.0f} s: stopped short of "
                f"{street or goal.edge}",
            )
        )

    # --- stepping -----------------------------------------------------------------------

    def step(self) -> None:
        """One tick: `tick_steps` of SUMO's steps (what each reports is taken in), then the
        checks that look at the robotaxis and ambulances as they are now."""
        # meso: SUMO's warnings go to its log, not the console (`sumo_log`), muted once for
        # the tick's steps rather than around each
        with self._quiet or contextlib.nullcontext():
            for _ in range(self.config.tick_steps):
                self._sumo_step()
        if self._quiet is not None:
            # meso leaves its teleports out of the step's list; its statistics count them
            self.stats.teleports = int(libsumo.simulation.getParameter("", "stats.teleports.total"))
        if self.config.route_around_jams and self._time_s % _STUCK_CHECK_S < self.config.tick_s:
            self._reroute_stuck()
        if self.config.clear_way_for_emergency:
            self._clear_way()
        # meso's signals are a delay from their green split (`--meso-tls-penalty`), not their
        # phases, and libsumo has no getNextTLS there: pre-emption needs micro
        if (
            self.config.emergency_preemption
            and self._meso is None
            and (self._active_evs or self._preempted)
        ):
            self._preempt_signals()

    def _sumo_step(self) -> None:
        """One SUMO step, and the cars it reports teleported, departed and arrived."""
        libsumo.simulation.step()
        self._time_s = libsumo.simulation.getTime()
        sim = libsumo.simulation.getSubscriptionResults()
        teleported = sim.get(tc.VAR_TELEPORT_STARTING_VEHICLES_IDS, ())
        self.stats.teleports += len(teleported)
        for vid in teleported:
            if vid in self._robotaxi_set:
                self.stats.robotaxi_teleports += 1
                row = self._last_rows.get(vid) or self._held_rows.get(vid) or {}
                edge = str(row.get(tc.VAR_ROAD_ID, ""))
                street = self.road_map.edges[edge].name if edge in self.road_map.edges else ""
                place = f"{street} ({edge})" if street else edge
                self.stats.robotaxi_teleport_places.append((self._time_s, vid, place))
        departed = sim.get(tc.VAR_DEPARTED_VEHICLES_IDS, ())
        self.stats.departed += len(departed)
        for vid in departed:
            if vid in self.emergency:
                self.emergency[vid].depart_at = self.time
                self._active_evs.add(vid)
                libsumo.vehicle.subscribe(vid, self._car_vars)
                if self.config.clear_way_for_emergency:
                    libsumo.vehicle.subscribeContext(
                        vid, tc.CMD_GET_VEHICLE_VARIABLE, self.config.clear_way_range_m,
                        _CONTEXT_VARS,
                    )  # fmt: skip
            elif vid in self._probe_of:
                self.emergency[self._probe_of[vid]].probe_depart_at = self.time
        for vid in sim.get(tc.VAR_ARRIVED_VEHICLES_IDS, ()):
            if vid in self.emergency:
                self.emergency[vid].arrive_at = self.time
                self._active_evs.discard(vid)
            elif vid in self._probe_of:
                self.emergency[self._probe_of[vid]].probe_arrive_at = self.time
            elif vid in self._robotaxi_set:
                if self._meso is not None:  # at its kerb: it stands there out of SUMO
                    self._meso.arrived(vid)
                else:
                    self.stats.failures.append(
                        f"{self._time_s:.0f}s robotaxi {vid} left the network"
                    )
            self._cleared.pop(vid, None)

    def _preempt_signals(self) -> None:
        """Emergency pre-emption, as the city's equipped signals do it: an ambulance with its
        siren on that comes within `preemption_range_m` of such a signal gets the green on
        its approach and every other movement red, until it has passed the signal; then the
        signal goes back to its programme."""
        tls = libsumo.trafficlight
        wanted: dict[str, tuple[str, str]] = {}  # signal → (ambulance, its incoming edge)
        for ev in sorted(self._active_evs):
            try:
                upcoming = libsumo.vehicle.getNextTLS(ev)
            except libsumo.TraCIException:
                continue
            if not upcoming:
                continue
            tls_id, link_index, distance, _state = upcoming[0]
            if distance > self.config.preemption_range_m:
                continue
            if self._preemption_signals is not None and tls_id not in self._preemption_signals:
                continue
            if tls_id in wanted:
                continue  # the first ambulance to call a signal holds it
            links = tls.getControlledLinks(tls_id)
            if link_index >= len(links) or not links[link_index]:
                continue
            wanted[tls_id] = (ev, _edge_of_lane(links[link_index][0][0]))
        for tls_id in [t for t in self._preempted if t not in wanted]:
            tls.setProgram(tls_id, self._preempted.pop(tls_id).program)  # back to its plan
        for tls_id, (ev, edge) in wanted.items():
            held = self._preempted.get(tls_id)
            if held is not None and (held.ev, held.edge) == (ev, edge):
                if held.clear_until_s is not None and self._time_s >= held.clear_until_s:
                    tls.setRedYellowGreenState(tls_id, held.state)  # clearance over: green
                    self._preempted[tls_id] = replace(held, clear_until_s=None)
                continue
            links = tls.getControlledLinks(tls_id)
            state = "".join(
                "G" if group and _edge_of_lane(group[0][0]) == edge else "r" for group in links
            )
            # movements losing their green get the amber first, as real pre-emption does
            now = tls.getRedYellowGreenState(tls_id)
            amber = "".join(
                "y" if old in "Gg" and new == "r" else (old if new == "G" else new)
                for old, new in zip(now, state, strict=False)
            )
            program = held.program if held is not None else tls.getProgram(tls_id)
            if amber != state and "y" in amber:
                tls.setRedYellowGreenState(tls_id, amber)
                clear_until: float | None = self._time_s + PREEMPTION_AMBER_S
            else:
                tls.setRedYellowGreenState(tls_id, state)
                clear_until = None
            self._preempted[tls_id] = _Preemption(ev, edge, program, state, clear_until)
            self.stats.preemptions += 1

    def _clear_way(self) -> None:
        """Background cars ahead of an ambulance on its route pull over until it has passed."""
        veh = libsumo.vehicle
        ev_state: dict[str, tuple[str, float, int]] = {}
        for ev in self._active_evs:
            res = veh.getSubscriptionResults(ev)
            if not res:
                continue
            road, pos = res[tc.VAR_ROAD_ID], res[tc.VAR_LANEPOSITION]
            route = self._ev_route[ev]
            idx = route.index(road) if road in route else -1
            ev_state[ev] = (road, pos, idx)
            if idx < 0:
                continue
            ahead_edges = set(route[idx : idx + 2])
            for vid, ctx in veh.getContextSubscriptionResults(ev).items():
                if vid == ev or vid in self._cleared or vid in self._robotaxi_set:
                    continue
                if vid in self.emergency:
                    continue
                road_v = ctx[tc.VAR_ROAD_ID]
                if road_v not in ahead_edges or (
                    road_v == road and ctx[tc.VAR_LANEPOSITION] <= pos
                ):
                    continue
                speed = ctx[tc.VAR_SPEED]
                stop_pos = ctx[tc.VAR_LANEPOSITION] + speed * speed / (2 * 4.5) + 2.0
                lane_index = ctx[tc.VAR_LANE_INDEX]
                lane_id = f"{road_v}_{lane_index}"
                lane = self.road_map.lanes.get(lane_id)
                if lane is None or stop_pos >= lane.length - 0.5:
                    continue
                try:
                    veh.setStop(
                        vid, road_v, pos=stop_pos, laneIndex=lane_index,
                        duration=PARK_FOREVER_S, flags=tc.STOP_PARKING,
                        startPos=max(0.0, stop_pos - 20.0),
                    )  # fmt: skip
                except libsumo.TraCIException:
                    continue
                self._cleared[vid] = _ClearedCar(vid, ev, self._time_s)
                self.stats.cleared_for_ev += 1
        # let cars go once their ambulance is past them (or gone, or after a minute)
        for vid, cleared in list(self._cleared.items()):
            state = ev_state.get(cleared.for_ev)
            done = state is None or self._time_s - cleared.since_s > 60.0
            if not done and state is not None:
                try:
                    road_v = veh.getRoadID(vid)
                except libsumo.TraCIException:
                    road_v = ""
                route = self._ev_route[cleared.for_ev]
                if road_v in route and state[2] >= 0:
                    ridx = route.index(road_v)
                    done = state[2] > ridx or (
                        state[2] == ridx and state[1] > veh.getLanePosition(vid) + 8.0
                    )
            if done:
                self._release(vid)

    def _release(self, vid: str) -> None:
        self._cleared.pop(vid, None)
        try:
            veh = libsumo.vehicle
            if veh.getStopState(vid) & 1:
                veh.resume(vid)
            else:
                stops = veh.getStops(vid)
                if stops:
                    veh.replaceStop(vid, 0, "")
        except libsumo.TraCIException:
            pass  # the car already left the network

    # --- autonomy fidelity: a car we drive ourselves -----------------------------------

    def add_vehicle(
        self,
        vehicle_id: str,
        edges: Sequence[str],
        *,
        type_id: str = CAR_TYPE,
        depart_pos: float = 0.0,
        lane: int = 0,
        speed: float = 0.0,
        max_speed: float | None = None,
        stop_at: float | None = None,
        stop_s: float = 0.0,
    ) -> None:
        """A scripted road user (a leader, an ambulance) that SUMO drives along `edges`,
        optionally capped at `max_speed` and halting `stop_s` at `stop_at` on its last edge."""
        route_id = f"route_{vehicle_id}"
        libsumo.route.add(route_id, list(edges))
        libsumo.vehicle.add(
            vehicle_id, route_id, typeID=type_id, depart="now", departPos=f"{depart_pos:.2f}",
            departLane=str(lane), departSpeed=f"{speed:.2f}",
        )  # fmt: skip
        if max_speed is not None:
            libsumo.vehicle.setMaxSpeed(vehicle_id, max_speed)
        if stop_at is not None:
            libsumo.vehicle.setStop(
                vehicle_id, edges[-1], pos=stop_at, laneIndex=lane, duration=stop_s
            )
        if type_id == AMBULANCE_TYPE:
            self.emergency[vehicle_id] = EmergencyRecord(vehicle_id, "", 0.0, self.time)
            self._ev_route[vehicle_id] = tuple(edges)
            self._active_evs.add(vehicle_id)
            libsumo.vehicle.subscribe(vehicle_id, _CAR_VARS)

    def add_ego(
        self,
        vehicle_id: str,
        edges: Sequence[str],
        *,
        depart_pos: float,
        lane: int,
        speed: float = 0.0,
        sense_radius_m: float = 120.0,
    ) -> None:
        """The autonomous car: SUMO places it, then only `MoveEgo` moves it. Refused in meso
        (no lanes or lateral positions to place it on)."""
        if self._meso is not None:
            raise WorldError(MESO_NO_AUTONOMY)
        self.add_vehicle(
            vehicle_id, edges, type_id=ROBOTAXI_TYPE, depart_pos=depart_pos, lane=lane, speed=speed
        )
        libsumo.vehicle.setSpeedMode(vehicle_id, 0)
        libsumo.vehicle.setLaneChangeMode(vehicle_id, 0)
        libsumo.vehicle.subscribeContext(
            vehicle_id, tc.CMD_GET_VEHICLE_VARIABLE, sense_radius_m, _EGO_CONTEXT_VARS
        )
        self._egos.add(vehicle_id)

    def _take_over(self, vehicle_id: str, sense_radius_m: float = 120.0) -> None:
        """Drive a robotaxi placed by `add_robotaxi` ourselves from now on, as an ego: SUMO
        keeps it parked where it is until `UnparkEgo`, and only `MoveEgo` moves it."""
        libsumo.vehicle.setSpeedMode(vehicle_id, 0)
        libsumo.vehicle.setLaneChangeMode(vehicle_id, 0)
        libsumo.vehicle.subscribeContext(
            vehicle_id, tc.CMD_GET_VEHICLE_VARIABLE, sense_radius_m, _EGO_CONTEXT_VARS
        )
        self._egos.add(vehicle_id)

    def _hand_back(self, vehicle_id: str) -> None:
        """Let SUMO drive an ego again (its default speed and lane-change rules), e.g. for a
        leg our planner has no route for; `apply` then commands it like any robotaxi."""
        libsumo.vehicle.setSpeedMode(vehicle_id, _SUMO_SPEED_MODE)
        libsumo.vehicle.setLaneChangeMode(vehicle_id, _SUMO_LANE_CHANGE_MODE)
        libsumo.vehicle.unsubscribeContext(vehicle_id, tc.CMD_GET_VEHICLE_VARIABLE, 0.0)
        self._egos.discard(vehicle_id)

    def _move_ego(
        self, vehicle_id: str, x: float, y: float, heading: float, speed: float, lane_id: str = ""
    ) -> None:
        """Put the ego where our vehicle model says it is (x, y of its front bumper centre,
        as SUMO positions vehicles), and tell SUMO its speed so followers react to it."""
        edge, lane_index = "", -1
        if lane_id and lane_id in self.road_map.lanes:
            edge, lane_index = (
                self.road_map.lanes[lane_id].edge_id,
                self.road_map.lanes[lane_id].index,
            )
        angle = (90.0 - math.degrees(heading)) % 360.0
        libsumo.vehicle.moveToXY(vehicle_id, edge, lane_index, x, y, angle=angle, keepRoute=2)
        self._moved.add(vehicle_id)
        libsumo.vehicle.setPreviousSpeed(vehicle_id, max(speed, 0.0))

    def _park_ego(self, vehicle_id: str) -> None:
        """Take the (stopped) ego off its lane so an ambulance can pass (SUMO-NOTES recipe)."""
        veh = libsumo.vehicle
        road = veh.getRoadID(vehicle_id)
        if road.startswith(":") or road not in self.road_map.edges:
            raise WorldError(f"{vehicle_id} cannot park inside a junction")
        pos = veh.getLanePosition(vehicle_id)
        veh.setStop(
            vehicle_id, road, pos=pos, laneIndex=veh.getLaneIndex(vehicle_id),
            startPos=max(0.0, pos - 10.0), duration=PARK_FOREVER_S, flags=tc.STOP_PARKING,
        )  # fmt: skip

    def _unpark_ego(self, vehicle_id: str) -> None:
        if libsumo.vehicle.getStopState(vehicle_id) & 1:
            libsumo.vehicle.resume(vehicle_id)
        else:
            for _ in range(len(libsumo.vehicle.getStops(vehicle_id))):
                libsumo.vehicle.replaceStop(vehicle_id, 0, "")

    def surroundings(self, vehicle_id: str) -> list[AgentState]:
        """Ground truth of the road users near an ego (its context subscription), ego excluded."""
        out: list[AgentState] = []
        for vid, res in libsumo.vehicle.getContextSubscriptionResults(vehicle_id).items():
            if vid == vehicle_id:
                continue
            is_ev = res[tc.VAR_TYPE] == AMBULANCE_TYPE
            heading = sumo_heading(res[tc.VAR_ANGLE])
            length = float(res[tc.VAR_LENGTH])
            fx, fy = res[tc.VAR_POSITION]
            # SUMO's position is the front bumper; our agents are centred on their footprint
            out.append(
                AgentState(
                    agent_id=vid,
                    kind=AgentKind.EMERGENCY if is_ev else AgentKind.CAR,
                    x=fx - 0.5 * length * math.cos(heading),
                    y=fy - 0.5 * length * math.sin(heading),
                    heading=heading,
                    speed=float(res[tc.VAR_SPEED]),
                    length=length,
                    width=float(res[tc.VAR_WIDTH]),
                    lane_id=res[tc.VAR_LANE_ID],
                    lane_pos=float(res[tc.VAR_LANEPOSITION]),
                    siren=SirenState.ON if is_ev else SirenState.OFF,
                )
            )
        return sorted(out, key=lambda a: a.agent_id)

    def signal_states(self) -> dict[str, str]:
        """'<tls id>:<link index>' → SUMO's state character for every signalised link."""
        states: dict[str, str] = {}
        for tls in self.road_map.traffic_lights:
            for i, ch in enumerate(libsumo.trafficlight.getRedYellowGreenState(tls)):
                states[f"{tls}:{i}"] = ch
        return states

    def collisions(self) -> list[tuple[str, str]]:
        """Pairs (collider, victim) SUMO reported in the last step."""
        return [(c.collider, c.victim) for c in libsumo.simulation.getCollisions()]

    # --- reading ------------------------------------------------------------------------

    def snapshot(self) -> WorldSnapshot:
        """Robotaxis and active ambulances, read from this step's subscriptions; with cars our
        stack drives, also what is around each of them, the signals and the collisions."""
        results = libsumo.vehicle.getAllSubscriptionResults()
        if self._meso is not None:
            cars = self._meso.read()  # meso's robotaxis are read, not subscribed
            self._last_rows = {**results, **cars}
            return self._meso_snapshot(results, cars)
        self._last_rows = results
        ids = [v for v in self.robotaxis] + sorted(self._active_evs)
        rows: list[dict[int, Any]] = []
        kinds: list[AgentKind] = []
        keep: list[str] = []
        held = self._held_rows
        meso = self._meso
        for vid in ids:
            res = results.get(vid)
            if meso is not None and vid in self._robotaxi_set:
                res = meso.report(vid, res or None)
                if res is None:
                    continue
            elif res:
                if vid in held:
                    del held[vid]  # awake and reporting again
                elif (
                    res.get(tc.VAR_STOPSTATE, 0) & _PARKED == _PARKED
                    and res[tc.VAR_SPEED] == 0.0
                    and vid in self._robotaxi_set
                    and vid not in self._egos
                    and vid not in self._moved
                ):
                    self._doze(vid, res)
            else:
                res = held.get(vid)
                if not res:
                    continue
            keep.append(vid)
            rows.append(res)
            kinds.append(AgentKind.EMERGENCY if vid in self.emergency else AgentKind.ROBOTAXI)
        n = len(keep)
        xy = np.array([r[tc.VAR_POSITION] for r in rows], dtype=float).reshape(n, 2)
        heading = np.array([sumo_heading(r[tc.VAR_ANGLE]) for r in rows], dtype=float)
        length = np.where(
            np.array([k == AgentKind.EMERGENCY for k in kinds], dtype=bool),
            AMBULANCE_LENGTH_M,
            self.fleet_config.vehicle_length_m,
        )
        width = np.where(
            np.array([k == AgentKind.EMERGENCY for k in kinds], dtype=bool),
            AMBULANCE_WIDTH_M,
            self.fleet_config.vehicle_width_m,
        )
        return WorldSnapshot(
            time=self.time,
            ids=tuple(keep),
            kinds=tuple(kinds),
            xy=xy,
            heading=heading,
            speed=np.array([r[tc.VAR_SPEED] for r in rows], dtype=float),
            length=np.asarray(length, dtype=float).reshape(n),
            width=np.asarray(width, dtype=float).reshape(n),
            lane_ids=tuple(r[tc.VAR_LANE_ID] for r in rows),
            lane_pos=np.array([r[tc.VAR_LANEPOSITION] for r in rows], dtype=float),
            sirens=tuple(k == AgentKind.EMERGENCY for k in kinds),
            signals=self.signal_states() if self._egos else {},
            teleports=self.stats.teleports,
            around={ego: tuple(self.surroundings(ego)) for ego in sorted(self._egos)},
            collisions=tuple(self.collisions()) if self._egos else (),
            road_ids=tuple(r[tc.VAR_ROAD_ID] for r in rows),
            stopped=tuple(bool(r.get(tc.VAR_STOPSTATE, 0) & 1) for r in rows),
            odometer_m=np.array([max(r.get(tc.VAR_DISTANCE, 0.0), 0.0) for r in rows], dtype=float),
        )

    def _meso_snapshot(
        self, results: dict[str, dict[int, Any]], cars: dict[str, dict[int, Any]]
    ) -> WorldSnapshot:
        """`snapshot` in meso: the robotaxis from the fleet's table (`cars`: the rows of those
        in SUMO; a car at the kerb is not read again until it leaves), then the ambulances
        (`results`: this step's subscriptions); no cars our stack drives."""
        assert self._meso is not None
        t = self._meso.update(cars)
        evs = [ev for ev in sorted(self._active_evs) if results.get(ev)]
        rows = [results[ev] for ev in evs]
        n = t.n
        if t.present[:n].all():
            ids, roads, lanes, stopped = t.id_tuple, t.roads, t.lanes, t.stopped
            xy, heading, speed = t.xy[:n], t.heading[:n], t.speed[:n]
            lane_pos, odometer = t.lane_pos[:n], t.odometer[:n]
        else:  # a car SUMO lost: left out, as in micro
            keep = np.flatnonzero(t.present[:n])
            picked = keep.tolist()
            ids = tuple(_pick(t.ids, picked))
            roads, lanes = _pick(t.roads, picked), _pick(t.lanes, picked)
            stopped = _pick(t.stopped, picked)
            xy, heading, speed = t.xy[keep], t.heading[keep], t.speed[keep]
            lane_pos, odometer = t.lane_pos[keep], t.odometer[keep]
        n_cars, n_ev = len(ids), len(evs)
        # (concatenate copies the table's columns: the snapshot keeps this step's rows)
        return WorldSnapshot(
            time=self.time,
            ids=(*ids, *evs),
            kinds=(AgentKind.ROBOTAXI,) * n_cars + (AgentKind.EMERGENCY,) * n_ev,
            xy=np.concatenate(
                [xy, np.array([r[tc.VAR_POSITION] for r in rows], dtype=float).reshape(n_ev, 2)]
            ),
            heading=np.concatenate(
                [heading, np.array([sumo_heading(r[tc.VAR_ANGLE]) for r in rows], dtype=float)]
            ),
            speed=np.concatenate([speed, np.array([r[tc.VAR_SPEED] for r in rows], dtype=float)]),
            length=np.concatenate(
                [
                    np.full(n_cars, float(self.fleet_config.vehicle_length_m)),
                    np.full(n_ev, AMBULANCE_LENGTH_M),
                ]
            ),
            width=np.concatenate(
                [
                    np.full(n_cars, float(self.fleet_config.vehicle_width_m)),
                    np.full(n_ev, AMBULANCE_WIDTH_M),
                ]
            ),
            lane_ids=(*lanes, *(r.get(tc.VAR_LANE_ID, "") for r in rows)),
            lane_pos=np.concatenate(
                [lane_pos, np.array([r[tc.VAR_LANEPOSITION] for r in rows], dtype=float)]
            ),
            sirens=(False,) * n_cars + (True,) * n_ev,
            signals={},
            teleports=self.stats.teleports,
            around={},
            collisions=(),
            road_ids=(*roads, *(r[tc.VAR_ROAD_ID] for r in rows)),
            stopped=(*stopped, *(bool(r.get(tc.VAR_STOPSTATE, 0) & 1) for r in rows)),
            odometer_m=np.concatenate(
                [
                    odometer,
                    np.array([max(r.get(tc.VAR_DISTANCE, 0.0), 0.0) for r in rows], dtype=float),
                ]
            ),
        )

    def vehicle_count(self) -> int:
        return int(libsumo.vehicle.getIDCount())

    def vehicles_near(self, vehicle_id: str, radius_m: float) -> tuple[AgentState, ...]:
        """Road users within `radius_m` of a vehicle now, nearest first (`world.nearby`)."""
        from robotaxi.world.nearby import vehicles_near

        return vehicles_near(self, vehicle_id, radius_m)

    def person_count(self) -> int:
        """People in the simulation now (SUMO's taxi riders, waiting or riding)."""
        return int(libsumo.person.getIDCount())

    def edge_travel_times(self, edges: Sequence[str]) -> dict[str, float]:
        """SUMO's current travel-time estimate per edge (s), for routing and ETAs."""
        if self._meso is None:
            return dict(zip(edges, map(libsumo.edge.getTraveltime, edges), strict=True))
        return self._meso_travel_times(edges)

    def _meso_travel_times(self, edges: Sequence[str]) -> dict[str, float]:
        """`edge_travel_times` in meso, asking SUMO only about the streets with cars on them
        now and those not seen empty before (the whole city has ~29,000 streets and reading
        each cost ~20 ms a call; at night a few hundred hold a car). In meso an empty street's
        time is its length over its empty-street speed: `T` (its free travel time, signal
        delay included) until a car has used it, then `L / (L / T)` (SUMO 1.28, `MSEdge::
        getCurrentTravelTime`). A street read while empty is kept when that value `t` is a fixed
        point, `L / (L / t) == t`: then the two agree (or the street was used already and
        stays at `t`), and the kept value is what SUMO would say while it stays empty."""
        kept = self._empty_travel_time
        if kept is None or (kept[0] is not edges and kept[0] != tuple(edges)):
            # per street of `edges`, in their order: its kept time (NaN: none yet)
            index = {edge: i for i, edge in enumerate(edges)}
            kept = self._empty_travel_time = (tuple(edges), index, np.full(len(edges), np.nan))
        _, index, empty_s = kept
        veh, travel_time = libsumo.vehicle, libsumo.edge.getTraveltime
        occupied = {index[e] for e in map(veh.getRoadID, veh.getIDList()) if e in index}
        times_s = empty_s.copy()
        for i in occupied.union(np.flatnonzero(np.isnan(empty_s)).tolist()):
            edge = edges[i]
            seconds = times_s[i] = travel_time(edge)
            if i not in occupied and 0.0 < seconds < math.inf:
                # SUMO's length of a street is that of its lane 0
                metres = libsumo.lane.getLength(f"{edge}_0")
                if metres / (metres / seconds) == seconds:
                    empty_s[i] = seconds
        return dict(zip(edges, times_s.tolist(), strict=True))
