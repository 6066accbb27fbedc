"""Multi-object tracker on synthetic targets: identities through crossings and occlusion."""

from __future__ import annotations

import math

import numpy as np

from robotaxi.autonomy.perception.tracker import MultiObjectTracker
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
        assert [(t.track_id, t.x, t.y, t.vx, t.vy) for t in ta] == [
            (t.track_id, t.x, t.y, t.vx, t.vy) for t in tb
        ]
