"""A busy working day of the live service on FakeWorld: what it holds in memory follows
the open trips, not the length of the run (issue 10, bounded memory and per-tick cost)."""

from __future__ import annotations

from pathlib import Path

from fakecity import mini_city
from robotaxi.config import load_config
from robotaxi.sim.live import ENDED_KEEP_S, MAX_TRAIL_POINTS, LiveService
from robotaxi.world.fake import FakeWorld

# Sixteen times the half hour an ended trip stays live: long enough to see every container
# level off by the second hour while the trips of the run keep adding up (each hour is 720
# ticks of the whole service, so a longer day only costs test time).
HOURS = 8


def test_a_busy_day_keeps_the_live_containers_bounded(tmp_path: Path) -> None:
    config = load_config(
        overrides={
            "map.city": "grid", "fleet.size": 6, "hours": float(HOURS), "seed": 4,
            "world.step_s": 5.0, "world.emergency_per_hour": 2.0,
        }
    )  # fmt: skip
    live = LiveService(
        config, tmp_path, riders_per_hour=60.0, background_traffic=False,
        world=FakeWorld, city=mini_city(),
    )  # fmt: skip
    by_hour: list[dict[str, int]] = []
    with live:
        while live.now_s < HOURS * 3600:
            live.step()
            if live.now_s % 3600 == 0:
                by_hour.append(live.held())
        kpis = live.kpis()
    assert len(by_hour) == HOURS
    total = [h["fleet_trips"] + h["retired_trips"] for h in by_hour]
    # the run grows: hundreds of trips, four times as many at the end as after two hours
    assert total[-1] > 400
    assert total[-1] > 3 * total[1]
    # what is live does not: open trips, plus those ended in the last half hour; the fleet
    # holds the same and has retired the rest into compact KPI records
    early = max(h["live_trips"] for h in by_hour[1:3])
    late = max(h["live_trips"] for h in by_hour[HOURS // 2 :])
    assert late <= 1.5 * early + 10
    assert max(h["fleet_trips"] for h in by_hour[HOURS // 2 :]) <= 1.5 * early + 10
    per_hour = total[-1] / HOURS
    for held in by_hour[1:]:
        assert held["ended_trips_kept"] <= 2 * per_hour * ENDED_KEEP_S / 3600 + 10
        assert held["trails"] <= held["live_trips"]
        assert held["trail_points"] <= held["trails"] * MAX_TRAIL_POINTS
        assert held["trips_before_pickup"] <= held["live_trips"]
        assert held["fleet_trips"] <= held["live_trips"] + 10
    # and the KPIs still cover the whole run
    assert kpis["requests"] == total[-1]
