"""The behaviour layer's policies one at a time, on hand-built ticks with known answers: the
safe stop, the stop line, the kerb, the siren caution, the double-parked pass, and the
arbitration that names the tick."""

from __future__ import annotations

import math

import pytest

from robotaxi.autonomy.perception.siren import SirenEvidence
from robotaxi.autonomy.planning.behaviour import (
    Behaviour,
    BehaviourConfig,
    Draft,
    Tick,
    curb_offset_m,
    frenet_scene,
)
from robotaxi.autonomy.planning.behaviour.junction import StopLinePolicy
from robotaxi.autonomy.planning.behaviour.kerb import KerbPolicy
from robotaxi.autonomy.planning.behaviour.pass_blocker import PassBlockerPolicy
from robotaxi.autonomy.planning.behaviour.planner import arbitrate
from robotaxi.autonomy.planning.behaviour.safe_stop import SafeStopPolicy
from robotaxi.autonomy.planning.behaviour.siren_caution import SirenBearing, SirenCaution
from robotaxi.autonomy.planning.reference import ReferencePath, StopLine
from robotaxi.autonomy.prediction import predict
from robotaxi.autonomy.vehicle import IPACE, VehicleState
from robotaxi.core.time import TimePoint
from robotaxi.core.types import Track
from scenes import track

LANE = 3.5
CFG = BehaviourConfig()


def road(stop_lines: tuple[StopLine, ...] = (), left_lanes: int = 0) -> ReferencePath:
    """Right lane of a one-way street along +x with a 2.5 m parking strip on the right."""
    return ReferencePath.straight(
        (0.0, 0.0),
        0.0,
        400.0,
        right_room_m=LANE / 2 + 2.5,
        left_room_m=LANE / 2 + left_lanes * LANE,
        stop_lines=stop_lines,
    )


def tick_at(
    path: ReferencePath,
    ego: VehicleState,
    tracks: tuple[Track, ...] = (),
    *,
    t: float = 0.0,
    signals: dict[str, str] | None = None,
    stop_request_s: float | None = None,
    last_plan_ok: bool = True,
    siren: SirenEvidence | None = None,
) -> Tick:
    pred = predict(tracks, 4.0, 0.1)
    scene = frenet_scene(path, ego, pred)
    lane_w = float(path.lane_width_at(scene.ego_s))
    return Tick(
        ego, path, scene, pred, signals or {}, stop_request_s, t, last_plan_ok, siren, lane_w
    )


def test_safe_stop_after_repeated_failures_holds_its_point_until_released() -> None:
    policy = SafeStopPolicy(CFG)
    path = road()
    failing = tick_at(path, VehicleState(100.0, 0.0, 0.0, 10.0), last_plan_ok=False)
    for _ in range(CFG.safe_stop_after_failures - 1):
        draft = policy.apply(failing, Draft())
        assert draft.stops == () and not draft.safe_stopping
    draft = policy.apply(failing, Draft())
    # v² / (2·a) = 100 / 4 = 25 m past the rear axle
    stop_s = failing.s_ego + 25.0
    assert stop_s == pytest.approx(125.0)
    assert draft.stops == ((Behaviour.SAFE_STOP, stop_s),) and draft.safe_stopping
    # planning works again, the car has moved on: the stop keeps its point until released
    ok = tick_at(path, VehicleState(110.0, 0.0, 0.0, 6.0))
    for _ in range(CFG.safe_stop_release_ticks - 1):
        assert policy.apply(ok, Draft()).stops == ((Behaviour.SAFE_STOP, stop_s),)
    released = policy.apply(ok, Draft())
    assert released.stops == () and not released.safe_stopping
    assert policy.latch.stop_s is None


def test_red_line_stop_is_kept_once_committed_and_a_line_too_close_is_run() -> None:
    line = StopLine(150.0, "tl")
    path = road((line,))
    stop_rear = 150.0 - CFG.stop_line_margin_m - IPACE.rear_axle_to_front_m
    policy = StopLinePolicy(CFG, IPACE)
    far = policy.apply(
        tick_at(path, VehicleState(100.0, 0.0, 0.0, 10.0), signals={"tl": "r"}), Draft()
    )
    assert far.stops == ((Behaviour.STOP_AT_LINE, stop_rear),)
    assert far.next_line == line and far.line_stop_s == stop_rear
    # now 2 m from the stop point at 10 m/s (25 m/s² needed): committed, so still stopping
    close = tick_at(path, VehicleState(stop_rear - 2.0, 0.0, 0.0, 10.0), signals={"tl": "r"})
    assert policy.apply(close, Draft()).stops == ((Behaviour.STOP_AT_LINE, stop_rear),)
    # a fresh car there, never committed, runs it (braking would need more than the limit)
    fresh = StopLinePolicy(CFG, IPACE).apply(close, Draft())
    assert fresh.stops == () and fresh.next_line == line and fresh.line_stop_s is None
    # green: go, and the commitment is dropped
    green = tick_at(path, VehicleState(100.0, 0.0, 0.0, 10.0), signals={"tl": "G"})
    assert policy.apply(green, Draft()).stops == ()
    assert policy.latch.committed_line_s is None


