"""A car our stack drives: sensors → stack → vehicle model → world, written once.

`EgoCar.drive` is one stack step of that sequence: the car's simulated sensors turn ground
truth into an `Observation`, the `AutonomyStack` turns the observation into a command, the
vehicle model moves the car. `EgoCar.place` then tells the world where the car is: on its
lane (`MoveEgo`, so traffic reacts to it), or, while it stands at the kerb (pulled over for
an ambulance, at a pick-up, before pulling out), parked off its lane (`ParkEgo`, the
SUMO-NOTES recipe) so that traffic and ambulances can pass.

`robotaxi drive` (one car in a scenario), the fleet cars of `robotaxi serve --autonomous`
and the CommonRoad adapter all drive through it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from robotaxi.autonomy.planning.behaviour import Behaviour
from robotaxi.autonomy.planning.reference import ReferencePath
from robotaxi.autonomy.stack import AutonomyStack, StackOutput
from robotaxi.autonomy.vehicle import VehicleState, front_bumper, step
from robotaxi.core import (
    AgentState,
    CommandFailure,
    MoveEgo,
    Observation,
    ParkEgo,
    TimePoint,
    UnparkEgo,
    VehicleCommand,
    World,
    WorldSnapshot,
)
from robotaxi.fleet.manager import EvStop
from robotaxi.sim.sensors import CarSensors

PARK_BELOW_MPS = 1.0  # pulled over and all but stopped: take the car off its lane
PARK_OFFSET_M = 1.5  # … once its centre is this far right of its path
# the behaviours in which the car may stand at the kerb
KERB_BEHAVIOURS = (
    Behaviour.YIELD_TO_EV,
    Behaviour.EV_CAUTION,
    Behaviour.CURBSIDE_STOP,
    Behaviour.LEAVE_CURB,
    Behaviour.SAFE_STOP,
)


class EgoCar:
    """One car: its id in the world, its sensors, its brain and its state (rear axle)."""

    def __init__(
        self,
        vehicle_id: str,
        sensors: CarSensors,
        stack: AutonomyStack,
        state: VehicleState,
        *,
        parked: bool = False,
    ) -> None:
        self.vehicle_id = vehicle_id
        self.sensors = sensors
        self.stack = stack
        self.state = state
        self.parked = parked  # off its lane in the world
        self.odometer_m = 0.0
        self.last_observation: Observation | None = None

    def drive(
        self,
        truth: Sequence[AgentState],
        sirens: Sequence[AgentState],
        signals: Mapping[str, str],
        path: ReferencePath,
        stop_request_s: float | None,
        time: TimePoint,
        dt_s: float,
    ) -> StackOutput:
        """One step: sense at `time`, think, act for `dt_s`; the car's state moves on."""
        observation = self.sensors.observe(
            self.state, truth, sirens, signals, time, dt_s, ego_id=self.vehicle_id
        )
        self.last_observation = observation
        out = self.stack.step(self.state, observation, path, stop_request_s, dt_s)
        new_state = step(self.state, out.command, dt_s, self.stack.params)
        self.odometer_m += math.hypot(new_state.x - self.state.x, new_state.y - self.state.y)
        self.state = new_state
        return out

    def watch(
        self,
        truth: Sequence[AgentState],
        sirens: Sequence[AgentState],
        signals: Mapping[str, str],
        time: TimePoint,
        dt_s: float,
        *,
        cameras: bool = True,
    ) -> Observation:
        """One step of sensing without driving (standing at its stop): the stack keeps
        tracking (when `cameras`) and listening; the car does not move."""
        observation = self.sensors.observe(
            self.state, truth, sirens, signals, time, dt_s,
            ego_id=self.vehicle_id, cameras=cameras,
        )  # fmt: skip
        self.last_observation = observation
        self.stack.perceive(self.state, observation)
        return observation

    def place(self, world: World, path: ReferencePath, behaviour: Behaviour | None) -> None:
        """Tell the world where the car is now: parked off its lane while it waits at the
        kerb, else on its lane at its pose (put back on it when it moves off). `behaviour` is
        the stack's (None: it has planned nothing yet)."""
        st = self.state
        cx, cy = self.sensors.center(st)
        _, d = path.project(cx, cy)
        waiting = (
            behaviour in KERB_BEHAVIOURS
            and st.speed < PARK_BELOW_MPS
            and float(d) <= -PARK_OFFSET_M
        )
        vid = self.vehicle_id
        if waiting and not self.parked:
            # a junction is no place to park: the world says no and the car stays on it
            self.parked = not world.apply([ParkEgo(vid)])
        elif self.parked and not waiting:
            world.apply([UnparkEgo(vid)])
            self.parked = False
        if not self.parked:
            fx, fy = front_bumper(st.x, st.y, st.heading)
            world.apply([MoveEgo(vid, float(fx), float(fy), st.heading, st.speed)])


class SoleCarDriver:
    """The runner's `CarDrivers` for a world where our one car is all there is of ours (a
    driving scenario, a CommonRoad problem): no fleet reads the snapshot, the car decides no
    stop for the fleet to record, and every command goes to the world. Subclasses drive."""

    def patch(self, snapshot: WorldSnapshot) -> WorldSnapshot:
        return snapshot

    def ev_stops(self) -> dict[str, EvStop]:
        return {}

    def apply(
        self, commands: Sequence[VehicleCommand], snapshot: WorldSnapshot
    ) -> tuple[list[VehicleCommand], list[CommandFailure]]:
        return list(commands), []  # the sole car takes no fleet commands: all go to the world
