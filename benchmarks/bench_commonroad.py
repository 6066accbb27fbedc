"""Peer benchmark on CommonRoad scenarios: our planner (PDM), the IDM baseline, and two peers.

Each scenario in ../shared/data/commonroad (tum-bsd, hand-crafted, ngsim) is driven closed
loop four times in the same run: by our autonomy stack with `PdmPlanner`, by it with the
`IdmPlanner` lane-following baseline — with the scenario's recorded obstacles replayed as
ground truth for the cameras (robotaxi.sim.commonroad) — and by two peers re-planning every
step the same way: the CommonRoad reactive planner (`reactive`) and Frenetix (`frenetix`, in
its own Python 3.10 virtualenv, made on first use; robotaxi.sim.commonroad_peers says how
each is configured and what was adapted). A peer's crash or time-out is its failure, listed
with its cause; no scenario is dropped. CommonRoad's own tools judge each
trajectory: goal reached (`GoalRegion.is_reached`), collision-free (drivability checker),
kinematically feasible (`trajectory_feasibility`, KS model). Success = all three.
The interactive-ngsim scenarios are not driven here: their files hold no recorded traffic
(SUMO supplies it interactively); bench_commonroad_interactive drives all four there.

    .venv/bin/python benchmarks/bench_commonroad.py [--limit N] [--data DIR] [--jobs N]
        [--planners pdm,idm,reactive,frenetix] [--scenario NAME ...] [--render DIR]

writes benchmarks/results/commonroad.json and commonroad.md, with the per-scenario changes
against the previous results file (or `--previous FILE`); a run limited to some scenarios or
planners writes only where `--out` says. `--render DIR` draws each scenario's four paths as
DIR/NAME.png. Each finished scenario is also appended to OUT/commonroad.progress.jsonl, and
`--from-progress` summarises that file (a run cut short, labelled partial). `--examples`
runs each peer on its package's own example scenario with its example settings and adds
that to the results. `--render-only` rewrites both files from the existing JSON (e.g. after
`--previous` changed, or with a new `--note`) without driving anything. The interactive
scenarios' summary (OUT/commonroad_interactive.json, from bench_commonroad_interactive) is
shown beside these results when it is there.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import sys
import time
import warnings
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from robotaxi.autonomy.stack import IdmPlanner, PdmPlanner, Planner
from robotaxi.autonomy.vehicle import IPACE, VehicleParams
from robotaxi.core.errors import RobotaxiError
from robotaxi.sim.commonroad import (
    FEASIBILITY_VEHICLE,
    MAX_DURATION_S,
    CrProblem,
    evaluate,
    load_problem,
    run,
    scenario_files,
)
from robotaxi.sim.commonroad_peers import (
    BMW_320I,
    EXAMPLE_SCENARIO,
    FRENETIX_VERSION,
    PeerError,
    frenetix_python,
    no_run,
    reactive_example_config,
    run_frenetix,
    run_reactive,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT.parent / "shared" / "data" / "commonroad"
FOLDERS = ("hand-crafted", "tum-bsd", "ngsim")
OURS: dict[str, type[Planner]] = {"pdm": PdmPlanner, "idm": IdmPlanner}
PLANNERS = ("pdm", "idm", "reactive", "frenetix")
PEER_NOTE = (
    "Peers: `reactive` = commonroad-reactive-planner 2025.1 (package defaults: 6 s horizon, "
    "±3 m lateral samples, 4 sampling levels, desired speed from the goal; route from "
    "commonroad-route-planner), `frenetix` = frenetix-motion-planner "
    f"{FRENETIX_VERSION} (its repository's recommended configuration: 3 s horizon, C++ "
    "core), in its own Python 3.10 virtualenv with commonroad-io 2023.2, one server process "
    "per scenario over a pipe. Adapted for both: re-planning every 0.1 s step (their examples "
    "re-plan every 3rd), the ego moves to the plan's next state (their own loop: perfect "
    "tracking), the I-PACE's size and axle positions with the BMW 320i's limits (the car the "
    "checker judges), multiprocessing, plots and logs off. Both see the recorded future of "
    "the obstacles (the reactive planner's collision checker is built from the scenario, as "
    "in its example; Frenetix's prediction is `ground_truth` instead of WaleNet, whose torch "
    "dependency is not installed). Frenetix's wheel lacks its harm_parameters.json: a "
    "monotone stand-in, read only to reject samples leaving the road. Planning ms for a peer "
    "is its planning call; step ms adds the hand-over (for Frenetix the pipe's round trip). "
    "A peer gets 600 s of wall time per scenario (10× real time for the longest, 60 s "
    "problems) and 30 s per Frenetix answer; past that it is stopped, a time-out."
)
SEED = 0
# what changed in the adapter (robotaxi.sim.commonroad*) since earlier results files, for
# the reader comparing runs
ADAPTER_NOTES = (
    "2026-11-26: a lane change on the route that has no room left on its lanelet (the car "
    "starts near the lanelet's end) is moved to the next lanelet, beside the target one; it "
    "used to be squeezed into the joint — a sideways jump of a lane width that the 2 m "
    "smoothing turned into an S-bend of ~2 m radius (USA_Lanker-1_10, -1_11). The route's "
    "kerb rooms are at least half its lane width (lanelet bounds meeting at an angle in "
    "intersections put them nearer). Later on 2026-11-26: lane changes in a row (two lanes "
    "over on one lanelet) share the lanelet's length; the second used to be dropped when the "
    "first took it all, and the path jumped a lane width sideways at the next joint — a "
    "zigzag of curvature 0.27/m the car slowed to ~3 m/s for (USA_Peach-4_2, -4_7; "
    "USA_Peach-2_1). Centre lines that overlap at a joint no longer make the path step back. "
    "Then the behaviour layer's bend speed cap (it capped the speed for the sharpest bend "
    "anywhere in its 40 m preview, so the car crawled at ~3.8 m/s from ~25 m before "
    "USA_Peach-4's right turn and recorded traffic at ~9 m/s ran into it) became a "
    "braking-distance cap: comfortable braking to each bend, less a second of travel. "
    "USA_Peach-4_2/-4_7 are no longer hit (the goal is still not reached); "
    "ZAM_Tjunction-1_42 now ends in a collision instead of short of its goal. "
    "2026-12-05, our planner only (the IDM baseline is unchanged): (1) arrival timed to the "
    "goal's window — the target speed is kept between the speed that would put the car's "
    "centre 3/4 of the way through the goal region as the window opens (applied once that "
    "point is within 4 s, and never below the pace of a car close behind in our lane) and "
    "the speed that puts it 1/4 of the way in as the window closes "
    "(`planning.arrival`); (2) a lane change the route needs is begun only into an "
    "acceptable gap in the target lane as the car's own tracks show it (MOBIL's safety "
    "criterion plus time gaps, `planning.lane_change`): otherwise its start moves on along "
    "the lanelet (or onto the next lanelets beside each other), the car lets a car beside "
    "it go by, and takes the gap when it comes (`sim.commonroad.RouteLaneChanges`); the "
    "car watches for 3 ticks before it takes any gap. "
    "Later on 2026-12-05 (issue 15), both planners: (3) on roads without a signed limit the "
    "route's speed is at least the middle of the goal's velocity interval where that is "
    "faster than the ego's starting speed (the desired speed the reactive planner also takes "
    "from the goal; it was the starting speed alone); (4) near the goal the target is capped "
    "0.2 m/s (at most a quarter of the interval's width) inside the goal's velocity interval, "
    "not on its upper edge, which the car overshot by 0.01 m/s (ZAM_Tjunction-1_18). Ours "
    "only: (5) a route lane change laid out just ahead of where the car starts (its front "
    "already past the start) used to count as under way at once, unchecked; it is now "
    "gap-checked like the others, and counts as under way only once the car has found its "
    "gap or is 5 m past its start; (6) the gap check's model of our own car following is the "
    "roll-out's improved IDM (below). 2026-12-06 (issue 15), ours only: (7) near the goal "
    "region (from 3 s of travel, at least 15 m, before it), while following its lane, the car "
    "moves over within its lane as far as it takes for its centre to pass 0.4 m inside the "
    "region, keeping 0.15 m inside the lane's edges (`planning.arrival.region_aim_offset`): "
    "the NGSIM goal regions are 2.4 m long and about 1.8 m wide, often astride a lane line, "
    "and a car on the centre line drove past them; (8) while a lane change waits for its "
    "gap, the car no longer slows to let by a car behind it in the target lane that is over "
    "1 m/s slower: it drops back on its own (the car had braked by up to 6 m/s of speed for "
    "one). Later on 2026-12-06 (issue 15, third pass), ours only: (9) for 5 s after a route "
    "lane change takes its gap the car follows its leader at a 0.8 s time headway, then goes "
    "back to its usual 1.5 s evenly over 5 s (headway relaxation, as in LMRS), and the gap "
    "check's model of our car following uses that 0.8 s: a gap a human takes (a leader some "
    "0.8 s ahead in the target lane) is taken and closed back to the usual gap gently; before, "
    "such changes waited until after the goal region (USA_US101-11_1); (10) the goal's "
    "velocity interval is laid on the route from where the car's centre enters the region, "
    "not from 20 m before its centre (the checker judges the goal's speed only inside the "
    "region, and our behaviour layer brakes ahead for a lower limit itself; the IDM baseline "
    "keeps the 20 m lead it needs, see `sim.commonroad.RouteLaneChanges`); (11) the arrival "
    "timing no longer holds the car back while a car close ahead in its lane (within 2 s of "
    "our speed plus 5 m) leads it: that car gets to the region first and sets when we can, "
    "and falling back behind it only opened a gap (`planning.arrival.leader_pace`); (12) the "
    "behaviour layer's bend speed cap reads the path's curvature averaged over the steering's "
    "look-ahead (0.8 s of travel, 4 to 20 m), not point by point: pure pursuit steers on the "
    "arc to a point that far ahead and cuts through shorter wiggles, and the lane centres "
    "drawn from the NGSIM recordings wiggle (curvature up to ±0.005/m, changing sign within "
    "~20 m) on straight freeway, which had capped the car 1 to 2 m/s below its route speed."
)
BASELINE_NOTE = (
    "The IDM baseline is our motion planner's roll-out with one candidate (lane centre, "
    "speed limit), no behaviour layer and no scoring, so it shares the roll-out's "
    "longitudinal model: since 2026-11-26 that is IDM blended with the constant-acceleration "
    "heuristic (ACC model), jerk-limited, with crossing traffic timed to when the car would "
    "get there — changes that moved the baseline too (see the changes table). Since "
    "2026-12-05 (issue 15) its IDM is the improved IDM (IIDM, Treiber & Kesting 2013), which "
    "follows a leader at the desired gap instead of lagging well behind it below the desired "
    "speed; this moved the baseline too. Since 2026-12-06 (issue 15), in the roll-out and so "
    "for both: a road user behind us in our own lane never leads us, and one not yet ahead "
    "of our front leads only once it is ahead (the 2 s look-ahead for cars cutting in is for "
    "cars already ahead): their predictions, carried on at their speed, run through our car, "
    "and the roll-out had braked at up to 8 m/s² for them. Ours only: letting off the brake "
    "no longer counts against a candidate's comfort (the roll-out lets it off fast on "
    "purpose; held against it, braking candidates won and the car kept braking), and the "
    "behaviour layer caps the speed for a lower limit ahead as it does for a bend (no faster "
    "than comfortable braking to it allows), no longer at the lowest limit anywhere in its "
    "40 m preview."
)


def _percentile_ms(values: list[float], q: float) -> float | None:
    return round(1000.0 * float(np.percentile(values, q)), 2) if values else None


def _verdict_row(
    problem: CrProblem, out: Any, failure: str | None, params: VehicleParams = IPACE
) -> dict[str, Any]:
    verdict = evaluate(problem, out.trajectory, params=params)
    reasons = list(verdict.failure_reasons)
    if failure is not None:
        reasons.append("planner_failed")
    stack = list(out.stack_time_s)
    return {
        "success": verdict.success and failure is None,
        "goal_reached": verdict.goal_reached,
        "goal_step": verdict.goal_step,
        "collision": verdict.collision,
        "collision_step": verdict.collision_step,
        "struck_from_behind": verdict.struck_from_behind,
        "feasible": verdict.feasible,
        "infeasible_step": verdict.infeasible_step,
        "failure_reasons": reasons,
        "failure": failure,
        "steps_driven": len(out.states) - 1,
        "step_ms_mean": round(1000 * float(np.mean(stack)), 2) if stack else None,
        "step_ms_max": round(1000 * float(np.max(stack)), 2) if stack else None,
        # pooled over all scenarios in the summary, then dropped from the file
        "_stack_s": stack,
        "_planner_s": list(out.planner_time_s),
        "_states": out.states,
    }


def _one(path: Path, planners: tuple[str, ...], frenetix: Path | str | None) -> dict[str, Any]:
    """All `planners` on one scenario; `frenetix` is its Python, or why it is unavailable."""
    row: dict[str, Any] = {"scenario": path.stem, "folder": path.parent.name}
    try:
        problem = load_problem(path)
    except (RobotaxiError, ValueError, KeyError) as err:
        row["skipped"] = f"{type(err).__name__}: {err}"
        return row
    row["steps"] = problem.last_step - problem.first_step
    row["route_reaches_goal_lanelet"] = problem.route.reaches_goal
    row["lane_changes_on_route"] = int(sum(problem.route.lane_changes))
    row["_problem"] = problem
    for name in planners:
        if name in OURS:
            row[name] = _verdict_row(problem, run(problem, OURS[name](), seed=SEED), None)
        elif name == "reactive":
            out = run_reactive(problem)
            row[name] = _verdict_row(problem, out, out.failure)
        elif isinstance(frenetix, Path):
            out = run_frenetix(problem, path, frenetix)
            row[name] = _verdict_row(problem, out, out.failure)
        else:  # no Frenetix environment: its failure on every scenario, with the cause
            out = no_run(name, problem, f"unavailable: {frenetix}")
            row[name] = _verdict_row(problem, out, out.failure)
    return row


def _examples(data: Path, frenetix: Path | str | None) -> dict[str, Any]:
    """Each peer on its package's own example scenario with its example settings and car
    (the BMW 320i, which the checker then judges): does it reproduce its example?"""
    path = scenario_files(data, FOLDERS)
    path = [f for f in path if f.stem == EXAMPLE_SCENARIO]
    problem = load_problem(path[0])
    out: dict[str, Any] = {
        "scenario": EXAMPLE_SCENARIO,
        "steps": problem.last_step - problem.first_step,
    }
    reactive = run_reactive(problem, config=reactive_example_config(problem), params=BMW_320I)
    out["reactive"] = _verdict_row(problem, reactive, reactive.failure, BMW_320I)
    if isinstance(frenetix, Path):
        fx = run_frenetix(problem, path[0], frenetix, params=BMW_320I)
    else:
        fx = no_run("frenetix", problem, f"unavailable: {frenetix}", BMW_320I)
    out["frenetix"] = _verdict_row(problem, fx, fx.failure, BMW_320I)
    for name in ("reactive", "frenetix"):
        plan = out[name].pop("_planner_s")
        out[name]["planner_ms_mean"] = round(1000 * float(np.mean(plan)), 2) if plan else None
        del out[name]["_stack_s"], out[name]["_states"]
    return out


def _cause_kind(failure: str) -> str:
    """A planner failure's kind: crash, time-out, no trajectory or unavailable."""
    for kind in ("crash", "time-out", "unavailable"):
        if failure.startswith(kind):
            return kind
    return "no trajectory" if failure.startswith("no ") else "other"


