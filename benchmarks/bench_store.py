"""Store throughput on an SQLite file: appending the trip event log, and reading a rider's rides.

Run: .venv/bin/python benchmarks/bench_store.py
Writes benchmarks/results/store.json and store.md. Each figure is the median of 3 runs on a
fresh file; the baseline (one transaction per event, the naive way) is measured in the same
run so that the ratio is independent of how fast this machine's disk is today.
"""

from __future__ import annotations

import json
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy

from robotaxi.core.time import TimePoint
from robotaxi.core.types import RideRequest, TripEvent, TripState
from robotaxi.store.store import SqliteSync, Store

RESULTS = Path(__file__).resolve().parent / "results"
RUNS = 3
EVENTS = 50_000
BATCH = 500
EVENTS_PER_TRIP = 10
BASELINE_EVENTS = 2_000  # one commit each: enough for a stable rate, quick at FULL sync
STATES = list(TripState)[:EVENTS_PER_TRIP]


def simulated_stream() -> tuple[list[RideRequest], list[TripEvent]]:
    """5,000 trips of 10 events each, interleaved in time as a simulation emits them."""
    trips = EVENTS // EVENTS_PER_TRIP
    rides = [
        RideRequest(
            f"trip-{i:05d}",
            f"p{i}",
            "Sim",
            TimePoint.from_s(i * 0.7),
            10.0 * i,
            5.0,
            10.0 * i + 900.0,
            1200.0,
        )
        for i in range(trips)
    ]
    events = [
        TripEvent(
            trip_id=f"trip-{i:05d}",
            seq=seq,
            time=TimePoint.from_s(i * 0.7 + 40.0 * seq),
            state=STATES[seq],
            vehicle_id=f"taxi_{i % 300}",
            cause="fleet",
            data={"eta_s": 120.0 - seq, "edge": f"e{i % 997}"},
        )
        for i in range(trips)
        for seq in range(EVENTS_PER_TRIP)
    ]
    events.sort(key=lambda e: (e.time.time_us, e.trip_id))
    return rides, events


def append_rate(folder: Path, sync: SqliteSync, per_event: bool) -> float:
    """Events per second appended (after the rides are in place), on a fresh file."""
    rides, events = simulated_stream()
    if per_event:
        events = events[:BASELINE_EVENTS]
    with Store.open(
        f"sqlite:///{folder / f'{sync}-{per_event}.sqlite'}", sqlite_synchronous=sync
    ) as store:
        store.record(rides=rides)
        start = time.perf_counter()
        if per_event:
            for event in events:
                store.append_events([event])
        else:
            for first in range(0, len(events), BATCH):
                store.append_events(events[first : first + BATCH])
        elapsed = time.perf_counter() - start
        if store.event_count() != len(events):
            raise RuntimeError("benchmark wrote a different number of events than it sent")
    return len(events) / elapsed


def rider_read_ms(folder: Path) -> tuple[float, int]:
    """Median ms to list one rider's rides among 1,000 riders with 5 rides each (plus 50)."""
    with Store.open(f"sqlite:///{folder / 'riders.sqlite'}") as store:
        riders = [store.create_rider(f"rider {i}")[0] for i in range(1_000)]
        requests = [
            RideRequest(
                f"ride-{r.id}-{k}",
                r.id,
                r.name,
                TimePoint.from_s(60.0 * k + i),
                0.0,
                0.0,
                500.0,
                500.0,
            )
            for i, r in enumerate(riders)
            for k in range(50 if i == 0 else 5)
        ]
        for first in range(0, len(requests), BATCH):
            store.record(rides=requests[first : first + BATCH], registered=True)
        target = riders[0].id
        times = []
        for _ in range(200):
            start = time.perf_counter()
            found = store.rides_of_rider(target)
            times.append(time.perf_counter() - start)
        return 1000.0 * statistics.median(times), len(found)


def main() -> int:
    results: dict[str, object] = {}
    rates: dict[str, list[float]] = {"batched_full": [], "batched_normal": [], "per_event": []}
    read_ms: list[float] = []
    for run in range(RUNS):
        with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
            folder = Path(tmp)
            rates["batched_full"].append(append_rate(folder, "FULL", per_event=False))
            rates["batched_normal"].append(append_rate(folder, "NORMAL", per_event=False))
            rates["per_event"].append(append_rate(folder, "FULL", per_event=True))
            ms, n_found = rider_read_ms(folder)
            read_ms.append(ms)
        print(
            f"run {run + 1}/{RUNS}: batched FULL {rates['batched_full'][-1]:,.0f} ev/s, "
            f"NORMAL {rates['batched_normal'][-1]:,.0f} ev/s, per-event "
            f"{rates['per_event'][-1]:,.0f} ev/s, rider read {ms:.2f} ms",
            flush=True,
        )
    median = {k: statistics.median(v) for k, v in rates.items()}
    results = {
        "what": f"append {EVENTS} trip events to SQLite in batches of {BATCH}; read one "
        f"rider's rides ({n_found} of 5,045)",
        "runs": RUNS,
        "events": EVENTS,
        "batch": BATCH,
        "events_per_s_median": {k: round(v) for k, v in median.items()},
        "events_per_s_all": {k: [round(x) for x in v] for k, v in rates.items()},
        "baseline": f"one transaction per event (FULL sync), first {BASELINE_EVENTS} events",
        "speedup_batched_full_vs_per_event": round(median["batched_full"] / median["per_event"], 1),
        "rider_rides_read_ms_median": round(statistics.median(read_ms), 3),
        "rider_rides_read_rows": n_found,
        "machine": {
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "sqlalchemy": sqlalchemy.__version__,
            "platform": platform.platform(),
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "store.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "store.md").write_text(
        "# store benchmark (SQLite file)\n\n"
        f"Median of {RUNS} runs, fresh file each; `.venv/bin/python benchmarks/bench_store.py`.\n\n"
        "| what | median |\n|---|---|\n"
        f"| append {EVENTS:,} events, batches of {BATCH}, synchronous=FULL | "
        f"{median['batched_full']:,.0f} events/s |\n"
        f"| same, synchronous=NORMAL | {median['batched_normal']:,.0f} events/s |\n"
        f"| baseline: one transaction per event, FULL | {median['per_event']:,.0f} events/s |\n"
        f"| batched FULL ÷ baseline | {results['speedup_batched_full_vs_per_event']}× |\n"
        f"| list one rider's rides ({n_found} rows of 5,045) | "
        f"{results['rider_rides_read_ms_median']} ms |\n\n"
        f"SQLite {sqlite3.sqlite_version}, SQLAlchemy {sqlalchemy.__version__}, "
        f"Python {platform.python_version()}.\n"
    )
    print(json.dumps(results["events_per_s_median"]), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
