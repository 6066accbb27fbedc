"""A closed-loop scenario run → DrivingHistory → metrics, score and the pass/fail verdict."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from robotaxi.core import AgentKind
from robotaxi.metrics.driving import (
    DrivingHistory,
    MetricResult,
    evaluate,
    first_kerb_stop_s,
    scenario_score,
)
from robotaxi.sim.drive import EV_REACTIONS, DriveResult


def reached_s(result: DriveResult) -> float:
    """Arc length along the route where a run's car ended up (m)."""
    if result.route is None or not result.record.ego:
        raise ValueError("the run has no route or no recorded ticks")
    x, y = result.record.ego[-1][1], result.record.ego[-1][2]
    s, _ = result.route.path.project(x, y)
    return float(s)


def history_from_run(result: DriveResult, goal_s_m: float | None = None) -> DrivingHistory:
    """The run as metric input; `goal_s_m` is how far along the route counts as full progress
    (nuPlan compares with an expert's progress; we use a reference driver's, see
    `scenario_report`), else the end of the route."""
    rec = result.record
    if result.route is None:
        raise ValueError("the run has no route")
    path = result.route.path
    t = len(rec.time_s)
    ids = sorted(rec.agents)
    m = len(ids)
    xy = np.zeros((t, m, 2))
    heading = np.zeros((t, m))
    speed = np.zeros((t, m))
    valid = np.zeros((t, m), dtype=bool)
    siren = np.zeros((t, m), dtype=bool)
    length = np.zeros(m)
    width = np.zeros(m)
    is_ev = np.zeros(m, dtype=bool)
    for j, agent_id in enumerate(ids):
        kind, length[j], width[j], rows = rec.agents[agent_id]
        is_ev[j] = kind == AgentKind.EMERGENCY
        for tick, (x, y, h, v, s) in rows.items():
            xy[tick, j] = (x, y)
            heading[tick, j], speed[tick, j], valid[tick, j], siren[tick, j] = h, v, True, s > 0
    return DrivingHistory(
        time_s=np.asarray(rec.time_s),
        ego=np.asarray(rec.ego, dtype=float),
        agents_xy=xy,
        agents_heading=heading,
        agents_speed=speed,
        agents_valid=valid,
        agents_length=length,
        agents_width=width,
        agents_is_ev=is_ev,
        agents_siren=siren,
        path_xy=path.xy,
        path_lane_width_m=path.lane_width_m,
        path_left_room_m=path.left_room_m,
        path_right_room_m=path.right_room_m,
        path_oncoming_room_m=path.oncoming_room_m,
        path_speed_limit_mps=path.speed_limit_mps,
        stop_line_s_m=np.array([line.s_m for line in path.stop_lines]),
        signal_states=(
            np.asarray(rec.signals, dtype="U1") if path.stop_lines else np.zeros((0, 0), "U1")
        ),
        planned=tuple(rec.planned),
        goal_s_m=goal_s_m,
    )


def _start_s(result: DriveResult) -> float:
    if result.route is None:
        return 0.0
    x, y = result.record.ego[0][1], result.record.ego[0][2]
    s, _ = result.route.path.project(x, y)
    return float(s)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 4)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    return value


def _since(t: float | None, t0: float | None) -> float | None:
    return None if t is None or t0 is None else t - t0


def ev_reaction_timing(
    result: DriveResult,
    history: DrivingHistory,
    in_range_s: float | None,
    passed_s: float | None = None,
) -> dict[str, Any]:
    """When the car noticed and reacted to the first emergency vehicle (times in s of
    simulation time, None when it never happened):

    - `siren_onset_s`: its siren came on anywhere in the world; `in_range_s`: it came within
      the EV metric's range of the car (`ev_yield_events`);
    - `heard_s`: the siren detector first reported a siren (with microphones); `seen_s`: a
      camera first reported its flashing lights;
    - `first_reaction_s`: the first tick (from the onset) the behaviour layer reacted to an
      EV (`ev_caution` on audio, `yield_to_ev` on sight); `stopped_at_kerb_s`: the first
      time after that, and before the EV had passed (`passed_s`), the car stood at the kerb;
    - `reaction_after_onset_s`, `reaction_after_in_range_s`, `kerb_stop_after_onset_s`,
      `kerb_stop_after_in_range_s`: the same as delays (negative: before it came in range).
    """
    rec = result.record
    onset = min(rec.ev_siren_onset_s.values(), default=None)
    heard = next((t for t, h in zip(rec.time_s, rec.siren_heard, strict=False) if h), None)
    seen = min(rec.ev_first_seen_s.values(), default=None)
    start = onset if onset is not None else 0.0
    reaction = next(
        (
            t
            for t, b in zip(rec.time_s, rec.behaviour, strict=True)
            if t >= start and b in EV_REACTIONS
        ),
        None,
    )
    kerb = first_kerb_stop_s(history, reaction, passed_s) if reaction is not None else None
    return {
        "microphones": result.microphones,
        "city_blocks": result.city_blocks,
        "siren_onset_s": onset,
        "in_range_s": in_range_s,
        "heard_s": heard,
        "seen_s": seen,
        "passed_s": passed_s,
        "first_reaction_s": reaction,
        "stopped_at_kerb_s": kerb,
        "reaction_after_onset_s": _since(reaction, onset),
        "reaction_after_in_range_s": _since(reaction, in_range_s),
        "kerb_stop_after_onset_s": _since(kerb, onset),
        "kerb_stop_after_in_range_s": _since(kerb, in_range_s),
    }


