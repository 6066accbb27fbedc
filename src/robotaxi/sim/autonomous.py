"""Fleet cars driven by our autonomy stack inside the live city (`robotaxi serve --autonomous`).

The fleet commands every car the same way (`drive_to` a curb spot, `pull_over`, `resume`);
for the cars named here, `AutonomousDriver` carries those commands out with an
`AutonomyStack` instead of SUMO, the way `robotaxi drive` drives one car in a scenario:

- a `drive_to` becomes a lane route (the car's edge → the routing graph's fastest edges →
  the target edge, plus one edge beyond so the planner can see past the stop) turned into a
  `ReferencePath`, with a curbside stop request at the curb spot;
- the live world steps in `world.step_s` (1 s); between two of its steps each car's stack
  runs at its own step (0.1 s), seeing SUMO's road users extrapolated at constant velocity
  from the last world step, and the bicycle model moves the car; `move_ego` tells SUMO
  where it went before the next world step, so traffic reacts to it;
- while standing at the kerb it is parked off its lane in SUMO (the SUMO-NOTES recipe of
  `sim/drive.py`), and while it waits at a reached stop only its perception runs;
- each world step, the car's position, odometer and "stopped at its stop" flag replace
  SUMO's in the snapshot the fleet reads, so the trip life cycle runs unchanged;
- with `mic_config`, the car has roof microphones as in `robotaxi drive`: every stack step
  the array renders the last step's sound of every ambulance with its siren on within
  `sensors.audio_range_m` (SUMO's ground truth, extrapolated between world steps like the
  other road users; a city block in between adds its loss) and the stack's siren detector
  listens; with `occluders`, the city blocks hide what is behind them from the cameras.

A rider's `pull_over` becomes a kerb stop just ahead; a `pull_over` the fleet sends for an
ambulance is left to the stack, which yields to emergency vehicles by itself. It also does
so when the fleet's range check sees no ambulance coming (a siren heard on a cross street):
`ev_stops()` tells the fleet which cars stand for an emergency vehicle by their own decision,
so that it records those yields too. A leg with no lane route (unreachable, or a turn the
map does not allow) is handed back to SUMO, logged, and taken over again once SUMO has
parked the car at the end of that leg.

Remote assistance's answers arrive as commands: "another way" plans the leg again without
the blocked street; "pass opposite" gives the stack leave to cross a solid centre line;
"this lane is closed" (`LaneClosed`) is taken only where a lane beside the car's own on its
street leads on along its way, and only with room to steer out round what blocks its lane
(the car cannot back up: `planning.steer_out`, about 5 m; its stack stops that far behind a
standing road user for this reason): the car holds where it stands until the gap in
that lane is acceptable (`planning.lane_change`, from its own predictions), then drives a
lane route that moves over there at once and keeps to it to the end of the street
(`planning.route.LaneSwitch`).
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from robotaxi.autonomy.planning.behaviour import Behaviour
from robotaxi.autonomy.planning.lane_change import lane_change_gap_ok
from robotaxi.autonomy.planning.reference import ReferencePath
from robotaxi.autonomy.planning.route import (
    LaneRoute,
    LaneSwitch,
    closed_lane_switch,
    lane_centre_path,
    reference_path,
)
from robotaxi.autonomy.planning.steer_out import room_to_steer_out
from robotaxi.autonomy.stack import AutonomyStack, Planner
from robotaxi.autonomy.vehicle import IPACE, VehicleState, front_bumper
from robotaxi.config.scenario import SensorsSpec
from robotaxi.config.sensors import MicArrayConfig
from robotaxi.core import (
    AgentState,
    CommandFailure,
    DriveTo,
    HandBack,
    PullOver,
    PullOverReason,
    Resume,
    ScenarioError,
    TakeOver,
    TimePoint,
    UnparkEgo,
    VehicleCommand,
    World,
    WorldSnapshot,
    YieldBasis,
    emergency_agents,
)
from robotaxi.core.commands import AvoidStreet, LaneClosed, PassOpposite
from robotaxi.core.types import Track
from robotaxi.fleet.manager import EvStop
from robotaxi.map import RoadMap, RoutingGraph
from robotaxi.sim.drive import EV_REACTIONS, default_planner
from robotaxi.sim.ego import KERB_BEHAVIOURS, EgoCar
from robotaxi.sim.scenario_operator import (
    HELD_BY_LINE_NOTE,
    held_by_line,
    lanes_beside_closed,
    leave_span,
)
from robotaxi.sim.sensors import CarSensors
from robotaxi.sim.sensors.cameras import StaticOccluders

log = logging.getLogger(__name__)

STACK_STEP_S = 0.1
STOPPED_BELOW_MPS = 0.1
AT_STOP_M = 3.0  # the footprint centre this near the requested stop counts as there
CURB_MARGIN_M = 0.5  # gap to the kerb of a car standing there (as the behaviour layer keeps)
PULL_OVER_DECEL_MPS2 = 2.0
PULL_OVER_EXTRA_M = 10.0
LANE_END_CLEAR_M = 8.0  # a pull-over stop keeps this far from either end of a lane
LOOP_MARGIN_M = 15.0  # a target on our edge closer than braking + this: once round the block
HEADING_BELOW_MPS = 0.5  # without a box heading, a slower track's velocity has no direction
EV_MOVED_OFF_MPS = 2.0  # a car standing for an EV has driven on above this (no flicker)
STANDING_AHEAD_MPS = 0.5  # a tracked road user slower than this stands (tracker noise)
L_HALF = IPACE.length_m / 2
REAR_TO_CENTER = IPACE.rear_axle_to_center_m
AUTONOMY = "autonomy"
SUMO = "sumo"


class NotPlanning(enum.StrEnum):
    """What `AutonomyView.behaviour` shows while the car's stack plans nothing."""

    PARKED = "parked"  # at its first curb spot, not driven by the stack yet
    SUMO = "sumo"  # on a leg handed back to SUMO


