"""Standing behind a standing road user, keep room to steer out round it.

The motion planner's car following (IDM) draws up to its minimum gap, 2 m, behind a standing
leader — too close to steer round it, and the car cannot back up. If the leader never moves
(a broken-down car, a lane closed by works that the car does not pass on its own, say
queued before a junction), nothing can get the car going again: not its own pass, nor an
operator's "this lane is closed" (remote assistance). So behind a standing vehicle or
obstacle in its path with no traffic just ahead of it (not the end of a queue, which moves
on: there the car keeps car following's gap, as drivers do), once it has stood a few
seconds (not stop-and-go traffic; an obstacle that is no vehicle at once, as a stalled car
seen standing from afar), the car stops where it could
still steer out round it (`planning.steer_out`), and, drawn up closer than that (it stood
there before the leader did), holds where it stands instead of creeping on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robotaxi.autonomy.planning.behaviour.config import BehaviourConfig
from robotaxi.autonomy.planning.behaviour.pass_blocker import BLOCKER_NOISE_MPS
from robotaxi.autonomy.planning.behaviour.policy import Behaviour, Draft, Tick
from robotaxi.autonomy.planning.behaviour.scene import VEHICLE_KINDS
from robotaxi.autonomy.planning.steer_out import clearing_shift_m, steer_out_gap_m
from robotaxi.autonomy.vehicle import VehicleParams
from robotaxi.core.types import AgentKind

# a road user overlapping our path's width (at the draft's offset) with this to spare is
# in our way (the follow policy's rule), m
CORRIDOR_SPARE_M = 0.3
# slower than this, drawn up inside the standoff, the car holds where it stands (m/s)
HOLD_BELOW_MPS = 0.5


@dataclass(slots=True)
class StandoffLatch:
    """The standing leader's track id, since when it stands (s), and where we hold
    (rear-axle arc length, m) when we came to rest closer to it than the standoff."""

    lead_id: int | None = None
    since_s: float = 0.0  # it stands since (s)
    hold_s: float | None = None


class StandoffPolicy:
    """A stop `steer_out_gap_m` (plus `standoff_slack_m`) behind the nearest road user in our
    path when it stands — an obstacle at once, a vehicle once it has stood (seen)
    `blocker_wait_s` — with no vehicle within `blocker_queue_gap_m` ahead of it, or, come to
    rest closer than that by then, where we stand; not while passing it, yielding to an
    emergency vehicle or in a safe stop (those set their own stops)."""

    def __init__(self, config: BehaviourConfig, params: VehicleParams) -> None:
        self.config = config
        self.params = params
        self.latch = StandoffLatch()

    def apply(self, tick: Tick, draft: Draft) -> Draft:
        stop = self._stop(tick, draft)
        if stop is None:
            return draft
        return draft.with_stop(Behaviour.CAR_FOLLOW, stop)

    def _stop(self, tick: Tick, draft: Draft) -> float | None:
        cfg, p, pred, scene = self.config, self.params, tick.predictions, tick.scene
        if (
            not cfg.steer_out_standoff
            or draft.passing
            or draft.borrow_oncoming
            or draft.yielding
            or draft.safe_stopping
            or len(pred) == 0
        ):
            self.latch = StandoffLatch()
            return None
        a_s, a_d = scene.agent_s[:, 0], scene.agent_d[:, 0]
        rear_edge = a_s - 0.5 * pred.length
        front = tick.s_ego + p.rear_axle_to_front_m
        vehicle = np.array([k in VEHICLE_KINDS for k in pred.kinds], dtype=bool)
        in_path = np.abs(a_d - draft.offset_m) < 0.5 * (p.width_m + pred.width) + CORRIDOR_SPARE_M
        # as far as the cameras track: a stalled car is seen standing well before it leads us
        ahead = vehicle & in_path & (rear_edge > front - 0.5)
        if not np.any(ahead):
            self.latch = StandoffLatch()
            return None
        i = int(np.argmin(np.where(ahead, rear_edge, np.inf)))
        track = int(pred.track_ids[i])
        # once standing, a leader keeps standing through the tracker's speed noise
        still = BLOCKER_NOISE_MPS if track == self.latch.lead_id else 0.0
        if float(pred.speed[i]) >= cfg.blocker_speed_mps + still:
            self.latch = StandoffLatch()
            return None  # it moves: car following
        b_front = float(a_s[i] + 0.5 * pred.length[i])
        queue = (
            vehicle
            & in_path
            & (rear_edge > b_front - 0.5)
            & (rear_edge - b_front < cfg.blocker_queue_gap_m)
        )
        queue[i] = False
        if np.any(queue):
            # traffic just ahead of it: a queue (at the lights, in a jam) that will move on,
            # followed at car following's gap as a driver does
            self.latch = StandoffLatch()
            return None
        if track != self.latch.lead_id:
            self.latch = StandoffLatch(track, tick.time_s)
        obstacle = pred.kinds[i] == AgentKind.UNKNOWN  # road works, debris: never drive off
        if not obstacle and tick.time_s - self.latch.since_s < cfg.blocker_wait_s:
            return None  # it has only just stopped (stop-and-go traffic): car following
        # round it on whichever side needs the shorter move
        d_ego, half = tick.d_ego, 0.5 * float(pred.width[i])
        left = float(clearing_shift_m(p, d_ego, np.array([a_d[i]]), np.array([2.0 * half]))[0])
        right = max(d_ego + 0.5 * p.width_m - (float(a_d[i]) - half), 0.0)
        gap = float(steer_out_gap_m(p, min(left, right))) + cfg.standoff_slack_m
        wanted = float(rear_edge[i]) - gap - p.rear_axle_to_front_m
        if wanted > tick.s_ego - 0.5:
            self.latch.hold_s = None
            return wanted
        if self.latch.hold_s is None and tick.speed < HOLD_BELOW_MPS:
            self.latch.hold_s = tick.s_ego  # drawn up too close already: no creeping on
        return self.latch.hold_s
