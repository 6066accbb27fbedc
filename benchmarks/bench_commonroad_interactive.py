"""CommonRoad's interactive scenarios with reactive SUMO traffic: ours, IDM and two peers.

Each scenario in ../shared/data/commonroad/interactive-ngsim runs in its own SUMO traffic
(robotaxi.sim.commonroad_interactive): SUMO drives the scenario's cars from its network and
routes, our car is placed into SUMO every step so they react to it, and the cameras see the
cars SUMO drove. Each scenario runs four times — `PdmPlanner`, the `IdmPlanner` baseline,
and the peers: the CommonRoad reactive planner (`reactive`) and Frenetix (`frenetix`, in its
own Python 3.10 virtualenv), which drive the same closed loop, see the SUMO cars' current
states and predict them at constant velocity (robotaxi.sim.commonroad_interactive_peers) —
each in a subprocess of its own (libsumo holds one simulation per process, and a crash or a
time-out then costs that planner's row, recorded with its cause as its failure, not the
run). A peer that finds no trajectory fails there, with the cause.

Judged by CommonRoad's own tools against the traffic's actual SUMO trajectories: goal
reached (`GoalRegion.is_reached`), collision-free (drivability checker), kinematically
feasible (`trajectory_feasibility`, KS model); success = all three. For collisions, who is
at fault comes from `metrics.driving.no_at_fault_collision` (nuPlan's rules, simplified)
on the same recorded run.

    .venv/bin/python benchmarks/bench_commonroad_interactive.py [--limit N] [--data DIR]
        [--planner pdm idm reactive frenetix] [--jobs N]
    .venv/bin/python benchmarks/bench_commonroad_interactive.py --only NAME [--planner pdm]
        [--render out.png]

writes benchmarks/results/commonroad_interactive.json and .md (not with `--only`); each
finished run is also appended to OUT/commonroad_interactive.progress.jsonl, and
`--from-progress` summarises that file (a run cut short is labelled partial); `--resume`
drives only the runs that file lacks, then summarises all. `--render`
draws a single scenario's run (lanelets, routes, the traffic SUMO drove, the boxes at the
first collision or the last step) to a PNG per planner.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT.parent / "shared" / "data" / "commonroad" / "interactive-ngsim"
PLANNERS = ("pdm", "idm", "reactive", "frenetix")
OURS = ("pdm", "idm")
PEERS = ("reactive", "frenetix")
SEED = 0
# a worker's planners on one scenario: each peer's own limit (600 s of planning, 120 s to
# start Frenetix) plus SUMO's starts and the judging; past it the worker is killed, and
# each of its planners without a row has a time-out
WORKER_TIMEOUT_S = 1800.0
SCRIPT = "benchmarks/bench_commonroad_interactive.py"
LANE_CHANGE_WINDOW_STEPS = 20  # 2 s at the scenarios' 0.1 s step


def _planner(name: str) -> Any:
    from robotaxi.autonomy.stack import IdmPlanner, PdmPlanner

    return PdmPlanner() if name == "pdm" else IdmPlanner()


def _history(out: Any) -> tuple[Any, tuple[str, ...]]:
    """The run as a `DrivingHistory` for the at-fault metric, and the SUMO ids of its agents."""
    from robotaxi.metrics.driving import DrivingHistory
    from robotaxi.sim.commonroad_interactive import traffic_arrays

    states = out.run.states
    traffic = traffic_arrays(out)
    path = out.checker_problem.path
    m = len(traffic.ids)
    return DrivingHistory(
        time_s=states[:, 0].astype(float),
        ego=states.astype(float),
        agents_xy=traffic.xy,
        agents_heading=traffic.heading,
        agents_speed=traffic.speed,
        agents_valid=traffic.valid,
        agents_length=traffic.length,
        agents_width=traffic.width,
        agents_is_ev=np.zeros(m, dtype=bool),
        agents_siren=np.zeros(traffic.valid.shape, dtype=bool),
        path_xy=path.xy,
        path_lane_width_m=path.lane_width_m,
        path_left_room_m=path.left_room_m,
        path_right_room_m=path.right_room_m,
        path_speed_limit_mps=path.speed_limit_mps,
    ), traffic.ids


def reproduce(name: str, planner: str) -> str:
    return f".venv/bin/python {SCRIPT} --only {name} --planner {planner} --render /tmp/{name}.png"


PEER_NOTE = (
    "Peers: `reactive` = commonroad-reactive-planner 2025.1 with its package defaults (6 s "
    "horizon) and `frenetix` = frenetix-motion-planner 2024.1.1 with its repository's "
    "recommended configuration (3 s horizon, C++ core, in its own Python 3.10 virtualenv, one "
    "server process per run over a pipe), set up as in the non-interactive benchmark "
    "(commonroad.md: I-PACE size with the BMW 320i's limits, re-planning every 0.1 s, the "
    "ego moved to the plan's next state). Adapted here, and why: in the non-interactive "
    "benchmark both peers read the recorded future of every obstacle (as their examples "
    "do); SUMO's traffic has no recorded future, so each step each peer gets every SUMO car's "
    "current state (footprint centre, heading, speed, size — exact, where our stack sees "
    "them through its simulated cameras and tracker) and predicts it the simplest standard "
    "way, at constant velocity along its heading over its horizon: the reactive planner's "
    "collision checker is rebuilt every step from those predictions by its own "
    "`set_collision_checker` (it has no predictor of its own), and Frenetix gets them as its "
    "scenario's obstacles and as its predictions (its own choices are WaleNet, which needs "
    "torch, or the recorded ground truth, which does not exist here). The peer's next state "
    "is placed into SUMO each step exactly as ours is (`moveToXY` + `setPreviousSpeed`). "
    "Planning ms is the peer's planning call; step ms adds the hand-over (for Frenetix the "
    "pipe's round trip). A peer gets 600 s of wall time per scenario and 30 s per Frenetix "
    "answer; its run stops at a crash, a time-out or a step with no trajectory, which is "
    "its failure (listed with the cause), judged as far as it drove."
)


def _drive(
    folder: Path, planner: str, render: Path | None, frenetix: Path | None = None
) -> dict[str, Any]:
    from robotaxi.metrics.driving import no_at_fault_collision
    from robotaxi.sim.commonroad_interactive import (
        lane_change_before,
        load_interactive,
        run_interactive,
    )

    scenario = load_interactive(folder)
    if planner in PEERS:
        from robotaxi.sim.commonroad_interactive_peers import run_interactive_peer

        out = run_interactive_peer(scenario, planner, frenetix=frenetix)
    else:
        out = run_interactive(scenario, _planner(planner), seed=SEED)
    verdict = out.verdict()
    at_fault_n, at_fault_ids = 0, []
    if len(out.run.states) >= 2:
        history, ids = _history(out)
        result = no_at_fault_collision(history)
        at_fault_n = int(result.value)
        at_fault_ids = [ids[j] for j in result.details["agents"]]
    follower_ids = {vid for _k, vid, _gap in out.followers}
    short_m, off_m = _end_to_goal(out)
    stack = list(out.run.stack_time_s)
    reasons = list(verdict.failure_reasons)
    if out.failure is not None:
        reasons.append("planner_failed")
    row: dict[str, Any] = {
        "success": verdict.success and out.failure is None,
        # the planner's own failure (a peer's crash, time-out or step without a trajectory)
        "failure": out.failure,
        "goal_reached": verdict.goal_reached,
        "goal_step": verdict.goal_step,
        "collision": verdict.collision,
        "collision_step": verdict.collision_step,
        # the first contact is already in the start state, before our car acted
        "collision_at_start": verdict.collision and verdict.collision_step == out.first_step,
        "at_fault_contacts": at_fault_n,
        "at_fault_agents": at_fault_ids,
        "collision_at_fault": verdict.collision and at_fault_n > 0,
        # our car changed lanes (in SUMO) in the 2 s before first contact: nuPlan blames a
        # car in two lanes for a lateral collision, a rule `metrics.driving` does not apply
        "collision_in_our_lane_change": bool(
            verdict.collision_step is not None
            and lane_change_before(out, verdict.collision_step, LANE_CHANGE_WINDOW_STEPS)
        ),
        "feasible": verdict.feasible,
        "infeasible_step": verdict.infeasible_step,
        "failure_reasons": reasons,
        "steps_driven": len(out.run.states) - 1,
        # where the car ended against the goal region's centre, along / across the route (m)
        "end_short_of_goal_m": short_m,
        "end_beside_goal_m": off_m,
        "goal_miss": None if verdict.goal_reached else _goal_miss(out),
        "stop": out.stop_reason,
        "traffic_cars": len(out.traffic),
        "follower_steps": len(out.followers),
        "followers": len(follower_ids),
        "min_follower_gap_m": (
            round(min(g for _k, _v, g in out.followers), 2) if out.followers else None
        ),
        "sumo_collisions": len(out.sumo_collisions),
        "teleports": out.teleports,
        "wall_s": round(out.wall_s, 2),
        "step_ms_mean": round(1000 * float(np.mean(stack)), 2) if stack else None,
        "step_ms_max": round(1000 * float(np.max(stack)), 2) if stack else None,
        "_stack_s": stack,
        "_planner_s": list(out.run.planner_time_s),
    }
    if render is not None:
        target = render.with_name(f"{render.stem}.{planner}{render.suffix or '.png'}")
        _render(out, verdict, target, f"{folder.name} — {planner}")
        row["render"] = str(target)
    return row


def _goal_miss(out: Any) -> str | None:
    """Why the goal was missed, from the goal's own parts: when the car was in the goal
    area (steps) against the goal's time window, and its speed there against the goal's."""
    goal = out.checker_problem.problem.goal.state_list[0]
    if not goal.has_value("position"):
        return None
    window = goal.time_step if goal.has_value("time_step") else None
    inside = [
        st for st in out.run.trajectory.state_list if goal.position.contains_point(st.position)
    ]
    span = f"window {window.start}–{window.end}" if window is not None else "no time window"
    if not inside:
        return f"never in the goal area ({span})"
    first, last = inside[0].time_step, inside[-1].time_step
    text = f"in the goal area at steps {first}–{last} ({span})"
    if goal.has_value("velocity"):
        speeds = [st.velocity for st in inside]
        text += (
            f", at {min(speeds):.1f}–{max(speeds):.1f} m/s "
            f"(goal {goal.velocity.start:.1f}–{goal.velocity.end:.1f})"
        )
    return text


def _end_to_goal(out: Any) -> tuple[float | None, float | None]:
    """How far the car's last centre is before the goal region's centre along the route, and
    how far the goal's centre lies beside the route (None for a goal without a position)."""
    problem = out.checker_problem
    for goal in problem.problem.goal.state_list:
        if goal.has_value("position"):
            shapes = getattr(goal.position, "shapes", [goal.position])
            centre = np.mean([np.asarray(sh.center) for sh in shapes], axis=0)
            s_goal, d_goal = problem.path.project(centre[0], centre[1])
            end = out.run.trajectory.state_list[-1].position
            s_end, _ = problem.path.project(end[0], end[1])
            return round(float(s_goal - s_end), 2), round(float(d_goal), 2)
    return None, None