@dataclass(frozen=True, slots=True)
class TrackedObject:
    """One object the car's tracker follows (m, rad, m/s, map frame; centre of its box)."""

    track_id: int
    kind: str
    x: float
    y: float
    heading: float | None  # from its velocity; None when it (nearly) stands still
    speed: float
    length: float
    width: float
    coasting: bool  # not detected this frame: where the tracker predicts it is


@dataclass(frozen=True, slots=True)
class AutonomyView:
    """What an autonomous car's stack thinks at one instant, for the in-car screen.

    `driver` is "autonomy", or "sumo" while a leg is handed back to SUMO (`note` says why);
    `steering_wheel_deg` is left positive; `behaviour` is the stack's, or why it has none.
    """

    vehicle_id: str
    driver: str
    time_s: float
    tracks: tuple[TrackedObject, ...]
    steering_wheel_deg: float
    behaviour: Behaviour | NotPlanning
    note: str = ""
    hearing: bool = False  # the car has roof microphones and a siren detector
    siren_heard: bool = False  # the detector heard a siren during the last world step
    siren_probability: float = 0.0  # its highest siren probability in that step
    # the current emergency episode: when the siren was first heard / the lights first seen
    # (sim s; None: not (yet)); the screen tells "heard before seen" from these
    siren_heard_since_s: float | None = None
    ev_seen_since_s: float | None = None


@dataclass
class _Leg:
    """One `drive_to`: the lane route, where the curb stop is and the stop in force."""

    route: LaneRoute
    edges: tuple[str, ...]
    target: tuple[str, float]  # (edge, m along it: where SUMO would put the front bumper)
    target_stop_s: float  # arc length of the footprint centre at the curb spot
    stop_s: float | None  # the stop requested now (the target, or a rider's pull-over)
    pulled_over: bool = False


@dataclass(frozen=True)
class _ClosedLane:
    """An operator's "this lane is closed" that the car took: leave lane `from_lane` of
    `edge` for lane `to_lane` once the gap there takes it (`lane` is that lane's centre line,
    for the gap check)."""

    edge: str
    from_lane: int
    to_lane: int
    lane: ReferencePath
    lane_length_m: float


@dataclass
class _Car:
    vehicle_id: str
    ego: EgoCar  # sensors, stack, state, odometer, parked off its lane or not
    edge: str  # where the fleet thinks the front bumper is: edge (or ":junction" lane's edge)
    lane_index: int
    lane_pos: float  # m along `edge`
    leg: _Leg | None = None
    driver: str = AUTONOMY
    behaviour: Behaviour | None = None  # the stack's at the last world step; None: not yet
    s_center: float = 0.0  # footprint centre's arc length on the leg's path
    tracks: tuple[Track, ...] = ()
    time_s: float = 0.0
    note: str = ""
    stopped: bool = True
    legs_handed_back: int = 0
    siren_heard: bool = False
    siren_probability: float = 0.0
    siren_heard_since_s: float | None = None
    ev_seen_since_s: float | None = None
    ev_stop: EvStop | None = None  # standing for an emergency vehicle by its stack's decision
    closed_lane: _ClosedLane | None = None  # a lane change it waits to make (remote assistance)

    @property
    def state(self) -> VehicleState:
        return self.ego.state

    @property
    def stack(self) -> AutonomyStack:
        return self.ego.stack

    @property
    def parked(self) -> bool:
        """Off its lane in the world (`add_robotaxi` parks it at its first curb)."""
        return self.ego.parked

    @property
    def odometer_m(self) -> float:
        return self.ego.odometer_m

    @property
    def hearing(self) -> bool:
        return self.ego.sensors.hearing

    def seen_lights(self) -> bool:
        """The last camera frame showed an emergency vehicle's flashing lights."""
        obs = self.ego.last_observation
        return obs is not None and any(d.flashing_lights for d in obs.detections or ())


