"""Passing a double-parked vehicle through the next same-direction lane to our left, when the
gap in that lane allows; or through the oncoming lane, when its traffic leaves a gap — across
a solid centre line only with an operator's leave (`OncomingPassLeave`)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from robotaxi.autonomy.planning.behaviour.config import BehaviourConfig
from robotaxi.autonomy.planning.behaviour.policy import Behaviour, Draft, Tick
from robotaxi.autonomy.planning.behaviour.scene import VEHICLE_KINDS
from robotaxi.autonomy.planning.reference import ReferencePath
from robotaxi.autonomy.vehicle import VehicleParams
from robotaxi.core.types import AgentKind

# a latched blocker still stands while its tracked speed stays this far above
# `blocker_speed_mps` (a parked car's track jitters), m/s
BLOCKER_NOISE_MPS = 0.5


@dataclass(frozen=True, slots=True, eq=False)
class OncomingPassLeave:
    """Remote assistance's leave to cross the solid centre line of `path` between arc lengths
    `from_s_m` and `to_s_m` (m: the street where the blocker stands) to pass one blocker
    through the oncoming lane. The car still checks the gap in the oncoming traffic itself.
    Good for one pass on that stretch of that path: spent once the pass is done, void once
    the car's rear is past `to_s_m` or it drives another path."""

    path: ReferencePath
    from_s_m: float
    to_s_m: float


@dataclass(slots=True)
class PassLatch:
    """The lead's track id and since when it stands or crawls (s), and, once the pass is
    under way, the arc length (m) of the blocker's front, the lateral offset we pass at
    (m) and whether that is in the oncoming lane."""

    blocker_id: int | None = None
    blocker_since_s: float | None = None
    passing_front_s: float | None = None
    target_d: float = 0.0
    oncoming: bool = False
    by_leave: bool = False  # the pass under way crosses a solid centre line, with leave
    # where we stand, drawn up behind a blocker we may not pass without leave (m)
    hold_s: float | None = None


