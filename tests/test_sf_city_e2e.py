"""A short service on all of San Francisco (issue 11): the whole city's network with its real
signals, Plan Bay Area background traffic, SFCTA demand over every zone, the fleet with its
batteries. Runs SUMO (micro) for 15 simulated minutes."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import SHARED_DATA, needs_data
from robotaxi.config import load_config
from robotaxi.metrics.fleet_kpis import fleet_kpis
from robotaxi.sim.runner import ServiceSimulation

pytestmark = pytest.mark.sumo


@needs_data
def test_a_quarter_hour_on_the_whole_city(city_cache: Path, tmp_path: Path) -> None:
    config = load_config(
        overrides={
            "map.city": "sf", "map.data_dir": str(SHARED_DATA), "map.cache_dir": str(city_cache),
            "fleet.size": 60, "hours": 0.25, "seed": 5, "start": "tue 08:00",
            "demand.market_share": 0.02, "world.emergency_per_hour": 6.0,
            "world.background_demand": "planbayarea", "world.background_scale": 0.05,
        }
    )  # fmt: skip
    history = ServiceSimulation(config, tmp_path / "sf").run()
    kpis = fleet_kpis(history)
    # the city's own signals, all of them
    assert kpis["signals"] >= 1200
    # demand over every zone of the city: hardly any request falls off the map
    assert kpis["requests"] >= 30
    assert history.demand.dropped_outside_map <= 0.01 * history.demand.drawn
    origins = {t.request.origin_zone for t in history.trips.values()}
    assert len(origins) >= 20
    # real background traffic flows: no gridlock, and our cars never teleport
    assert kpis["background_vehicles"] > 500
    assert kpis["teleports"] <= 0.005 * kpis["background_vehicles"]
    assert kpis["robotaxi_teleports"] == 0
    # the service works and its reports are there
    assert kpis["served"] >= 0.6 * kpis["requests"]
    assert kpis["by_hour"] and kpis["by_hour"][0]["hour"] == "08:00"
    assert kpis["energy"]["rides_lost_to_empty_battery"] == 0
    assert kpis["energy"]["kwh_per_km"] > 0
