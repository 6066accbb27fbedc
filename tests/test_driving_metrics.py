"""Driving metrics on hand-built histories with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robotaxi.metrics.driving import (
    METRICS,
    MULTIPLIER_METRICS,
    WEIGHTS,
    DrivingHistory,
    evaluate,
    scenario_score,
)

DT = 0.1
LANE = 3.5
OFFSET = 1.54  # rear axle → footprint centre
S0 = 200.0  # the path starts at x = -200 m, so arc length s = x + 200


def history(
    ego_x: np.ndarray,
    ego_y: np.ndarray | None = None,
    ego_heading: np.ndarray | None = None,
    agents: list[dict] | None = None,
    **kw: object,
) -> DrivingHistory:
    """Straight path along +x; the ego's speed is the finite difference of its positions."""
    t = len(ego_x)
    ego_y = np.zeros(t) if ego_y is None else ego_y
    heading = np.zeros(t) if ego_heading is None else ego_heading
    step = np.hypot(np.diff(ego_x), np.diff(ego_y)) / DT
    speed = np.concatenate([step[:1], step])
    ego = np.column_stack(
        [np.arange(t) * DT, ego_x, ego_y, heading, speed, np.zeros(t), np.zeros(t)]
    )
    agents = agents or []
    m = len(agents)
    xy = np.zeros((t, m, 2))
    head = np.zeros((t, m))
    spd = np.zeros((t, m))
    for j, a in enumerate(agents):
        xy[:, j, 0] = a["x"]
        xy[:, j, 1] = a.get("y", 0.0)
        head[:, j] = a.get("heading", 0.0)
        spd[:, j] = a.get("speed", 0.0)
    path_x = np.linspace(-200, 800, 1001)
    args: dict[str, object] = {
        "time_s": np.arange(t) * DT,
        "ego": ego,
        "agents_xy": xy,
        "agents_heading": head,
        "agents_speed": spd,
        "agents_valid": kw.pop("valid", np.ones((t, m), bool)),
        "agents_length": np.array([a.get("length", 4.5) for a in agents]),
        "agents_width": np.array([a.get("width", 1.8) for a in agents]),
        "agents_is_ev": np.array([a.get("ev", False) for a in agents], dtype=bool),
        "agents_siren": np.tile(np.array([a.get("ev", False) for a in agents], bool), (t, 1)),
        "path_xy": np.column_stack([path_x, np.zeros_like(path_x)]),
        "path_lane_width_m": np.full(1001, LANE),
        "path_left_room_m": np.full(1001, LANE / 2 + LANE),
        "path_right_room_m": np.full(1001, LANE / 2 + 2.5),
        "path_speed_limit_mps": np.full(1001, 13.0),
    }
    args.update(kw)
    return DrivingHistory(**args)  # type: ignore[arg-type]


def cruise(speed: float = 10.0, seconds: float = 5.0) -> np.ndarray:
    return np.arange(round(seconds / DT) + 1) * DT * speed


def test_a_clean_run_scores_one() -> None:
    h = history(cruise(), agents=[{"x": 300.0}], goal_s_m=S0 + 50.0)
    res = evaluate(h)
    assert set(res) == set(METRICS)
    assert all(r.score == 1.0 for r in res.values()), {n: r.score for n, r in res.items()}
    assert res["progress_along_route"].value == pytest.approx(50.0)
    assert res["progress_along_route"].details["needed_m"] == pytest.approx(50.0)
    half = evaluate(history(cruise(), goal_s_m=S0 + 100.0), ["progress_along_route"])
    assert half["progress_along_route"].score == pytest.approx(0.5)
    assert scenario_score(res) == 1.0


