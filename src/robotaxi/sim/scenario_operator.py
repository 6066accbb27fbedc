"""A scenario's remote-assistance operator (`robotaxi drive`): the fleet's assistance desk
watches the scenario's one car, a scripted operator answers its request, and the car's own
stack checks the answer and acts on it — as in the live service, where a person answers on
the operations page (`fleet.assistance`).

Each tick the car reports itself to the desk (standing, and why when its stack knows: held
behind a blocker it may pass only across a solid centre line); once it has stood
`assist_after_s` the desk opens a request. `answer_after_s` later the operator answers.
Leave to pass through the opposite lane goes to the car's stack
(`AutonomyStack.permit_oncoming_pass`) for the street the car stands on, and is refused
with the reason when the stack cannot use it. "This lane is closed" is taken as the live
service's autonomous cars take it (`sim.autonomous`): only where another lane of the car's
street leads on along its route, and with room to steer out round what blocks its lane
(`planning.steer_out`); the car then holds where it stands until the gap in that lane takes
it (`planning.lane_change`) and drives on along the same streets in that lane to the
street's end (`planning.route.LaneSwitch`; `route` is then the new lane route, which the
runner drives). The request closes when the car moves again; the run keeps every request
and event, and its time to resolution (opened → closed).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from robotaxi.autonomy.planning.behaviour import BehaviourPlanner
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
from robotaxi.autonomy.vehicle import IPACE, front_bumper
from robotaxi.config.scenario import EgoSpec, OperatorSpec
from robotaxi.core import AgentState, ScenarioError, VehicleEvent
from robotaxi.core.commands import AvoidStreet, LaneClosed, PassOpposite, VehicleCommand
from robotaxi.core.types import FloatArray
from robotaxi.fleet.assistance import SENT_ANSWERS, AssistanceDesk, AssistAnswer, StandingCar
from robotaxi.map import Lane, RoadMap
from robotaxi.sim.ego import EgoCar

log = logging.getLogger(__name__)
L_HALF = IPACE.length_m / 2
REAR_TO_CENTER = IPACE.rear_axle_to_center_m
# what the car says of itself in its request while its stack waits behind a solid line
HELD_BY_LINE_NOTE = "behind a blocker it may pass only across a solid centre line"


def lanes_beside_closed(
    road_map: RoadMap,
    edge: str,
    here: str,
    lane_index: int,
    room: Callable[[], tuple[float, float]],
) -> tuple[str, list[Lane]]:
    """What a car told its lane on `edge` is closed checks first (it is on `edge` in lane
    `lane_index`; `room()`: the room to what blocks it and the room it needs to steer out):
    why it cannot leave the lane ("" if it may try), and the lanes one over, to the left
    first (the way a driver passes)."""
    if here != edge:
        return f"it is on {here} now, no longer on {edge}", []
    street = road_map.edges[edge].name or edge
    lanes = road_map.robotaxi_lanes(road_map.edges[edge])
    if len(lanes) < 2:
        return f"{street} has one lane in its direction: there is no other lane to use", []
    room_m, needed = room()
    if room_m < needed:
        return (
            f"it stands {room_m:.1f} m behind what blocks its lane, too close to steer out "
            f"into the next lane (it needs {needed:.1f} m and cannot back up)"
        ), []
    beside = sorted((x for x in lanes if abs(x.index - lane_index) == 1), key=lambda x: -x.index)
    return "", beside


def leave_span(
    road_map: RoadMap, route: LaneRoute, s_center: float, edge: str
) -> tuple[str, tuple[float, float] | None]:
    """The stretch of `route` (arc lengths, m) on `edge` from the car's footprint centre at
    `s_center` on: ("", (from, to)), or (why not, None) when `edge` is not ahead of it."""
    ends = np.append(route.lane_start_s[1:], route.path.length_m)
    on_edge = [
        (float(route.lane_start_s[k]), float(ends[k]))
        for k, lane_id in enumerate(route.lane_ids)
        if road_map.lanes[lane_id].edge_id == edge and ends[k] > s_center - L_HALF
    ]
    if not on_edge:
        return f"{edge} is not on its way", None
    start, end = on_edge[0]
    return "", (max(start, s_center - L_HALF), end)


def edge_at(road_map: RoadMap, route: LaneRoute, s: float) -> str:
    """The edge of the route's lane piece at arc length `s` (m)."""
    k = int(np.searchsorted(route.lane_start_s, s, side="right")) - 1
    k = min(max(k, 0), len(route.lane_ids) - 1)
    return road_map.lanes[route.lane_ids[k]].edge_id


