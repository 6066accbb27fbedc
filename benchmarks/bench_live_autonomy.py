"""Wall time per live tick with 0, 1 and 2 fleet cars driven by the autonomy stack.

Each autonomous count runs twice: with the senses of `robotaxi drive` (roof microphones +
siren detector, city blocks hiding things from the cameras; the service's default) and
without them (cameras only, nothing hidden), so the added cost of hearing and occlusion per
tick is the difference of the two, measured in the same run.

The live city of `robotaxi serve --city grid --fleet 30` (background traffic, synthetic riders
at the default rate), stepped flat out; `--speed 4` gives each 1-s tick a budget of 250 ms
of wall time. Riders of this benchmark keep the autonomous cars busy: whenever one has no
ride, a rider books one from the curb just ahead of it to a curb a few blocks away (and
boards, buckles and presses Start when it arrives), so the stacks drive most of the run
instead of waiting parked (where only their perception runs).

    .venv/bin/python benchmarks/bench_live_autonomy.py [--ticks 300] [--max-autonomous 2]
        [--ev-per-hour 30]

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


def measure(
    autonomous: int, ticks: int, work: Path, seed: int, senses: bool, ev_per_hour: float
) -> dict[str, Any]:
    config = load_config(
        None,
        {
            "map.city": "grid",
            "fleet.size": FLEET,
            "hours": 2.0,
            "seed": seed,
            "world.emergency_per_hour": ev_per_hour,
        },
    )
    live = LiveService(
        config, work / f"a{autonomous}-{int(senses)}", speed=SPEED, autonomous=autonomous,
        hearing=senses, city_blocks=senses,
    )  # fmt: skip
    heard_ticks = 0
    tick_ms: list[float] = []
    tick_cpu_ms: list[float] = []  # this thread's CPU time (SUMO runs in it: libsumo)
    driving_ticks = 0
    counter = [0]
    open_rides: dict[str, str] = {}
    with live:
        for k in range(WARM_UP_TICKS + ticks):
            book_for_idle_cars(live, counter, open_rides)
            t0, c0 = time.perf_counter(), time.thread_time()
            live.step()
            elapsed = 1000.0 * (time.perf_counter() - t0)
            cpu = 1000.0 * (time.thread_time() - c0)
            if k < WARM_UP_TICKS:
                continue
            tick_ms.append(elapsed)
            tick_cpu_ms.append(cpu)
            if any(v.siren_heard for v in live.snapshot().autonomy.values()):
                heard_ticks += 1
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
    hearing_ms = [
        1000.0 * float(np.median(times))
        for car in (live.driver.cars.values() if live.driver is not None else ())
        if (times := car.stack.times.by_stage.get("hearing"))
    ]
    return {
        "autonomous": autonomous,
        "senses": senses,
        "ticks": ticks,
        "tick_ms_median": round(float(np.median(arr)), 2),
        "tick_ms_p95": round(float(np.percentile(arr, 95)), 2),
        "tick_ms_max": round(float(arr.max()), 2),
        "tick_ms_mean": round(float(arr.mean()), 2),
        "tick_cpu_ms_median": round(float(np.median(tick_cpu_ms)), 2),
        "tick_cpu_ms_p95": round(float(np.percentile(tick_cpu_ms, 95)), 2),
        "tick_cpu_ms_mean": round(float(np.mean(tick_cpu_ms)), 2),
        "achievable_speed_cpu_median": round(
            1000.0 * config.world.step_s / float(np.median(tick_cpu_ms)), 1
        ),
        "budget_ms_at_speed": budget_ms,
        "achievable_speed_median": round(1000.0 * config.world.step_s / float(np.median(arr)), 1),
        "ticks_over_budget": int((arr > budget_ms).sum()),
        "ticks_with_a_stack_driving": driving_ticks,
        "bench_rides_booked": counter[0],
        "bench_rides_served_by_autonomous_cars": served_by_autonomy,
        "last_bench_rides_completed": completed,
        "ticks_with_a_siren_heard": heard_ticks,
        # the stack's siren detector per 0.1-s stack step (median over the run, per car)
        "detector_ms_per_stack_step_median": [round(x, 3) for x in hearing_ms],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=300, help="measured ticks per run (sim s)")
    parser.add_argument("--max-autonomous", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--ev-per-hour", type=float, default=30.0,
        help="ambulances crossing the city per hour (sirens for the microphones to hear)",
    )  # fmt: skip
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.max_autonomous + 1):
            for senses in (False, True) if n else (False,):
                print(f"--autonomous {n} senses={senses}: {args.ticks} ticks …", flush=True)
                runs.append(measure(n, args.ticks, Path(tmp), args.seed, senses, args.ev_per_hour))
                print(json.dumps(runs[-1]), flush=True)
    base = runs[0]["tick_ms_median"]
    without = {r["autonomous"]: r for r in runs if not r["senses"]}
    for r in runs:
        r["median_ratio_to_autonomous_0"] = round(r["tick_ms_median"] / base, 2)
        if r["senses"]:
            plain = without[r["autonomous"]]
            r["senses_added_ms_median"] = round(r["tick_ms_median"] - plain["tick_ms_median"], 2)
            r["senses_added_ms_mean"] = round(r["tick_ms_mean"] - plain["tick_ms_mean"], 2)
            r["senses_added_cpu_ms_median"] = round(
                r["tick_cpu_ms_median"] - plain["tick_cpu_ms_median"], 2
            )
            r["senses_added_cpu_ms_mean"] = round(
                r["tick_cpu_ms_mean"] - plain["tick_cpu_ms_mean"], 2
            )
    out = {
        "benchmark": "live_autonomy",
        "city": "grid",
        "fleet": FLEET,
        "speed": SPEED,
        "seed": args.seed,
        "ev_per_hour": args.ev_per_hour,
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
        f"{args.ticks} measured ticks per run, {args.ev_per_hour:g} ambulances per hour. "
        "Senses: roof microphones + siren detector and city-block occlusion (as in "
        "`robotaxi drive`; the service's default) or cameras only. "
        "`.venv/bin/python benchmarks/bench_live_autonomy.py`",
        "",
        "| --autonomous | senses | median ms | p95 ms | max ms | CPU median / p95 / mean ms | "
        "× vs 0 | senses add (wall median / mean ms) | senses add (CPU median / mean ms) | "
        "ticks over budget | ticks with a stack driving | ticks a siren heard | "
        "achievable speed (wall / CPU median) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        added = (
            f"{r['senses_added_ms_median']} / {r['senses_added_ms_mean']}"
            if "senses_added_ms_median" in r
            else "–"
        )
        added_cpu = (
            f"{r['senses_added_cpu_ms_median']} / {r['senses_added_cpu_ms_mean']}"
            if "senses_added_cpu_ms_median" in r
            else "–"
        )
        lines.append(
            f"| {r['autonomous']} | {'on' if r['senses'] else 'off'} | {r['tick_ms_median']} | "
            f"{r['tick_ms_p95']} | {r['tick_ms_max']} | {r['tick_cpu_ms_median']} / "
            f"{r['tick_cpu_ms_p95']} / {r['tick_cpu_ms_mean']} | "
            f"{r['median_ratio_to_autonomous_0']} | {added} | {added_cpu} | "
            f"{r['ticks_over_budget']}/{r['ticks']} | {r['ticks_with_a_stack_driving']} | "
            f"{r['ticks_with_a_siren_heard']} | {r['achievable_speed_median']}× / "
            f"{r['achievable_speed_cpu_median']}× |"
        )
    lines += [
        "",
        f"Machine: {platform.platform()} (2 cores shared with other work while measured: the "
        "CPU columns, this thread's CPU time per tick, are the load-independent measure).",
    ]
    (RESULTS / "live_autonomy.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
