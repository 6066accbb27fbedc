"""CommonRoad's interactive scenarios: our car closed loop in the scenario's own SUMO traffic,
which must really react to it, judged by CommonRoad's checker against what SUMO drove."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
INTERACTIVE = DATA / "commonroad" / "interactive-ngsim"
# US101, 8 s: our car starts behind a column of cars; two SUMO cars come up behind it
US101 = INTERACTIVE / "USA_US101-10_1_I-1-1"

pytestmark = [
    pytest.mark.sfdata,
    pytest.mark.skipif(not US101.is_dir(), reason="../shared/data interactive-ngsim is absent"),
]


@pytest.fixture(scope="module")
def ci():  # the adapter imports commonroad, which only the dev extra installs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from robotaxi.sim import commonroad_interactive

    return commonroad_interactive


@pytest.fixture(scope="module")
def scenario(ci):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ci.load_interactive(US101)


@pytest.fixture(scope="module")
def closed_loop(ci, scenario):
    from robotaxi.autonomy.stack import PdmPlanner

    return ci.run_interactive(scenario, PdmPlanner(), stop_at_goal=False)


@pytest.fixture(scope="module")
def traffic_alone(scenario, closed_loop):
    """The same SUMO traffic without our car: {car id: {step: (x, y, heading, speed)}}."""
    from robotaxi.world.scenario_net import ScenarioSumoWorld

    world = ScenarioSumoWorld(scenario.files, "ego", None)
    alone: dict[str, dict[int, tuple[float, float, float, float]]] = {}
    with world:
        for _ in range(scenario.problem.last_step + 1):
            world.step()
            k = world.scenario_step
            for a in world.snapshot().around["ego"]:
                alone.setdefault(a.agent_id, {})[k] = (a.x, a.y, a.heading, a.speed)
    return alone


def test_sumocr_settings_and_frames(scenario):
    files = scenario.files
    assert files.step_s == pytest.approx(scenario.problem.dt_s) == pytest.approx(0.1)
    assert files.presimulation_steps == 2
    assert files.lateral_resolution_m == pytest.approx(0.5)
    assert files.seed == 1234
    assert files.net_offset == (0.0, 0.0)


def test_sumo_start_state_matches_the_file(scenario, traffic_alone):
    """Time and frame line up: at scenario step 0 SUMO's cars stand where the file's seed
    states put them at step 0 (the routes place SUMO's front bumper at the recorded centre),
    closer than to the file's step 1 (an off-by-one presimulation would swap them)."""
    file_cars = {str(o.obstacle_id): o for o in scenario.problem.scenario.dynamic_obstacles}
    errors: dict[int, list[float]] = {0: [], 1: []}
    for vid, states in traffic_alone.items():
        if 0 not in states or vid not in file_cars:
            continue
        x, y, heading, _v = states[0]
        half = 2.5  # half the scenario vType's 5 m
        front = np.array([x + half * math.cos(heading), y + half * math.sin(heading)])
        for step in errors:
            recorded = file_cars[vid].state_at_time(step)
            if recorded is not None:
                errors[step].append(float(np.hypot(*(front - recorded.position))))
    assert len(errors[0]) >= 15
    assert float(np.median(errors[0])) < 1.0
    assert float(np.median(errors[0])) < float(np.median(errors[1]))


def test_sumo_traffic_reacts_to_our_car(closed_loop, traffic_alone):
    """SUMO names cars of its own following ours in its lane, and those cars drive slower
    than they do in the same traffic without our car; cars far from ours drive exactly as
    without it (SUMO's randomness is per car), so the difference is our car's doing."""
    run = closed_loop
    followers = {vid for _k, vid, gap in run.followers if gap >= 0.0}
    assert followers, "no SUMO car ever followed ours"
    held_up = []
    for vid in followers:
        mine, alone = run.traffic[vid].states, traffic_alone[vid]
        common = sorted(set(mine) & set(alone))
        slower = min(mine[k][3] - alone[k][3] for k in common)
        behind = max(math.hypot(mine[k][0] - alone[k][0], mine[k][1] - alone[k][1]) for k in common)
        if slower < -1.0 and behind > 5.0:
            held_up.append(vid)
    assert held_up, "the cars behind ours drove as if it were not there"
    untouched = [
        vid
        for vid, track in run.traffic.items()
        if vid in traffic_alone
        and all(
            np.allclose(track.states[k][:2], traffic_alone[vid][k][:2], atol=1e-6)
            for k in track.states
            if k in traffic_alone[vid]
        )
    ]
    assert len(untouched) >= 5
    assert run.teleports == 0


def test_checker_judges_against_sumo_traffic(ci, scenario, closed_loop):
    run = closed_loop
    judged = run.checker_problem.scenario
    # the file's seed states are gone; the obstacles are the cars SUMO drove, step by step
    assert len(judged.dynamic_obstacles) == len(run.traffic)
    steps = len(run.run.states)
    assert steps == scenario.problem.last_step - scenario.problem.first_step + 1
    some = max(run.traffic.values(), key=lambda tr: len(tr.states))
    k = max(some.states)
    positions = [
        o.state_at_time(k).position for o in judged.dynamic_obstacles if o.state_at_time(k)
    ]
    assert any(np.allclose(p, some.states[k][:2]) for p in positions)
    verdict = run.verdict()
    assert verdict.feasible
    assert not verdict.collision
    assert run.sumo_collisions == ()
    # and the checker can say no: our car held still where a SUMO car drives into it
    states = run.run.states.copy()
    states[:, 1:3] = states[0, 1:3]
    states[:, 4] = 0.0
    from robotaxi.sim.commonroad import evaluate, to_commonroad

    parked = evaluate(
        run.checker_problem, to_commonroad(states, run.first_step), check_feasibility=False
    )
    assert parked.collision and not parked.goal_reached