def test_at_fault_collision_with_a_stopped_car_but_not_when_rear_ended() -> None:
    # driving through a stopped car: one at-fault collision, score 0 (multiplier)
    h = history(cruise(), agents=[{"x": 30.0}], goal_s_m=S0 + 50.0)
    res = evaluate(h)
    assert res["no_at_fault_collision"].value == 1.0
    assert res["no_at_fault_collision"].score == 0.0
    assert res["time_to_collision"].score == 0.0
    assert scenario_score(res) == 0.0
    # the ego stands still and a car runs into it from behind: not at fault
    t = 51
    agent_x = np.linspace(-20.0, 5.0, t)
    h = history(np.zeros(t), agents=[{"x": 0.0}])
    xy = h.agents_xy.copy()
    xy[:, 0, 0] = agent_x
    h2 = DrivingHistory(**{**h.__dict__, "agents_xy": xy, "agents_speed": np.full((t, 1), 5.0)})
    assert evaluate(h2, ["no_at_fault_collision"])["no_at_fault_collision"].value == 0.0


def test_time_to_collision_closing_on_a_stopped_car() -> None:
    # 10 m/s toward a stopped car; the last tick leaves 5 m between bumpers → TTC 0.5 s
    ego_x = cruise(10.0, 3.0)
    front_end = ego_x[-1] + OFFSET + 4.68 / 2
    car_x = front_end + 5.0 + 4.5 / 2
    res = evaluate(
        history(ego_x, agents=[{"x": car_x}]), ["time_to_collision", "no_at_fault_collision"]
    )
    assert res["no_at_fault_collision"].score == 1.0
    assert res["time_to_collision"].value == pytest.approx(0.5, abs=0.11)
    assert res["time_to_collision"].score == 0.0


def test_drivable_area_and_direction() -> None:
    # drifting 3 m right of a centreline with 4.25 m of room: the footprint pokes out
    t = 51
    y = np.linspace(0, -3.9, t)
    res = evaluate(history(cruise(), ego_y=y), ["drivable_area_compliance"])
    # the corner reaches -3.9 - 1.005 = -4.905 at worst (heading 0): 0.655 m beyond 4.25
    assert res["drivable_area_compliance"].value == pytest.approx(3.9 + 2.01 / 2 - 4.25, abs=1e-6)
    assert res["drivable_area_compliance"].score == 0.0
    # driving backwards along the route 10 m/s: 10 m against the direction in 1 s
    back = -cruise()
    res = evaluate(
        history(back, ego_heading=np.full(len(back), math.pi)),
        ["driving_direction_compliance", "making_progress"],
    )
    assert res["driving_direction_compliance"].score == 0.0
    assert res["driving_direction_compliance"].value == pytest.approx(10.0)
    assert res["making_progress"].score == 0.0


def test_speed_limit_and_comfort() -> None:
    res = evaluate(history(cruise(15.0)), ["speed_limit_compliance", "comfort"])
    assert res["speed_limit_compliance"].value == pytest.approx(2.0)
    assert res["speed_limit_compliance"].score == pytest.approx(1 - 2.0 / 2.23)
    assert res["comfort"].score == 1.0
    # braking at 6 m/s² from 12 m/s: beyond the -4.05 m/s² comfort limit
    t = np.arange(0, 2.0 + 1e-9, DT)
    x = 12 * t - 0.5 * 6.0 * t**2
    res = evaluate(history(x), ["comfort"])
    assert res["comfort"].details["min_lon_accel"] == pytest.approx(-6.0, abs=0.3)
    assert res["comfort"].score == 0.0
    # a gentle 1.5 m/s² acceleration is comfortable
    x = 5 * t + 0.5 * 1.5 * t**2
    assert evaluate(history(x), ["comfort"])["comfort"].score == 1.0


def test_red_light_violations() -> None:
    ego_x = cruise(10.0, 5.0)  # front bumper from 3.88 m to 53.88 m
    t = len(ego_x)
    lines = S0 + np.array([30.0, 100.0])
    red = np.full((t, 2), "r")
    res = evaluate(history(ego_x, stop_line_s_m=lines, signal_states=red), ["red_light_violations"])
    assert res["red_light_violations"].value == 1.0 and res["red_light_violations"].score == 0.0
    green = np.full((t, 2), "G")
    res = evaluate(
        history(ego_x, stop_line_s_m=lines, signal_states=green), ["red_light_violations"]
    )
    assert res["red_light_violations"].score == 1.0


