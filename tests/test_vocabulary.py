"""The typed vocabulary (issue 10, item 4) keeps the strings stored and served before it:
each enum's values against a table of those strings, their JSON and database forms, and a
fleet on FakeWorld whose cars only ever hold typed stages, yields and event kinds."""

from __future__ import annotations

import enum
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from fakecity import mini_city
from robotaxi.autonomy.planning.behaviour import Behaviour
from robotaxi.config import load_config
from robotaxi.core import (
    EvApproach,
    RideRequest,
    TimePoint,
    TripEvent,
    VehicleEvent,
    VehicleEventKind,
    YieldBasis,
    YieldDecider,
)
from robotaxi.fleet.demand import SyntheticDemand
from robotaxi.fleet.manager import CurbStage, FleetManager, VehicleStatus, YieldRecord
from robotaxi.sim.autonomous import NotPlanning
from robotaxi.sim.runner import ServiceSimulation
from robotaxi.sim.simulation import Callback, Simulation, Tick
from robotaxi.store.store import Store
from robotaxi.world.fake import FakeWorld

# member name → the string the event log, yields.json, the HTTP API and the pages carried
# before these were enums (release before issue 10's item 4)
EXPECTED: dict[type[enum.StrEnum], dict[str, str]] = {
    CurbStage: {
        "NONE": "",
        "WAITING_FOR_START": "waiting_for_start",
        "NO_SHOW": "no_show",
        "BOARDING": "boarding",
        "BUCKLING": "buckling",
        "ALIGHTING": "alighting",
        "RIDER_PULL_OVER": "rider_pull_over",
    },
    EvApproach: {
        "BEHIND": "behind",
        "HEAD_ON": "head-on",
        "AHEAD": "ahead",
        "CROSS_STREET": "cross-street",
        "UNKNOWN": "unknown",
    },
    YieldDecider: {"FLEET": "fleet", "CAR": "car"},
    YieldBasis: {"HEARD": "heard", "SEEN": "seen", "HEARD_AND_SEEN": "heard_and_seen"},
    VehicleEventKind: {
        "EV_IN_RANGE": "ev_in_range",
        "EV_PULLED_OVER": "ev_pulled_over",
        "EV_RESUMED": "ev_resumed",
        # added with the seat-belt check (issue 13); none of the old values changed
        "SEATBELT_UNFASTENED": "seatbelt_unfastened",
        "SEATBELT_FASTENED": "seatbelt_fastened",
        # at the pick-up (unlock, find my car) and remote assistance (issue 13)
        "DOORS_UNLOCKED": "doors_unlocked",
        "HORN_AND_LIGHTS": "horn_and_lights",
        "ASSIST_REQUESTED": "assist_requested",
        "ASSIST_ANSWERED": "assist_answered",
        "ASSIST_ACCEPTED": "assist_accepted",
        "ASSIST_REFUSED": "assist_refused",
        "ASSIST_CLOSED": "assist_closed",
    },
    Behaviour: {
        "LANE_FOLLOW": "lane_follow",
        "CAR_FOLLOW": "car_follow",
        "STOP_AT_LINE": "stop_at_line",
        "LEAVE_CURB": "leave_curb",
        "CURBSIDE_STOP": "curbside_stop",
        "YIELD_TO_EV": "yield_to_ev",
        "EV_CAUTION": "ev_caution",
        "SAFE_STOP": "safe_stop",
        "PASS_BLOCKER": "pass_blocker",
    },
    # the in-car screen's behaviour while the stack plans nothing
    NotPlanning: {"PARKED": "parked", "SUMO": "sumo"},
    VehicleStatus: {
        "IDLE": "idle",
        "REBALANCING": "rebalancing",
        "TO_PICKUP": "to_pickup",
        "AT_PICKUP": "at_pickup",
        "TO_DROPOFF": "to_dropoff",
        "AT_DROPOFF": "at_dropoff",
        # added with batteries (issue 11); new values, none of the old ones changed
        "TO_CHARGER": "to_charger",
        "CHARGING": "charging",
    },
}


@pytest.mark.parametrize("kind", list(EXPECTED), ids=lambda k: k.__name__)
def test_every_value_is_the_string_stored_and_served_before(kind: type[enum.StrEnum]) -> None:
    assert {m.name: m.value for m in kind} == EXPECTED[kind]
    for member in kind:
        value = EXPECTED[kind][member.name]
        # equal to, formatted as, serialised as and parsed back from that very string
        assert member == value and str(member) == value and f"{member}" == value
        assert json.dumps(member) == json.dumps(value)
        assert kind(value) is member


def test_yield_records_serialise_as_before() -> None:
    """yields.json is `json.dumps(record.to_json())` (it was `vars(record)` while the times
    were floats named `…_s`); ops' /api/yields reads the same fields."""
    at = TimePoint.from_s
    fleet = YieldRecord(
        "taxi001", "ambulance0", at(12.5), "r7", EvApproach.HEAD_ON, stopped_at=at(15.0)
    )
    car = YieldRecord(
        "taxi002", "", at(20.0), None, EvApproach.CROSS_STREET, at(22.0),
        decided_by=YieldDecider.CAR, basis=YieldBasis.HEARD_AND_SEEN,
    )  # fmt: skip
    assert json.loads(json.dumps([fleet.to_json(), car.to_json()])) == [
        {
            "vehicle_id": "taxi001", "ev_id": "ambulance0", "in_range_s": 12.5, "trip_id": "r7",
            "approach": "head-on", "stopped_s": 15.0, "resumed_s": None, "failed_attempts": 0,
            "decided_by": "fleet", "basis": None,
        },
        {
            "vehicle_id": "taxi002", "ev_id": "", "in_range_s": 20.0, "trip_id": None,
            "approach": "cross-street", "stopped_s": 22.0, "resumed_s": None,
            "failed_attempts": 0, "decided_by": "car", "basis": "heard_and_seen",
        },
    ]  # fmt: skip


