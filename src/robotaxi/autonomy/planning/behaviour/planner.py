"""The behaviour planner of one car: its policies composed in priority order, and the
arbitration that names the tick."""

from __future__ import annotations

from collections.abc import Mapping

from robotaxi.autonomy.perception.siren import SirenEvidence
from robotaxi.autonomy.planning.behaviour.config import BehaviourConfig
from robotaxi.autonomy.planning.behaviour.ev_yield import EvYieldPolicy
from robotaxi.autonomy.planning.behaviour.follow import FollowPolicy
from robotaxi.autonomy.planning.behaviour.junction import StopLinePolicy
from robotaxi.autonomy.planning.behaviour.kerb import KerbPolicy
from robotaxi.autonomy.planning.behaviour.occlusion import OccludedKerbPolicy
from robotaxi.autonomy.planning.behaviour.pass_blocker import OncomingPassLeave, PassBlockerPolicy
from robotaxi.autonomy.planning.behaviour.policy import (
    Behaviour,
    BehaviourPolicy,
    BehaviourTarget,
    Draft,
    Tick,
)
from robotaxi.autonomy.planning.behaviour.safe_stop import SafeStopPolicy
from robotaxi.autonomy.planning.behaviour.scene import FrenetScene
from robotaxi.autonomy.planning.behaviour.siren_caution import SirenBearing
from robotaxi.autonomy.planning.behaviour.standoff import StandoffPolicy
from robotaxi.autonomy.planning.reference import ReferencePath
from robotaxi.autonomy.prediction import Predictions
from robotaxi.autonomy.vehicle import IPACE, VehicleParams, VehicleState

# Which active behaviour names the tick, highest first.
PRIORITY: tuple[Behaviour, ...] = (
    Behaviour.SAFE_STOP,
    Behaviour.YIELD_TO_EV,
    Behaviour.STOP_AT_LINE,
    Behaviour.CURBSIDE_STOP,
    Behaviour.LEAVE_CURB,
    Behaviour.EV_CAUTION,
    Behaviour.PASS_BLOCKER,
)
# While a siren is heeded (and no EV is yielded to), the tick is named after the siren rather
# than a red line or the traffic ahead; a safe stop or a requested kerbside stop still go first.
CAUTION_PRIORITY: tuple[Behaviour, ...] = (
    Behaviour.SAFE_STOP,
    Behaviour.CURBSIDE_STOP,
    Behaviour.EV_CAUTION,
    Behaviour.STOP_AT_LINE,
    Behaviour.LEAVE_CURB,
)


def arbitrate(draft: Draft) -> tuple[Behaviour | None, float | None]:
    """The behaviour that names the tick (None: no policy claims it) and the stop (the
    nearest asked for, rear-axle arc length in m; None: none)."""
    stop_s = min((s for _, s in draft.stops), default=None)
    active = {b for b, _ in draft.stops}
    if draft.passing:
        active.add(Behaviour.PASS_BLOCKER)
    priority = PRIORITY
    if draft.caution and not draft.yielding:
        priority = CAUTION_PRIORITY
        active.add(Behaviour.EV_CAUTION)
    name = draft.name
    for b in priority:
        if b in active:
            name = b
            break
    return name, stop_s


class BehaviourPlanner:
    """The behaviour state machine of one car (package docstring): per-concern policies, each
    with its own latches, applied in priority order to build the tick's target."""

    def __init__(self, config: BehaviourConfig | None = None, params: VehicleParams = IPACE):
        self.config = config if config is not None else BehaviourConfig()
        self.params = params
        self.state = Behaviour.LANE_FOLLOW
        cfg = self.config
        self.follow = FollowPolicy(cfg, params)
        self.occluded_kerb = OccludedKerbPolicy(cfg, params)
        self.safe_stop = SafeStopPolicy(cfg)
        self.stop_line = StopLinePolicy(cfg, params)
        self.ev_yield = EvYieldPolicy(cfg, params)
        self.kerb = KerbPolicy(cfg, params)
        self.pass_blocker = PassBlockerPolicy(cfg, params)
        self.standoff = StandoffPolicy(cfg, params)
        # in this order: each may read what the ones before it decided
        self.policies: tuple[BehaviourPolicy, ...] = (
            self.follow,
            self.occluded_kerb,
            self.safe_stop,
            self.stop_line,
            self.ev_yield,
            self.kerb,
            self.pass_blocker,
            self.standoff,
        )

    @property
    def audio_direction(self) -> SirenBearing | None:
        """Where the siren is heard from relative to our road (None: not heard)."""
        return self.ev_yield.heard.latch.bearing

    def permit_oncoming_pass(self, leave: OncomingPassLeave) -> str:
        """Remote assistance's leave to pass a blocker across a solid centre line (the car
        still waits for a gap in the oncoming traffic); "" when taken, else why not."""
        return self.pass_blocker.permit(leave)

    @property
    def held_by_line(self) -> bool:
        """The last tick waited behind a blocker it may pass only across a solid centre
        line, without leave to cross it."""
        return self.pass_blocker.held_by_line

    def step(
        self,
        ego: VehicleState,
        path: ReferencePath,
        scene: FrenetScene,
        predictions: Predictions,
        signals: Mapping[str, str],
        stop_request_s: float | None,
        time_s: float,
        last_plan_ok: bool = True,
        siren: SirenEvidence | None = None,
    ) -> BehaviourTarget:
        """Update the state machine and return this tick's target. `siren` is what the
        microphones hear this tick (None: no microphones, camera-only as before)."""
        lane_w = float(path.lane_width_at(scene.ego_s))
        tick = Tick(
            ego, path, scene, predictions, signals, stop_request_s, time_s, last_plan_ok, siren,
            lane_w,
        )  # fmt: skip
        draft = Draft()
        for policy in self.policies:
            draft = policy.apply(tick, draft)
        name, stop_s = arbitrate(draft)
        if name is None:
            name = self.follow.behaviour(tick)
        self.state = name
        return BehaviourTarget(
            name, draft.offset_m, draft.speed_limit_mps, stop_s, draft.borrow_oncoming
        )