def _ev_history(ego_y_final: float, ego_stops_at: float, amb_lane_y: float) -> DrivingHistory:
    """Ego at 8 m/s; brakes to a stop at `ego_stops_at` s while moving to `ego_y_final`,
    waits until t = 14 s, drives off at 5 m/s. Ambulance at 16 m/s from x = -100."""
    t = np.arange(0, 20.0 + 1e-9, DT)
    v = np.where(
        t < ego_stops_at - 2.0, 8.0, np.where(t < ego_stops_at, 8.0 * (ego_stops_at - t) / 2.0, 0.0)
    )
    v = np.where(t >= 14.0, 5.0, v)
    x = np.concatenate([[0.0], np.cumsum(v[:-1] * DT)])
    y = np.clip((t - 1.0) / 3.0, 0.0, 1.0) * ego_y_final
    y = np.where(t >= 14.0, ego_y_final * np.clip(1 - (t - 14.0) / 3.0, 0, 1), y)
    h = history(
        x,
        ego_y=y,
        agents=[
            {"x": 0.0, "y": amb_lane_y, "speed": 16.0, "ev": True, "length": 6.0, "width": 2.2}
        ],
    )
    xy = h.agents_xy.copy()
    xy[:, 0, 0] = -100.0 + 16.0 * t
    return DrivingHistory(**{**h.__dict__, "agents_xy": xy})


def test_ev_yield_pulled_over_not_blocking_and_resumed() -> None:
    h = _ev_history(ego_y_final=-2.0, ego_stops_at=5.0, amb_lane_y=LANE)
    res = evaluate(h, ["ev_yield"])["ev_yield"]
    d = res.details
    assert d["pulled_over"] and d["resumed"] and not d["blocked_ev"]
    # in range (80 m, centre to centre) when 101.54 - 8t ≈ 79.9 → first tick t = 2.8 s;
    # the recorded speed (finite difference, one tick late) is 0 from t = 5.1 s
    assert d["events"][0]["in_range_time_s"] == pytest.approx(2.8)
    assert d["stopped_within_s"] == pytest.approx(5.1 - 2.8, abs=1e-9)
    assert res.score == 1.0


def test_ev_yield_blocking_the_ambulance_in_its_lane() -> None:
    # the ego stops in the ambulance's own lane, in front of it
    h = _ev_history(ego_y_final=0.0, ego_stops_at=5.0, amb_lane_y=0.0)
    t = h.time_s
    xy = h.agents_xy.copy()
    # the ambulance is stuck behind the stopped ego, 12 m back, until the ego moves on
    stop_x = h.ego[:, 1][int(6.0 / DT)]
    xy[:, 0, 0] = np.minimum(-100.0 + 16.0 * t, stop_x - 12.0 + 5.0 * np.maximum(t - 14.0, 0))
    h = DrivingHistory(**{**h.__dict__, "agents_xy": xy})
    res = evaluate(h, ["ev_yield"])["ev_yield"]
    assert res.details["blocked_ev"] is True
    assert res.details["pulled_over"] is False
    assert res.score == 0.0


def test_registry_weights_and_bad_names() -> None:
    assert set(MULTIPLIER_METRICS) | set(WEIGHTS) == set(METRICS)
    with pytest.raises(KeyError):
        evaluate(history(cruise()), ["no_such_metric"])
    with pytest.raises(ValueError):
        history(cruise(), ego_y=np.zeros(3))


