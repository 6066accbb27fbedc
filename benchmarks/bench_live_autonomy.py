"""Wall time per live tick with 0, 1 and 2 fleet cars driven by the autonomy stack.

The live city of `robotaxi serve --city grid --fleet 30` (background traffic, synthetic riders
at the default rate), stepped flat out; `--speed 4` gives each 1-s tick a budget of 250 ms
of wall time. Riders of this benchmark keep the autonomous cars busy: whenever one has no
ride, a rider books one from the curb just ahead of it to a curb a few blocks away (and
boards, buckles and presses Start when it arrives), so the stacks drive most of the run
instead of waiting parked (where only their perception runs).

    .venv/bin/python benchmarks/bench_live_autonomy.py [--ticks 300] [--max-autonomous 2]

Writes benchmarks/results/live_autonomy.json and .md.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from robotaxi.config import load_config
from robotaxi.sim.live import LiveService

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SPEED = 4.0
FLEET = 30
WARM_UP_TICKS = 120  # background traffic fills the streets over the first minutes


def book_for_idle_cars(live: LiveService, counter: list[int], open_rides: dict[str, str]) -> None:
    """A ride just ahead of every autonomous car without one (one open ride per car)."""
    driver = live.driver
    if driver is None:
        return
    curbs = live.map.curbs
    for vid in driver.cars:
        ride = open_rides.get(vid)
        view = live.trip(ride) if ride is not None else None
        if view is not None and not view.state.terminal:
            if view.state.value == "arrived":
                live.board(view.trip_id)
                live.buckle(view.trip_id, True)
                live.start_ride(view.trip_id)
            continue
        car = live.fleet.vehicles[vid]
        if car.trip_id is not None or car.next_trip_id is not None:
            continue
        ahead = [
            i
            for i in range(len(curbs))
            if curbs.edge_ids[i] == car.edge and curbs.pos[i] > car.lane_pos + 60
        ]
        pickup = ahead[0] if ahead else int(curbs.nearest(np.array([car.xy]))[0][0])
        d = np.hypot(*(curbs.xy - curbs.xy[pickup]).T)
        far = np.flatnonzero((d > 400) & (d < 900))
        if len(far) == 0:
            continue
        dropoff = int(far[counter[0] % len(far)])
        counter[0] += 1
        ride_id = f"bench-{counter[0]}"
        live.request_ride(
            ride_id, f"bench-rider-{counter[0]}", "Bench",
            (float(curbs.xy[pickup, 0]), float(curbs.xy[pickup, 1])),
            (float(curbs.xy[dropoff, 0]), float(curbs.xy[dropoff, 1])),
        )  # fmt: skip
        open_rides[vid] = ride_id


def measure(autonomous: int, ticks: int, work: Path, seed: int) -> dict[str, Any]:
    config = load_config(
        None, {"map.city": "grid", "fleet.size": FLEET, "hours": 2.0, "seed": seed}
    )
    live = LiveService(config, work / f"a{autonomous}", speed=SPEED, autonomous=autonomous)
    tick_ms: list[float] = []
    driving_ticks = 0
    counter = [0]
    open_rides: dict[str, str] = {}
    with live:
        for k in range(WARM_UP_TICKS + ticks):
            book_for_idle_cars(live, counter, open_rides)
            t0 = time.perf_counter()
            live.step()
            elapsed = 1000.0 * (time.perf_counter() - t0)
            if k < WARM_UP_TICKS:
                continue
            tick_ms.append(elapsed)
            if live.driver is not None and any(
                car.leg is not None and not (car.parked and car.stopped)
                for car in live.driver.cars.values()
            ):
                driving_ticks += 1
        completed = sum(
            1
            for ride in open_rides.values()
            if (view := live.trip(ride)) is not None and view.state.value == "completed"
        )
        served_by_autonomy = sum(
            1
            for t in live.fleet.trips.values()
            if t.trip_id.startswith("bench-")
            and t.vehicle_id is not None
            and live.driver is not None
            and t.vehicle_id in live.driver.cars
        )
    arr = np.array(tick_ms)
    budget_ms = 1000.0 * config.world.step_s / SPEED
    return {
        "autonomous": autonomous,
        "ticks": ticks,
        "tick_ms_median": round(float(np.median(arr)), 2),
        "tick_ms_p95": round(float(np.percentile(arr, 95)), 2),
        "tick_ms_max": round(float(arr.max()), 2),
        "tick_ms_mean": round(float(arr.mean()), 2),
        "budget_ms_at_speed": budget_ms,
        "achievable_speed_median": round(1000.0 * config.world.step_s / float(np.median(arr)), 1),
        "ticks_over_budget": int((arr > budget_ms).sum()),
        "ticks_with_a_stack_driving": driving_ticks,
        "bench_rides_booked": counter[0],
        "bench_rides_served_by_autonomous_cars": served_by_autonomy,
        "last_bench_rides_completed": completed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=300, help="measured ticks per run (sim s)")
    parser.add_argument("--max-autonomous", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.max_autonomous + 1):
            print(f"--autonomous {n}: {args.ticks} ticks …", flush=True)
            runs.append(measure(n, args.ticks, Path(tmp), args.seed))
            print(json.dumps(runs[-1]), flush=True)
    base = runs[0]["tick_ms_median"]
    for r in runs:
        r["median_ratio_to_autonomous_0"] = round(r["tick_ms_median"] / base, 2)
    out = {
        "benchmark": "live_autonomy",
        "city": "grid",
        "fleet": FLEET,
        "speed": SPEED,
        "seed": args.seed,
        "machine": platform.platform(),
        "note": "wall time of LiveService.step() (one 1-s world step, fleet, stacks at 0.1 s)",
        "runs": runs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "live_autonomy.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        "# Live service: wall time per tick with autonomous fleet cars",
        "",
        f"Grid city, fleet {FLEET}, background traffic, `--speed {SPEED:g}` (budget "
        f"{runs[0]['budget_ms_at_speed']:.0f} ms per 1-s tick), seed {args.seed}, "
        f"{args.ticks} measured ticks per run. "
        "`.venv/bin/python benchmarks/bench_live_autonomy.py`",
        "",
        "| --autonomous | median ms | p95 ms | max ms | × vs 0 | ticks over budget | "
        "ticks with a stack driving | achievable speed (median) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['autonomous']} | {r['tick_ms_median']} | {r['tick_ms_p95']} | "
            f"{r['tick_ms_max']} | {r['median_ratio_to_autonomous_0']} | "
            f"{r['ticks_over_budget']}/{r['ticks']} | {r['ticks_with_a_stack_driving']} | "
            f"{r['achievable_speed_median']}× |"
        )
    lines += ["", f"Machine: {platform.platform()} (shared with other work while measured)."]
    (RESULTS / "live_autonomy.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
