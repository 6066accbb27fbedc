"""The peer planners (CommonRoad reactive planner, Frenetix) closed loop in an interactive
scenario's reactive SUMO traffic: the peer really plans every step against the SUMO cars it
is given, SUMO really runs with the peer's car in it, CommonRoad's checker judges the run,
and a peer's crash is its recorded failure."""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
INTERACTIVE = DATA / "commonroad" / "interactive-ngsim"
# US101, 2.7 s: straight freeway lanes; SUMO cars come up behind our car from the start
US101 = INTERACTIVE / "USA_US101-10_2_I-1-1"
STEPS = 8  # a short look: enough to plan, move and be followed

pytestmark = [
    pytest.mark.sfdata,
    pytest.mark.skipif(not US101.is_dir(), reason="../shared/data interactive-ngsim is absent"),
]


@pytest.fixture(scope="module")
def mods():  # the adapters import commonroad, which only the dev extra installs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from robotaxi.sim import (
            commonroad_interactive,
            commonroad_interactive_peers,
            commonroad_peers,
        )

    return commonroad_interactive, commonroad_interactive_peers, commonroad_peers


@pytest.fixture(scope="module")
def scenario(mods):
    ci, _, _ = mods
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ci.load_interactive(US101)


def _car_ahead(problem, gap_m: float):
    """A stopped car `gap_m` ahead of the ego's centre, in its lane (ground truth)."""
    from robotaxi.core import AgentState
    from robotaxi.core.types import AgentKind

    start = problem.problem.initial_state
    x, y = np.asarray(start.position, dtype=float)
    heading = float(start.orientation)
    return AgentState(
        "stopped", AgentKind.CAR, x + gap_m * math.cos(heading), y + gap_m * math.sin(heading),
        heading, 0.0, 4.5, 1.8,
    )  # fmt: skip


def _drove_in_sumo(out, steps: int) -> None:
    """The peer planned every step, SUMO ran with its car in it, and the run is judged."""
    run = out.run
    assert out.failure is None, out.failure
    assert out.stop_reason == "step limit"
    assert len(run.states) == steps + 1
    assert np.allclose(np.diff(run.states[:, 0]), 0.1)
    assert len(run.planner_time_s) == steps and all(t > 0 for t in run.planner_time_s)
    # SUMO drove its cars and reported our car on one of its lanes every step
    assert out.traffic and len(out.ego_lanes) == steps + 1
    assert all(lane for lane in out.ego_lanes.values())
    # SUMO's drivers reacted to the car the peer placed: one followed it in its lane
    assert out.followers
    verdict = out.verdict()
    assert not verdict.collision and verdict.feasible
    # it drove on along its lane at about its starting speed
    assert run.states[-1, 4] > 0.5 * run.states[0, 4] > 0
    travelled = np.hypot(*(run.states[-1, 1:3] - run.states[0, 1:3]))
    assert travelled > 0.5 * run.states[0, 4] * steps * 0.1


def test_constant_velocity_prediction(mods):
    from robotaxi.core import AgentState
    from robotaxi.core.types import AgentKind

    _, peers, _ = mods
    car = AgentState("c", AgentKind.CAR, 10.0, -2.0, math.pi / 2, 5.0)
    predicted = peers.constant_velocity(car, 7, 3, 0.1)
    assert [k for k, _, _ in predicted] == [7, 8, 9]
    assert np.allclose([(x, y) for _, x, y in predicted], [(10, -2), (10, -1.5), (10, -1)])


def test_reactive_planner_drives_in_sumo_traffic(mods, scenario):
    _, peers, _ = mods
    out = peers.run_interactive_peer(scenario, "reactive", max_steps=STEPS)
    assert out.run.planner == "reactive"
    _drove_in_sumo(out, STEPS)


