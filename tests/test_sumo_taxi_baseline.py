"""SUMO's own taxi dispatch as the fleet benchmark's peer baseline (robotaxi.sim.sumo_taxi)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from robotaxi.config import DispatchConfig, FleetConfig, RunConfig, WorldConfig
from robotaxi.core import RideRequest, TimePoint, WorldError
from robotaxi.fleet.manager import FleetManager
from robotaxi.map import RoadMap, RoutingGraph
from robotaxi.sim.runner import make_demand
from robotaxi.sim.sumo_taxi import run_sumo_taxi
from robotaxi.world.sumo_taxi import (
    RiderOutcome,
    SumoTaxiResult,
    SumoTaxiSettings,
    baseline_kpis,
    fleet_start_curbs,
    shared_rides,
    taxi_types_xml,
    taxis_and_riders_xml,
)

QUIET = WorldConfig(emergency_per_hour=0.0)


def _request(rid: str, t_s: float, a: np.ndarray, b: np.ndarray, patience_s: float = 900.0):
    return RideRequest(
        rid, f"rider-{rid}", "Ada", TimePoint.from_s(t_s),
        float(a[0]), float(a[1]), float(b[0]), float(b[1]), patience_s,
    )  # fmt: skip


@pytest.mark.sumo
def test_start_curbs_are_the_ones_our_fleet_starts_from(
    grid_map: RoadMap, grid_graph: RoutingGraph
) -> None:
    for seed, size in ((7, 12), (8, 30)):
        fleet = FleetManager(
            grid_map, grid_graph, FleetConfig(size=size), DispatchConfig(),
            demand=None, day=1, start_hour=8.0, seed=seed,
        )  # fmt: skip
        assert fleet_start_curbs(len(grid_map.curbs), size, seed) == fleet.initial_curbs()
    assert fleet_start_curbs(len(grid_map.curbs), 12, 7) != fleet_start_curbs(
        len(grid_map.curbs), 12, 8
    )


def test_patience_is_applied_after_the_run() -> None:
    riders = (
        RiderOutcome("a", 10.0, 300.0, pickup_s=110.0, delivered_s=400.0),  # wait 100: served
        RiderOutcome("b", 20.0, 300.0, pickup_s=420.0, delivered_s=700.0),  # wait 400 > 300
        RiderOutcome("c", 30.0, 300.0, pickup_s=None, delivered_s=None),  # never picked up
        RiderOutcome("d", 40.0, 300.0, pickup_s=90.0, delivered_s=None),  # not delivered in time
        RiderOutcome("e", 50.0, 300.0, pickup_s=350.0, delivered_s=500.0),  # wait 300: served
    )
    result = SumoTaxiResult(SumoTaxiSettings(), 2, 600.0, 900.0, 3.0, 2.5, False, riders, 0, None)
    kpis = baseline_kpis(result)
    assert [r.served for r in riders] == [True, False, False, False, True]
    assert kpis["served"] == 2 and kpis["served_pct"] == 40.0
    assert kpis["wait_mean_s"] == 200.0  # (100 + 300) / 2, served riders only
    assert kpis["picked_up"] == 4 and kpis["never_picked_up"] == 1
    assert kpis["delivered_but_past_patience"] == 1
    assert kpis["shared_rides"] == 0  # no vehicle ids: nobody known to share


def test_shared_rides_counts_riders_on_board_together() -> None:
    riders = [
        RiderOutcome("a", 0.0, 600.0, 100.0, 300.0, "taxi0"),
        RiderOutcome("b", 0.0, 600.0, 200.0, 400.0, "taxi0"),  # with a from 200 to 300
        RiderOutcome("c", 0.0, 600.0, 300.0, 500.0, "taxi1"),
        RiderOutcome("d", 0.0, 600.0, 500.0, 600.0, "taxi1"),  # boards as c leaves
        RiderOutcome("e", 0.0, 600.0, 100.0, 600.0, "taxi2"),
    ]
    assert shared_rides(riders) == 2


@pytest.mark.sumo
def test_riders_and_taxis_sit_at_our_curb_spots(grid_map: RoadMap) -> None:
    curbs = grid_map.curbs
    pick = [5, 40, 77]
    drop = [90, 3, 150]
    # given out of time order: the route file must list riders by departure
    requests = [
        _request(f"r{k}", t, curbs.xy[a], curbs.xy[b])
        for k, (t, a, b) in enumerate(zip((30.0, 10.0, 20.0), pick, drop, strict=True))
    ]
    root = ET.fromstring(taxis_and_riders_xml(grid_map, [11, 12], requests))
    taxis = root.findall("vehicle")
    assert [t.get("line") for t in taxis] == ["taxi", "taxi"]
    assert taxis[0].find("route").get("edges") == curbs.edge_ids[11]  # type: ignore[union-attr]
    persons = root.findall("person")
    assert [float(p.get("depart", "nan")) for p in persons] == [10.0, 20.0, 30.0]
    for person, k in zip(persons, (1, 2, 0), strict=True):
        ride = person.find("ride")
        assert ride is not None and ride.get("lines") == "taxi"
        assert ride.get("from") == curbs.edge_ids[pick[k]]
        assert ride.get("to") == curbs.edge_ids[drop[k]]
        assert float(ride.get("arrivalPos", "nan")) == pytest.approx(curbs.pos[drop[k]], abs=0.01)
        assert float(person.get("departPos", "nan")) == pytest.approx(curbs.pos[pick[k]], abs=0.01)
    types = ET.fromstring(taxi_types_xml(FleetConfig()))
    params = {p.get("key"): p.get("value") for p in types.iter("param")}
    assert params["has.taxi.device"] == "true"
    assert float(params["device.taxi.pickUpDuration"] or "nan") == pytest.approx(40.0 + 16.5)


@pytest.mark.slow
@pytest.mark.sumo
def test_one_taxi_one_rider_wait_is_bounded_by_driving_time(
    grid_map: RoadMap, grid_graph: RoutingGraph, tmp_path: Path
) -> None:
    curbs = grid_map.curbs
    taxi_curb = 0
    far = int(np.argmax(np.linalg.norm(curbs.xy - curbs.xy[taxi_curb], axis=1)))
    back = taxi_curb
    request = _request("r1", 30.0, curbs.xy[far], curbs.xy[back], patience_s=3600.0)
    result = run_sumo_taxi(
        grid_map, grid_graph, QUIET, FleetConfig(size=1), [request], [taxi_curb],
        seed=3, service_s=120.0, work_dir=tmp_path,
        settings=SumoTaxiSettings(drain_s=1800.0), background=False,
    )  # fmt: skip
    (rider,) = result.riders
    assert rider.pickup_s is not None and rider.delivered_s is not None and rider.served
    eta_to_pickup = grid_graph.eta_matrix(
        [curbs.edge_ids[taxi_curb]], curbs.pos[[taxi_curb]], [curbs.edge_ids[far]],
        curbs.pos[[far]],
    )[0, 0]  # fmt: skip
    eta_ride = grid_graph.eta_matrix(
        [curbs.edge_ids[far]], curbs.pos[[far]], [curbs.edge_ids[back]], curbs.pos[[back]]
    )[0, 0]
    wait = rider.wait_s
    assert wait is not None
    # SUMO's speed factors stay below 2, and the first dispatch comes at t = 30 s (period 15)
    assert eta_to_pickup / 2.0 <= wait <= eta_to_pickup * 3.0 + 15.0 + 120.0
    # the car dwells for boarding + buckling (56.5 s) before driving the rider
    assert rider.delivered_s - rider.pickup_s >= 56.0 + eta_ride / 2.0
    assert not result.capped and result.simulated_s < 120.0 + 1800.0


@pytest.mark.slow
@pytest.mark.sumo
def test_ten_minutes_on_the_grid_with_traffic(
    grid_map: RoadMap, grid_graph: RoutingGraph, tmp_path: Path
) -> None:
    config = RunConfig()
    sample = make_demand(config, grid_map).sample(1, 8.0, 10 / 60, seed=5)
    requests = sample.requests
    assert len(requests) >= 10
    curbs = fleet_start_curbs(len(grid_map.curbs), 10, seed=5)

    def run(work: Path) -> SumoTaxiResult:
        return run_sumo_taxi(
            grid_map, grid_graph, config.world, FleetConfig(size=10), requests, curbs,
            seed=5, service_s=600.0, work_dir=work, settings=SumoTaxiSettings(drain_s=900.0),
        )  # fmt: skip

    result = run(tmp_path / "a")
    assert result.background_file is not None
    by_id = {r.request_id: r for r in result.riders}
    assert set(by_id) == {r.request_id for r in requests}
    picked = [r for r in result.riders if r.pickup_s is not None]
    assert len(picked) >= 0.8 * len(requests)
    for rider in picked:
        assert rider.wait_s is not None and 0.0 <= rider.wait_s < 600.0 + 900.0
        if rider.delivered_s is not None:
            assert rider.delivered_s > rider.pickup_s  # type: ignore[operator]
    kpis = baseline_kpis(result)
    assert kpis["served_pct"] >= 50.0
    assert 0.0 < kpis["wait_p50_s"] <= kpis["wait_p95_s"] < 900.0
    # same seed, same inputs: the same riders picked up at the same seconds
    assert run(tmp_path / "b").riders == result.riders


@pytest.mark.sumo
def test_bad_settings_and_inputs_raise_named_errors(
    grid_map: RoadMap, grid_graph: RoutingGraph, tmp_path: Path
) -> None:
    curbs = grid_map.curbs
    early = _request("r1", 10.0, curbs.xy[1], curbs.xy[2])
    late = _request("r2", 50.0, curbs.xy[3], curbs.xy[4])

    def run(requests: list[RideRequest], start: list[int], settings: SumoTaxiSettings) -> None:
        run_sumo_taxi(
            grid_map, grid_graph, QUIET, FleetConfig(size=1), requests, start,
            seed=1, service_s=60.0, work_dir=tmp_path, settings=settings, background=False,
        )  # fmt: skip

    with pytest.raises(WorldError, match="dispatch algorithm"):
        run([early], [0], SumoTaxiSettings(dispatch_algorithm="fastest"))
    with pytest.raises(WorldError, match="routing algorithm"):
        run([early], [0], SumoTaxiSettings(routing_algorithm="teleport"))
    with pytest.raises(WorldError, match="at least one taxi"):
        run([early], [], SumoTaxiSettings())
    with pytest.raises(WorldError, match="sorted by time"):
        run([late, early], [0], SumoTaxiSettings())
