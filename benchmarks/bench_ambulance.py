"""Ambulances crossing the city: travel time with and without our clear-the-way logic and
with and without emergency pre-emption at the signals.

Each ambulance has an ordinary-car twin on the same route (departing 90 s later, so it is
neither blocked by nor cleared for the ambulance). With SUMO's bluelight device alone,
ambulances get stuck behind cars on one-lane streets; our logic makes the cars ahead of an
ambulance on its route park at the kerb until it has passed. Pre-emption turns a signal
green on the ambulance's approach (on `sf` only the signals DataSF lists with fire
pre-emption, elsewhere every signal). Same seed, same traffic, same ambulance routes in
every row.

    .venv/bin/python benchmarks/bench_ambulance.py [--quick] [--city sf-mission]

writes benchmarks/results/ambulance.json and ambulance.md (ambulance-quick.* with --quick,
ambulance-<city>.* for another city).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from robotaxi.config import load_config
from robotaxi.sim.runner import ServiceSimulation

RESULTS = Path(__file__).resolve().parent / "results"


def run(clear_way: bool, preemption: bool, city: str, quick: bool) -> dict[str, object]:
    overrides = {
        "map.city": city,
        "hours": 0.25 if quick else 1.0,
        "seed": 7,
        "world.emergency_per_hour": 12.0,
        "world.clear_way_for_emergency": clear_way,
        "world.emergency_preemption": preemption,
    }
    config = load_config(overrides=overrides)
    with tempfile.TemporaryDirectory() as work:
        history = ServiceSimulation(config, Path(work), with_fleet=False).run()
    pairs = [
        (e.vehicle_id, e.route_m, e.travel_s, e.probe_travel_s)
        for e in history.emergency
        if e.travel_s and e.probe_travel_s
    ]
    ratios = [a / b for _, _, a, b in pairs]
    speeds = [m / a for _, m, a, _ in pairs]
    return {
        "clear_way": clear_way,
        "preemption": preemption,
        "signals_preempted": history.world.preemptions,
        "ambulances_completed": len(pairs),
        "ambulances_total": len(history.emergency),
        "ratio_to_ordinary_car_median": round(statistics.median(ratios), 3) if ratios else None,
        "ratio_to_ordinary_car_mean": round(statistics.fmean(ratios), 3) if ratios else None,
        "ambulance_speed_mps_median": round(statistics.median(speeds), 2) if speeds else None,
        "cars_cleared": history.world.cleared_for_ev,
        "teleports": history.world.teleports,
        "wall_s": round(history.wall_s, 1),
        "runs": [
            {"id": i, "route_m": round(m), "ambulance_s": a, "ordinary_car_s": b}
            for i, m, a, b in pairs
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="grid city, 15 minutes")
    parser.add_argument("--city", default=None, help="city (default sf-mission; grid if --quick)")
    args = parser.parse_args()
    city = args.city or ("grid" if args.quick else "sf-mission")
    rows = []
    for clear_way, preemption in ((False, False), (True, False), (False, True), (True, True)):
        print(f"running: clear the way = {clear_way}, pre-emption = {preemption} …", flush=True)
        rows.append(run(clear_way, preemption, city, args.quick))
        print(f"  {rows[-1]['ratio_to_ordinary_car_median']} × an ordinary car's time", flush=True)
    RESULTS.mkdir(exist_ok=True)
    name = "ambulance-quick" if args.quick else "ambulance"
    if args.city and not args.quick:
        name = f"ambulance-{city}"
    (RESULTS / f"{name}.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "# Ambulance travel time: clearing the way, and pre-emption at the signals",
        "",
        f"{city}, {'15 min' if args.quick else 'Tue 08:00–09:00'}, background traffic,"
        " 12 ambulances/h, seed 7; ratio = ambulance time / ordinary-car twin's time on the"
        " same route (lower is better).",
        "",
        "| clear the way | pre-emption | ambulances | median ratio | mean ratio"
        " | median speed m/s | cars cleared | signals pre-empted | wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['clear_way']} | {r['preemption']} | "
            f"{r['ambulances_completed']}/{r['ambulances_total']} | "
            f"{r['ratio_to_ordinary_car_median']} | {r['ratio_to_ordinary_car_mean']} | "
            f"{r['ambulance_speed_mps_median']} | {r['cars_cleared']} | "
            f"{r['signals_preempted']} | {r['wall_s']} |"
        )
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