def test_reactive_planner_plans_around_the_cars_it_is_given(mods, scenario):
    # the first plan on the free road, and with a stopped car on the free plan's path: the
    # cars handed to the peer reach its collision checker, and it plans around that one;
    # one too close to pass is the peer's failure, its samples counted as colliding
    _, peers, _ = mods
    problem = scenario.problem
    k = problem.first_step
    car = _car_ahead(problem, 20.0)

    def closest_m(peer):
        xy = np.array([s.position for s in peer.last_plan.state_list])
        return float(np.hypot(xy[:, 0] - car.x, xy[:, 1] - car.y).min())

    free = peers.ReactivePeer(problem)
    free.plan(k, [])
    assert closest_m(free) < 1.0  # it would drive through where the car stands
    blocked = peers.ReactivePeer(problem)
    blocked.plan(k, [car])
    assert closest_m(blocked) > closest_m(free) + 1.5
    with pytest.raises(peers.PeerFailure, match=r"[1-9]\d* colliding"):
        peers.ReactivePeer(problem).plan(k, [_car_ahead(problem, 12.0)])


def test_peer_crash_is_its_failure(mods, scenario, monkeypatch):
    _, peers, _ = mods

    def crash(self, k, cars):
        raise RuntimeError("planner blew up")

    monkeypatch.setattr(peers.ReactivePeer, "plan", crash)
    out = peers.run_interactive_peer(scenario, "reactive", max_steps=STEPS)
    assert out.failure == "crash: RuntimeError: planner blew up"
    assert out.stop_reason == "planner failed"
    assert len(out.run.states) == 1  # it never moved; judged as far as it drove
    verdict = out.verdict()
    assert not verdict.goal_reached and not verdict.success


def test_unavailable_frenetix_is_its_failure(mods, scenario):
    _, peers, _ = mods
    out = peers.run_interactive_peer(scenario, "frenetix", frenetix=None, max_steps=STEPS)
    assert out.failure is not None and out.failure.startswith("unavailable")
    assert len(out.run.states) == 1


def _frenetix_python(cr_peers) -> Path:
    """Frenetix's Python: skip on a developer machine without Python 3.10, never in CI
    (its machines have 3.10 under pyenv; a missing one there is a failure)."""
    if cr_peers.find_python310() is None:
        message = "no Python 3.10 on this machine (Frenetix needs Python < 3.11)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: CI must provide it")
        pytest.skip(message)
    python: Path = cr_peers.frenetix_python()  # made once (~1 min), then reused
    return python


def test_frenetix_drives_in_sumo_traffic(mods, scenario):
    _, peers, cr_peers = mods
    python = _frenetix_python(cr_peers)
    out = peers.run_interactive_peer(scenario, "frenetix", frenetix=python, max_steps=STEPS)
    assert out.run.planner == "frenetix"
    _drove_in_sumo(out, STEPS)


def test_frenetix_plans_around_the_cars_it_is_given(mods, scenario, tmp_path):
    # live mode: the cars sent each step are Frenetix's obstacles; with a stopped car on
    # its free plan's path it plans around that car
    _, peers, cr_peers = mods
    python = _frenetix_python(cr_peers)
    problem = scenario.problem
    cr_file = US101 / f"{US101.name}.cr.xml"
    k = problem.first_step
    car = _car_ahead(problem, 20.0)
    closest = {}
    for name, cars in (("free", []), ("blocked", [car])):
        (tmp_path / name).mkdir()
        peer = peers.FrenetixPeer(problem, cr_file, python, tmp_path / name)
        peer.keep_plan = True
        try:
            peer.plan(k, cars)
            xy = np.asarray(peer.last_plan_xy)
            closest[name] = float(np.hypot(xy[:, 0] - car.x, xy[:, 1] - car.y).min())
            # a step out of turn is refused, not planned from the wrong time
            with pytest.raises(peers.PeerFailure, match="asked for step"):
                peer.plan(k, cars)
        finally:
            peer.close()
    assert closest["free"] < 1.0  # it would drive through where the car stands
    assert closest["blocked"] > closest["free"] + 1.5