def assistance_summary(result: DriveResult) -> dict[str, Any]:
    """Remote assistance in a run: its requests (when opened, answered, closed and how), the
    time to resolution of the first (opened → closed, s), whether the car stood across a
    solid centre line before the operator's leave (it must not), and `resolved`: it asked,
    took an answer and drove on, never across the line without leave."""
    requests = sorted(result.assistance, key=lambda r: float(r["opened_s"]))
    first = requests[0] if requests else None
    answers: list[dict[str, Any]] = list(first["answers"]) if first is not None else []
    accepted = next((a for a in answers if a["outcome"] == "accepted"), None)
    leave_s = float(accepted["at_s"]) if accepted is not None else math.inf
    across_before = [t for t in result.across_solid_line_s if t < leave_s]
    resolution = first["resolution_s"] if first is not None else None
    return {
        "requests": [
            {
                "opened_s": r["opened_s"],
                "standing_since_s": r["standing_since_s"],
                "sees": r["sees"],
                "street": r["street"],
                "answers": r["answers"],
                "closed_s": r["closed_s"],
                "closed_how": r["closed_how"],
                "resolution_s": r["resolution_s"],
            }
            for r in requests
        ],
        "events": [e.kind.value for e in result.assistance_events],
        "time_to_resolution_s": resolution,
        "answered_after_s": (
            None
            if first is None or not answers
            else round(answers[0]["at_s"] - first["opened_s"], 1)
        ),
        "across_solid_line_before_leave_s": round(across_before[0], 1) if across_before else None,
        "across_solid_line_s": len(result.across_solid_line_s) > 0,
        "resolved": first is not None
        and accepted is not None
        and resolution is not None
        and not across_before,
    }


def scenario_report(result: DriveResult, reference: DriveResult | None = None) -> dict[str, Any]:
    """The machine-readable result of `robotaxi drive --json`.

    `reference` is the same scenario driven by the IDM lane-following baseline (same seed and
    traffic); as nuPlan scores progress against the expert's, full progress here means
    getting as far as that reference driver did (it stops for leaders and red lights but
    ignores ambulances, pedestrians and curbside stops).
    """
    goal = reached_s(reference) if reference is not None else None
    history = history_from_run(result, goal)
    metrics: dict[str, MetricResult] = evaluate(history)
    score = scenario_score(metrics)
    spec = result.scenario
    progress = metrics["progress_along_route"]
    progress_m = float(progress.details.get("ego_progress_m", progress.value))
    criteria = {
        "no_at_fault_collision": metrics["no_at_fault_collision"].score == 1.0,
        "drivable_area": metrics["drivable_area_compliance"].score == 1.0,
        "no_red_light_violation": metrics["red_light_violations"].score == 1.0,
        "progress": progress_m >= spec.passing.min_progress_m,
        "score": score >= spec.passing.min_score,
    }
    ev = metrics["ev_yield"]
    if spec.passing.ev_yield:
        criteria["ev_yield"] = bool(ev.details.get("applicable")) and ev.score == 1.0
    if spec.passing.reach_stop:
        criteria["reached_stop"] = result.record.reached_stop
    assistance = assistance_summary(result) if spec.operator is not None else None
    if spec.passing.assistance_resolved:
        criteria["assistance_resolved"] = assistance is not None and assistance["resolved"]
    report: dict[str, Any] = {
        "scenario": spec.name,
        "seed": spec.seed,
        "city": spec.city,
        "passed": all(criteria.values()),
        "criteria": criteria,
        "score": round(score, 4),
        "at_fault_collisions": int(metrics["no_at_fault_collision"].value),
        "sumo_collisions": len(result.collisions),
        "progress_m": round(progress_m, 1),
        "reference_progress_m": None if goal is None else round(goal - _start_s(result), 1),
        "metrics": {
            name: {
                "score": r.score,
                "value": r.value,
                **({"details": r.details} if r.details else {}),
            }
            for name, r in metrics.items()
        },
        "planning_ms_median": result.stage_ms,
        "wall_s": round(result.wall_s, 2),
    }
    if assistance is not None:
        report["assistance"] = assistance
    if ev.details.get("applicable"):
        report["ev_yield"] = {
            "pulled_over": ev.details["pulled_over"],
            "stopped_within_s": ev.details["stopped_within_s"],
            "blocked_ev": ev.details["blocked_ev"],
            "resumed": ev.details["resumed"],
            "timing": ev_reaction_timing(
                result,
                history,
                ev.details["events"][0]["in_range_time_s"],
                ev.details["events"][0]["passed_time_s"],
            ),
        }
    return _jsonable(report)
