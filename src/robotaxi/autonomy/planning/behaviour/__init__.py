"""Behaviour layer: a small explicit state machine that sets the motion planner's target.

Behaviours, by priority (the highest active one names the tick):

- `safe_stop`: the motion planner failed for several ticks in a row → stop where we are;
- `yield_to_ev`: an emergency vehicle with flashing lights is within range, behind or
  ahead, in our or an adjacent lane (or its predicted path enters them, as when it crosses
  at an intersection ahead), and is catching up, coming toward us, alongside or crossing
  → move to the kerb and stop there (before any stop line, so never inside an
  intersection); stay until it has passed (seen ahead and moving away, or behind and
  moving away) or has been out of sight for `ev_lost_resume_s`, then rejoin the lane;
- `ev_caution`: a siren is heard (roof microphones, `SirenEvidence`) and rising, but no
  emergency vehicle with lights is seen yet: slow to `caution_speed_mps`, move part of
  the way toward the kerb and, when the siren comes from a side street, hold before the
  next stop line (never inside the junction). Once the siren has kept approaching for
  `audio_stop_detect_s` from behind, ahead or a side street ahead, and there is a kerb,
  audio alone completes the pull-over (CVC 21806: "drive to the right-hand edge … and
  stop until the authorized emergency vehicle has passed"): brake at `audio_stop_decel_mps2`
  to a stop at the kerb, short of any stop line and clear of the junction just crossed.
  The cameras seeing the lights hand over to `yield_to_ev`; a siren that fades or recedes
  without being seen ends the caution (after standing `ev_resume_dwell_s`);
- `stop_at_line`: the next stop line's signal is red, or yellow and we can stop
  comfortably → stop with the front bumper before the line;
- `curbside_stop`: a stop was requested at arc length s → move to the kerb and stop with
  the footprint centre at s;
- `leave_curb`: standing beside the lane at the kerb → wait for a gap in the traffic coming
  from behind in the lane, then merge into the lane;
- `pass_blocker`: the vehicle ahead in our lane is a blocker (double-parked: standing for
  `blocker_wait_s`, not queued at a stop line nor behind other traffic; an obstacle that is
  no vehicle, such as road works, as soon as it is seen; a cyclist (narrower than
  `narrow_road_user_m`) crawling below `slow_lead_fraction` of the limit) and the next
  same-direction lane to our left has room (the map's `left_room`) → wait `pass_standoff_m`
  behind it (a standing one) until the gap in that lane is acceptable (its follower far
  enough in time gap and time to collision, its leader far enough ahead), move into it,
  pass, and return to our lane `pass_return_gap_m` past the blocker. With no such lane, a
  standing vehicle (after `oncoming_pass_wait_s`, no longer than
  `oncoming_pass_max_length_m`: not a bus at its stop) or obstacle is passed through the
  oncoming lane (the path's `oncoming_room`), never through a junction: wait
  `oncoming_pass_standoff_m` behind it at our lane's left edge, and go when the whole pass
  fits before anyone coming the other way arrives — counting, as coming at the speed limit,
  whoever might be beyond the cameras' reach or hidden behind the blocker. Where the centre
  line is solid (the path's `solid_centre_line`) that pass needs an operator's leave
  (`OncomingPassLeave`, remote assistance): without it the car waits behind the blocker;
  with it, it still goes only into a gap in the oncoming traffic;
- behind a standing vehicle (once it has stood `blocker_wait_s`) or obstacle in our path
  with no traffic just ahead of it (not the end of a queue) that we do not pass at once
  (near a stop line, no gap yet, no lane to pass through), stop where the car can still
  steer out round it
  (`planning.steer_out`: about 5 m for the I-PACE), not at car following's 2 m, and hold
  where it stands if it came to rest closer (it cannot back up): so that its own pass, or
  an operator's "this lane is closed", can still be carried out;
- `car_follow` / `lane_follow`: drive the lane centre at the speed limit, with or without a
  leading vehicle within `follow_range_m`, slower past a standing vehicle just right of our
  path that hides the kerb (someone may step out in front of it).

Stops are given as a rear-axle arc length `stop_s_m` at which the car must stand; the
motion planner treats it as a standing obstacle in its IDM speed profiles.

Structure: one policy per concern, each a class with `apply(tick, draft) -> draft`
(`policy.BehaviourPolicy`) that owns its latches as a small dataclass (`latch`).
`BehaviourPlanner.step` applies them in this order, each seeing what the ones before it
decided, then names the tick by priority (`planner.arbitrate`):

- `follow.FollowPolicy`: speed limit and bends; `car_follow` / `lane_follow`;
- `occlusion.OccludedKerbPolicy`: slower past a standing vehicle that hides the kerb;
- `safe_stop.SafeStopPolicy`: `safe_stop`;
- `junction.StopLinePolicy`: `stop_at_line`;
- `ev_yield.EvYieldPolicy` (with `siren_caution.SirenCaution` for what is heard):
  `yield_to_ev`, `ev_caution`;
- `kerb.KerbPolicy`: `curbside_stop`, `leave_curb`;
- `pass_blocker.PassBlockerPolicy`: `pass_blocker`;
- `standoff.StandoffPolicy`: the stop behind a standing leader (named `car_follow`).
"""

from robotaxi.autonomy.planning.behaviour.config import BehaviourConfig
from robotaxi.autonomy.planning.behaviour.pass_blocker import OncomingPassLeave
from robotaxi.autonomy.planning.behaviour.planner import BehaviourPlanner
from robotaxi.autonomy.planning.behaviour.policy import (
    Behaviour,
    BehaviourPolicy,
    BehaviourTarget,
    Draft,
    Tick,
)
from robotaxi.autonomy.planning.behaviour.scene import FrenetScene, curb_offset_m, frenet_scene

__all__ = [
    "Behaviour",
    "BehaviourConfig",
    "BehaviourPlanner",
    "BehaviourPolicy",
    "BehaviourTarget",
    "Draft",
    "FrenetScene",
    "OncomingPassLeave",
    "Tick",
    "curb_offset_m",
    "frenet_scene",
]
