"""A scenario's own SUMO network and traffic as a `World`: CommonRoad's interactive scenarios.

An interactive CommonRoad scenario (the `sumocr` format) is a folder with the SUMO network
(`.net.xml`), its traffic (`.vehicles.rou.xml`), vehicle types (`.add.xml`), a `.sumo.cfg`
and `simulation_config.p`, sumocr's settings pickled. `read_scenario_sumo` reads those files
(the pickle through a loader that builds nothing but plain records, so no code in it runs);
`ScenarioSumoWorld` runs the traffic in SUMO as sumocr does (sublane model at the configured
lateral resolution, the scenario's seed, no teleports) with one car of ours in it, placed
with `moveToXY` each step (`MoveEgo`) so that SUMO's drivers react to it.

Time: sumocr steps SUMO `presimulation_steps` times before the scenario's time step 0 (its
cars depart at the first step and appear after the second), so scenario step k is SUMO time
(k + presimulation_steps) · dt. Space: the network's `netOffset` is added to the scenario's
coordinates (it is 0, 0 in every scenario shipped).
"""

from __future__ import annotations

import math
import os
import pickle
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libsumo
import numpy as np
from libsumo import constants as tc

from robotaxi.core import (
    AgentKind,
    AgentState,
    CommandFailure,
    DataNotFoundError,
    EmergencyRecord,
    MoveEgo,
    ScenarioError,
    TimePoint,
    VehicleCommand,
    WorldError,
    WorldSnapshot,
    WorldStats,
)
from robotaxi.world.sumo_world import claim_sumo, close_sumo
from robotaxi.world.traffic import sumo_env, sumo_heading

_VARS = [
    tc.VAR_POSITION,
    tc.VAR_ANGLE,
    tc.VAR_SPEED,
    tc.VAR_LENGTH,
    tc.VAR_WIDTH,
    tc.VAR_LANE_ID,
    tc.VAR_LANEPOSITION,
]
# sumocr's defaults, used where a scenario's simulation_config.p does not say
DEFAULT_PRESIMULATION_STEPS = 0
DEFAULT_LATERAL_RESOLUTION_M = 0.0
DEFAULT_SEED = 1234


@dataclass(frozen=True)
class ScenarioSumoFiles:
    """One interactive scenario's SUMO inputs and sumocr settings (times in s, lengths in m)."""

    name: str
    folder: Path
    net_file: Path
    route_files: tuple[Path, ...]
    additional_files: tuple[Path, ...]
    step_s: float
    presimulation_steps: int
    lateral_resolution_m: float
    seed: int
    # x_net = x_scenario + offset (the network's `location netOffset`)
    net_offset: tuple[float, float]
    settings: Mapping[str, Any] = field(default_factory=dict)


class _Record:
    """Whatever class the pickle names: its arguments and state, nothing executed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.__dict__.update(state)


class _RecordUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return type(name, (_Record,), {"__module__": "pickled." + module})


def read_sumocr_settings(path: Path) -> dict[str, Any]:
    """sumocr's pickled `DefaultConfig` as a dict of its plain values (numbers, strings,
    bools); nested objects stay records. Raises `ScenarioError` if it is not such a pickle."""
    try:
        with path.open("rb") as fh:
            obj = _RecordUnpickler(fh).load()
    except (pickle.UnpicklingError, EOFError, OSError, ValueError) as exc:
        raise ScenarioError(f"cannot read sumocr settings {path}: {exc}") from None
    state = getattr(obj, "__dict__", obj)
    if not isinstance(state, dict):
        raise ScenarioError(f"{path} holds no sumocr settings object")
    return {k: v for k, v in state.items() if isinstance(k, str)}


def net_offset(net_file: Path) -> tuple[float, float]:
    """The `netOffset` of a SUMO network's `location` element (m)."""
    for _event, elem in ET.iterparse(net_file, events=("start",)):
        if elem.tag == "location":
            ox, oy = (float(v) for v in elem.get("netOffset", "0,0").split(","))
            return ox, oy
    return 0.0, 0.0


