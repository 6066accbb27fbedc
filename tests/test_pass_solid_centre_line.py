"""Remote assistance's leave to pass through the opposite lane (issue 13, item 7).

The behaviour layer on hand-built ticks: where the centre line is solid the car never passes a
blocker through the oncoming lane on its own; with an operator's leave for that stretch it
passes, but only into a gap in the oncoming traffic, and the leave is spent by the pass (void
on another path); where there is no oncoming lane the leave is refused with the reason. The
assistance desk sends the answer to the car and reports the car's refusal and the time to
resolution. And the suite's scenario: works close the only lane of a two-way street with a
solid centre line; the car stands, asks, and passes once the scripted operator allows it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import SHARED_DATA
from robotaxi.autonomy.planning.behaviour import (
    Behaviour,
    BehaviourConfig,
    Draft,
    OncomingPassLeave,
    Tick,
    frenet_scene,
)
from robotaxi.autonomy.planning.behaviour.pass_blocker import PassBlockerPolicy
from robotaxi.autonomy.planning.reference import ReferencePath
from robotaxi.autonomy.prediction import predict
from robotaxi.autonomy.vehicle import IPACE, VehicleState
from robotaxi.config.scenario import load_scenario
from robotaxi.core.commands import PassOpposite
from robotaxi.core.types import AgentKind, Track
from robotaxi.fleet.assistance import AssistanceDesk, AssistAnswer, StandingCar
from scenes import track

LANE = 3.2
LIMIT = 11.18  # the grid city's two-lane streets, m/s
CFG = BehaviourConfig()
EGO = VehicleState(88.1, 0.0, 0.0, 0.0)  # rear axle, standing 18 m behind the works
# works by the kerb: 2 m of our 3.2 m lane, 7 m long (as in the scenario)
WORKS = track(1, 113.5, -0.6, 0.0, 0.0, kind=AgentKind.UNKNOWN, length=7.0, width=2.0)


def two_way_street(*, solid: bool, oncoming_lane: bool = True) -> ReferencePath:
    """Our lane of a two-way street along +x (one lane each way), 400 m, the oncoming lane
    beside it to the left; its centre line solid or broken."""
    path = ReferencePath.straight(
        (0.0, 0.0), 0.0, 400.0, lane_width_m=LANE, speed_limit_mps=LIMIT,
        right_room_m=LANE / 2 + 1.0, left_room_m=LANE / 2,
    )  # fmt: skip
    return dataclasses.replace(
        path,
        oncoming_room_m=np.asarray(LANE if oncoming_lane else 0.0),
        solid_centre_line=np.asarray(1.0 if solid else 0.0),
    )


def tick_at(
    path: ReferencePath, tracks: tuple[Track, ...], t: float, ego: VehicleState = EGO
) -> Tick:
    pred = predict(tracks, 4.0, 0.1)
    scene = frenet_scene(path, ego, pred)
    return Tick(ego, path, scene, pred, {}, None, t, True, None, LANE)


def oncoming_car(x: float) -> Track:
    """A car in the oncoming lane at `x`, coming toward us at the limit."""
    return track(2, x, LANE, -LIMIT, 0.0)


def test_a_broken_centre_line_lets_the_car_pass_works_on_its_own() -> None:
    """The reference: the same works on a street whose centre line is broken are passed
    through the oncoming lane at once (an obstacle needs no wait), by the car's own call."""
    policy = PassBlockerPolicy(CFG, IPACE)
    draft = policy.apply(tick_at(two_way_street(solid=False), (WORKS,), 0.0), Draft())
    assert draft.passing and draft.borrow_oncoming and draft.offset_m == pytest.approx(LANE)
    assert not policy.held_by_line


def test_a_solid_centre_line_is_never_crossed_without_leave() -> None:
    path = two_way_street(solid=True)
    policy = PassBlockerPolicy(CFG, IPACE)
    for t in np.arange(0.0, 120.0, 0.5):  # two minutes behind the works, the lane clear
        draft = policy.apply(tick_at(path, (WORKS,), float(t)), Draft())
        assert not draft.passing and not draft.borrow_oncoming and draft.offset_m == 0.0
        assert policy.held_by_line
        # it stands (well back from the works, room to steer out once allowed)
        ((behaviour, stop_s),) = draft.stops
        assert behaviour == Behaviour.CAR_FOLLOW
        assert stop_s == pytest.approx(EGO.x, abs=0.1)
    # a vehicle standing there for good is no different
    parked = (track(3, 110.0, 0.0, 0.0, 0.0),)
    policy = PassBlockerPolicy(CFG, IPACE)
    for t in np.arange(0.0, 60.0, 0.5):
        assert not policy.apply(tick_at(path, parked, float(t)), Draft()).passing