class AutonomousDriver:
    """Drives the fleet cars `vehicle_ids` with one `AutonomyStack` each, in the live world.

    The runner's `CarDrivers`: per tick, `patch(snapshot)` for the fleet; `apply(commands,
    snapshot)` (returns the commands the world must carry out, and the ones our cars refused);
    then `drive(snapshot, dt_s)`, which runs the cars (`EgoCar`) up to the next world step.
    """

    def __init__(
        self,
        road_map: RoadMap,
        graph: RoutingGraph,
        world: World,
        start_curbs: Mapping[str, int],
        *,
        seed: int,
        step_s: float = STACK_STEP_S,
        planner_factory: Callable[[], Planner] = default_planner,
        mic_config: MicArrayConfig | None = None,
        occluders: StaticOccluders | None = None,
        sensors: SensorsSpec | None = None,
    ) -> None:
        """`mic_config` gives every car roof microphones and a siren detector (each car its
        own background, seeded from `mic_config.seed` and its rank); `occluders` (city blocks)
        hide objects from the cameras; `sensors` sets the audible range and a block's loss."""
        if not math.isfinite(step_s) or step_s <= 0:
            raise ScenarioError(f"autonomy step {step_s} s must be positive")
        self.map = road_map
        self.graph = graph
        self.world = world
        self.step_s = step_s
        self.occluders = occluders
        self.sensors = sensors if sensors is not None else SensorsSpec()
        self.hearing = mic_config is not None
        # standing obstacles in the city that the traffic simulation does not hold (road
        # works: `sim.drive.lane_closure_agents`): our cars' cameras see them as they do in
        # `robotaxi drive`
        self.works: tuple[AgentState, ...] = ()
        self.cars: dict[str, _Car] = {}
        for k, (vehicle_id, curb) in enumerate(sorted(start_curbs.items())):
            car_mics = (
                mic_config.model_copy(update={"seed": mic_config.seed * 7919 + 31 * (k + 1)})
                if mic_config is not None
                else None
            )
            car_sensors = CarSensors(
                seed=seed * 7919 + 104_729 * (k + 1), mic_config=car_mics,
                occluders=occluders, spec=self.sensors,
            )  # fmt: skip
            stack = AutonomyStack(planner_factory(), mic_config=car_mics)
            self.cars[vehicle_id] = self._parked_car(vehicle_id, car_sensors, stack, curb)
            world.apply([TakeOver(vehicle_id)])

    def _parked_car(
        self, vehicle_id: str, sensors: CarSensors, stack: AutonomyStack, curb: int
    ) -> _Car:
        """The car standing at the kerb of curb spot `curb`, front bumper at the spot."""
        curbs = self.map.curbs
        edge, pos = curbs.edge_ids[curb], float(curbs.pos[curb])
        lane_index = int(curbs.lane_index[curb])
        state = self._at_kerb(edge, pos, lane_index)
        ego = EgoCar(vehicle_id, sensors, stack, state, parked=True)
        return _Car(vehicle_id, ego, edge, lane_index, pos)

    def _at_kerb(self, edge: str, pos: float, lane_index: int) -> VehicleState:
        """Standing at the kerb beside lane `lane_index` of `edge`, front bumper `pos` m along
        it, as the behaviour layer parks (SUMO parks cars further off its lane than that)."""
        path = reference_path(self.map, [edge], start_lane=lane_index).path
        s = max(pos - L_HALF, 0.0)
        d = -(float(path.right_room_at(s)) - IPACE.width_m / 2 - CURB_MARGIN_M)
        x, y, h = (float(v) for v in path.pose_at(s, d))
        return VehicleState(
            x - REAR_TO_CENTER * math.cos(h), y - REAR_TO_CENTER * math.sin(h), h, 0.0
        )

    # --- the fleet's view -----------------------------------------------------------------

    def patch(self, snapshot: WorldSnapshot) -> WorldSnapshot:
        """`snapshot` with our cars where our vehicle model has them (front bumper, as SUMO
        reports cars), with our odometer and "standing at the requested stop" flag."""
        rows = [
            (i, car)
            for i, vid in enumerate(snapshot.ids)
            if (car := self.cars.get(vid)) is not None and car.driver == AUTONOMY
        ]
        if not rows:
            return snapshot
        xy = np.array(snapshot.xy, dtype=float, copy=True)
        heading = np.array(snapshot.heading, dtype=float, copy=True)
        speed = np.array(snapshot.speed, dtype=float, copy=True)
        lane_pos = np.array(snapshot.lane_pos, dtype=float, copy=True)
        odometer = np.array(snapshot.odometer_m, dtype=float, copy=True)
        lane_ids = list(snapshot.lane_ids)
        road_ids = list(snapshot.road_ids) if snapshot.road_ids else [""] * len(snapshot.ids)
        stopped = list(snapshot.stopped) if snapshot.stopped else [False] * len(snapshot.ids)
        for i, car in rows:
            st = car.state
            xy[i] = front_bumper(st.x, st.y, st.heading)
            heading[i], speed[i] = st.heading, st.speed
            lane_pos[i] = car.lane_pos
            lane_ids[i] = f"{car.edge}_{car.lane_index}"
            road_ids[i] = car.edge
            stopped[i] = car.stopped
            if len(odometer):
                odometer[i] = car.odometer_m
        return replace(
            snapshot, xy=xy, heading=heading, speed=speed, lane_pos=lane_pos,
            lane_ids=tuple(lane_ids), road_ids=tuple(road_ids), stopped=tuple(stopped),
            odometer_m=odometer,
        )  # fmt: skip

    def views(self) -> dict[str, AutonomyView]:
        """Every autonomous car's tracks, steering-wheel angle and behaviour, now."""
        out = {}
        for vid, car in self.cars.items():
            objects = tuple(_tracked(t) for t in car.tracks) if car.driver == AUTONOMY else ()
            out[vid] = AutonomyView(
                vehicle_id=vid,
                driver=car.driver,
                time_s=car.time_s,
                tracks=objects,
                steering_wheel_deg=round(math.degrees(car.state.steering_wheel_rad), 2),
                behaviour=_shown_behaviour(car),
                note=car.note,
                hearing=car.hearing,
                siren_heard=car.siren_heard,
                siren_probability=round(car.siren_probability, 3),
                siren_heard_since_s=car.siren_heard_since_s,
                ev_seen_since_s=car.ev_seen_since_s,
            )
        return out

    def says(self, vehicle_id: str) -> str:
        """Why one of our cars stands, as its stack can tell (remote assistance shows it):
        behind a blocker it may pass only across a solid centre line; "" otherwise."""
        car = self.cars.get(vehicle_id)
        if car is None or car.driver != AUTONOMY or not held_by_line(car.ego):
            return ""
        return HELD_BY_LINE_NOTE

    def ev_stops(self) -> dict[str, EvStop]:
        """The cars standing for an emergency vehicle by their own stack's decision, now."""
        return {vid: car.ev_stop for vid, car in self.cars.items() if car.ev_stop is not None}

    # --- commands -------------------------------------------------------------------------

    def apply(
        self,
        commands: Iterable[VehicleCommand],
        snapshot: WorldSnapshot,
    ) -> tuple[list[VehicleCommand], list[CommandFailure]]:
        """Take the commands for our cars; return the ones SUMO must carry out (other cars',
        and our cars' on legs handed back to SUMO), and the ones our cars refused, with why.
        A rider's pull-over becomes a kerb stop; one for an ambulance is the stack's job; a
        street remote assistance reports blocked is left out of the car's lane route."""
        for_world: list[VehicleCommand] = []
        refused: list[CommandFailure] = []
        for cmd in commands:
            car = self.cars.get(cmd.vehicle_id)
            if car is None:
                for_world.append(cmd)
                continue
            if car.driver == SUMO:
                if isinstance(cmd, DriveTo) and self._take_back(car, snapshot):
                    self._drive_to(car, cmd, for_world)
                else:
                    for_world.append(cmd)
                continue
            match cmd:
                case DriveTo():
                    self._drive_to(car, cmd, for_world)
                case PullOver(reason=PullOverReason.RIDER):
                    car.closed_lane = None  # it stops at the kerb: no lane change to wait for
                    self._pull_over(car)
                case PullOver():
                    log.debug("%s: ambulance pull-over left to the stack", car.vehicle_id)
                case Resume():
                    self._resume(car)
                case AvoidStreet(_, edge):
                    reason = self._avoid_street(car, edge)
                    if reason:
                        refused.append(CommandFailure(cmd, reason))
                case PassOpposite(_, edge):
                    reason = self._pass_opposite(car, edge)
                    if reason:
                        refused.append(CommandFailure(cmd, reason))
                case LaneClosed(_, edge):
                    reason = self._lane_closed(car, edge)
                    if reason:
                        refused.append(CommandFailure(cmd, reason))
        return for_world, refused

    def _drive_to(self, car: _Car, cmd: DriveTo, for_world: list[VehicleCommand]) -> None:
        leg = car.leg
        if leg is not None and leg.target == (cmd.edge, cmd.pos):
            leg.stop_s, leg.pulled_over = leg.target_stop_s, False  # the same leg, resumed
            return
        car.closed_lane = None  # a new way: a closed lane on it is for an operator to say again
        try:
            car.leg = self._plan_leg(car, cmd.edge, cmd.pos)
        except ScenarioError as exc:
            # no lane route: SUMO drives this leg; we take the car back once it has parked
            log.warning("%s: no lane route for this leg (%s); SUMO drives it", car.vehicle_id, exc)
            if car.parked:
                self.world.apply([UnparkEgo(car.vehicle_id)])
                car.ego.parked = False
            car.leg = None
            car.driver, car.note, car.tracks = SUMO, f"SUMO drives this leg: {exc}", ()
            car.legs_handed_back += 1
            self.world.apply([HandBack(car.vehicle_id)])
            for_world.append(cmd)
            return
        car.note = ""
        car.stopped = False
        car.s_center = float(car.leg.route.path.project(*self._center(car))[0])

    def _take_back(self, car: _Car, snapshot: WorldSnapshot) -> bool:
        """Drive a car again that SUMO has parked at the end of a handed-back leg."""
        try:
            i = snapshot.index_of(car.vehicle_id)
        except KeyError:
            return False
        road = snapshot.road_ids[i] if snapshot.road_ids else ""
        if not (snapshot.stopped and snapshot.stopped[i]) or road not in self.map.edges:
            return False
        car.edge, car.lane_pos = road, float(snapshot.lane_pos[i])
        lane = self.map.lanes.get(snapshot.lane_ids[i])
        car.lane_index = lane.index if lane is not None else self.map.curb_lane(road).index
        try:
            car.ego.state = self._at_kerb(road, car.lane_pos, car.lane_index)
        except ScenarioError:
            return False  # not a lane we can drive: SUMO keeps the car for this leg too
        if len(snapshot.odometer_m):
            car.ego.odometer_m = float(snapshot.odometer_m[i])
        car.leg, car.ego.parked, car.driver, car.note = None, True, AUTONOMY, ""
        self.world.apply([TakeOver(car.vehicle_id)])
        return True

    def _pull_over(self, car: _Car) -> None:
        """A rider asked to stop: the kerb just ahead, out of junctions, before the target."""
        leg = car.leg
        if leg is None:
            return
        route = leg.route
        v = car.state.speed
        s = car.s_center + v * v / (2 * PULL_OVER_DECEL_MPS2) + PULL_OVER_EXTRA_M
        s = self._clear_of_junctions(route, s)
        if leg.stop_s is not None and leg.stop_s <= s:
            return  # the curb spot it is driving to comes first
        leg.stop_s, leg.pulled_over = s, True

    def _avoid_street(self, car: _Car, edge: str) -> str:
        """Plan the leg again without `edge` (remote assistance says it is blocked), as
        `SumoWorld` reroutes the cars SUMO drives; "" when done (or its way does not use
        `edge`), else why not (the car keeps its leg)."""
        leg = car.leg
        if leg is None:
            return ""  # parked: no way under way
        target_edge, target_pos = leg.target
        try:
            prefix, here, _, _ = self._where(car)
        except ScenarioError:
            return "it is inside a junction: answer again in a moment"
        if here == edge:
            if prefix:
                return f"it is already turning into {edge}: no turn off before the blockage"
            return f"it stands on {edge} itself: no turn off before the blockage"
        k = _piece_at(leg.route, car.s_center + L_HALF)
        ahead = [self.map.lanes[lane_id].edge_id for lane_id in leg.route.lane_ids[k:]]
        last = max(i for i, e in enumerate(ahead) if e == target_edge)
        if edge not in ahead[: last + 1]:
            return ""  # its way does not use that street
        if target_edge == edge:
            return f"its stop is on {edge}, the blocked street"
        try:
            new_leg = self._plan_leg(car, target_edge, target_pos, avoid=(edge,))
        except ScenarioError:
            return f"every way from {here} to {target_edge} crosses {edge}"
        car.leg = new_leg
        car.s_center = float(new_leg.route.path.project(*self._center(car))[0])
        if leg.pulled_over:
            self._pull_over(car)  # a rider's stop stays in force on the new way
        return ""

    def _pass_opposite(self, car: _Car, edge: str) -> str:
        """Give the car's stack leave to pass the blocker on `edge` through the oncoming lane
        (remote assistance); "" when taken, else why not."""
        leg = car.leg
        if leg is None:
            return "it is parked: there is nothing to pass"
        reason, span = leave_span(self.map, leg.route, car.s_center, edge)
        if span is None:
            return reason
        return car.stack.permit_oncoming_pass(leg.route.path, *span)

    def _lane_closed(self, car: _Car, edge: str) -> str:
        """Take an operator's "the lane you are in on `edge` is closed ahead": "" when the
        car will move to another lane of `edge` that leads on along its way (once the gap
        there takes it), else why not (it keeps its lane)."""
        leg = car.leg
        if leg is None:
            return "it is parked: there is no lane to leave"
        try:
            prefix, here, _, lane_index = self._where(car)
        except ScenarioError:
            prefix = ("junction",)
        if prefix:
            return "it is inside a junction: answer again in a moment"
        reason, beside = lanes_beside_closed(
            self.map, edge, here, lane_index, lambda: self._room_ahead(car)
        )
        if reason:
            return reason
        street = self.map.edges[edge].name or edge
        ahead = self._edges_ahead(car)
        for target in beside:
            try:
                self._switched_route(car, LaneSwitch(target.index, 0.0, 1.0), lane_index)
            except ScenarioError:
                continue
            car.closed_lane = _ClosedLane(
                edge, lane_index, target.index, lane_centre_path(target), float(target.length)
            )
            return ""
        nxt = (self.map.edges[ahead[1]].name or ahead[1]) if len(ahead) > 1 else "its stop"
        return f"no lane beside it on {street} leads on to {nxt}: only its own lane turns there"

    def _room_ahead(self, car: _Car) -> tuple[float, float]:
        """Bumper to bumper, the room (m) from the car's front to the nearest road user its
        tracker sees standing in its lane ahead (inf: none), and the least room (m) from
        which it can steer out round that one."""
        leg = car.leg
        if leg is None:
            return math.inf, 0.0
        return room_to_steer_out(
            leg.route.path, car.s_center + L_HALF, car.tracks, IPACE,
            standing_below_mps=STANDING_AHEAD_MPS,
        )  # fmt: skip

    def _edges_ahead(self, car: _Car) -> tuple[str, ...]:
        """The edges of the car's lane route from the one its front bumper is on (not
        junctions), in order."""
        leg = car.leg
        if leg is None:
            return (car.edge,)
        k = _piece_at(leg.route, car.s_center + L_HALF)
        out: list[str] = []
        for lane_id in leg.route.lane_ids[k:]:
            lane = self.map.lanes[lane_id]
            if not lane.internal and (not out or out[-1] != lane.edge_id):
                out.append(lane.edge_id)
        return tuple(out)

    def _switched_route(
        self, car: _Car, switch: LaneSwitch, from_lane: int
    ) -> tuple[LaneRoute, tuple[str, ...]]:
        """The leg's lane route from the car's edge on (and those edges), leaving lane
        `from_lane` of that edge as `switch` says; raises `ScenarioError` when the lane it
        moves to does not lead on along its way (past its stop only if its stop is beyond
        this street)."""
        ahead = self._edges_ahead(car)
        try:
            return reference_path(self.map, ahead, start_lane=from_lane, switch=switch), ahead
        except ScenarioError:
            leg = car.leg
            if leg is None or leg.target[0] != ahead[0] or ahead.count(ahead[0]) > 1:
                raise
        # its stop is on this street: the lane need not lead on past it
        route = reference_path(self.map, ahead[:1], start_lane=from_lane, switch=switch)
        return route, ahead[:1]

    def _switch_lane(self, car: _Car, closed: _ClosedLane) -> bool:
        """Leave the closed lane now if the gap in the other lane takes the car (its own
        predictions): the leg's lane route again, moving over at once; whether it did."""
        leg = car.leg
        predictions = car.stack.last_predictions
        if leg is None or car.edge != closed.edge or car.lane_index != closed.from_lane:
            car.closed_lane = None  # left that street (or that lane) meanwhile
            return False
        if predictions is None or not lane_change_gap_ok(car.state, predictions, closed.lane):
            return False
        room, needed = self._room_ahead(car)
        if room < needed:
            return False  # too close by its tracker now: it holds still and looks again
        rear_m = max(car.lane_pos - IPACE.rear_axle_to_front_m, 0.0)
        switch = closed_lane_switch(
            closed.to_lane, rear_m, room, car.state.speed, closed.lane_length_m
        )
        try:
            route, ahead = self._switched_route(car, switch, closed.from_lane)
        except ScenarioError as exc:
            log.warning("%s: no lane route out of the closed lane (%s)", car.vehicle_id, exc)
            car.closed_lane = None
            return False
        target_edge, target_pos = leg.target
        k = max(
            i
            for i, lane_id in enumerate(route.lane_ids)
            if self.map.lanes[lane_id].edge_id == target_edge
        )
        stop_s = float(route.lane_start_s[k]) + target_pos - L_HALF
        car.leg = _Leg(route, ahead, leg.target, stop_s, stop_s)
        car.s_center = float(route.path.project(*self._center(car))[0])
        car.closed_lane = None
        if leg.pulled_over:
            self._pull_over(car)  # a rider's stop stays in force
        log.info("%s: leaves closed lane %d of %s", car.vehicle_id, closed.from_lane, closed.edge)
        return True

    def _clear_of_junctions(self, route: LaneRoute, s_center: float) -> float:
        """The first centre arc length ≥ `s_center` whose whole footprint stands on a normal
        lane, clear of its ends (stop lines, junctions)."""
        starts = route.lane_start_s
        ends = np.append(starts[1:], route.path.length_m)
        for k, lane_id in enumerate(route.lane_ids):
            if self.map.lanes[lane_id].internal:
                continue
            lo = starts[k] + LANE_END_CLEAR_M + L_HALF
            hi = ends[k] - LANE_END_CLEAR_M - L_HALF
            if hi >= max(lo, s_center):
                return float(max(lo, s_center))
        return float(min(s_center, route.path.length_m - LANE_END_CLEAR_M))

    def _resume(self, car: _Car) -> None:
        leg = car.leg
        if leg is not None and leg.pulled_over:
            leg.stop_s, leg.pulled_over = leg.target_stop_s, False

    # --- lane routes ----------------------------------------------------------------------

    def _center(self, car: _Car) -> tuple[float, float]:
        st = car.state
        return st.x + REAR_TO_CENTER * math.cos(st.heading), st.y + REAR_TO_CENTER * math.sin(
            st.heading
        )

    def _plan_leg(
        self, car: _Car, target_edge: str, target_pos: float, avoid: tuple[str, ...] = ()
    ) -> _Leg:
        """The lane route from where the car is to the curb spot (`target_edge`, m along it),
        one edge longer so the planner sees past the stop, entering no edge of `avoid` before
        the stop; raises `ScenarioError`."""
        if target_edge not in self.graph.index:
            raise ScenarioError(f"edge {target_edge} is not routable")
        prefix, here, here_pos, lane_index = self._where(car)
        brake_m = car.state.speed**2 / (2 * PULL_OVER_DECEL_MPS2) + LOOP_MARGIN_M + L_HALF
        if here == target_edge and target_pos >= here_pos + brake_m:
            onward: tuple[str, ...] = (here,)
        elif here == target_edge:
            onward = self._loop(here, target_edge, avoid)
        else:
            onward = (
                self.graph.route(here, target_edge, avoid=avoid) if here in self.graph.index else ()
            )
        if not onward:
            raise ScenarioError(f"no way from {here} to {target_edge}")
        edges = (*prefix, *onward)
        route: LaneRoute | None = None
        for extra in self._beyond(target_edge):
            try:
                route = reference_path(self.map, (*edges, extra), start_lane=lane_index)
            except ScenarioError:
                continue
            edges = (*edges, extra)
            break
        if route is None:
            route = reference_path(self.map, edges, start_lane=lane_index)
        # the target edge's last appearance (a loop passes it twice) holds the curb spot
        k = max(
            i
            for i, lane_id in enumerate(route.lane_ids)
            if self.map.lanes[lane_id].edge_id == target_edge
        )
        stop_s = float(route.lane_start_s[k]) + target_pos - L_HALF
        return _Leg(route, edges, (target_edge, target_pos), stop_s, stop_s)

    def _where(self, car: _Car) -> tuple[tuple[str, ...], str, float, int]:
        """(edges kept before the routing starts, edge the routing starts from, m along it,
        lane index the path starts in). Inside a junction the path keeps the edge just left,
        so that the turn under way stays in it."""
        leg = car.leg
        if leg is None:
            return (), car.edge, car.lane_pos, car.lane_index
        route = leg.route
        s_front = car.s_center + L_HALF
        k = _piece_at(route, s_front)
        lane = self.map.lanes[route.lane_ids[k]]
        if not lane.internal:
            return (), lane.edge_id, s_front - float(route.lane_start_s[k]), lane.index
        before = next(
            (self.map.lanes[x] for x in reversed(route.lane_ids[:k]) if not self._internal(x)),
            None,
        )
        after = next(
            (self.map.lanes[x] for x in route.lane_ids[k + 1 :] if not self._internal(x)), None
        )
        if before is None or after is None:
            raise ScenarioError(f"{car.vehicle_id} is in a junction its route does not leave")
        return (before.edge_id,), after.edge_id, 0.0, before.index

    def _internal(self, lane_id: str) -> bool:
        return self.map.lanes[lane_id].internal

    def _successor_edges(self, edge: str) -> list[str]:
        out: list[str] = []
        for lane_id in self.map.edges[edge].lane_ids:
            for succ in self.map.lanes[lane_id].successors:
                nxt = self.map.lanes[succ].edge_id
                if nxt in self.graph.index and nxt not in out:
                    out.append(nxt)
        return out

    def _beyond(self, edge: str) -> list[str]:
        """Edges to continue onto after the target: from the curb lane first (no lane change
        away from the kerb before the stop), then any."""
        curb = self.map.curb_lane(edge)
        first = [self.map.lanes[s].edge_id for s in curb.successors]
        ordered = [e for e in first if e in self.graph.index] + self._successor_edges(edge)
        seen: list[str] = []
        for e in ordered:
            if e != edge and e not in seen:
                seen.append(e)
        return seen

    def _loop(self, here: str, target: str, avoid: tuple[str, ...] = ()) -> tuple[str, ...]:
        """Once round the block: the shortest way from `here` back to `target` (= here)."""
        best: tuple[str, ...] = ()
        for succ in self._successor_edges(here):
            if succ in avoid:
                continue
            route = self.graph.route(succ, target, avoid=avoid)
            if route and (not best or len(route) < len(best)):
                best = route
        return (here, *best) if best else ()

    # --- driving --------------------------------------------------------------------------

    def drive(self, snapshot: WorldSnapshot, dt_s: float) -> None:
        """Run every car from the world's `snapshot` to the next world step, `dt_s` later, in
        the cars' own steps, and tell the world where each car will be by then."""
        now_s = snapshot.time.time_s
        n = max(1, round(dt_s / self.step_s))
        sirens = emergency_agents(snapshot)
        for car in self.cars.values():
            if car.driver != AUTONOMY:
                car.ev_stop = None
                continue
            truth: Sequence[AgentState] = snapshot.around.get(car.vehicle_id, ())
            if self.works:
                truth = [*truth, *self.works]
            car.time_s = now_s
            car.siren_heard, car.siren_probability = False, 0.0
            # pulled over for an ambulance, the stack itself decides when to drive on
            waiting = car.parked and car.stopped and car.behaviour != Behaviour.YIELD_TO_EV
            if car.leg is None or waiting:
                # waiting at its stop: nothing to plan, but it keeps watching and listening
                self._perceive(car, truth, sirens, snapshot.signals, now_s, n)
                car.ev_stop = None  # a stop at its curb spot, not for an ambulance
            else:
                self._drive_car(car, car.leg, truth, sirens, snapshot.signals, now_s, n)
                car.ev_stop = self._ev_stop(car, now_s + n * self.step_s, sirens)
            self._episode(car)

    def _ev_stop(self, car: _Car, t_s: float, sirens: Sequence[AgentState]) -> EvStop | None:
        """The car's stop for an emergency vehicle at `t_s`: from when it stands still in an
        EV reaction (`yield_to_ev`, or `ev_caution`'s kerb stop / hold) until the stack
        drives on (another behaviour, or moving off above `EV_MOVED_OFF_MPS`)."""
        if car.behaviour is None or car.behaviour not in EV_REACTIONS:
            return None
        speed = car.state.speed
        if car.ev_stop is not None:
            return car.ev_stop if speed < EV_MOVED_OFF_MPS else None
        if speed >= STOPPED_BELOW_MPS:
            return None
        heard = car.siren_heard_since_s is not None or car.behaviour == Behaviour.EV_CAUTION
        seen = car.ev_seen_since_s is not None or car.behaviour == Behaviour.YIELD_TO_EV
        basis = (
            YieldBasis.HEARD_AND_SEEN
            if heard and seen
            else YieldBasis.HEARD
            if heard
            else YieldBasis.SEEN
        )
        onsets = [x for x in (car.siren_heard_since_s, car.ev_seen_since_s) if x is not None]
        cx, cy = self._center(car)
        nearest = min(sirens, key=lambda a: math.hypot(a.x - cx, a.y - cy), default=None)
        since_s = round(t_s, 1)
        return EvStop(
            since_at=TimePoint.from_s(since_s),
            reacting_since_at=TimePoint.from_s(min([*onsets, since_s])),
            basis=basis,
            behaviour=car.behaviour,
            ev_id=nearest.agent_id if nearest is not None else None,
        )

    def _heard(self, car: _Car) -> None:
        evidence = car.stack.last_siren
        if evidence is None:
            return
        car.siren_probability = max(car.siren_probability, evidence.probability)
        if evidence.detected:
            car.siren_heard = True
            if car.siren_heard_since_s is None:
                car.siren_heard_since_s = round(evidence.time.time_s - evidence.detected_for_s, 1)

    def _seen(self, car: _Car, t_s: float) -> None:
        if car.ev_seen_since_s is None and car.seen_lights():
            car.ev_seen_since_s = round(t_s, 1)

    def _episode(self, car: _Car) -> None:
        """An emergency episode ends once nothing is heard, nothing seen and the car no
        longer reacts to an emergency vehicle."""
        if not (car.siren_heard or car.seen_lights() or car.behaviour in EV_REACTIONS):
            car.siren_heard_since_s = car.ev_seen_since_s = None

    def _perceive(
        self,
        car: _Car,
        truth: Sequence[AgentState],
        sirens: Sequence[AgentState],
        signals: Mapping[str, str],
        now_s: float,
        n: int,
    ) -> None:
        """Standing: one camera frame at the world's instant, and every stack step's audio
        (the stream has no gaps), sirens moved on at constant velocity between world steps."""
        ego = car.ego
        for k in range(n if car.hearing else 1):
            t_k = now_s + k * self.step_s
            moved = sirens if k == 0 else _extrapolate(sirens, k * self.step_s)
            ego.watch(truth, moved, signals, TimePoint.from_s(t_k), self.step_s, cameras=k == 0)
            if k == 0:
                car.tracks = car.stack.last_tracks
                self._seen(car, now_s)
            self._heard(car)

    def _drive_car(
        self,
        car: _Car,
        leg: _Leg,
        truth: Sequence[AgentState],
        sirens: Sequence[AgentState],
        signals: Mapping[str, str],
        now_s: float,
        n: int,
    ) -> None:
        path = leg.route.path
        for k in range(n):
            closed = car.closed_lane
            if closed is not None and self._switch_lane(car, closed) and car.leg is not None:
                leg = car.leg
                path = leg.route.path
            # waiting to leave a closed lane, it holds where it stands: the room to steer out
            car.stack.speed_cap_mps = 0.0 if car.closed_lane is not None else None
            t_k = now_s + k * self.step_s
            agents = truth if k == 0 else _extrapolate(truth, k * self.step_s)
            heard = sirens if k == 0 else _extrapolate(sirens, k * self.step_s)
            out = car.ego.drive(
                agents, heard, signals, path, leg.stop_s, TimePoint.from_s(t_k), self.step_s
            )
            if k == 0:
                # what the screen shows belongs to the world's instant (SUMO's truth at now_s)
                car.tracks, car.behaviour = out.tracks, out.behaviour
            self._heard(car)
            self._seen(car, t_k)
        state = car.state
        car.s_center = float(path.project(*self._center(car))[0])
        self._locate(car)
        at_stop = leg.stop_s is not None and abs(car.s_center - leg.stop_s) <= AT_STOP_M
        standing = state.speed < STOPPED_BELOW_MPS
        car.stopped = standing and (
            (at_stop and car.behaviour in KERB_BEHAVIOURS) or car.behaviour == Behaviour.YIELD_TO_EV
        )
        # off the lane while standing at the kerb, so that traffic and ambulances pass
        # (SUMO-NOTES); put back on it when moving off
        car.ego.place(self.world, path, car.behaviour)

    def _locate(self, car: _Car) -> None:
        """Edge, lane and m along it of the front bumper, from the leg's lane route."""
        leg = car.leg
        if leg is None:
            return
        route = leg.route
        s_front = car.s_center + L_HALF
        k = _piece_at(route, s_front)
        lane = self.map.lanes[route.lane_ids[k]]
        car.edge, car.lane_index = lane.edge_id, lane.index
        car.lane_pos = max(s_front - float(route.lane_start_s[k]), 0.0)


