"""A scenario's remote-assistance operator (`robotaxi drive`): the fleet's assistance desk
watches the scenario's one car, a scripted operator answers its request, and the car's own
stack checks the answer and acts on it — as in the live service, where a person answers on
the operations page (`fleet.assistance`).

Each tick the car reports itself to the desk (standing, and why when its stack knows: held
behind a blocker it may pass only across a solid centre line); once it has stood
`assist_after_s` the desk opens a request. `answer_after_s` later the operator answers. Leave
to pass through the opposite lane goes to the car's stack (`AutonomyStack.
permit_oncoming_pass`) for the street the car stands on, and is refused with the reason when
the stack cannot use it. The request closes when the car moves again; the run keeps every
request and event, and its time to resolution (opened → closed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from robotaxi.autonomy.planning.behaviour import BehaviourPlanner
from robotaxi.autonomy.planning.route import LaneRoute
from robotaxi.autonomy.vehicle import IPACE, front_bumper
from robotaxi.config.scenario import OperatorSpec
from robotaxi.core import AgentState, VehicleEvent
from robotaxi.core.commands import AvoidStreet, PassOpposite, VehicleCommand
from robotaxi.fleet.assistance import SENT_ANSWERS, AssistanceDesk, AssistAnswer, StandingCar
from robotaxi.map import RoadMap
from robotaxi.sim.ego import EgoCar

L_HALF = IPACE.length_m / 2
REAR_TO_CENTER = IPACE.rear_axle_to_center_m
# what the car says of itself in its request while its stack waits behind a solid line
HELD_BY_LINE_NOTE = "behind a blocker it may pass only across a solid centre line"


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


def held_by_line(car: EgoCar) -> bool:
    """The car's stack waited, last tick, behind a blocker it may not pass on its own."""
    behaviour = getattr(car.stack.planner, "behaviour", None)
    return isinstance(behaviour, BehaviourPlanner) and behaviour.held_by_line


class ScenarioOperator:
    """The desk and the scripted operator of one scenario car (module docstring)."""

    def __init__(
        self, spec: OperatorSpec, road_map: RoadMap, route: LaneRoute, vehicle_id: str
    ) -> None:
        self.spec = spec
        self.map = road_map
        self.route = route
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
            if reason and isinstance(command, AvoidStreet | PassOpposite):
                self.desk.world_refused(command, reason, now_s)
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
        return "a scenario's route is fixed: there is no other way"

    def report(self) -> list[dict[str, Any]]:
        """Every request of the run (JSON), with its time to resolution (`resolution_s`)."""
        now = max((e.time.time_s for e in self.events), default=0.0)
        return [r.to_json(now) for r in self.desk.requests.values()]
