"""Remote assistance in a scenario file: an operator scripted in YAML answers "this lane is
closed" (issue 13, item 7), through the real runner and SUMO (`robotaxi drive`).

`stalled-van-lane-closed`: a van broken down in the car's lane 40 m before the lights looks
like the end of a queue, so the car's stack does not pass it on its own. It stops behind the
van with room to steer out (`planning.steer_out`), asks for help, takes the answer, moves
over in a gap and drives on in the other lane. With car following's old 2 m stop behind a
standing car, the same answer is refused: the car stands too close to steer out.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA
from robotaxi.autonomy.planning.behaviour import BehaviourConfig, BehaviourPlanner
from robotaxi.autonomy.planning.motion import MotionPlanner
from robotaxi.autonomy.stack import PdmPlanner
from robotaxi.autonomy.vehicle import IPACE
from robotaxi.config.scenario import OperatorSpec, load_scenario
from robotaxi.metrics.scenario_report import scenario_report
from robotaxi.sim.drive import DriveResult, idm_planner, run_scenario
from robotaxi.sim.scenario_operator import edge_at
from test_drive import assert_passes_its_own_criteria

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.sumo]
SCENARIO = "stalled-van-lane-closed"
VAN = "van"


def _van_rear_and_car_front(result: DriveResult, tick: int) -> tuple[float, float]:
    """(m along the route) the van's rear and the car's front bumper at `tick`."""
    route = result.route
    assert route is not None
    _kind, length, _width, states = result.record.agents[VAN]
    vx, vy, *_ = states[tick]
    _, x, y, heading, *_ = result.record.ego[tick]
    reach = IPACE.rear_axle_to_front_m
    front = (x + reach * math.cos(heading), y + reach * math.sin(heading))
    s_van = float(route.path.project(vx, vy)[0])
    s_front = float(route.path.project(*front)[0])
    return s_van - 0.5 * length, s_front


def test_the_yaml_operator_answers_lane_closed_and_the_car_moves_over_and_on(
    tmp_path: Path,
) -> None:
    """The scenario's drive for test_drive.py too: it passes its own criteria against the IDM
    reference (which waits behind the van for good)."""
    spec = load_scenario(SCENARIO)
    operator = spec.operator
    assert operator is not None and operator.answer == "lane_closed"
    result = run_scenario(spec, work_dir=tmp_path / "run", data_dir=SHARED_DATA)
    reference = run_scenario(
        spec, work_dir=tmp_path / "idm", data_dir=SHARED_DATA, planner=idm_planner()
    )
    assert_passes_its_own_criteria(SCENARIO, result, reference)
    (request,) = result.assistance
    assert request["edge"] == "A2B2" and request["sees"].endswith("a vehicle that does not move")
    (answer,) = request["answers"]
    assert answer == {**answer, "answer": "lane_closed", "outcome": "accepted", "reason": ""}
    assert answer["at_s"] == pytest.approx(request["opened_s"] + operator.answer_after_s)
    assert request["closed_how"] == "moving again"
    assert 0.0 < request["resolution_s"] < 30.0
    assert [e.kind.value for e in result.assistance_events] == [
        "assist_requested", "assist_answered", "assist_accepted", "assist_closed",
    ]  # fmt: skip

    # it stood behind the van with room to steer out, and held there until the answer
    record = result.record
    times = np.array(record.time_s)
    asked = int(np.searchsorted(times, request["opened_s"]))
    van_rear, front = _van_rear_and_car_front(result, asked)
    assert 4.5 < van_rear - front < 7.0
    route = result.route  # the lane route it drove: the same as the first up to the switch
    assert route is not None and result.road_map is not None
    s_d = np.array([route.path.project(e[1], e[2]) for e in record.ego], dtype=float)
    moved = int(np.argmax(s_d[:, 0] > s_d[asked, 0] + 1.0))
    assert times[moved] > answer["at_s"]
    assert float(np.max(np.abs(s_d[:moved, 1]))) < 0.3  # in its lane until then
    # past the van, settled in the other lane (moving over it cuts the lane route's bend)
    past = s_d[:, 0] > van_rear + 12.0
    assert np.any(past) and float(np.max(np.abs(s_d[past, 1]))) < 0.3
    assert not result.collisions
    report = scenario_report(result, result)
    assert report["passed"], report["criteria"]
    # past the van and across the junction in the lane it moved to, to the street's end
    lanes = [x for x in route.lane_ids if not result.road_map.lanes[x].internal]
    assert lanes == ["A2B2_1", "B2C2_1"]
    assert edge_at(result.road_map, route, float(s_d[-1, 0])) == "B2C2"


def test_too_close_behind_the_van_the_car_refuses_and_says_why(tmp_path: Path) -> None:
    """Car following's own 2 m stop (the standoff turned off): "lane closed" is refused."""
    spec = load_scenario(SCENARIO).model_copy(update={"duration_s": 50.0})
    motion = MotionPlanner()
    config = BehaviourConfig(steer_out_standoff=False)
    planner = PdmPlanner(motion, BehaviourPlanner(config, motion.params))
    result = run_scenario(spec, work_dir=tmp_path / "run", data_dir=SHARED_DATA, planner=planner)
    (request,) = result.assistance
    (answer,) = request["answers"]
    assert answer["answer"] == "lane_closed" and answer["outcome"] == "refused"
    assert "too close to steer out into the next lane" in answer["reason"]
    assert "cannot back up" in answer["reason"]
    assert request["open"]
    assert not result.collisions


def test_a_scenario_operator_answers_lane_closed_or_is_told_the_choices() -> None:
    assert OperatorSpec.model_validate({"answer": "lane_closed"}).answer == "lane_closed"
    with pytest.raises(ValueError, match="'pass_opposite', 'lane_closed' or 'wait'"):
        OperatorSpec.model_validate({"answer": "another_way"})