def test_the_event_log_stores_kinds_as_their_strings_and_reads_back_members(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.sqlite"
    event = VehicleEvent(
        "taxi001", TimePoint.from_s(5.0), VehicleEventKind.EV_PULLED_OVER,
        {"ev": "a1", "approach": EvApproach.BEHIND, "decided_by": YieldDecider.CAR,
         "basis": YieldBasis.SEEN},
    )  # fmt: skip
    with Store.open(f"sqlite:///{path}") as store:
        assert store.record_vehicle_events([event]) == 1
    with sqlite3.connect(path) as conn:
        raw = conn.execute("SELECT kind, typeof(kind), data FROM vehicle_events").fetchall()
    assert [(kind, kind_type, json.loads(data)) for kind, kind_type, data in raw] == [
        (
            "ev_pulled_over", "text",
            {"ev": "a1", "approach": "behind", "decided_by": "car", "basis": "seen"},
        )
    ]  # fmt: skip
    with Store.open(f"sqlite:///{path}") as store:
        (read,) = store.vehicle_events()
    assert read == event and read.kind is VehicleEventKind.EV_PULLED_OVER


class _Vocabulary(Callback):
    """Every tick: each car's stage, target, yield and the tick's event kinds are typed."""

    name = "vocabulary"

    def __init__(self) -> None:
        self.stages: set[CurbStage] = set()
        self.kinds: set[VehicleEventKind] = set()
        self.yields = 0

    def on_tick(self, sim: Simulation, tick: Tick) -> None:
        assert sim.fleet is not None
        for v in sim.fleet.vehicles.values():
            assert type(v.stage) is CurbStage, (v.vehicle_id, v.stage)
            assert type(v.status) is VehicleStatus, (v.vehicle_id, v.status)
            assert v.target_curb is not None  # every car starts at a curb spot
            self.stages.add(v.stage)
        for record in sim.fleet.yields + [
            v.yielding for v in sim.fleet.vehicles.values() if v.yielding is not None
        ]:
            assert type(record.approach) is EvApproach
            assert type(record.decided_by) is YieldDecider
            assert record.basis is None or type(record.basis) is YieldBasis
        self.yields = len(sim.fleet.yields)


def test_a_fleet_on_fake_world_holds_only_typed_stages_yields_and_kinds(
    tmp_path: Path,
) -> None:
    config = load_config(
        overrides={
            "map.city": "grid", "fleet.size": 8, "hours": 0.5, "seed": 7,
            "world.emergency_per_hour": 12.0, "demand.requests_per_hour": 90.0,
            "fleet.no_show_probability": 0.3,
            "world.background_vehicles_per_hour_per_km2": 300.0,
        }
    )  # fmt: skip
    road_map, graph = mini_city()
    demand = SyntheticDemand(
        road_map.bounds, config.demand, layout_seed=config.seed, inside=road_map.inside
    )
    kinds: list[object] = []

    def sink(
        rides: Sequence[RideRequest],
        events: Sequence[TripEvent],
        vehicle_events: Sequence[VehicleEvent],
    ) -> None:
        kinds.extend(e.kind for e in vehicle_events)

    check = _Vocabulary()
    history = ServiceSimulation(
        config, tmp_path, city=(road_map, graph), demand=demand, world=FakeWorld,
        event_sink=sink, callbacks=[check],
    ).run()  # fmt: skip
    assert history.trips  # the fleet worked
    # the curbside stages a simulated rider goes through, each seen as a member
    assert {
        CurbStage.NONE, CurbStage.NO_SHOW, CurbStage.BOARDING, CurbStage.BUCKLING,
        CurbStage.ALIGHTING,
    } <= check.stages  # fmt: skip
    assert all(type(k) is VehicleEventKind for k in kinds)
    assert history.yields and VehicleEventKind.EV_IN_RANGE in kinds


def test_locate_reads_no_target_as_none_not_as_curb_zero() -> None:
    """A car inside a junction is located at its curb target; with no target (None, once
    -1 read as curb 0) at the curb spot nearest to it."""
    config = load_config(overrides={"map.city": "grid", "fleet.size": 2, "seed": 3})
    road_map, graph = mini_city()
    fleet = FleetManager(
        road_map, graph, config.fleet, config.dispatch, demand=None, day=0, start_hour=8.0,
        seed=3,
    )  # fmt: skip
    curbs = road_map.curbs
    far = int(np.argmax(np.hypot(*(curbs.xy - curbs.xy[0]).T)))
    fleet.add_vehicle("taxi000", far)
    car = fleet.vehicles["taxi000"]
    assert car.target_curb == far
    car.edge = ":junction_0"  # inside a junction: not on the routing graph
    assert fleet.locate(car) == (curbs.edge_ids[far], float(curbs.pos[far]))
    car.target_curb = None
    assert fleet.locate(car) == (curbs.edge_ids[far], float(curbs.pos[far]))  # stands there
    car.xy = (float(curbs.xy[0, 0]), float(curbs.xy[0, 1]))
    nearest = int(curbs.nearest(np.array([car.xy]))[0][0])
    assert fleet.locate(car) == (curbs.edge_ids[nearest], float(curbs.pos[nearest]))