class PassBlockerPolicy:
    """`pass_blocker` (package docstring). Only when nothing else holds the tick: no
    behaviour named, no siren caution, no yield, no safe stop and no kerbside stop.

    What counts as a blocker: a vehicle standing in our lane for `blocker_wait_s`, not
    queued; an obstacle that is no vehicle (kind unknown: road works, debris) as soon as it
    is seen standing in our lane within `follow_range_m`, so that we change lane early, not
    at it; a narrow lead (a cyclist, narrower than `narrow_road_user_m`) crawling below
    `slow_lead_fraction` of the limit for `blocker_wait_s`, passed only through a
    same-direction lane. With none beside ours, a
    vehicle standing for `oncoming_pass_wait_s` (no longer than `oncoming_pass_max_length_m`)
    or a standing obstacle is passed through the oncoming lane, when the oncoming traffic
    leaves a gap for the whole pass (`_oncoming_gap_ok`). Where the centre line is solid
    (the path's `solid_centre_line`) the car does not cross it on its own: it waits behind the
    blocker (`held_by_line`) until remote assistance gives leave (`permit`), and then still
    goes only into a gap in the oncoming traffic."""

    def __init__(self, config: BehaviourConfig, params: VehicleParams) -> None:
        self.config = config
        self.params = params
        self.latch = PassLatch()
        self.leave: OncomingPassLeave | None = None
        # this tick: a blocker we would pass through the oncoming lane stands before a solid
        # centre line and we have no leave to cross it
        self.held_by_line = False

    def permit(self, leave: OncomingPassLeave) -> str:
        """Take an operator's leave to cross the solid centre line; "" when taken, else why
        not (there is no oncoming lane on that stretch to pass through)."""
        lane_w = float(np.min(leave.path.lane_width_at([leave.from_s_m, leave.to_s_m])))
        span = np.linspace(leave.from_s_m, leave.to_s_m, 32)
        if float(np.max(leave.path.oncoming_room_at(span))) < lane_w - 0.1:
            return "there is no lane for the other direction beside its own to pass through"
        self.leave = leave
        return ""

    def _leave_for(self, tick: Tick, span: npt.NDArray[np.float64]) -> bool:
        """Whether our leave covers a pass over `span` (arc lengths, m, ascending) of this
        tick's path: every point of it where the centre line is solid lies on the stretch
        the leave is for."""
        leave = self.leave
        if leave is None or leave.path is not tick.path:
            return False
        solid = span[tick.path.solid_centre_line_at(span)]
        return bool(np.all((solid >= leave.from_s_m - 1.0) & (solid <= leave.to_s_m + 1.0)))

    def apply(self, tick: Tick, draft: Draft) -> Draft:
        self.held_by_line = False
        leave = self.leave
        if leave is not None and (
            leave.path is not tick.path or tick.s_ego - self.params.rear_overhang_m > leave.to_s_m
        ):
            self.leave = None  # another path, or past that street: the leave is void
        if not (
            self.config.pass_blockers
            and draft.name is None
            and not draft.caution
            and not draft.yielding
            and not draft.safe_stopping
            and not draft.stops_for(Behaviour.CURBSIDE_STOP)
        ):
            self.latch = PassLatch()
            return draft
        pass_offset, wait_stop = self._pass(tick)
        if pass_offset is not None:
            draft = replace(
                draft, offset_m=pass_offset, passing=True, borrow_oncoming=self.latch.oncoming
            )
        if wait_stop is not None:
            # hold back from it: room to steer out once the gap comes
            draft = draft.with_stop(Behaviour.CAR_FOLLOW, wait_stop)
        return draft

    def _pass(self, tick: Tick) -> tuple[float | None, float | None]:
        """(lateral offset to drive at, or None to keep our lane; rear-axle arc length to
        wait at behind the blocker, or None)."""
        cfg, p = self.config, self.params
        path, scene, pred, lane_w = tick.path, tick.scene, tick.predictions, tick.lane_width_m
        time_s = tick.time_s
        s_ego, d_ego = scene.ego_s, scene.ego_d
        front, rear = s_ego + p.rear_axle_to_front_m, s_ego - p.rear_overhang_m
        vehicle = np.array([k in VEHICLE_KINDS for k in pred.kinds], dtype=bool)
        half_len = 0.5 * pred.length
        passing_front_s = self.latch.passing_front_s
        if passing_front_s is not None:
            # a blocker that moves (a cyclist) is passed where it is now
            seen = np.flatnonzero(pred.track_ids == self.latch.blocker_id)
            if len(seen):
                j = int(seen[0])
                passing_front_s = float(scene.agent_s[j, 0] + half_len[j])
                self.latch.passing_front_s = passing_front_s
            if rear > passing_front_s + cfg.pass_return_gap_m:
                if self.latch.by_leave:
                    self.leave = None  # the one pass it was given for is done
                self.latch = PassLatch()  # clear of it: back to our lane
                return None, None
            target_d = self.latch.target_d
            if d_ego >= cfg.pass_abort_below_m or self._target_ok(
                tick, vehicle, target_d, passing_front_s, self.latch.oncoming
            ):
                return target_d, None
            # the gap closed before we were well over: back behind the blocker and wait
            self.latch.passing_front_s = None
            self.latch.oncoming = False
        if len(pred) == 0:
            self.latch = PassLatch()
            return None, None
        a_s, a_d = scene.agent_s[:, 0], scene.agent_d[:, 0]
        rear_edge = a_s - half_len
        in_lane = vehicle & (np.abs(a_d) < 0.5 * lane_w)
        ahead = in_lane & (rear_edge > front - 0.5) & (rear_edge - front < cfg.follow_range_m)
        if not np.any(ahead):
            self.latch = PassLatch()
            return None, None
        i = int(np.argmin(np.where(ahead, rear_edge, np.inf)))
        speed = float(pred.speed[i])
        # once standing, a blocker keeps standing through the tracker's speed noise
        still = BLOCKER_NOISE_MPS if int(pred.track_ids[i]) == self.latch.blocker_id else 0.0
        standing = speed < cfg.blocker_speed_mps + still
        # road works, debris: not a vehicle that will drive off
        obstacle = standing and pred.kinds[i] == AgentKind.UNKNOWN
        # a cyclist (a narrow road user) crawling far below the limit: passed with a lane's
        # room; a slow car is followed
        slow = float(pred.width[i]) < cfg.narrow_road_user_m and speed < (
            cfg.slow_lead_fraction * float(path.speed_limit_at(a_s[i]))
        )
        if not (standing or slow):
            self.latch = PassLatch()
            return None, None
        b_front = float(a_s[i] + half_len[i])
        if not obstacle:
            for line in path.stop_lines:
                if line.s_m > b_front - 1.0:
                    if line.s_m - b_front < cfg.blocker_line_clear_m:
                        return None, None  # waiting at the line (or queued for it)
                    break
            queue = (
                in_lane
                & (rear_edge > b_front - 0.5)
                & (rear_edge - b_front < cfg.blocker_queue_gap_m)
            )
            queue[i] = False
            if np.any(queue):
                return None, None  # traffic ahead of it: a queue, not a blocker
        span = np.linspace(s_ego, b_front + cfg.pass_return_gap_m + p.length_m, 16)
        same_lane_room = float(np.min(path.left_room_at(span))) >= 1.5 * lane_w - 0.1
        # with no lane our way beside ours, the oncoming lane: never through a junction, and
        # across a solid centre line only with leave
        oncoming_room = (
            not same_lane_room
            and cfg.oncoming_pass
            and standing
            and (obstacle or float(pred.length[i]) <= cfg.oncoming_pass_max_length_m)
            and float(np.min(path.oncoming_room_at(span))) >= lane_w - 0.1
            and not any(s_ego < line.s_m < span[-1] for line in path.stop_lines)
        )
        by_leave = oncoming_room and bool(np.any(path.solid_centre_line_at(span)))
        if by_leave and not self._leave_for(tick, span):
            # a solid line: we may not cross it on our own. Hold back where we could steer
            # out once leave comes, and wait (the car asks for help after standing a while)
            self.held_by_line = True
            wait = float(rear_edge[i]) - cfg.oncoming_pass_standoff_m - p.rear_axle_to_front_m
            if tick.speed < cfg.peek_below_mps:
                # drawn up: stay where we stand (not a creep forward, tick by tick)
                if self.latch.hold_s is None:
                    self.latch.hold_s = max(wait, s_ego)
                return None, self.latch.hold_s
            return None, wait if wait > s_ego - 0.5 else None
        standoff = cfg.oncoming_pass_standoff_m if oncoming_room else cfg.pass_standoff_m
        wait = float(rear_edge[i]) - standoff - p.rear_axle_to_front_m
        wait_stop = wait if standing and wait > s_ego - 0.5 else None
        peek_d: float | None = None
        if oncoming_room and tick.speed < cfg.peek_below_mps:
            # drawing up, keep to our lane's left edge, no closer: the view past it reaches
            # further (not at speed, close beside oncoming cars)
            peek_d = max(0.0, float(path.left_room_at(s_ego)) - 0.5 * p.width_m - 0.1)
            wait_stop = max(wait, s_ego) if wait_stop is None else wait_stop
        track = int(pred.track_ids[i])
        if track != self.latch.blocker_id or self.latch.blocker_since_s is None:
            self.latch.blocker_id, self.latch.blocker_since_s = track, time_s
        waited = time_s - self.latch.blocker_since_s
        if waited < cfg.blocker_wait_s and not obstacle:
            # room to look past it (and to steer out) if it stays
            return peek_d, (wait_stop if oncoming_room else None)
        if same_lane_room:
            # the next same-direction lane's centre (SUMO gives the lanes of an edge one width)
            target_d, oncoming = lane_w, False
        elif oncoming_room:
            target_d = float(path.left_room_at(s_ego)) + 0.5 * lane_w
            oncoming = True
            if waited < cfg.oncoming_pass_wait_s and not obstacle:
                return peek_d, wait_stop
            if not self._target_ok(tick, vehicle, target_d, b_front, oncoming, i):
                return peek_d, wait_stop
        else:
            return None, None  # no room to pass it: follow it as any lead
        if self._target_ok(tick, vehicle, target_d, b_front, oncoming, i):
            self.latch.passing_front_s = b_front
            self.latch.target_d, self.latch.oncoming = target_d, oncoming
            self.latch.by_leave = by_leave
            return target_d, None
        return None, wait_stop

    def _target_ok(
        self,
        tick: Tick,
        vehicle: npt.NDArray[np.bool_],
        target_d: float,
        blocker_front_s: float,
        oncoming: bool,
        blocker: int | None = None,
    ) -> bool:
        if oncoming:
            return self._oncoming_gap_ok(tick, target_d, blocker_front_s, blocker)
        return self._gap_ok(tick, vehicle, target_d, blocker_front_s)

    def _oncoming_gap_ok(
        self, tick: Tick, target_d: float, blocker_front_s: float, blocker: int | None = None
    ) -> bool:
        """The oncoming lane at `target_d` is ours for the whole pass: from here until our
        rear is `pass_return_gap_m` past the blocker's front (at `oncoming_pass_accel_mps2` up
        to the speed limit, plus `oncoming_gap_margin_s`) nobody coming the other way reaches
        our front, and nobody stands or drives our way in that lane before the return.

        What we cannot see counts as coming: a car at the speed limit just beyond the
        cameras' reach (`oncoming_sight_m`) or hidden behind the blocker (index `blocker` in
        the predictions; the sight line from the cameras past its rear corner) must not
        reach our front before we are back either."""
        cfg, p = self.config, self.params
        scene, pred, lane_w, v = tick.scene, tick.predictions, tick.lane_width_m, tick.speed
        if len(pred) == 0:
            return True
        s_ego = scene.ego_s
        rear = s_ego - p.rear_overhang_m
        return_s = blocker_front_s + cfg.pass_return_gap_m
        dist = max(return_s - rear, 0.0)
        v_max = max(float(tick.path.speed_limit_at(s_ego)), v, 0.1)
        a = cfg.oncoming_pass_accel_mps2
        to_top = (v_max * v_max - v * v) / (2 * a)
        if to_top >= dist:
            t_pass = (np.sqrt(v * v + 2 * a * dist) - v) / a
        else:
            t_pass = (v_max - v) / a + (dist - to_top) / v_max
        t_need = float(t_pass) + cfg.oncoming_gap_margin_s
        s_cam = s_ego + p.rear_axle_to_center_m
        sight = cfg.oncoming_sight_m
        if blocker is not None and len(pred) > blocker:
            edge_d = float(scene.agent_d[blocker, 0] + 0.5 * pred.width[blocker])
            edge_s = float(scene.agent_s[blocker, 0] - 0.5 * pred.length[blocker]) - s_cam
            if edge_d > scene.ego_d and edge_s > 0:
                sight = min(sight, edge_s * (target_d - scene.ego_d) / (edge_d - scene.ego_d))
        unseen_reach = s_cam + sight - v_max * t_need
        if unseen_reach < return_s + p.length_m:
            return False
        a_s, a_d, v_s = scene.agent_s[:, 0], scene.agent_d[:, 0], scene.agent_v_s
        half_len = 0.5 * pred.length
        in_target = np.abs(a_d - target_d) < 0.5 * lane_w + 0.5 * pred.width + 0.3
        our_front_at_return = return_s + p.length_m
        coming = (v_s < -cfg.blocker_speed_mps) & (
            a_s - half_len + v_s * t_need < our_front_at_return + cfg.pass_min_gap_m
        )
        # in the lane between our rear and where we return (or beyond it, for those coming)
        ahead = a_s + half_len > rear - cfg.pass_min_gap_m
        in_way = (v_s >= -cfg.blocker_speed_mps) & (
            a_s - half_len < our_front_at_return + cfg.pass_min_gap_m
        )
        bad = in_target & ahead & (coming | in_way)
        return not bool(np.any(bad))

    def _gap_ok(
        self,
        tick: Tick,
        vehicle: npt.NDArray[np.bool_],
        target_d: float,
        blocker_front_s: float,
    ) -> bool:
        """The gap in the lane at `target_d` takes us: its follower keeps a time gap of
        `pass_follower_headway_s` and a time to reach our rear of `pass_follower_ttc_s` at
        its tracked speed, its leader is `pass_leader_headway_s` ahead of us, nobody in it
        comes the other way, and nothing stands in it before we are past the blocker."""
        scene, pred, lane_w, v = tick.scene, tick.predictions, tick.lane_width_m, tick.speed
        if len(pred) == 0:
            return True
        cfg, p = self.config, self.params
        s_ego = scene.ego_s
        a_s, a_d, v_s = scene.agent_s[:, 0], scene.agent_d[:, 0], scene.agent_v_s
        half_len = 0.5 * pred.length
        in_target = vehicle & (np.abs(a_d - target_d) < 0.5 * lane_w + 0.3)
        behind = a_s < s_ego + p.rear_axle_to_center_m
        gap_behind = s_ego - p.rear_overhang_m - (a_s + half_len)
        v_f = np.maximum(v_s, 0.0)
        closing = v_f - v
        ttc = np.where(closing > 0.1, gap_behind / np.maximum(closing, 0.1), np.inf)
        follower_bad = (
            (gap_behind < cfg.pass_min_gap_m)
            | (gap_behind < v_f * cfg.pass_follower_headway_s)
            | (ttc < cfg.pass_follower_ttc_s)
        )
        gap_ahead = a_s - half_len - (s_ego + p.rear_axle_to_front_m)
        standing_in_way = (np.abs(v_s) < cfg.blocker_speed_mps) & (
            a_s - half_len < blocker_front_s + cfg.pass_return_gap_m + p.length_m
        )
        leader_bad = (gap_ahead < cfg.pass_min_gap_m + v * cfg.pass_leader_headway_s) | (
            standing_in_way
        )
        oncoming = v_s < -1.0
        bad = in_target & (oncoming | np.where(behind, follower_bad, leader_bad))
        return not bool(np.any(bad))