def read_scenario_sumo(folder: Path) -> ScenarioSumoFiles:
    """The SUMO files of the interactive scenario in `folder` (its `.sumo.cfg` names them).
    Raises `DataNotFoundError` for a missing folder or file."""
    folder = Path(folder)
    name = folder.name
    cfg = folder / f"{name}.sumo.cfg"
    if not cfg.is_file():
        raise DataNotFoundError(f"interactive scenario {name}: no {cfg.name} in {folder}")
    root = ET.parse(cfg).getroot()

    def value(tag: str) -> str:
        elem = root.find(f".//{tag}")
        return "" if elem is None else elem.get("value", "")

    def files(tag: str) -> tuple[Path, ...]:
        return tuple(folder / f for f in value(tag).split(",") if f.strip())

    net = folder / value("net-file")
    # pedestrians files are empty `<routes/>` stand-ins in this data; they are kept as named
    routes = files("route-files")
    additional = files("additional-files")
    for path in (net, *routes, *additional):
        if not path.is_file():
            raise DataNotFoundError(f"interactive scenario {name}: {path} not found")
    settings_file = folder / "simulation_config.p"
    settings = read_sumocr_settings(settings_file) if settings_file.is_file() else {}
    step_s = float(value("step-length") or settings.get("dt", 0.1))
    return ScenarioSumoFiles(
        name=name,
        folder=folder,
        net_file=net,
        route_files=routes,
        additional_files=additional,
        step_s=step_s,
        presimulation_steps=int(settings.get("presimulation_steps", DEFAULT_PRESIMULATION_STEPS)),
        lateral_resolution_m=float(
            settings.get("lateral_resolution", DEFAULT_LATERAL_RESOLUTION_M)
        ),
        seed=int(settings.get("random_seed", DEFAULT_SEED)),
        net_offset=net_offset(net),
        settings={k: v for k, v in settings.items() if isinstance(v, int | float | str | bool)},
    )


@dataclass(frozen=True)
class EgoStart:
    """Where our car enters: front-bumper centre (m, scenario frame), heading (rad), speed
    (m/s), its size (m) and hardest braking (m/s²), which SUMO's drivers behind it assume."""

    x: float
    y: float
    heading: float
    speed: float
    length_m: float
    width_m: float
    max_brake_mps2: float


def _sumo_angle(heading: float) -> float:
    return (90.0 - math.degrees(heading)) % 360.0


