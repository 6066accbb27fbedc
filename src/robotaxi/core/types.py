"""Frozen message types shared by every package (DESIGN.md, `core`).

Frame: the local metric frame of the SUMO network, x east and y north in metres;
headings in radians, counter-clockwise from +x (SUMO's own "angle" is degrees clockwise
from north; `world` converts). Speeds in m/s, times as `TimePoint` (integer µs).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from robotaxi.core.time import TimePoint
from robotaxi.core.yielding import VehicleEventKind

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class AgentKind(enum.StrEnum):
    CAR = "car"
    EMERGENCY = "emergency"
    PEDESTRIAN = "pedestrian"
    ROBOTAXI = "robotaxi"
    UNKNOWN = "unknown"


class SirenState(enum.StrEnum):
    OFF = "off"
    ON = "on"


@dataclass(frozen=True, slots=True)
class Pose:
    """A position and heading in the map frame (m, m, rad)."""

    x: float
    y: float
    heading: float = 0.0

    def distance_to(self, other: Pose) -> float:
        return math.hypot(self.x - other.x, self.y - other.y)


@dataclass(frozen=True, slots=True)
class AgentState:
    """Ground truth of one road user at one instant, as the world reports it."""

    agent_id: str
    kind: AgentKind
    x: float
    y: float
    heading: float
    speed: float
    length: float = 4.5
    width: float = 1.8
    lane_id: str = ""
    lane_pos: float = 0.0
    siren: SirenState = SirenState.OFF

    @property
    def pose(self) -> Pose:
        return Pose(self.x, self.y, self.heading)


@dataclass(frozen=True, slots=True)
class WorldSnapshot:
    """Ground truth read once per tick.

    The vehicle table is columnar for the hot path: `xy` is N×2 (m), `heading` N (rad),
    `speed` N (m/s), `kind` N codes of `AgentKind` values; `ids`, `lane_ids`, `road_ids`
    are tuples in the same row order; `xy` is where SUMO puts a vehicle (the front bumper).
    `signals` maps '<traffic light id>:<link index>' to the state character of that signal
    ('r', 'y', 'g', 'G', ...); it is read only while some car is driven by our stack.
    """

    time: TimePoint
    ids: tuple[str, ...]
    kinds: tuple[AgentKind, ...]
    xy: FloatArray
    heading: FloatArray
    speed: FloatArray
    length: FloatArray
    width: FloatArray
    lane_ids: tuple[str, ...]
    lane_pos: FloatArray
    sirens: tuple[bool, ...]
    signals: Mapping[str, str] = field(default_factory=dict)
    pedestrians: tuple[AgentState, ...] = ()
    teleports: int = 0
    # for each car our stack drives (an "ego"): the ground truth of the road users around it
    # (centred on their footprints, the ego itself left out), read from the same step
    around: Mapping[str, tuple[AgentState, ...]] = field(default_factory=dict)
    # pairs (collider, victim) the world reported in the last step
    collisions: tuple[tuple[str, str], ...] = ()
    # per-row extras for vehicles we command (empty when not read): road (edge) id, whether the
    # vehicle is halted at a stop it was given, odometer (m driven since insertion)
    road_ids: tuple[str, ...] = ()
    stopped: tuple[bool, ...] = ()
    odometer_m: FloatArray = field(default_factory=lambda: np.zeros(0))

    def index_of(self, agent_id: str) -> int:
        return self._index()[agent_id]

    def _index(self) -> dict[str, int]:
        # frozen + slots: build lazily through object.__setattr__ would need a slot; a dict
        # comprehension over a few thousand ids costs ~0.1 ms, cheap enough per lookup batch.
        return {agent_id: i for i, agent_id in enumerate(self.ids)}

    def agent(self, agent_id: str) -> AgentState:
        return self.agent_at(self.index_of(agent_id))

    def agent_at(self, i: int) -> AgentState:
        return AgentState(
            agent_id=self.ids[i],
            kind=self.kinds[i],
            x=float(self.xy[i, 0]),
            y=float(self.xy[i, 1]),
            heading=float(self.heading[i]),
            speed=float(self.speed[i]),
            length=float(self.length[i]),
            width=float(self.width[i]),
            lane_id=self.lane_ids[i],
            lane_pos=float(self.lane_pos[i]),
            siren=SirenState.ON if self.sirens[i] else SirenState.OFF,
        )

    def agents(self) -> list[AgentState]:
        return [self.agent_at(i) for i in range(len(self.ids))] + list(self.pedestrians)


# --- the car's view -------------------------------------------------------------------


def emergency_agents(snapshot: WorldSnapshot) -> list[AgentState]:
    """Every emergency vehicle in a snapshot with its siren on, centred on its footprint
    (the snapshot has the front bumper)."""
    out = []
    for i, kind in enumerate(snapshot.kinds):
        if kind != AgentKind.EMERGENCY or not snapshot.sirens[i]:
            continue
        h, half = float(snapshot.heading[i]), 0.5 * float(snapshot.length[i])
        out.append(
            AgentState(
                snapshot.ids[i],
                AgentKind.EMERGENCY,
                float(snapshot.xy[i, 0]) - half * math.cos(h),
                float(snapshot.xy[i, 1]) - half * math.sin(h),
                h,
                float(snapshot.speed[i]),
                length=float(snapshot.length[i]),
                width=float(snapshot.width[i]),
                siren=SirenState.ON,
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class Detection:
    """One object reported by one sensor in one frame, in the map frame."""

    sensor_id: str
    time: TimePoint
    x: float
    y: float
    heading: float
    speed: float
    kind: AgentKind
    length: float
    width: float
    flashing_lights: bool = False
    position_std_m: float = 0.3
    # ground-truth id, kept only for evaluation and never read by perception
    truth_id: str | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    """What one car's sensors report for one step: all its brain ever learns of the world.

    `detections` are the cameras' objects (map frame), None when no camera frame came in
    this step; `signals` the traffic-light states the car reads ('<tls id>:<link index>' →
    state character); `audio` what the roof microphones recorded over the step
    (microphones × samples, Pa), None without microphones.
    """

    time: TimePoint
    detections: tuple[Detection, ...] | None
    signals: Mapping[str, str] = field(default_factory=dict)
    audio: npt.NDArray[np.float32] | None = None


@dataclass(frozen=True, slots=True)
class Track:
    """A tracked object: state estimate, uncertainty and identity kept across frames.

    `covariance` is the 4×4 covariance of (x, y, vx, vy) in m and m/s. `box_heading` is the
    tracker's filtered orientation of the object's box (rad), None when it has none.
    """

    track_id: int
    time: TimePoint
    x: float
    y: float
    vx: float
    vy: float
    kind: AgentKind
    length: float
    width: float
    covariance: FloatArray
    age_s: float = 0.0
    missed_frames: int = 0
    flashing_lights: bool = False
    box_heading: float | None = None

    @property
    def speed(self) -> float:
        return math.hypot(self.vx, self.vy)

    @property
    def heading(self) -> float:
        """Orientation (rad): the direction of travel when the speed is well above its noise
        (over 1.5 m/s and over 3 σ of the velocity across that direction), else `box_heading`.

        A parked car's filtered velocity is noise and may point anywhere; its box does not.
        """
        travel = math.atan2(self.vy, self.vx)
        if self.box_heading is None:
            return travel
        speed = self.speed
        if speed <= 1.5:
            return self.box_heading
        ex, ey = -self.vy / speed, self.vx / speed
        c = self.covariance
        var_across = ex * ex * c[2, 2] + 2.0 * ex * ey * c[2, 3] + ey * ey * c[3, 3]
        return travel if speed * speed > 9.0 * float(var_across) else self.box_heading


class TrajectoryColumn(enum.IntEnum):
    """Named columns of a trajectory array (N×k); batches of candidates are B×N×k."""

    T = 0  # s, relative to the trajectory's start time
    X = 1  # m
    Y = 2  # m
    HEADING = 3  # rad
    SPEED = 4  # m/s
    ACCEL = 5  # m/s²
    STEER = 6  # road-wheel angle, rad


@dataclass(frozen=True, slots=True)
class Trajectory:
    """A planned or predicted path: `states` is N×7 with columns `TrajectoryColumn`."""

    start: TimePoint
    states: FloatArray

    def __post_init__(self) -> None:
        if self.states.ndim != 2 or self.states.shape[1] != len(TrajectoryColumn):
            raise ValueError(
                f"trajectory states must be N×{len(TrajectoryColumn)}, got {self.states.shape}"
            )


@dataclass(frozen=True, slots=True)
class ControlCommand:
    """What the controller asks of the vehicle for one tick."""

    accel: float  # m/s², negative brakes
    steering_rate: float  # road-wheel angle rate, rad/s


# --- the service ----------------------------------------------------------------------


class TripState(enum.StrEnum):
    """The trip life cycle of DESIGN.md."""

    REQUESTED = "requested"
    ASSIGNED = "assigned"
    EN_ROUTE = "en_route"
    ARRIVED = "arrived"
    BOARDED = "boarded"
    STARTED = "started"
    DRIVING = "driving"
    ARRIVED_AT_DESTINATION = "arrived_at_destination"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    PULLED_OVER = "pulled_over"
    # the ride ended under way without reaching the destination for a reason that was not
    # the rider's (the service stopped, the car failed): neither served nor cancelled
    INTERRUPTED = "interrupted"

    @property
    def terminal(self) -> bool:
        return self in (TripState.COMPLETED, TripState.CANCELLED, TripState.INTERRUPTED)


@dataclass(frozen=True, slots=True)
class RideRequest:
    """A rider asks for a ride from `pickup` to `dropoff` (map-frame metres)."""

    request_id: str
    rider_id: str
    rider_name: str
    time: TimePoint
    pickup_x: float
    pickup_y: float
    dropoff_x: float
    dropoff_y: float
    patience_s: float = 600.0
    origin_zone: str = ""
    destination_zone: str = ""


@dataclass(frozen=True, slots=True)
class TripEvent:
    """One transition of one trip: the event log's row. A trip's state is the fold of these."""

    trip_id: str
    seq: int
    time: TimePoint
    state: TripState
    vehicle_id: str | None = None
    cause: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VehicleEvent:
    """Something a car did that is not a trip transition, for the event log: e.g. an
    emergency vehicle coming in range ("ev_in_range"), the car stopped at the kerb for it
    ("ev_pulled_over"), and merging back ("ev_resumed")."""

    vehicle_id: str
    time: TimePoint
    kind: VehicleEventKind
    data: Mapping[str, Any] = field(default_factory=dict)