def _summary(rows: list[dict[str, Any]], name: str) -> dict[str, Any]:
    runs = [r[name] for r in rows if name in r]
    n = len(runs)
    stack = [t for r in runs for t in r["_stack_s"]]
    plan = [t for r in runs for t in r["_planner_s"]]
    reasons: Counter[str] = Counter(x for r in runs for x in r["failure_reasons"])
    causes: Counter[str] = Counter(
        _cause_kind(str(r["failure"])) for r in runs if r.get("failure") is not None
    )

    def pct(key: str) -> float:
        return round(100.0 * sum(bool(r[key]) for r in runs) / n, 1) if n else 0.0

    return {
        "scenarios": n,
        "success_pct": pct("success"),
        "successes": sum(bool(r["success"]) for r in runs),
        "collisions": sum(bool(r["collision"]) for r in runs),
        "collisions_struck_from_behind": sum(bool(r["struck_from_behind"]) for r in runs),
        "goal_reached_pct": pct("goal_reached"),
        "feasible_pct": pct("feasible"),
        "failures_by_reason": dict(sorted(reasons.items())),
        "planner_failures": dict(sorted(causes.items())),
        "step_ms_mean": round(1000 * float(np.mean(stack)), 2) if stack else None,
        "step_ms_median": _percentile_ms(stack, 50),
        "step_ms_p99": _percentile_ms(stack, 99),
        "planner_ms_mean": round(1000 * float(np.mean(plan)), 2) if plan else None,
        "planner_ms_p99": _percentile_ms(plan, 99),
        "steps": len(stack),
    }


