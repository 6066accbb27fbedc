"""Multi-object tracker on synthetic targets: identities through crossings and occlusion."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from itertools import pairwise

import numpy as np

from robotaxi.autonomy.perception.tracker import MultiObjectTracker
from robotaxi.autonomy.prediction import predict
from robotaxi.core.time import TimePoint
from robotaxi.core.types import AgentKind, Detection, Track


def _truth(t: float) -> dict[str, tuple[float, float, float, float]]:
    """Two cars on crossing diagonals meeting at (50, 0) at t = 5 s: (x, y, heading, v)."""
    v = 10.0
    a = (v * t * math.cos(0.4), -20 + v * t * math.sin(0.4))
    b = (v * t * math.cos(0.4), 20 - v * t * math.sin(0.4))
    return {"a": (*a, 0.4, v), "b": (*b, -0.4, v)}


def _run(seed: int, occlude: tuple[float, float] | None) -> list[list[Track]]:
    rng = np.random.default_rng(seed)
    tracker = MultiObjectTracker()
    history = []
    for k in range(100):
        t = k * 0.1
        dets = []
        for name, (x, y, h, v) in _truth(t).items():
            if occlude and name == "a" and occlude[0] <= t < occlude[1]:
                continue
            n = rng.standard_normal(4)
            dets.append(
                Detection(
                    "roof_360",
                    TimePoint.from_s(t),
                    x + 0.3 * n[0],
                    y + 0.3 * n[1],
                    h + 0.03 * n[2],
                    v + 0.3 * n[3],
                    AgentKind.CAR,
                    4.5,
                    1.8,
                    position_std_m=0.3,
                    truth_id=name,
                )
            )
        history.append(tracker.update(dets, TimePoint.from_s(t)))
    return history


def _nearest_id(tracks: list[Track], x: float, y: float) -> int:
    return min(tracks, key=lambda tr: math.hypot(tr.x - x, tr.y - y)).track_id


def test_crossing_targets_keep_their_ids_through_a_one_second_occlusion() -> None:
    # "a" disappears for 1 s right around the crossing point
    history = _run(seed=5, occlude=(4.5, 5.5))
    early, late = history[20], history[-1]
    ta, tb = _truth(2.0), _truth(9.9)
    id_a = _nearest_id(early, *ta["a"][:2])
    id_b = _nearest_id(early, *ta["b"][:2])
    assert id_a != id_b
    assert len(late) == 2
    assert _nearest_id(late, *tb["a"][:2]) == id_a
    assert _nearest_id(late, *tb["b"][:2]) == id_b
    # while hidden, "a" coasts: still reported, with missed frames and growing covariance
    hidden = history[53]
    coast = next(tr for tr in hidden if tr.track_id == id_a)
    assert coast.missed_frames > 5
    seen_cov = next(tr for tr in history[44] if tr.track_id == id_a).covariance
    assert np.trace(coast.covariance) > np.trace(seen_cov)
    # velocity estimates converge on the truth
    final_a = next(tr for tr in late if tr.track_id == id_a)
    assert math.hypot(final_a.vx - 10 * math.cos(0.4), final_a.vy - 10 * math.sin(0.4)) < 0.8


def test_tracks_are_confirmed_then_dropped_after_the_coast_limit() -> None:
    tracker = MultiObjectTracker()
    det = Detection("roof_360", TimePoint(0), 10.0, 0.0, 0.0, 0.0, AgentKind.CAR, 4.5, 1.8)
    assert tracker.update([det], TimePoint.from_s(0.0)) == []  # tentative
    tracker.update([det], TimePoint.from_s(0.1))
    confirmed = tracker.update([det], TimePoint.from_s(0.2))
    assert [t.track_id for t in confirmed] == [1]
    alive = [len(tracker.update([], TimePoint.from_s(0.2 + 0.1 * k))) for k in range(1, 25)]
    assert alive[:15] == [1] * 15  # coasts for max_coast_s = 1.6 s
    assert alive[-1] == 0
    # a detection far outside the gate starts a new track instead of jumping
    tracker = MultiObjectTracker()
    for k in range(3):
        tracker.update([det], TimePoint.from_s(0.1 * k))
    far = Detection("roof_360", TimePoint(0), 60.0, 0.0, 0.0, 0.0, AgentKind.CAR, 4.5, 1.8)
    out = tracker.update([far], TimePoint.from_s(0.3))
    assert [(t.track_id, round(t.x)) for t in out] == [(1, 10)]


def test_same_seed_same_tracks() -> None:
    a, b = _run(9, (3.0, 4.0)), _run(9, (3.0, 4.0))
    for ta, tb in zip(a, b, strict=True):
        assert [(t.track_id, t.x, t.y, t.vx, t.vy, t.heading) for t in ta] == [
            (t.track_id, t.x, t.y, t.vx, t.vy, t.heading) for t in tb
        ]


# --- box heading ------------------------------------------------------------------------


def _angle_err_deg(a: float, b: float) -> float:
    return abs(math.degrees(math.remainder(a - b, 2 * math.pi)))


def _camera_like(
    rng: np.random.Generator, t: float, x: float, y: float, heading: float, speed: float
) -> Detection:
    """A detection with the camera model's noise (cameras.py): position 0.25 m, heading
    0.05 rad, speed 0.3 m/s clipped at zero."""
    n = rng.standard_normal(4)
    return Detection(
        "roof_360",
        TimePoint.from_s(t),
        x + 0.25 * n[0],
        y + 0.25 * n[1],
        math.remainder(heading + 0.05 * n[2], 2 * math.pi),
        max(0.0, speed + 0.3 * n[3]),
        AgentKind.CAR,
        4.5,
        1.8,
        position_std_m=0.25,
    )


def _follow(
    truth: Callable[[float], tuple[float, float, float, float]],
    seed: int,
    seconds: float = 10.0,
    detection: Callable[..., Detection | None] | None = None,
) -> list[tuple[float, Track, float]]:
    """Track one object; returns (t, track, true heading) for every frame it is confirmed."""
    rng = np.random.default_rng(seed)
    make = detection if detection is not None else _camera_like
    tracker = MultiObjectTracker()
    out = []
    for k in range(round(seconds / 0.1)):
        t = k * 0.1
        x, y, h, v = truth(t)
        det = make(rng, t, x, y, h, v)
        tracks = tracker.update([det] if det is not None else [], TimePoint.from_s(t))
        if tracks:
            assert len(tracks) == 1
            out.append((t, tracks[0], h))
    return out


def test_parked_car_keeps_its_box_heading_where_the_velocity_direction_wanders() -> None:
    truth_h = 2.3

    def parked(t: float) -> tuple[float, float, float, float]:
        return 12.0, -4.0, truth_h, 0.0

    frames = _follow(parked, seed=3)
    assert len(frames) > 90
    box_err = [_angle_err_deg(tr.heading, h) for _, tr, h in frames]
    vel_err = [_angle_err_deg(math.atan2(tr.vy, tr.vx), h) for _, tr, h in frames]
    settled = [e for (t, _, _), e in zip(frames, box_err, strict=True) if t >= 1.0]
    assert max(settled) < 4.0 and float(np.mean(settled)) < 2.0
    assert max(box_err) < 6.0  # from the first confirmed frame on
    # the velocity-based heading of the same tracks is far off, often
    assert max(vel_err) > 60.0
    assert float(np.median(vel_err)) > 15.0
    assert all(tr.speed < 1.5 for _, tr, _ in frames)


def test_box_heading_shrugs_off_flipped_and_clutter_headings() -> None:
    """A box detector cannot tell front from back: every third heading is reported turned
    by 180°; every 25th is garbage (a clutter detection taken into the track)."""
    truth_h = -0.8

    def ambiguous(
        rng: np.random.Generator, t: float, x: float, y: float, h: float, v: float
    ) -> Detection:
        det = _camera_like(rng, t, x, y, h, v)
        k = round(t / 0.1)
        if k % 25 == 24:
            return replace(det, heading=float(rng.uniform(-math.pi, math.pi)))
        if k % 3 == 2:
            return replace(det, heading=math.remainder(det.heading + math.pi, 2 * math.pi))
        return det

    frames = _follow(lambda t: (5.0, 20.0, truth_h, 0.0), seed=11, detection=ambiguous)
    assert max(_angle_err_deg(tr.heading, h) for t, tr, h in frames if t >= 1.0) < 4.0


def test_moving_car_heading_is_its_direction_of_travel() -> None:
    v, h0 = 9.0, 0.4

    def straight(t: float) -> tuple[float, float, float, float]:
        return v * t * math.cos(h0), v * t * math.sin(h0), h0, v

    frames = _follow(straight, seed=4)
    for t, tr, h in frames:
        if t >= 1.0:
            assert tr.heading == math.atan2(tr.vy, tr.vx)
            assert _angle_err_deg(tr.heading, h) < 3.0
            assert tr.box_heading is not None and _angle_err_deg(tr.box_heading, h) < 4.0


def test_turning_car_keeps_a_sensible_heading() -> None:
    """A car pulls away from rest into a right-angle turn of radius 12 m (0 → 5 m/s over
    5 s, then on at 5 m/s): slow at first (box heading), then fast (velocity), turning
    throughout, with no jump when the source changes."""
    radius, accel = 12.0, 1.0

    def turning(t: float) -> tuple[float, float, float, float]:
        v = min(accel * t, 5.0)
        dist = 0.5 * accel * t * t if t <= 5.0 else 12.5 + 5.0 * (t - 5.0)
        phi = min(dist / radius, math.pi / 2)
        if dist <= radius * math.pi / 2:
            return radius * math.sin(phi), radius * (1 - math.cos(phi)), phi, v
        beyond = dist - radius * math.pi / 2
        return radius, radius + beyond, math.pi / 2, v

    frames = _follow(turning, seed=8, seconds=9.0)
    errs = [_angle_err_deg(tr.heading, h) for t, tr, h in frames if t >= 0.5]
    assert max(errs) < 10.0
    assert float(np.mean(errs)) < 4.0
    steps = [_angle_err_deg(b.heading, a.heading) for (_, a, _), (_, b, _) in pairwise(frames)]
    assert max(steps) < 8.0
    sources = {tr.heading == math.atan2(tr.vy, tr.vx) for t, tr, _ in frames if t >= 0.5}
    assert sources == {True, False}  # both the box and the velocity were used


def test_track_heading_picks_velocity_only_when_it_is_well_measured() -> None:
    def track(vx: float, vy: float, vel_std: float, box: float | None) -> Track:
        cov = np.diag([0.1, 0.1, vel_std**2, vel_std**2])
        return Track(
            1, TimePoint(0), 0.0, 0.0, vx, vy, AgentKind.CAR, 4.5, 1.8, cov, box_heading=box
        )

    assert track(0.3, 0.3, 0.2, 1.0).heading == 1.0  # slow: the box
    assert track(3.0, 0.0, 0.2, 0.1).heading == 0.0  # fast and sure: the velocity
    assert track(3.0, 0.0, 1.5, 0.1).heading == 0.1  # fast but unsure (3 σ = 4.5 m/s)
    assert track(0.3, 0.3, 0.2, None).heading == math.atan2(0.3, 0.3)  # no box: as before


def test_parked_car_is_predicted_standing_along_its_box() -> None:
    """A noisy sideways velocity of a parked car must not carry its predicted footprint
    into the next lane; a pedestrian's velocity is kept as it is."""
    cov = np.diag([0.1, 0.1, 0.2, 0.2])
    car = Track(1, TimePoint(0), 0.0, 0.0, 0.05, 0.6, AgentKind.CAR, 4.5, 1.8, cov, box_heading=0.0)
    walker = replace(car, track_id=2, kind=AgentKind.PEDESTRIAN, length=0.6, width=0.6)
    pred = predict([car, walker], horizon_s=4.0, dt_s=0.1)
    assert np.allclose(pred.xy[0], 0.0)
    assert np.allclose(pred.heading[0], 0.0) and pred.speed[0] == 0.0
    assert np.allclose(pred.xy[1, -1], [0.2, 2.4])
    # a slow car creeping forward moves along its body, not along the noisy direction
    creeping = replace(car, vx=1.0, vy=0.5)
    pred = predict([creeping], horizon_s=4.0, dt_s=0.1)
    assert np.allclose(pred.xy[0, -1], [4.0, 0.0])
    assert pred.speed[0] == 1.0