class ScenarioSumoWorld:
    """A scenario's SUMO traffic and one car of ours (`ego_id`), for the runner.

    `start` runs SUMO to just before the ego's first step and puts the ego in; each `step` is one
    scenario step; `snapshot().around[ego_id]` is every other vehicle (footprint centres,
    scenario frame); `apply` takes `MoveEgo` for the ego (others fail: nothing else here is
    ours). Per step it also keeps the ego's follower in SUMO (`followers`), the evidence that
    traffic reacts to our car."""

    def __init__(
        self,
        files: ScenarioSumoFiles,
        ego_id: str,
        ego: EgoStart | None,
        *,
        first_step: int = 0,
        follower_range_m: float = 50.0,
    ) -> None:
        """`ego` None: the scenario's traffic alone (what it does without our car);
        `first_step`: the scenario step at which the ego enters (the runner's first tick);
        `follower_range_m`: how far behind the ego a car counts as its follower (m)."""
        if first_step < 0:
            raise ScenarioError(f"{files.name}: the ego cannot enter before step 0")
        self.files = files
        self.first_step = first_step
        self.follower_range_m = follower_range_m
        self.ego_id = ego_id
        self.ego_start = ego
        self.stats = WorldStats()
        self.followers: list[tuple[float, str, float]] = []  # (SUMO time s, id, gap m)
        self._time_s = 0.0
        self._started = False
        self._subscribed: set[str] = set()

    @property
    def emergency(self) -> dict[str, EmergencyRecord]:
        return {}

    @property
    def time(self) -> TimePoint:
        return TimePoint.from_s(self._time_s)

    @property
    def scenario_step(self) -> int:
        """The scenario's time step the world is at now."""
        return round(self._time_s / self.files.step_s) - self.files.presimulation_steps

    def command(self) -> list[str]:
        f = self.files
        cmd = [
            "sumo", "-n", str(f.net_file),
            "--step-length", f"{f.step_s}",
            "--seed", str(f.seed),
            "--time-to-teleport", "-1",
            "--no-step-log", "true", "--no-warnings", "true",
            "--ignore-route-errors", "true",
            # only real overlaps are collisions; SUMO warns and drives on (CommonRoad judges)
            "--collision.action", "warn",
            "--collision.mingap-factor", "0",
            "--collision.check-junctions", "true",
        ]  # fmt: skip
        if f.route_files:
            cmd += ["-r", ",".join(str(p) for p in f.route_files)]
        if f.additional_files:
            cmd += ["--additional-files", ",".join(str(p) for p in f.additional_files)]
        if f.lateral_resolution_m > 0:
            cmd += ["--lateral-resolution", f"{f.lateral_resolution_m}"]
        return cmd

    def start(self) -> None:
        claim_sumo()
        os.environ.setdefault("SUMO_HOME", sumo_env()["SUMO_HOME"])
        try:
            libsumo.start(self.command())
        except libsumo.TraCIException as exc:
            raise WorldError(f"SUMO did not start for {self.files.name}: {exc}") from None
        self._started = True
        libsumo.simulation.subscribe(
            [tc.VAR_DEPARTED_VEHICLES_IDS, tc.VAR_TELEPORT_STARTING_VEHICLES_IDS]
        )
        # the runner's first tick steps to `first_step`: run SUMO to the step before it
        for _ in range(max(self.files.presimulation_steps + self.first_step - 1, 0)):
            self.step()
        if self.ego_start is not None:
            self._add_ego(self.ego_start)

    def _add_ego(self, ego: EgoStart) -> None:
        veh = libsumo.vehicle
        ox, oy = self.files.net_offset
        x, y = ego.x + ox, ego.y + oy
        try:
            edge, pos, lane = libsumo.simulation.convertRoad(x, y)
        except libsumo.TraCIException:
            raise WorldError(f"{self.files.name}: the ego's start is off the network") from None
        route_id = f"route_{self.ego_id}"
        libsumo.route.add(route_id, [edge])
        veh.add(
            self.ego_id, route_id, typeID=self._ego_type(), depart="now",
            departPos=f"{max(pos, 0.0):.2f}", departLane=str(lane),
            departSpeed=f"{ego.speed:.3f}",
        )  # fmt: skip
        veh.setLength(self.ego_id, ego.length_m)
        veh.setWidth(self.ego_id, ego.width_m)
        # followers keep their gap assuming the leader brakes at most this hard (Krauss)
        veh.setDecel(self.ego_id, ego.max_brake_mps2)
        veh.setApparentDecel(self.ego_id, ego.max_brake_mps2)
        veh.setEmergencyDecel(
            self.ego_id, max(ego.max_brake_mps2, veh.getEmergencyDecel(self.ego_id))
        )
        veh.setSpeedMode(self.ego_id, 0)
        veh.setLaneChangeMode(self.ego_id, 0)
        # placed where it starts even if SUMO would find no room to insert it there
        veh.moveToXY(self.ego_id, "", -1, x, y, angle=_sumo_angle(ego.heading), keepRoute=2)
        veh.setPreviousSpeed(self.ego_id, ego.speed)

    def _ego_type(self) -> str:
        types = libsumo.vehicletype.getIDList()
        name = "passenger" if "passenger" in types else "DEFAULT_VEHTYPE"
        libsumo.vehicletype.copy(name, "robotaxi_ego")
        return "robotaxi_ego"

    def close(self) -> None:
        if not self._started:
            return
        moved = [self.ego_id] if self.ego_id in libsumo.vehicle.getIDList() else []
        close_sumo(moved, subscribed={self.ego_id})
        self._started = False

    def __enter__(self) -> ScenarioSumoWorld:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def step(self) -> None:
        libsumo.simulation.step()
        self._time_s = libsumo.simulation.getTime()
        sim = libsumo.simulation.getSubscriptionResults()
        teleported = sim.get(tc.VAR_TELEPORT_STARTING_VEHICLES_IDS, ())
        self.stats.teleports += len(teleported)
        for vid in sim.get(tc.VAR_DEPARTED_VEHICLES_IDS, ()):
            self.stats.departed += 1
            libsumo.vehicle.subscribe(vid, _VARS)
            self._subscribed.add(vid)
        if self.ego_id in self._subscribed:
            follower = libsumo.vehicle.getFollower(self.ego_id, self.follower_range_m)
            if follower and follower[0]:
                self.followers.append((self._time_s, follower[0], float(follower[1])))

    def snapshot(self) -> WorldSnapshot:
        """The ego's SUMO state as the one row of the vehicle table; every other vehicle in
        `around[ego_id]`, centred on its footprint, in the scenario frame."""
        ox, oy = self.files.net_offset
        results = libsumo.vehicle.getAllSubscriptionResults()
        others: list[AgentState] = []
        ego_row: dict[int, Any] | None = None
        for vid, res in sorted(results.items()):
            if not res:
                continue
            if vid == self.ego_id:
                ego_row = res
                continue
            heading = sumo_heading(res[tc.VAR_ANGLE])
            length = float(res[tc.VAR_LENGTH])
            fx, fy = res[tc.VAR_POSITION]
            others.append(
                AgentState(
                    agent_id=vid,
                    kind=AgentKind.CAR,
                    x=fx - ox - 0.5 * length * math.cos(heading),
                    y=fy - oy - 0.5 * length * math.sin(heading),
                    heading=heading,
                    speed=float(res[tc.VAR_SPEED]),
                    length=length,
                    width=float(res[tc.VAR_WIDTH]),
                    lane_id=res[tc.VAR_LANE_ID],
                    lane_pos=float(res[tc.VAR_LANEPOSITION]),
                )
            )
        rows = [ego_row] if ego_row is not None else []
        n = len(rows)
        return WorldSnapshot(
            time=self.time,
            ids=(self.ego_id,) * n,
            kinds=(AgentKind.ROBOTAXI,) * n,
            xy=np.array([(r[tc.VAR_POSITION][0] - ox, r[tc.VAR_POSITION][1] - oy) for r in rows])
            .reshape(n, 2),
            heading=np.array([sumo_heading(r[tc.VAR_ANGLE]) for r in rows]).reshape(n),
            speed=np.array([r[tc.VAR_SPEED] for r in rows], dtype=float).reshape(n),
            length=np.array([r[tc.VAR_LENGTH] for r in rows], dtype=float).reshape(n),
            width=np.array([r[tc.VAR_WIDTH] for r in rows], dtype=float).reshape(n),
            lane_ids=tuple(r[tc.VAR_LANE_ID] for r in rows),
            lane_pos=np.array([r[tc.VAR_LANEPOSITION] for r in rows], dtype=float).reshape(n),
            sirens=(False,) * n,
            teleports=self.stats.teleports,
            around={self.ego_id: tuple(others)},
            collisions=tuple(
                (c.collider, c.victim) for c in libsumo.simulation.getCollisions()
            ),
        )  # fmt: skip

    def apply(self, commands: Iterable[VehicleCommand]) -> list[CommandFailure]:
        failed: list[CommandFailure] = []
        ox, oy = self.files.net_offset
        for cmd in commands:
            if not isinstance(cmd, MoveEgo) or cmd.vehicle_id != self.ego_id:
                failed.append(CommandFailure(cmd, "a scenario world only moves its one ego"))
                continue
            try:
                libsumo.vehicle.moveToXY(
                    cmd.vehicle_id, "", -1, cmd.x + ox, cmd.y + oy,
                    angle=_sumo_angle(cmd.heading), keepRoute=2,
                )  # fmt: skip
                libsumo.vehicle.setPreviousSpeed(cmd.vehicle_id, max(cmd.speed, 0.0))
            except libsumo.TraCIException as exc:
                self.stats.command_failures += 1
                failed.append(CommandFailure(cmd, str(exc)))
        return failed

    def add_robotaxi(self, vehicle_id: str, curb_index: int) -> None:
        raise WorldError("a CommonRoad scenario's network has no kerb spots for robotaxis")

    def vehicle_count(self) -> int:
        return int(libsumo.vehicle.getIDCount())

    def edge_travel_times(self, edges: Sequence[str]) -> dict[str, float]:
        return {e: libsumo.edge.getTraveltime(e) for e in edges}

    def vehicles_near(self, vehicle_id: str, radius_m: float) -> tuple[AgentState, ...]:
        snapshot = self.snapshot()
        if vehicle_id != self.ego_id or not snapshot.ids:
            raise WorldError(f"vehicle {vehicle_id} is not ours in this scenario world")
        cx, cy = snapshot.xy[0]
        near = [
            a for a in snapshot.around[self.ego_id] if math.hypot(a.x - cx, a.y - cy) <= radius_m
        ]
        return tuple(sorted(near, key=lambda a: math.hypot(a.x - cx, a.y - cy)))