def _distance_to(line: FloatArray, x: float, y: float) -> float:
    """Distance (m) from (x, y) to the nearest vertex of polyline `line` (N×2)."""
    return float(np.min(np.hypot(line[:, 0] - x, line[:, 1] - y)))


def held_by_line(car: EgoCar) -> bool:
    """The car's stack waited, last tick, behind a blocker it may not pass on its own."""
    behaviour = getattr(car.stack.planner, "behaviour", None)
    return isinstance(behaviour, BehaviourPlanner) and behaviour.held_by_line


@dataclass(frozen=True)
class _ClosedLane:
    """ "This lane is closed", taken: leave lane `from_lane` of the route's edge
    `edge_index` (`edge`) for lane `to_lane` once the gap there takes the car (`lane`: that
    lane's centre line, for the gap check)."""

    edge: str
    edge_index: int
    from_lane: int
    to_lane: int
    lane: ReferencePath
    lane_length_m: float


class ScenarioOperator:
    """The desk and the scripted operator of one scenario car (module docstring). `ego`, the
    scenario's car, gives the streets and lanes its lane route was built from."""

    def __init__(
        self,
        spec: OperatorSpec,
        road_map: RoadMap,
        route: LaneRoute,
        vehicle_id: str,
        ego: EgoSpec | None = None,
    ) -> None:
        self.spec = spec
        self.map = road_map
        self.route = route
        self.ego = ego
        self.closed: _ClosedLane | None = None  # a lane change it waits to make
        self.vehicle_id = vehicle_id
        self._truth: Sequence[AgentState] = ()  # the road users around the car this tick
        self.desk = AssistanceDesk(road_map, spec.assist_after_s, look=lambda _vid: self._truth)
        self.events: list[VehicleEvent] = []

    def tick(
        self, now_s: float, car: EgoCar, truth: Sequence[AgentState], *, at_stop: bool
    ) -> None:
        """Report the car to the desk, carry out what the desk sends it, answer a request
        that has waited `answer_after_s`. `at_stop`: standing at its requested kerb stop."""
        st = car.state
        cx = st.x + REAR_TO_CENTER * math.cos(st.heading)
        cy = st.y + REAR_TO_CENTER * math.sin(st.heading)
        s_center = float(self.route.path.project(cx, cy)[0])
        edge = edge_at(self.map, self.route, s_center + L_HALF)
        self._truth = truth
        reported = StandingCar(
            self.vehicle_id, None, "route", not at_stop, edge,
            front_bumper(st.x, st.y, st.heading), st.heading, st.speed,
            note=HELD_BY_LINE_NOTE if held_by_line(car) else "",
        )  # fmt: skip
        commands: list[VehicleCommand] = []
        self.desk.observe([reported], now_s, self.events, commands)
        for command in commands:
            reason = self._carry_out(command, car, s_center)
            if reason and isinstance(command, AvoidStreet | PassOpposite | LaneClosed):
                self.desk.world_refused(command, reason, now_s)
        if self.closed is not None:
            self._switch_lane(car, s_center, self.closed)
        # waiting to leave a closed lane, it holds where it stands: the room to steer out
        car.stack.speed_cap_mps = 0.0 if self.closed is not None else None
        request = self.desk.open_for(self.vehicle_id)
        if (
            request is not None
            and not request.answers
            and now_s - request.opened_s >= self.spec.answer_after_s
        ):
            answer = AssistAnswer(self.spec.answer)
            _, record, events = self.desk.answer(request.request_id, answer, now_s)
            self.events.extend(events)
            if answer in SENT_ANSWERS:
                self.desk.send(request, record)
            else:
                self.events.append(self.desk.accept(request, record, now_s))

    def _carry_out(self, command: VehicleCommand, car: EgoCar, s_center: float) -> str:
        """What the car makes of a command from the desk: "" when taken, else why not."""
        if isinstance(command, PassOpposite):
            reason, span = leave_span(self.map, self.route, s_center, command.edge)
            if span is None:
                return reason
            return car.stack.permit_oncoming_pass(self.route.path, *span)
        if isinstance(command, LaneClosed):
            return self._lane_closed(command.edge, car, s_center)
        return "a scenario's route is fixed: there is no other way"

    def _lane_closed(self, edge: str, car: EgoCar, s_center: float) -> str:
        """Take "the lane you are in on `edge` is closed ahead": "" when the car will move to
        another lane of `edge` that leads on along its route (once the gap there takes it),
        else why not (it keeps its lane)."""
        if self.ego is None:
            return "its lane route was not built from a scenario's streets"
        where = self._where(s_center)
        if where is None:
            return "it is inside a junction: answer again in a moment"
        here, edge_index, lane_index = where
        reason, beside = lanes_beside_closed(
            self.map, edge, here, lane_index, lambda: self._room(car, s_center)
        )
        if reason:
            return reason
        street = self.map.edges[edge].name or edge
        for target in beside:
            try:
                self._switched(LaneSwitch(target.index, 0.0, 1.0, edge_index))
            except ScenarioError:
                continue
            self.closed = _ClosedLane(
                edge, edge_index, lane_index, target.index, lane_centre_path(target),
                float(target.length),
            )  # fmt: skip
            return ""
        return f"no lane beside it on {street} leads on along its route: only its own lane does"

    def _switch_lane(self, car: EgoCar, s_center: float, closed: _ClosedLane) -> None:
        """Leave the closed lane now if the gap in the other lane takes the car (its own
        predictions): the route again, moving over at once."""
        where = self._where(s_center)
        if where is None or where[:2] != (closed.edge, closed.edge_index):
            self.closed = None  # left that street meanwhile
            return
        predictions = car.stack.last_predictions
        if predictions is None or not lane_change_gap_ok(car.state, predictions, closed.lane):
            return
        room, needed = self._room(car, s_center)
        if room < needed:
            return  # too close by its tracker now: it holds still and looks again
        start = float(self._edge_start_s(closed.edge_index))
        rear_m = max(s_center - REAR_TO_CENTER - start, 0.0)
        switch = closed_lane_switch(
            closed.to_lane, rear_m, room, car.state.speed, closed.lane_length_m
        )
        self.closed = None
        try:
            self.route = self._switched(switch)
        except ScenarioError as exc:  # checked when taken: not on the same streets
            log.warning("%s: no lane route out of the closed lane (%s)", self.vehicle_id, exc)

    def _switched(self, switch: LaneSwitch) -> LaneRoute:
        """The scenario's lane route, changing lanes as `switch` says; raises
        `ScenarioError` when the lane it moves to does not lead on along the route."""
        ego = self.ego
        if ego is None:
            raise ScenarioError("no scenario streets")
        return reference_path(
            self.map, ego.route, start_lane=ego.start_lane, end_lane=ego.end_lane, switch=switch
        )

    def _where(self, s_center: float) -> tuple[str, int, int] | None:
        """(edge the car's front is on, its index in the scenario's route, the index of the
        lane the car is in), or None inside a junction."""
        s_front = s_center + L_HALF
        k = int(np.searchsorted(self.route.lane_start_s, s_front, side="right")) - 1
        k = min(max(k, 0), len(self.route.lane_ids) - 1)
        lane = self.map.lanes[self.route.lane_ids[k]]
        if lane.internal:
            return None
        edge_index = -1
        for lane_id in self.route.lane_ids[: k + 1]:
            piece = self.map.lanes[lane_id]
            if not piece.internal:
                edge_index += 1
        # the lane under the car: the nearest centre line of the edge's lanes
        x, y = self.route.path.pose_at(s_center)[:2]
        lanes = self.map.robotaxi_lanes(self.map.edges[lane.edge_id])
        under = min(lanes, key=lambda x_: _distance_to(x_.centerline, float(x), float(y)))
        return lane.edge_id, edge_index, under.index

    def _edge_start_s(self, edge_index: int) -> float:
        """Arc length (m) of the route where its edge `edge_index` begins."""
        count = -1
        for lane_id, start in zip(self.route.lane_ids, self.route.lane_start_s, strict=True):
            if not self.map.lanes[lane_id].internal:
                count += 1
                if count == edge_index:
                    return float(start)
        return 0.0

    def _room(self, car: EgoCar, s_center: float) -> tuple[float, float]:
        """The room (m) to what stands in the car's lane ahead, and the least it needs to
        steer out round it (`planning.steer_out`)."""
        return room_to_steer_out(self.route.path, s_center + L_HALF, car.stack.last_tracks, IPACE)

    def report(self) -> list[dict[str, Any]]:
        """Every request of the run (JSON), with its time to resolution (`resolution_s`)."""
        now = max((e.time.time_s for e in self.events), default=0.0)
        return [r.to_json(now) for r in self.desk.requests.values()]