def flags(r: dict[str, Any]) -> str:
    """S success, G goal, C collision, F feasible (a dash where not)."""
    return (
        ("S" if r["success"] else "-")
        + ("G" if r["goal_reached"] else "-")
        + ("C" if r["collision"] else "-")
        + ("F" if r["feasible"] else "-")
    )


def _previous(result: dict[str, Any], path: Path) -> dict[str, Any] | None:
    """The previous results file's summary and every scenario whose flags changed."""
    if not path.is_file():
        return None
    old = json.loads(path.read_text())
    if old.get("run_utc") == result["run_utc"]:
        return result.get("previous")
    before = {r["scenario"]: r for r in old.get("scenarios", [])}
    changes = []
    for row in result["scenarios"]:
        then_row = before.get(row["scenario"])
        for name in PLANNERS:
            if then_row is None or name not in then_row or name not in row:
                continue
            then, now = flags(then_row[name]), flags(row[name])
            if then != now:
                changes.append({"scenario": row["scenario"], "planner": name, "then": then,
                                "now": now})  # fmt: skip
    summary = {
        name: {k: old["summary"][name][k] for k in ("successes", "scenarios", "collisions")}
        for name in PLANNERS
        if name in old.get("summary", {})
    }
    return {"run_utc": old.get("run_utc"), "summary": summary, "changes": changes}