def _render(out: Any, verdict: Any, path: Path, title: str) -> None:
    """Lanelets, the ego's route and trajectory, the traffic's tracks, and the boxes at the
    first collision (else at the last step)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Polygon as MplPolygon

    from robotaxi.core.geometry import box_corners

    problem = out.checker_problem
    fig, ax = plt.subplots(figsize=(10, 8))
    for lanelet in problem.scenario.lanelet_network.lanelets:
        ax.add_patch(MplPolygon(lanelet.polygon.vertices, closed=True, fc="0.92", ec="0.7", lw=0.5))
    ax.plot(*problem.path.xy.T, "--", color="tab:green", lw=1, label="route")
    for goal in problem.problem.goal.state_list:
        if goal.has_value("position"):
            for shape in getattr(goal.position, "shapes", [goal.position]):
                if hasattr(shape, "vertices"):
                    ax.add_patch(MplPolygon(shape.vertices, closed=True, fc="none", ec="green"))
    step = verdict.collision_step if verdict.collision_step is not None else None
    states = out.run.states
    first = out.first_step
    k = step if step is not None else first + len(states) - 1
    for track in out.traffic.values():
        xy = np.array([track.states[s][:2] for s in sorted(track.states)])
        ax.plot(xy[:, 0], xy[:, 1], color="tab:blue", lw=0.6, alpha=0.5)
        if k in track.states:
            x, y, h, _v = track.states[k]
            corners = box_corners(
                np.array([x]), np.array([y]), np.array([h]), track.length_m, track.width_m
            )[0]
            ax.add_patch(MplPolygon(corners, closed=True, fc="tab:blue", alpha=0.5))
    centres = np.array([s.position for s in out.run.trajectory.state_list])
    ax.plot(centres[:, 0], centres[:, 1], color="tab:red", lw=1.5, label="our car")
    ego = out.run.trajectory.state_list[min(k - first, len(centres) - 1)]
    corners = box_corners(
        np.array([ego.position[0]]), np.array([ego.position[1]]), np.array([ego.orientation]),
        4.68, 2.01,
    )[0]  # fmt: skip
    ax.add_patch(MplPolygon(corners, closed=True, fc="tab:red", alpha=0.7))
    ax.set_aspect("equal")
    ax.autoscale_view()
    lo, hi = centres.min(axis=0) - 40, centres.max(axis=0) + 40
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    flags = ", ".join(verdict.failure_reasons) or "success"
    ax.set_title(f"{title}: {flags}; boxes at step {k}")
    ax.legend(loc="upper right")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def worker(
    name: str, data: Path, planners: tuple[str, ...], render: Path | None,
    frenetix: Path | None = None,
) -> int:  # fmt: skip
    """One scenario, every planner in `planners`, in this process; prints the row as JSON."""
    from robotaxi.core.errors import RobotaxiError

    warnings.simplefilter("ignore")
    row: dict[str, Any] = {"scenario": name}
    folder = data / name
    try:
        from robotaxi.sim.commonroad_interactive import load_interactive

        scenario = load_interactive(folder)
        row["steps"] = scenario.problem.last_step - scenario.problem.first_step
        row["route_reaches_goal_lanelet"] = scenario.problem.route.reaches_goal
    except (RobotaxiError, ValueError, KeyError) as err:
        row["error"] = f"{type(err).__name__}: {err}"
        print(json.dumps(row))
        return 0
    for planner in planners:
        try:
            row[planner] = _drive(folder, planner, render, frenetix)
        # a crash is a failed run, recorded with its cause
        except Exception as err:
            row[planner] = {"crash": f"{type(err).__name__}: {err}"}
    print(json.dumps(row))
    return 0


def _run_worker(
    name: str, data: Path, planners: tuple[str, ...], frenetix: Path | str | None
) -> dict[str, Any]:
    """Some planners on one scenario in a subprocess: their row (a crash or a time-out of
    the worker is each one's failure, with the cause)."""
    cmd = [sys.executable, __file__, "--worker", name, "--data", str(data),
           "--planner", *planners]  # fmt: skip
    if "frenetix" in planners:
        if not isinstance(frenetix, Path):
            return {"scenario": name, "frenetix": {"crash": f"unavailable: {frenetix}"}}
        cmd += ["--frenetix", str(frenetix)]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S, check=False,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        cause = f"time-out: worker killed after {WORKER_TIMEOUT_S:.0f} s"
        return {"scenario": name, **{n: {"crash": cause} for n in planners}}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        cause = f"worker exited {proc.returncode}: {tail}"
        return {"scenario": name, **{n: {"crash": cause} for n in planners}}
    row: dict[str, Any] = json.loads(lines[-1])
    return row


def _failed(row: dict[str, Any], planner: str) -> dict[str, Any] | None:
    """A failure record for a planner whose run crashed or timed out, or for a scenario
    that could not be driven; None when the planner's result is in the row."""
    r = row.get(planner)
    if r is None or "crash" in r:
        cause = row.get("error") or (r or {}).get("crash", "not run")
        label = "not run" if "error" in row or r is None else "crash"
        return {"success": False, "failure_reasons": [f"not driven: {cause}"], label: cause}
    return None


def _cause_kind(failure: str) -> str:
    """A planner failure's kind: crash, time-out, no trajectory, unavailable or other."""
    for kind in ("crash", "time-out", "unavailable", "worker exited"):
        if failure.startswith(kind):
            return "crash" if kind == "worker exited" else kind
    return "no trajectory" if failure.startswith("no ") else "other"


def _summary(rows: list[dict[str, Any]], name: str) -> dict[str, Any]:
    n = len(rows)
    runs = [r[name] for r in rows if name in r and "crash" not in r[name]]
    stack = [t for r in runs for t in r["_stack_s"]]
    plan = [t for r in runs for t in r.get("_planner_s", [])]
    causes: Counter[str] = Counter(
        _cause_kind(str(r[name].get("failure") or r[name].get("crash")))
        for r in rows
        if name in r and (r[name].get("failure") or r[name].get("crash"))
    )
    reasons: Counter[str] = Counter()
    for row in rows:
        failed = _failed(row, name)
        for x in (failed or row[name])["failure_reasons"]:
            reasons["not driven" if x.startswith("not driven") else x] += 1

    def count(key: str) -> int:
        return sum(bool(r[key]) for r in runs)

    collisions = count("collision")
    return {
        "scenarios": n,
        "driven": len(runs),
        "successes": count("success"),
        "success_pct": round(100.0 * count("success") / n, 1) if n else 0.0,
        "goal_reached": count("goal_reached"),
        "collisions": collisions,
        "collisions_at_fault": count("collision_at_fault"),
        "collisions_not_at_fault": collisions - count("collision_at_fault"),
        "collisions_at_start": count("collision_at_start"),
        "collisions_at_fault_after_start": sum(
            bool(r["collision_at_fault"] and not r["collision_at_start"]) for r in runs
        ),
        "collisions_in_our_lane_change": count("collision_in_our_lane_change"),
        "feasible": count("feasible"),
        "failures_by_reason": dict(sorted(reasons.items())),
        "runs_with_follower": sum(r["followers"] > 0 for r in runs),
        "sumo_collisions": sum(r["sumo_collisions"] for r in runs),
        "teleports": sum(r["teleports"] for r in runs),
        "step_ms_mean": round(1000 * float(np.mean(stack)), 2) if stack else None,
        "step_ms_p99": round(1000 * float(np.percentile(stack, 99)), 2) if stack else None,
        "planner_ms_mean": round(1000 * float(np.mean(plan)), 2) if plan else None,
        "planner_ms_p99": round(1000 * float(np.percentile(plan, 99)), 2) if plan else None,
        "planner_failures": dict(sorted(causes.items())),
        "steps": len(stack),
    }


def flags(r: dict[str, Any]) -> str:
    """S success, G goal, C collision (c when not at fault, 0 at the start; L in our lane
    change), F feasible; ! the planner failed (a peer's crash, time-out, no trajectory)."""
    if "crash" in r or "not run" in r:
        if "not run" in r:
            return "not run"
        return "time-out" if str(r["crash"]).startswith("time-out") else "crash"
    c = "-"
    if r["collision"]:
        c = "0" if r["collision_at_start"] else ("C" if r["collision_at_fault"] else "c")
        c += "L" if r.get("collision_in_our_lane_change") else ""
    return (
        ("S" if r["success"] else "-")
        + ("G" if r["goal_reached"] else "-")
        + c
        + ("F" if r["feasible"] else "-")
        + ("!" if r.get("failure") else "")
    )


def _target_15(summary: dict[str, Any]) -> dict[str, Any] | None:
    """Issue 15's targets here: no at-fault collision of ours (after the start state) and
    our success at least the best peer's; None without ours and a peer."""
    peers = [n for n in PEERS if n in summary]
    if "pdm" not in summary or not peers:
        return None
    best = max(peers, key=lambda n: summary[n]["successes"])
    ours = summary["pdm"]
    at_fault = ours["collisions_at_fault_after_start"]
    return {
        "best_peer": best,
        "best_peer_successes": summary[best]["successes"],
        "ours": ours["successes"],
        "ours_at_fault_after_start": at_fault,
        "success_met": ours["successes"] >= summary[best]["successes"],
        "at_fault_met": at_fault == 0,
        "met": ours["successes"] >= summary[best]["successes"] and at_fault == 0,
        "gap_scenarios": max(summary[best]["successes"] - ours["successes"], 0),
    }


def _markdown(result: dict[str, Any]) -> str:
    s = result["summary"]
    planners = [n for n in PLANNERS if n in s]
    lines = [
        "# CommonRoad interactive scenarios, reactive SUMO traffic",
        "",
        *(
            [
                f"**Partial run**: {result.get('partial_reason', 'not every run finished')}.",
                "",
            ]
            if result.get("partial")
            else []
        ),
        f"{result['scenario_count']} scenarios of ../shared/data/commonroad/interactive-ngsim "
        "(NGSIM US101 and Lankershim, sumocr's format). The traffic is SUMO's (eclipse-sumo "
        f"{result['sumo']}), run from each scenario's network, routes, vehicle types and "
        "sumocr settings (seed, sublane resolution 0.5 m, 2 presimulation steps, dt 0.1 s); "
        "the driven car is placed into SUMO every step (`moveToXY` + `setPreviousSpeed`), so "
        "SUMO's cars follow, brake for and change lanes around it. "
        f"All of {', '.join(planners)} were driven in this run. Judged by commonroad-io "
        "2024.3 and the drivability checker against the trajectories SUMO's cars actually "
        "drove: goal (`GoalRegion.is_reached`), collision (`create_collision_checker`, ego "
        "4.68 m × 2.01 m), feasibility (`trajectory_feasibility`, KS model, BMW 320i limits "
        "with the I-PACE's geometry). Success = goal AND no collision AND feasible AND the "
        "planner did not fail. Fault: `metrics.driving.no_at_fault_collision` (nuPlan's "
        "rules, simplified: the driven car is to blame for a contact unless it is stopped or "
        "the other car hits it from behind while it keeps its lane), the same for all four. "
        f"Seed {SEED}; a scenario that cannot be driven counts as a failure with its cause.",
        "",
        PEER_NOTE,
        "",
        "| planner | success | goal reached | collisions | at fault | not at fault | at start "
        "| at fault after start | in our lane change | feasible | planner failures "
        "| planning ms mean | planning ms p99 | step ms mean | step ms p99 | failures |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in planners:
        m = s[name]
        fails = ", ".join(f"{k} {v}" for k, v in m["failures_by_reason"].items()) or "—"
        causes = ", ".join(f"{k} {v}" for k, v in m.get("planner_failures", {}).items()) or "—"
        lines.append(
            f"| {name} | {m['successes']}/{m['scenarios']} ({m['success_pct']} %) | "
            f"{m['goal_reached']} | {m['collisions']} | {m['collisions_at_fault']} | "
            f"{m['collisions_not_at_fault']} | {m['collisions_at_start']} | "
            f"{m['collisions_at_fault_after_start']} | {m['collisions_in_our_lane_change']} | "
            f"{m['feasible']}/{m['driven']} | {causes} | {m.get('planner_ms_mean')} | "
            f"{m.get('planner_ms_p99')} | {m['step_ms_mean']} | {m['step_ms_p99']} | {fails} |"
        )
    pdm = s.get("pdm")
    target = result.get("target_15")
    if pdm is not None:
        lines += [
            "",
            "Targets (issue 15): no at-fault collision of our car — "
            f"**{'met' if pdm['collisions_at_fault_after_start'] == 0 else 'not met'}** "
            f"({pdm['collisions_at_fault_after_start']} at fault by `metrics.driving` after "
            f"the start state; {pdm['collisions_at_start']} contact(s) already in the start "
            "state, before our car acted, are counted apart and not blamed on it, though "
            f"`metrics.driving` puts {pdm['collisions_at_fault']} in all on our car; "
            f"{pdm['collisions_in_our_lane_change']} collision(s) came within 2 s of our car "
            "changing lanes in SUMO, which nuPlan's full rules blame on our car and "
            "`metrics.driving` does not)"
            + (
                f"; success at least the best peer's — **{'met' if target['success_met'] else 'not met'}** "  # noqa: E501
                f"(ours {target['ours']}, best peer {target['best_peer']} "
                f"{target['best_peer_successes']}"
                + (
                    f"; {target['gap_scenarios']} more success(es) needed"
                    if not target["success_met"]
                    else ""
                )
                + ")."
                if target is not None
                else "; no peer was driven, so the success target is not judged."
            ),
        ]
    lines += [
        "",
        "'end: short of / beside goal': for a run that missed its goal, how far the car's "
        "last position was before the goal region's centre along the route, and how far that "
        "centre lies beside the route (a goal off the route's lane cannot be reached).",
        "",
        "'in our lane change': SUMO moved the driven car to another lane of the same road "
        "within the 2 s before first contact. For ours the route itself carries the lane "
        "change (the goal lies in another lane), so our car keeps to its *path* while "
        "crossing into the other lane: the planner's and the metric's blame rules both read "
        "that as lane keeping, and the checker's 'struck from behind' likewise. Our planner "
        "begins a route's lane change only into an acceptable gap "
        "(`sim.commonroad.RouteLaneChanges`, `planning.lane_change`); the IDM baseline takes "
        "it where the route lays it out.",
        "",
        "'at start': the checker's first contact is at the scenario's step 0, before the car "
        "acted — SUMO's start state (from the scenario's routes) puts a car overlapping the "
        "car's initial pose; the fault metric still blames the (moving) car for those.",
        "",
        "Reaction: runs in which a SUMO car drove behind the driven car in its lane within "
        "50 m (`getFollower`), i.e. car-followed it: "
        + ", ".join(f"{n} {s[n]['runs_with_follower']}/{s[n]['driven']}" for n in planners)
        + ". SUMO's own collision reports involving the driven car (steps): "
        + ", ".join(f"{n} {s[n]['sumo_collisions']}" for n in planners)
        + "; teleports: "
        + ", ".join(f"{n} {s[n]['teleports']}" for n in planners)
        + ".",
        "",
        f"Run at {result['run_utc']} on {result['machine']}"
        + (f", {result['jobs']} runs at a time" if result.get("jobs") else "")
        + (f", {result['wall_s']:.0f} s of wall time" if result.get("wall_s") else "")
        + "; step time = one whole tick of the planner (ours: cameras, tracking, prediction, "
        "planning, control; a peer: its planning call and hand-over), wall clock. Runs stop "
        "at the goal, the goal's last time step, or the planner's failure."
        + (f" {result['run_note']}" if result.get("run_note") else ""),
        "",
        "## Per scenario (S success, G goal, C at-fault collision, c collision not at fault "
        "(L: within 2 s of the car's lane change), 0 collision already at the start, F "
        "feasible, ! the planner failed; crash / time-out: the run itself failed)",
        "",
        "| scenario | steps | " + " | ".join(planners) + " | pdm: followers / min gap m "
        "| pdm end: short of / beside goal m; why the goal was missed | reproduce a failure |",
        "|---|---|" + "---|" * len(planners) + "---|---|---|",
    ]
    for row in result["scenarios"]:
        cells = [flags(_failed(row, name) or row[name]) for name in planners]
        pdm_row = row.get("pdm", {})
        react = (
            f"{pdm_row.get('followers')} / {pdm_row.get('min_follower_gap_m')}"
            if "followers" in pdm_row
            else "—"
        )
        end = (
            f"{pdm_row.get('end_short_of_goal_m')} / {pdm_row.get('end_beside_goal_m')}; "
            f"{pdm_row.get('goal_miss')}"
            if "end_short_of_goal_m" in pdm_row and not pdm_row.get("goal_reached")
            else "—"
        )
        repro = [
            f"`{reproduce(row['scenario'], n)}`"
            for n in OURS
            if n in planners and (_failed(row, n) or row[n])["success"] is False
        ]
        lines.append(
            f"| {row['scenario']} | {row.get('steps', '—')} | " + " | ".join(cells)
            + f" | {react} | {end} | {'<br>'.join(repro) or '—'} |"
        )  # fmt: skip
    peer_failures = [
        (row["scenario"], n, (row[n].get("failure") or row[n].get("crash")))
        for row in result["scenarios"]
        for n in planners
        if n in row and (row[n].get("failure") or row[n].get("crash"))
    ]
    if peer_failures:
        lines += ["", "Planner failures, with their causes:", ""]
        lines += [f"- {name} on {sc}: {cause}" for sc, name, cause in peer_failures]
    errors = [r for r in result["scenarios"] if "error" in r]
    if errors:
        lines += ["", "Not driven (failures, every planner):", ""]
        lines += [f"- {r['scenario']}: {r['error']}" for r in errors]
    lines += [
        "",
        "Data: NGSIM-derived CommonRoad interactive scenarios (US DOT NGSIM; CommonRoad/TUM "
        "conversion). Traffic: Eclipse SUMO (EPL-2.0).",
        "",
    ]
    return "\n".join(lines)


def _merge(units: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    """The per-(scenario, planner) rows joined into one row per scenario, in `names` order."""
    rows: dict[str, dict[str, Any]] = {n: {"scenario": n} for n in names}
    for unit in units:
        rows.setdefault(unit["scenario"], {"scenario": unit["scenario"]}).update(unit)
    return [rows[n] for n in names]


def _result(
    rows: list[dict[str, Any]], planners: tuple[str, ...], args: argparse.Namespace,
    wall_s: float | None, partial_reason: str | None,
) -> dict[str, Any]:  # fmt: skip
    summary = {name: _summary(rows, name) for name in planners}
    for row in rows:
        for name in planners:
            if name in row:
                row[name].pop("_stack_s", None)
                row[name].pop("_planner_s", None)
    return {
        "benchmark": "commonroad_interactive",
        "run_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}",
        "sumo": importlib.metadata.version("eclipse-sumo"),
        "seed": SEED,
        "planners": list(planners),
        "partial": partial_reason is not None,
        **({"partial_reason": partial_reason} if partial_reason else {}),
        "jobs": args.jobs,
        "wall_s": wall_s,
        **({"run_note": args.note} if args.note else {}),
        "scenario_count": len(rows),
        "summary": summary,
        "target_15": _target_15(summary),
        "scenarios": rows,
        "reproduce": {
            f"{r['scenario']}:{n}": reproduce(r["scenario"], n)
            for r in rows
            for n in planners
            if n in OURS and (_failed(r, n) or r[n])["success"] is False
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=None, help="only the first N scenarios")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--only", default=None, help="one scenario (no results files)")
    parser.add_argument("--planner", nargs="+", choices=PLANNERS, default=list(PLANNERS))
    parser.add_argument("--render", type=Path, default=None, help="PNG of an --only run")
    parser.add_argument("--render-only", action="store_true", help="rewrite the .md from the JSON")
    parser.add_argument("--jobs", type=int, default=1, help="runs (scenario, planner) at once")
    parser.add_argument(
        "--from-progress", action="store_true",
        help="summarise OUT/commonroad_interactive.progress.jsonl",
    )  # fmt: skip
    parser.add_argument(
        "--resume", action="store_true",
        help="drive only the runs OUT/commonroad_interactive.progress.jsonl lacks, then summarise",
    )  # fmt: skip
    parser.add_argument("--note", default=None, help="how this run was made, for the report")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--frenetix", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    planners = tuple(n for n in PLANNERS if n in args.planner)
    if args.render_only:
        stored = json.loads((args.out / "commonroad_interactive.json").read_text())
        (args.out / "commonroad_interactive.md").write_text(_markdown(stored))
        return 0
    if args.worker is not None:
        return worker(args.worker, args.data, planners, None, args.frenetix)
    if not args.data.is_dir():
        print(f"interactive CommonRoad data not found at {args.data}", file=sys.stderr)
        return 2
    frenetix: Path | str | None = None
    if "frenetix" in planners:
        from robotaxi.sim.commonroad_peers import PeerError, frenetix_python

        try:
            frenetix = frenetix_python(log=lambda msg: print(msg, flush=True))
        except PeerError as err:
            frenetix = str(err)
            print(f"Frenetix unavailable: {err}", flush=True)
    if args.only is not None:
        fx = frenetix if isinstance(frenetix, Path) else None
        worker(args.only, args.data, planners, args.render, fx)
        return 0
    from robotaxi.sim.commonroad_interactive import interactive_folders

    folders = interactive_folders(args.data)[: args.limit]
    names = [f.name for f in folders]
    progress_file = args.out / "commonroad_interactive.progress.jsonl"
    args.out.mkdir(parents=True, exist_ok=True)
    wall_s: float | None = None
    if args.from_progress:
        units = [json.loads(ln) for ln in progress_file.read_text().splitlines() if ln]
    else:
        units = []
        if args.resume and progress_file.is_file():
            units = [json.loads(ln) for ln in progress_file.read_text().splitlines() if ln]
        else:
            progress_file.write_text("")
        # per scenario a worker for ours and IDM and one for the peers, so that a peer's
        # crash can never cost our rows; ours on every scenario first (minutes), then the
        # peers (hours), scenario by scenario, so a run cut short has whole rows
        groups = [g for g in (tuple(n for n in planners if n in OURS),
                              tuple(n for n in planners if n in PEERS)) if g]  # fmt: skip
        done = {(u["scenario"], n) for u in units for n in planners if n in u or "error" in u}
        tasks = [(name, group) for group in groups for name in names
                 if any((name, n) not in done for n in group)]  # fmt: skip
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = {
                pool.submit(_run_worker, name, args.data, group, frenetix): (name, group)
                for name, group in tasks
            }
            for i, future in enumerate(as_completed(futures), 1):
                name, group = futures[future]
                unit = future.result()
                units.append(unit)
                with progress_file.open("a") as f:
                    f.write(json.dumps(unit) + "\n")
                status = "  ".join(f"{n}: {flags(_failed(unit, n) or unit[n])}" for n in group)
                if "error" in unit:
                    status += f"  ({unit['error']})"
                for n in group:
                    cause = unit.get(n, {}).get("failure") or unit.get(n, {}).get("crash")
                    status += f"  ({n}: {cause})" if cause else ""
                elapsed = time.perf_counter() - start
                print(f"[{i:>3}/{len(tasks)} {elapsed:6.0f}s] {name:<26} {status}", flush=True)
        wall_s = round(time.perf_counter() - start, 1)
    rows = _merge(units, names)
    # a run cut short: only the scenarios every planner finished are summarised (the same
    # scenarios for all four), the rest are named as not finished
    unfinished = [r["scenario"] for r in rows
                  if "error" not in r and any(n not in r for n in planners)]  # fmt: skip
    rows = [r for r in rows if r["scenario"] not in unfinished]
    partial_reason = None
    if unfinished:
        partial_reason = (
            f"{len(unfinished)} of {len(names)} scenarios had not been driven by every planner "
            f"when this was summarised from the progress file and are left out: "
            f"{', '.join(unfinished)}"
        )
    if args.limit is not None:
        partial_reason = (partial_reason + "; " if partial_reason else "") + (
            f"only the first {args.limit} scenarios"
        )
    result = _result(rows, planners, args, wall_s, partial_reason)
    (args.out / "commonroad_interactive.json").write_text(json.dumps(result, indent=1))
    (args.out / "commonroad_interactive.md").write_text(_markdown(result))
    for name in planners:
        m = result["summary"][name]
        print(
            f"{name}: success {m['successes']}/{m['scenarios']} collisions {m['collisions']} "
            f"(at fault after start {m['collisions_at_fault_after_start']}) planner failures "
            f"{m['planner_failures']} planning ms mean {m['planner_ms_mean']}"
        )
    print(f"wrote {args.out / 'commonroad_interactive.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