def test_ev_yield_for_an_ambulance_coming_head_on() -> None:
    # ego at 8 m/s brakes to a stop at the kerb by t = 5 s; the ambulance comes the other way
    # in the opposite lane at 16 m/s from x = 150 and passes the ego around t = 7.8 s
    h = _ev_history(ego_y_final=-2.0, ego_stops_at=5.0, amb_lane_y=LANE)
    t = h.time_s
    xy = h.agents_xy.copy()
    xy[:, 0, 0] = 150.0 - 16.0 * t
    head = np.full_like(h.agents_heading, math.pi)
    h = DrivingHistory(**{**h.__dict__, "agents_xy": xy, "agents_heading": head})
    d = evaluate(h, ["ev_yield"])["ev_yield"].details
    # in range (80 m centre to centre) when 150 - 16t - (8t + 1.54) ≈ 80 → t ≈ 2.85 s → 2.9
    assert d["events"][0]["in_range_time_s"] == pytest.approx(2.9)
    assert d["pulled_over"] and not d["blocked_ev"] and d["resumed"]
    assert d["stopped_within_s"] == pytest.approx(5.1 - 2.9, abs=1e-9)
    # had the ego kept driving, it would not have pulled over
    moving = _ev_history(ego_y_final=0.0, ego_stops_at=99.0, amb_lane_y=LANE)
    moving = DrivingHistory(**{**moving.__dict__, "agents_xy": xy, "agents_heading": head})
    assert evaluate(moving, ["ev_yield"])["ev_yield"].details["pulled_over"] is False


def test_ev_yield_for_an_ambulance_crossing_ahead() -> None:
    # the ego stops at the kerb by t = 5 s, 40 m before a junction at x = 70 where the
    # ambulance crosses northward at 14 m/s (y = -100 + 14 t: on our road at t ≈ 7.1 s)
    h = _ev_history(ego_y_final=-2.0, ego_stops_at=5.0, amb_lane_y=0.0)
    t = h.time_s
    xy = np.stack([np.full_like(t, 70.0), -100.0 + 14.0 * t], axis=1)[:, None, :]
    head = np.full_like(h.agents_heading, math.pi / 2)
    speed = np.full_like(h.agents_speed, 14.0)
    h = DrivingHistory(
        **{**h.__dict__, "agents_xy": xy, "agents_heading": head, "agents_speed": speed}
    )
    d = evaluate(h, ["ev_yield"])["ev_yield"].details
    # within 80 m of the ego's centre and heading for our road from t ≈ 2.55 s: at 2.6 s the
    # ego is at (22.3, -1.07), the ambulance at (70, -63.6)
    assert d["events"][0]["in_range_time_s"] == pytest.approx(2.6)
    assert d["stopped_within_s"] == pytest.approx(5.1 - 2.6, abs=1e-9)
    assert d["pulled_over"] and not d["blocked_ev"] and d["resumed"]


def test_a_rear_end_is_judged_at_first_contact() -> None:
    # the ego drives at 5 m/s; a car from behind at 15 m/s drives into and through it (as a
    # replayed log can): its centre ends up ahead of ours during the contact, but it hit us
    t = np.arange(0, 4.0 + 1e-9, DT)
    ego_x = 5.0 * t
    h = history(ego_x, agents=[{"x": 0.0, "speed": 15.0}])
    xy = h.agents_xy.copy()
    xy[:, 0, 0] = -20.0 + 15.0 * t
    h = DrivingHistory(**{**h.__dict__, "agents_xy": xy})
    res = evaluate(h, ["no_at_fault_collision"])["no_at_fault_collision"]
    assert res.value == 0.0 and res.score == 1.0
    # the same contact with the ego driving into a slower car ahead: one at-fault collision
    ahead = h.agents_xy.copy()
    ahead[:, 0, 0] = 12.0 + 1.0 * t
    slow = DrivingHistory(
        **{**h.__dict__, "agents_xy": ahead, "agents_speed": np.full_like(h.agents_speed, 1.0)}
    )
    res = evaluate(slow, ["no_at_fault_collision"])["no_at_fault_collision"]
    assert res.value == 1.0 and res.score == 0.0
