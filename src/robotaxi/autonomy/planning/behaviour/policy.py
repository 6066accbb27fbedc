"""What the behaviour policies share: the behaviours, a tick's inputs, the draft target they
build together, and the one interface each policy implements."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from robotaxi.autonomy.perception.siren import SirenEvidence
from robotaxi.autonomy.planning.behaviour.scene import FrenetScene
from robotaxi.autonomy.planning.reference import ReferencePath, StopLine
from robotaxi.autonomy.prediction import Predictions
from robotaxi.autonomy.vehicle import VehicleState


class Behaviour(enum.StrEnum):
    LANE_FOLLOW = "lane_follow"
    CAR_FOLLOW = "car_follow"
    STOP_AT_LINE = "stop_at_line"
    LEAVE_CURB = "leave_curb"
    CURBSIDE_STOP = "curbside_stop"
    YIELD_TO_EV = "yield_to_ev"
    EV_CAUTION = "ev_caution"
    SAFE_STOP = "safe_stop"
    PASS_BLOCKER = "pass_blocker"


@dataclass(frozen=True, slots=True)
class BehaviourTarget:
    """What the motion planner aims for: lateral offset `lateral_offset_m` from the reference
    path (m, left positive), speed `target_speed_mps`, and, when set, the rear-axle arc
    length `stop_s_m` (m) where the car must be standing. With `borrow_oncoming`, the lanes
    of the other direction (the path's `oncoming_room_m`) count as drivable: a pass round a
    standing vehicle through them."""

    behaviour: Behaviour
    lateral_offset_m: float
    target_speed_mps: float
    stop_s_m: float | None = None
    borrow_oncoming: bool = False
    # the time headway (s) the motion planner's car following keeps to a leader (None: its
    # own, `planning.motion.IDM_TIME_HEADWAY_S`); shorter for a while after a lane change
    headway_s: float | None = None


@dataclass(frozen=True, slots=True)
class Tick:
    """What every policy sees this tick: the arguments of `BehaviourPlanner.step`, and the
    lane width at the ego (m). `siren` is None without microphones."""

    ego: VehicleState
    path: ReferencePath
    scene: FrenetScene
    predictions: Predictions
    signals: Mapping[str, str]
    stop_request_s: float | None
    time_s: float
    last_plan_ok: bool
    siren: SirenEvidence | None
    lane_width_m: float

    @property
    def s_ego(self) -> float:
        """Rear-axle arc length along the path (m)."""
        return self.scene.ego_s

    @property
    def d_ego(self) -> float:
        """Rear-axle lateral offset from the path (m, left positive)."""
        return self.scene.ego_d

    @property
    def speed(self) -> float:
        """Ego speed (m/s)."""
        return self.ego.speed


@dataclass(frozen=True, slots=True)
class Draft:
    """This tick's target as the policies build it, each in turn (in priority order).

    - `speed_limit_mps`, `offset_m`: the target speed (m/s, inf until the follow policy sets
      it) and lateral offset (m), the later policy's word winning;
    - `stops`: every (behaviour, rear-axle arc length in m) that asks the car to stand, in
      the order asked; the nearest is the target's stop and the behaviours name the tick;
    - `name`: a behaviour a policy names the tick after without a stop (leaving the kerb);
    - `caution`: a siren is heard and heeded; `passing`: passing a double-parked vehicle,
      `borrow_oncoming` through the other direction's lane;
    - what later policies need to know of earlier ones: the next stop line ahead and where
      we stop for its signal (`next_line`, `line_stop_s`), whether we are yielding to a seen
      emergency vehicle (`yielding`) or in a safe stop (`safe_stopping`), and whether a yield
      ended this tick (`ev_released`: leaving the kerb starts anew).
    """

    speed_limit_mps: float = math.inf
    offset_m: float = 0.0
    stops: tuple[tuple[Behaviour, float], ...] = ()
    name: Behaviour | None = None
    caution: bool = False
    passing: bool = False
    borrow_oncoming: bool = False
    next_line: StopLine | None = None
    line_stop_s: float | None = None
    yielding: bool = False
    safe_stopping: bool = False
    ev_released: bool = False

    def with_stop(self, behaviour: Behaviour, stop_s: float) -> Draft:
        """This draft with one more stop, asked for by `behaviour` at `stop_s` (m)."""
        return replace(self, stops=(*self.stops, (behaviour, stop_s)))

    def stops_for(self, behaviour: Behaviour) -> bool:
        """Whether `behaviour` asked for a stop."""
        return any(b == behaviour for b, _ in self.stops)


class BehaviourPolicy(Protocol):
    """One concern of the behaviour layer. It owns its latches, if any (a small dataclass,
    `latch`), updates them from the tick and returns the draft with its say added."""

    def apply(self, tick: Tick, draft: Draft) -> Draft: ...