def test_with_leave_it_passes_only_when_the_opposite_lane_is_clear() -> None:
    path = two_way_street(solid=True)
    policy = PassBlockerPolicy(CFG, IPACE)
    assert not policy.apply(tick_at(path, (WORKS,), 0.0), Draft()).passing
    assert policy.permit(OncomingPassLeave(path, 0.0, 282.0)) == ""
    # a car comes the other way: the car keeps waiting behind the works, in its own lane
    for x in (200.0, 150.0, 120.0, 100.0):
        waiting = policy.apply(tick_at(path, (WORKS, oncoming_car(x)), 1.0), Draft())
        assert not waiting.borrow_oncoming  # (a peek along its lane edge counts as passing)
        assert waiting.offset_m < LANE / 2 - IPACE.width_m / 2  # never over the line
        assert waiting.stops and not policy.held_by_line  # it waits for the gap, not leave
    # it has gone by (behind us): the lane is clear, the car goes
    going = policy.apply(tick_at(path, (WORKS, oncoming_car(40.0)), 2.0), Draft())
    assert going.passing and going.borrow_oncoming and going.offset_m == pytest.approx(LANE)
    assert policy.latch.by_leave and policy.leave is not None
    # once past the works and back in its lane, the leave is spent: the next blocker on
    # this street waits for leave again
    works_front = WORKS.x + WORKS.length / 2
    past = VehicleState(
        works_front + CFG.pass_return_gap_m + IPACE.rear_overhang_m + 1.0, 2.0, 0.0, 5.0
    )
    policy.apply(tick_at(path, (WORKS,), 4.0, past), Draft())
    assert policy.leave is None
    later = (track(4, past.x + 40.0, 0.0, 0.0, 0.0, kind=AgentKind.UNKNOWN, length=5.0, width=2.0),)
    policy.apply(tick_at(path, later, 5.0, dataclasses.replace(past, y=0.0)), Draft())
    assert policy.held_by_line


def test_leave_is_for_one_path_and_one_stretch_and_needs_an_oncoming_lane() -> None:
    path = two_way_street(solid=True)
    policy = PassBlockerPolicy(CFG, IPACE)
    # for a stretch that ends before the works: no pass over the rest of the line
    assert policy.permit(OncomingPassLeave(path, 0.0, 100.0)) == ""
    assert not policy.apply(tick_at(path, (WORKS,), 0.0), Draft()).passing
    assert policy.held_by_line
    # for another path (the car planned its way again): void
    policy.permit(OncomingPassLeave(two_way_street(solid=True), 0.0, 282.0))
    assert not policy.apply(tick_at(path, (WORKS,), 0.5), Draft()).passing
    assert policy.leave is None
    # a one-way street: no lane for the other direction to pass through
    one_way = two_way_street(solid=True, oncoming_lane=False)
    reason = policy.permit(OncomingPassLeave(one_way, 0.0, 282.0))
    assert reason == "there is no lane for the other direction beside its own to pass through"
    assert policy.leave is None


def test_the_desk_hands_leave_to_the_car_and_reports_its_refusal_and_resolution(
    grid_map: Any,
) -> None:
    desk = AssistanceDesk(grid_map, 20.0)
    events: list[Any] = []

    def car(speed: float) -> StandingCar:
        return StandingCar(
            "taxi0", "r1", "dropoff", True, "B1B2", (0.0, 0.0), 0.0, speed,
            note="behind a blocker it may pass only across a solid centre line",
        )  # fmt: skip

    for t in range(21):
        desk.observe([car(0.0)], float(t), events, [])
    request = desk.open_for("taxi0")
    assert request is not None and request.blocked_edge == "B1B2"
    assert (
        request.sees == "stopped 1 min behind a blocker it may pass only across a solid centre line"
    )
    # first answer: the car cannot use it (here, the world drives it), and says why
    _, record, answered = desk.answer(request.request_id, AssistAnswer.PASS_OPPOSITE, 21.0)
    desk.send(request, record)
    commands: list[Any] = []
    desk.observe([car(0.0)], 22.0, events, commands)
    assert commands == [PassOpposite("taxi0", "B1B2")]
    desk.world_refused(commands[0], "no lane for the other direction", 22.0)
    desk.observe([car(0.0)], 23.0, events, [])
    assert record.outcome == "refused"
    assert request.refusal == "no pass through the oncoming lane: no lane for the other direction"
    # answered again, taken: the car moves a few seconds later and the request closes
    _, again, _ = desk.answer(request.request_id, AssistAnswer.PASS_OPPOSITE, 30.0)
    desk.send(request, again)
    desk.observe([car(0.0)], 31.0, events, [])
    desk.observe([car(0.0)], 32.0, events, [])
    assert again.outcome == "accepted"
    desk.observe([car(3.0)], 38.0, events, [])
    assert request.resolution_s == 18.0 and request.to_json(40.0)["resolution_s"] == 18.0
    kinds = [e.kind.value for e in [*answered, *events]]
    assert kinds == [
        "assist_answered", "assist_requested", "assist_refused", "assist_accepted",
        "assist_closed",
    ]  # fmt: skip
    assert events[-1].data["resolution_s"] == 18.0