def _carry_peers(
    done: list[dict[str, Any]],
    summary: dict[str, Any],
    planners: tuple[str, ...],
    path: Path,
) -> dict[str, str]:
    """Copy into `done` and `summary` the rows and summaries of the planners in `path` (an
    earlier results file) that were not driven now; returns each one's run time. A
    scenario the earlier run lacks is an error, never a silent gap."""
    old = json.loads(path.read_text())
    before = {r["scenario"]: r for r in old.get("scenarios", [])}
    carried = {}
    for name in PLANNERS:
        if name in planners or name not in old.get("summary", {}):
            continue
        missing = [r["scenario"] for r in done if name not in before.get(r["scenario"], {})]
        if missing:
            raise SystemExit(f"--peers-from {path}: no {name} row for {', '.join(missing)}")
        for row in done:
            row[name] = before[row["scenario"]][name]
        summary[name] = old["summary"][name]
        # rows that were themselves carried keep the time of the run that drove them
        carried[name] = str(old.get("carried", {}).get(name, old.get("run_utc")))
    return carried


def _target_15(summary: dict[str, Any]) -> dict[str, Any] | None:
    """Issue 15's target on these scenarios: our success at least the best peer's and above
    IDM's; None without ours, IDM and a peer."""
    peers = [n for n in ("reactive", "frenetix") if n in summary]
    if "pdm" not in summary or "idm" not in summary or not peers:
        return None
    best = max(peers, key=lambda n: summary[n]["successes"])
    ours = summary["pdm"]["successes"]
    return {
        "best_peer": best,
        "best_peer_successes": summary[best]["successes"],
        "ours": ours,
        "idm": summary["idm"]["successes"],
        "met": ours >= summary[best]["successes"] and ours > summary["idm"]["successes"],
        # how many more successes both halves of the target need (at least the best peer's,
        # and one more than IDM's)
        "gap_scenarios": max(
            summary[best]["successes"] - ours, summary["idm"]["successes"] + 1 - ours, 0
        ),
    }


def _label(result: dict[str, Any], name: str) -> str:
    when = result.get("carried", {}).get(name)
    return f"{name} (carried from the run of {when})" if when else name