def test_leaving_the_kerb_waits_for_the_gap_behind_then_merges() -> None:
    path = road()
    parked = VehicleState(100.0, -2.0, 0.0, 0.0)
    coming = (track(1, 85.0, 0.0, 10.0, 0.0),)  # 15 m behind in the lane at 10 m/s
    policy = KerbPolicy(CFG, IPACE)
    at_kerb = tick_at(path, parked, coming)
    waiting = policy.apply(at_kerb, Draft())
    assert waiting.name == Behaviour.LEAVE_CURB
    assert waiting.stops == ((Behaviour.LEAVE_CURB, at_kerb.s_ego),)
    assert waiting.offset_m == pytest.approx(-2.0)  # hold where we stand
    assert not policy.latch.merging
    # the gap comes: merge toward the lane centre (offset 0), no stop
    merging = policy.apply(tick_at(path, parked), Draft())
    assert merging.name == Behaviour.LEAVE_CURB and merging.stops == ()
    assert merging.offset_m == 0.0 and policy.latch.merging
    # a requested stop ahead takes the car back to the kerb and ends the merge
    request = tick_at(path, parked, stop_request_s=120.0)
    stopping = policy.apply(request, Draft())
    assert stopping.stops == ((Behaviour.CURBSIDE_STOP, 120.0 - IPACE.rear_axle_to_center_m),)
    assert stopping.offset_m == curb_offset_m(path, 120.0, CFG, IPACE)
    assert stopping.name is None and not policy.latch.merging
    # … but not while yielding to an emergency vehicle
    assert policy.apply(request, Draft(yielding=True)).stops == ()


def siren_at(t: float, heard_for_s: float, bearing_rad: float | None) -> SirenEvidence:
    """A siren heard for `heard_for_s` (0: not heard), rising, from `bearing_rad` (map frame)."""
    heard = heard_for_s > 0
    return SirenEvidence(
        TimePoint.from_s(t), 1.0 if heard else 0.0, heard, None,
        bearing_rad if heard else None, True if heard else None, None, heard_for_s,
    )  # fmt: skip


def test_siren_caution_starts_after_the_detect_time_and_rearms_only_after_silence() -> None:
    path, ego = road(), VehicleState(100.0, 0.0, 0.0, 10.0)
    heard = SirenCaution(CFG)

    def hear(t: float, heard_for_s: float, bearing: float | None = math.pi) -> bool:
        return heard.hear(tick_at(path, ego, t=t, siren=siren_at(t, heard_for_s, bearing)))

    assert not hear(0.0, 0.5)  # heard, but not yet for `audio_min_detect_s`
    assert heard.latch.bearing == SirenBearing.BEHIND  # from straight behind our road
    assert hear(0.6, CFG.audio_min_detect_s + 0.1)
    assert heard.latch.caution_since_s == 0.6
    # the EV has been seen go by: the caution ends, and its fading siren starts none
    heard.disarm()
    assert not hear(1.0, 3.0) and not heard.latch.armed
    assert not hear(2.0, 0.0)  # silent from t = 2 s
    assert not hear(2.0 + CFG.audio_rearm_s - 0.1, 0.0) and not heard.latch.armed
    assert not hear(2.0 + CFG.audio_rearm_s, 0.0) and heard.latch.armed
    assert heard.latch.bearing is None  # not heard: no bearing
    # re-armed: a new siren (from a side street) starts a caution again
    assert hear(10.0, 2.0, math.pi / 2) and heard.latch.bearing == SirenBearing.SIDE
    # without microphones there is never a caution
    assert not SirenCaution(CFG).hear(tick_at(path, ego, t=11.0))


def test_a_standing_car_ahead_is_passed_after_the_wait_when_the_next_lane_is_free() -> None:
    path = road(left_lanes=1)
    ego = VehicleState(10.0, 0.0, 0.0, 0.0)
    blocker = (track(7, 40.0, 0.0, 0.0, 0.0),)
    policy = PassBlockerPolicy(CFG, IPACE)
    first = policy.apply(tick_at(path, ego, blocker, t=0.0), Draft())
    assert first == Draft() and policy.latch.blocker_id == 7
    assert policy.apply(tick_at(path, ego, blocker, t=CFG.blocker_wait_s - 0.1), Draft()) == Draft()
    passing = policy.apply(tick_at(path, ego, blocker, t=CFG.blocker_wait_s), Draft())
    assert passing.passing and passing.offset_m == LANE
    assert policy.latch.passing_front_s == pytest.approx(40.0 + 4.5 / 2)
    # anything else holding the tick (here a heeded siren) stops the pass and forgets it
    held = policy.apply(tick_at(path, ego, blocker, t=4.0), Draft(caution=True))
    assert held == Draft(caution=True) and policy.latch.blocker_id is None
    # a street with no same-direction lane beside ours: wait behind it, never pass
    alone = PassBlockerPolicy(CFG, IPACE)
    for t in (0.0, CFG.blocker_wait_s):
        waiting = alone.apply(tick_at(road(), ego, blocker, t=t), Draft())
        assert not waiting.passing and waiting.offset_m == 0.0


def test_arbitration_names_the_tick_by_priority_and_after_a_heeded_siren() -> None:
    stops = ((Behaviour.STOP_AT_LINE, 50.0), (Behaviour.YIELD_TO_EV, 40.0))
    assert arbitrate(Draft(stops=stops, yielding=True)) == (Behaviour.YIELD_TO_EV, 40.0)
    # a heeded siren names the tick rather than the red line ahead
    line_only = stops[:1]
    assert arbitrate(Draft(stops=line_only, caution=True)) == (Behaviour.EV_CAUTION, 50.0)
    assert arbitrate(Draft(stops=line_only)) == (Behaviour.STOP_AT_LINE, 50.0)
    # no stop: a pass names it; nothing at all leaves it to the follow policy (None)
    assert arbitrate(Draft(passing=True)) == (Behaviour.PASS_BLOCKER, None)
    assert arbitrate(Draft(name=Behaviour.LEAVE_CURB)) == (Behaviour.LEAVE_CURB, None)
    assert arbitrate(Draft(stops=((Behaviour.CAR_FOLLOW, 30.0),))) == (None, 30.0)