def test_solid_centre_lines_come_from_the_network_or_the_config(
    map_cache: Path, tmp_path: Path
) -> None:
    """SUMO's lane-change permission of a street's leftmost lane (`changeLeft` without our
    class) marks its centre line solid, and so does `map.solid_centre_lines`; the reference
    path carries the marking where there is an oncoming lane."""
    from robotaxi.autonomy.planning.route import reference_path
    from robotaxi.config import load_config
    from robotaxi.core import ConfigError
    from robotaxi.map import build_network, load_map
    from robotaxi.sim.runner import load_city

    built = build_network("grid", SHARED_DATA, map_cache)
    plain = load_map(built)
    assert not plain.solid_centre_lines
    marked_net = tmp_path / "marked.net.xml"
    marked_net.write_text(
        built.net_file.read_text().replace(
            '<lane id="B1B2_0" ', '<lane id="B1B2_0" changeLeft="emergency authority" ', 1
        )
    )
    marked = load_map(dataclasses.replace(built, net_file=marked_net))
    assert marked.solid_centre_lines == frozenset({"B1B2"})
    route = reference_path(marked, ["B1B2", "B2B3"])
    on_street = route.path.s <= route.lane_start_s[1]
    assert np.all(route.path.solid_centre_line[on_street] == 1.0)
    assert np.all(route.path.solid_centre_line[~on_street] == 0.0)
    config = load_config(
        None, {"map.cache_dir": str(map_cache), "map.solid_centre_lines": ["B2B3", "C1C2"]}
    )
    road_map, _ = load_city(config)
    assert road_map.solid_centre_lines == frozenset({"B2B3", "C1C2"})
    # a four-lane arterial's inner lanes have no oncoming lane beside them: nothing to mark
    arterial = reference_path(road_map, ["C1C2"], start_lane=0)
    assert not np.any(arterial.path.solid_centre_line)
    wrong = load_config(None, {"map.cache_dir": str(map_cache), "map.solid_centre_lines": ["X"]})
    with pytest.raises(ConfigError, match=r"map\.solid_centre_lines: no edge 'X'"):
        load_city(wrong)


@pytest.mark.sumo
def test_the_scenario_stands_behind_the_works_asks_and_passes_once_allowed(
    tmp_path: Path,
) -> None:
    """`works-solid-centre-line`: no crossing of the line before leave, a request that says
    why, leave taken, the pass made into a gap, and the time to resolution. The scenario's
    drive for test_drive.py too: it passes its own criteria against the IDM reference."""
    from robotaxi.sim.drive import idm_planner, run_scenario
    from test_drive import assert_passes_its_own_criteria

    spec = load_scenario("works-solid-centre-line")
    operator = spec.operator
    assert operator is not None and spec.solid_centre_lines == ("B1B2",)
    result = run_scenario(spec, work_dir=tmp_path / "run", data_dir=SHARED_DATA)
    reference = run_scenario(
        spec, work_dir=tmp_path / "idm", data_dir=SHARED_DATA, planner=idm_planner()
    )
    assert_passes_its_own_criteria("works-solid-centre-line", result, reference)
    (request,) = result.assistance
    assert request["sees"].endswith("behind a blocker it may pass only across a solid centre line")
    (answer,) = request["answers"]
    assert answer["answer"] == "pass_opposite" and answer["outcome"] == "accepted"
    assert answer["at_s"] == pytest.approx(request["opened_s"] + operator.answer_after_s)
    # it stood from standing_since_s until leave came, in its own lane all the time
    assert request["opened_s"] - request["standing_since_s"] == pytest.approx(
        operator.assist_after_s, abs=0.15
    )
    assert result.across_solid_line_s and min(result.across_solid_line_s) > answer["at_s"]
    # the oncoming car due when leave came is let by first: the car waits for the gap
    assert min(result.across_solid_line_s) - answer["at_s"] > 3.0
    assert request["closed_how"] == "moving again"
    assert 5.0 < request["resolution_s"] < 30.0
    assert [e.kind.value for e in result.assistance_events] == [
        "assist_requested", "assist_answered", "assist_accepted", "assist_closed",
    ]  # fmt: skip
    assert not result.collisions
    assert "pass_blocker" in result.record.behaviour
    # and on past the works, back in its lane
    route = result.route
    assert route is not None
    end = result.record.ego[-1]
    s_end, d_end = route.path.project(end[1], end[2])
    works = spec.lane_closures[0]
    assert float(s_end) > works.to_m + 50.0 and abs(float(d_end)) < 0.5