def _markdown(result: dict[str, Any]) -> str:
    s = result["summary"]
    lines = [
        "# CommonRoad peer benchmark",
        "",
        *(
            [
                f"**Partial run**: planners {', '.join(result.get('planners', []))} on the "
                f"{result['scenario_count']} scenarios listed below only.",
                "",
            ]
            if result.get("partial")
            else []
        ),
        f"Scenarios: {result['scenario_count']} from ../shared/data/commonroad "
        f"({', '.join(FOLDERS)}; interactive-ngsim skipped, see below); "
        f"skipped: {len(result['skipped'])}. Seed {SEED}. Judged by commonroad-io 2024.3 "
        "and commonroad-drivability-checker: goal `GoalRegion.is_reached`, collisions with "
        "`create_collision_checker(scenario)` (ego footprint 4.68 m × 2.01 m), feasibility "
        f"with `trajectory_feasibility` on `VehicleDynamics.KS({FEASIBILITY_VEHICLE.name})` "
        "with the I-PACE's axle positions and size. Success = goal reached AND collision-free "
        "AND feasible. Obstacles are replayed from the recordings (not reactive), so a car "
        "recorded driving into the space where the ego brakes counts as a collision; "
        "'struck from behind' counts collisions where every obstacle touching the ego at "
        "first contact is behind its centre and drives the same way.",
        "",
        "| planner | success % | collisions (struck from behind) | goal reached % | feasible % "
        "| planning ms mean | planning ms p99 | step ms mean | step ms p99 | planner failed "
        "| failures |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in PLANNERS:
        if name not in s:
            continue
        m = s[name]
        fails = ", ".join(f"{k} {v}" for k, v in m["failures_by_reason"].items()) or "—"
        causes = ", ".join(f"{k} {v}" for k, v in m.get("planner_failures", {}).items()) or "—"
        lines.append(
            f"| {_label(result, name)} | {m['success_pct']} ({m['successes']}/{m['scenarios']}) | "
            f"{m['collisions']} ({m['collisions_struck_from_behind']}) | "
            f"{m['goal_reached_pct']} | {m['feasible_pct']} | "
            f"{m['planner_ms_mean']} | {m['planner_ms_p99']} | "
            f"{m['step_ms_mean']} | {m['step_ms_p99']} | {causes} | {fails} |"
        )
    t15 = result.get("target_15")
    carried = result.get("carried") or {}
    lines += [
        "",
        f"Target (issue 3): our success rate above the IDM baseline's — "
        f"**{'met' if result['target_met'] else 'not met'}**.",
        *(
            [
                "",
                f"Target (issue 15): our success at least the best peer's ({t15['best_peer']}, "
                f"{t15['best_peer_successes']}) and above IDM's ({t15['idm']}) — "
                f"**{'met' if t15['met'] else 'not met'}** (ours {t15['ours']}"
                + (f"; {t15['gap_scenarios']} scenario(s) short)" if t15["gap_scenarios"] else ")")
                + ".",
            ]
            if t15
            else []
        ),
        *(
            [
                "",
                f"All of {', '.join(n for n in PLANNERS if n in s)} were driven in this run, "
                "on the same scenarios (no rows carried from an earlier run).",
            ]
            if not carried and not result.get("partial")
            else []
        ),
        *(
            [
                "",
                "Carried rows: "
                + "; ".join(
                    f"{n}'s rows and summary are those of the run of {w} (same scenarios, "
                    "same checker), not driven again in this run"
                    for n, w in carried.items()
                )
                + ". Our stack changed since then; the peers did not.",
            ]
            if carried
            else []
        ),
        "",
        f"Run at {result['run_utc']}; the autonomy stack was still being edited by others "
        "while this benchmark was written, so the numbers are a snapshot of that moment. "
        f"Runs stop at the goal or at the goal's last time step, at most {MAX_DURATION_S:.0f} s "
        "(ZAM_Loading_Bay's goal stays open for 1000 s). The route is the lanelet path to the "
        "goal region with the goal's velocity interval as the target near the goal (from 20 m "
        "before the region's centre for the IDM baseline, which only reacts to a lower limit; "
        "from where the car's centre enters the region for ours, which brakes ahead for it); "
        "otherwise both planners get the same route, obstacles, cameras (same seed) and "
        "controller.",
        "",
        *([result["run_note"], ""] if result.get("run_note") else []),
        "Step time for ours = one whole stack tick (cameras, tracking, prediction, planning, "
        f"control), wall clock on this machine ({result['machine']}, 2 cores), shared with "
        f"other work and with {result.get('jobs', 1)} scenarios driven at once, so every "
        "time here is inflated by waiting for a core, the peers' (100s of ms) most in absolute "
        "terms; "
        "planning ms = the planner stage alone (ours) or the peer's planning call.",
        "",
        PEER_NOTE,
        "",
        f"Adapter changes: {ADAPTER_NOTES}",
        "",
        BASELINE_NOTE,
        "",
    ]
    prev = result.get("previous")
    if prev:
        lines += [
            f"## Changes against the previous run ({prev['run_utc']})",
            "",
            "| planner | success then | now | collisions then | now |",
            "|---|---|---|---|---|",
        ]
        for name in (n for n in PLANNERS if n in s):
            then, now = prev["summary"].get(name, {}), s[name]
            was = f"{then['successes']}/{then['scenarios']}" if then else "— (not run)"
            lines.append(
                f"| {name} | {was} | {now['successes']}/{now['scenarios']} | "
                f"{then.get('collisions', '—')} | {now['collisions']} |"
            )
        lines += ["", "| scenario | planner | then | now |", "|---|---|---|---|"]
        lines += [
            f"| {c['scenario']} | {c['planner']} | {c['then']} | {c['now']} |"
            for c in prev["changes"]
        ]
        lines.append("")
    ex = result.get("examples")
    if ex:
        lines += [
            f"## The peers' own example ({ex['scenario']}, {ex['steps']} steps)",
            "",
            "Both packages ship this scenario as their example. Run here with each one's "
            "example settings and car (reactive planner: its example YAML — 2 s horizon "
            "re-planned every 3rd step, t_min 1 s; Frenetix: its recommended configuration "
            "as in the table above; both the BMW 320i, judged as a BMW 320i) "
            "(`--examples`, run at " + ex.get("run_utc", "?") + "):",
            "",
            "| planner | flags | goal step | collision step | infeasible from step "
            "| planning ms mean | failure |",
            "|---|---|---|---|---|---|---|",
        ]
        for name in ("reactive", "frenetix"):
            r = ex[name]
            lines.append(
                f"| {name} | {flags(r)} | {r['goal_step']} | {r['collision_step']} | "
                f"{r['infeasible_step']} | {r['planner_ms_mean']} | {r['failure'] or '—'} |"
            )
        lines.append("")
    names = [n for n in PLANNERS if n in s]
    lines += [
        "## Per scenario (S success, G goal, C collision, F feasible; ! the planner failed)",
        "",
        "| scenario | steps | "
        + " | ".join(n + (" (carried)" if n in carried else "") for n in names)
        + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for row in result["scenarios"]:
        cells = [flags(row[n]) + ("!" if row[n].get("failure") else "") for n in names]
        lines.append(f"| {row['scenario']} | {row['steps']} | " + " | ".join(cells) + " |")
    failed = [(row["scenario"], n, row[n]["failure"]) for row in result["scenarios"]
              for n in names if row[n].get("failure")]  # fmt: skip
    if failed:
        lines += ["", "## Planner failures (crash, time-out, no trajectory) with their cause",
                  "", "| scenario | planner | cause |", "|---|---|---|"]  # fmt: skip
        lines += [f"| {sc} | {n} | {cause} |" for sc, n, cause in failed]
    ours_failed = [row for row in result["scenarios"] if "pdm" in row and not row["pdm"]["success"]]
    if ours_failed:
        lines += ["", "## Reproduce a scenario we fail (drives all four, draws them)", ""]
        for row in ours_failed:
            why = ", ".join(row["pdm"]["failure_reasons"])
            lines.append(
                f"- {row['scenario']} ({why}): `python benchmarks/bench_commonroad.py "
                f"--scenario {row['scenario']} --out /tmp/cr --render /tmp/cr`"
            )
    if result["skipped"]:
        lines += ["", "Skipped:", ""]
        lines += [f"- {r['scenario']}: {r['skipped']}" for r in result["skipped"]]
    lines += ["", *_interactive_lines(result.get("interactive"))]
    lines += [
        "",
        "Data: CommonRoad scenarios (TUM, BSD-3-Clause) and NGSIM-derived scenarios "
        "(US DOT NGSIM).",
        "",
    ]
    return "\n".join(lines)


def _interactive_summary(out: Path) -> dict[str, Any] | None:
    """The interactive benchmark's summary beside these results (bench_commonroad_interactive
    writes it), for the same report; None when there is none."""
    path = out / "commonroad_interactive.json"
    if not path.is_file():
        return None
    stored = json.loads(path.read_text())
    keys = ("run_utc", "scenario_count", "partial", "summary", "target_15")
    return {k: stored.get(k) for k in keys}


def _interactive_lines(inter: dict[str, Any] | None) -> list[str]:
    """The interactive scenarios' four-planner table (from commonroad_interactive.json)."""
    if not inter:
        return [
            "interactive-ngsim: not in this file — those files carry no recorded traffic (it "
            "comes from SUMO); see benchmarks/bench_commonroad_interactive.py.",
        ]
    s = inter["summary"]
    lines = [
        f"## Interactive scenarios, reactive SUMO traffic (run of {inter['run_utc']})",
        "",
        f"The {inter['scenario_count']} interactive-ngsim scenarios, driven closed loop in "
        "SUMO traffic that reacts to the car (benchmarks/results/commonroad_interactive.md "
        "has the per-scenario matrix, the peers' adaptations and the causes)"
        + (" — **partial run**" if inter.get("partial") else "")
        + ". At fault: `metrics.driving` (nuPlan's rules), after the start state.",
        "",
        "| planner | success | collisions | at fault after start | goal reached | feasible "
        "| planner failures | planning ms mean | planning ms p99 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in PLANNERS:
        if name not in s:
            continue
        m = s[name]
        causes = ", ".join(f"{k} {v}" for k, v in m.get("planner_failures", {}).items()) or "—"
        lines.append(
            f"| {name} | {m['successes']}/{m['scenarios']} ({m['success_pct']} %) | "
            f"{m['collisions']} | {m['collisions_at_fault_after_start']} | "
            f"{m['goal_reached']} | {m['feasible']}/{m['driven']} | {causes} | "
            f"{m.get('planner_ms_mean')} | {m.get('planner_ms_p99')} |"
        )
    t = inter.get("target_15")
    if t:
        lines += [
            "",
            "Target (issue 15, interactive): no at-fault collision of ours and success at "
            f"least the best peer's ({t['best_peer']}, {t['best_peer_successes']}) — "
            f"**{'met' if t['met'] else 'not met'}** (ours {t['ours']}, at fault "
            f"{t['ours_at_fault_after_start']}).",
        ]
    return lines


def _render(row: dict[str, Any], names: list[str], out_dir: Path) -> Path:
    """One picture of a scenario: lanelets, the recorded obstacles' paths, and each planner's
    path (its first collision or failure marked)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problem: CrProblem = row["_problem"]
    fig, ax = plt.subplots(figsize=(10, 7))
    for lanelet in problem.scenario.lanelet_network.lanelets:
        outline = np.vstack([lanelet.left_vertices, lanelet.right_vertices[::-1]])
        ax.fill(outline[:, 0], outline[:, 1], color="0.9", ec="0.7", lw=0.5)
    for obstacle in problem.scenario.dynamic_obstacles:
        recorded = getattr(obstacle.prediction, "trajectory", None)
        states = recorded.state_list if recorded is not None else []
        xy = np.array([st.position for st in states if problem.first_step <= st.time_step
                       <= problem.last_step])  # fmt: skip
        if len(xy):
            ax.plot(xy[:, 0], xy[:, 1], color="0.55", lw=0.8)
    for name, colour in zip(names, ("tab:blue", "tab:orange", "tab:green", "tab:red"),
                            strict=False):  # fmt: skip
        r = row[name]
        xy = r["_states"][:, 1:3]
        label = f"{name}: {flags(r)}" + (f" ({r['failure']})" if r.get("failure") else "")
        ax.plot(xy[:, 0], xy[:, 1], color=colour, lw=2, label=label[:90])
        if r["collision_step"] is not None:
            k = r["collision_step"] - problem.first_step
            ax.plot(*xy[min(k, len(xy) - 1)], "x", color=colour, ms=12, mew=3)
    ego = np.vstack([row[n]["_states"][:, 1:3] for n in names])
    lo, hi = ego.min(axis=0) - 30.0, ego.max(axis=0) + 30.0
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_aspect("equal")
    ax.legend(loc="best", fontsize=8)
    ax.set_title(f"{row['scenario']} (S success, G goal, C collision, F feasible; x: collision)")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{row['scenario']}.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _drive_one(task: tuple[Path, tuple[str, ...], Path | str | None, Path | None]) -> dict:
    """One scenario for a worker: its row (rendered if asked), ready to pickle."""
    path, planners, frenetix, render = task
    warnings.simplefilter("ignore")
    row = _one(path, planners, frenetix)
    if "skipped" not in row and render is not None:
        row["_picture"] = str(_render(row, list(planners), render))
    row.pop("_problem", None)
    for name in planners:
        if name in row:
            row[name].pop("_states", None)
    return row


def _drive_all(
    files: list[Path],
    planners: tuple[str, ...],
    frenetix: Path | str | None,
    args: argparse.Namespace,
    progress_file: Path,
) -> tuple[list[dict[str, Any]], float]:
    """Every scenario, `args.jobs` at a time (longest files first); each finished row is also
    appended to `progress_file`, so a run cut short can still be summarised."""
    order = sorted(files, key=lambda f: f.stat().st_size, reverse=True)
    tasks = [(f, planners, frenetix, args.render) for f in order]
    args.out.mkdir(parents=True, exist_ok=True)
    progress_file.write_text("")
    done: dict[str, dict[str, Any]] = {}
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        for i, row in enumerate(pool.imap_unordered(_drive_one, tasks), 1):
            done[row["scenario"]] = row
            with progress_file.open("a") as f:
                f.write(json.dumps(row) + "\n")
            if "skipped" in row:
                status = f"skipped ({row['skipped']})"
            else:
                status = "  ".join(
                    f"{n}: {'ok' if row[n]['success'] else ','.join(row[n]['failure_reasons'])}"
                    for n in planners
                )
                status += f"  -> {row['_picture']}" if "_picture" in row else ""
            elapsed = time.perf_counter() - start
            print(f"[{i:>2}/{len(files)} {elapsed:6.0f}s] {row['scenario']:<32} {status}",
                  flush=True)  # fmt: skip
    rows = [done[f.stem] for f in files]
    for row in rows:
        row.pop("_picture", None)
    return rows, round(time.perf_counter() - start, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=None, help="only the first N scenarios")
    parser.add_argument("--scenario", action="append", default=None,
                        help="only scenarios whose name contains this (repeatable)")  # fmt: skip
    parser.add_argument("--planners", default=",".join(PLANNERS),
                        help=f"comma-separated subset of {','.join(PLANNERS)}")  # fmt: skip
    parser.add_argument("--render", type=Path, default=None,
                        help="draw each scenario's paths as DIR/NAME.png")  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--previous", type=Path, default=None, help="results to compare with")
    parser.add_argument("--render-only", action="store_true", help="rewrite from the JSON")
    parser.add_argument("--jobs", type=int, default=1, help="scenarios driven at once")
    parser.add_argument(
        "--from-progress", action="store_true", help="summarise OUT/commonroad.progress.jsonl"
    )
    parser.add_argument(
        "--examples", action="store_true", help="only the peers' own example, added to the JSON"
    )
    parser.add_argument(
        "--peers-from",
        type=Path,
        default=None,
        help="a previous commonroad.json whose rows of the planners not run now are carried "
        "into this one, labelled with that run's time",
    )
    parser.add_argument("--note", default=None, help="how this run was made, for the report")
    args = parser.parse_args()
    previous = args.previous if args.previous is not None else args.out / "commonroad.json"
    if args.render_only:
        stored: dict[str, Any] = json.loads((args.out / "commonroad.json").read_text())
        stored["previous"] = _previous(stored, previous)
        stored["interactive"] = _interactive_summary(args.out)
        if args.note:
            stored["run_note"] = args.note
        (args.out / "commonroad.json").write_text(json.dumps(stored, indent=1))
        (args.out / "commonroad.md").write_text(_markdown(stored))
        return 0
    if not args.data.is_dir():
        print(f"CommonRoad data not found at {args.data}", file=sys.stderr)
        return 2
    if args.examples:
        stored = json.loads((args.out / "commonroad.json").read_text())
        try:
            fx: Path | str = frenetix_python(log=lambda msg: print(msg, flush=True))
        except PeerError as err:
            fx = str(err)
        stored["examples"] = _examples(args.data, fx)
        stored["examples"]["run_utc"] = datetime.now(UTC).isoformat(timespec="seconds")
        (args.out / "commonroad.json").write_text(json.dumps(stored, indent=1))
        (args.out / "commonroad.md").write_text(_markdown(stored))
        print(json.dumps(stored["examples"], indent=1))
        return 0
    planners = tuple(n for n in args.planners.split(",") if n)
    unknown = [n for n in planners if n not in PLANNERS]
    if unknown:
        print(f"unknown planners {unknown}: choose from {','.join(PLANNERS)}", file=sys.stderr)
        return 2
    warnings.simplefilter("ignore")
    files = scenario_files(args.data, FOLDERS)
    if args.scenario:
        files = [f for f in files if any(part in f.stem for part in args.scenario)]
    files = files[: args.limit]
    partial = bool(args.scenario or args.limit is not None or planners != PLANNERS)
    frenetix: Path | str | None = None
    if "frenetix" in planners:
        try:
            frenetix = frenetix_python(log=lambda msg: print(msg, flush=True))
        except PeerError as err:
            frenetix = str(err)
            print(f"Frenetix unavailable: {err}", flush=True)
    progress_file = args.out / "commonroad.progress.jsonl"
    if args.from_progress:  # summarise what a run (perhaps cut short) has finished
        rows = [json.loads(line) for line in progress_file.read_text().splitlines() if line]
        names = {r["scenario"] for r in rows}
        partial = partial or len(names) < len(files)
        rows = [r for f in files for r in rows if r["scenario"] == f.stem]
        wall_s = None
    else:
        rows, wall_s = _drive_all(files, planners, frenetix, args, progress_file)
    done = [r for r in rows if "skipped" not in r]
    summary = {name: _summary(done, name) for name in planners}
    carried: dict[str, str] = {}
    if args.peers_from is not None:
        carried = _carry_peers(done, summary, planners, args.peers_from)
        # every planner has its rows, driven now or carried: complete unless cut otherwise
        partial = bool(
            args.scenario
            or args.limit is not None
            or set(planners) | set(carried) != set(PLANNERS)
            or len(done) + len([r for r in rows if "skipped" in r]) < len(files)
        )
    result: dict[str, Any] = {
        "benchmark": "commonroad",
        "run_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "partial": partial,
        "planners": list(planners),
        "scenario_count": len(done),
        "folders": list(FOLDERS),
        "seed": SEED,
        "feasibility_model": f"KS {FEASIBILITY_VEHICLE.name} with I-PACE geometry",
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "wall_s": wall_s,
        "jobs": args.jobs,
        "summary": summary,
        # planners whose rows were carried from an earlier run (not driven now): its time
        "carried": carried,
        **({"run_note": args.note} if args.note else {}),
        "target_met": "pdm" in summary
        and "idm" in summary
        and summary["pdm"]["success_pct"] > summary["idm"]["success_pct"],
        "target_15": _target_15(summary),
        "skipped": [
            {"scenario": r["scenario"], "skipped": r["skipped"]} for r in rows if "skipped" in r
        ],
        "scenarios": done,
    }
    for row in done:
        for name in planners:
            del row[name]["_stack_s"], row[name]["_planner_s"]
    planners = tuple(n for n in PLANNERS if n in summary)
    result["planners"] = list(planners)
    result["previous"] = _previous(result, previous)
    result["interactive"] = _interactive_summary(args.out)
    if args.peers_from is not None and carried:
        # the peers' own example, run with the carried rows, goes with them
        examples = json.loads(args.peers_from.read_text()).get("examples")
        if examples:
            result["examples"] = examples
    args.out.mkdir(parents=True, exist_ok=True)
    if partial and args.out.resolve() == RESULTS.resolve():
        print("a partial run (--scenario/--limit/--planners) leaves benchmarks/results alone; "
              "give --out to keep it", file=sys.stderr)  # fmt: skip
    else:
        (args.out / "commonroad.json").write_text(json.dumps(result, indent=1))
        (args.out / "commonroad.md").write_text(_markdown(result))
    for name in planners:
        m = summary[name]
        print(
            f"{name}: success {m['success_pct']}% collisions {m['collisions']} goal "
            f"{m['goal_reached_pct']}% feasible {m['feasible_pct']}% planning mean "
            f"{m['planner_ms_mean']} ms p99 {m['planner_ms_p99']} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