def _piece_at(route: LaneRoute, s: float) -> int:
    k = int(np.searchsorted(route.lane_start_s, s, side="right")) - 1
    return min(max(k, 0), len(route.lane_ids) - 1)


def _extrapolate(truth: Sequence[AgentState], dt_s: float) -> list[AgentState]:
    """Road users moved on at constant velocity for `dt_s` (between two world steps)."""
    return [
        replace(
            a,
            x=a.x + a.speed * math.cos(a.heading) * dt_s,
            y=a.y + a.speed * math.sin(a.heading) * dt_s,
        )
        for a in truth
    ]


def _shown_behaviour(car: _Car) -> Behaviour | NotPlanning:
    """The car's behaviour for its view: the stack's, or why the stack plans nothing."""
    if car.driver != AUTONOMY:
        return NotPlanning.SUMO
    return car.behaviour if car.behaviour is not None else NotPlanning.PARKED


def _tracked(track: Track) -> TrackedObject:
    speed = track.speed
    return TrackedObject(
        track_id=track.track_id,
        kind=track.kind.value,
        x=round(track.x, 2),
        y=round(track.y, 2),
        # the tracker's filtered box heading holds for parked cars; velocity alone does not
        heading=(
            round(track.heading, 3)
            if track.box_heading is not None or speed >= HEADING_BELOW_MPS
            else None
        ),
        speed=round(speed, 2),
        length=round(track.length, 2),
        width=round(track.width, 2),
        coasting=track.missed_frames > 0,
    )


__all__ = ["AutonomousDriver", "AutonomyView", "TrackedObject"]
