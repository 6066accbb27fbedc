"""Which SUMO set-up lets San Francisco's arterials slow down as INRIX measured, without jams?

Run: .venv/bin/python benchmarks/bench_calibration_variants.py [--scales 0.176,0.3] [--jobs 2]
Writes benchmarks/results/calibration_variants.json and calibration_variants.md.

`robotaxi calibrate` searches one knob, the Plan Bay Area demand scale, with SUMO set up as
the city runs it. This benchmark holds the demand and changes the set-up instead: per variant
(SUMO options) and scale it runs background traffic alone over the PM window as the
calibration does (3 h warm-up, 16:15–16:45 measured; the same routes, routed once at scale
1.2 and thinned, seed 7), a near-empty run (scale 0.03) for the variant's own free flow, and
reports the arterials' speed / free flow against INRIX's (PM over EA), the share of inserted
cars SUMO teleported, and the junctions where the most teleported. The first variant is the
city's own set-up (`robotaxi.world.sumo_world.MESO_OPTIONS`): the baseline, in the same run.
"""

from __future__ import annotations

import argparse
import collections
import json
import platform
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DATA_DIR = REPO.parent / "shared" / "data"
CACHE_DIR = REPO / ".cache" / "maps"
MAX_SCALE = 1.2  # routed once at this scale and thinned, as `robotaxi calibrate` does
FREE_FLOW_SCALE = 0.03
SEED = 7
DAY = 1  # Tuesday, as `robotaxi calibrate`
PERIOD = "PM"
_TELEPORT = re.compile(rb"Teleporting vehicle '[^']+'; waited too long[^,]*, from edge '([^']+)'")


def variants() -> dict[str, tuple[str, ...]]:
    """Name → SUMO options; the first is the city's own."""
    from robotaxi.world.sumo_world import MESO_OPTIONS

    meso = ("--mesosim", "true", "--meso-overtaking", "true")
    return {
        "as the city runs (junction control, signal delay from the green split)": MESO_OPTIONS,
        "+ signals' capacity from the green split (--meso-tls-flow-penalty 1)": (
            *MESO_OPTIONS, "--meso-tls-flow-penalty", "1",
        ),
        "signals by their phases (no --meso-tls-penalty)": (
            *meso, "--meso-junction-control", "true",
        ),
        "junction control only where saturated (--meso-junction-control.limited)": (
            *meso, "--meso-junction-control.limited", "true", "--meso-tls-penalty", "1",
        ),
        "no junction control": (
            *meso, "--meso-junction-control", "false", "--meso-tls-penalty", "1",
        ),
    }  # fmt: skip


def _routes() -> tuple[Path, Path, Any]:
    """The city's meso network, the PM window's routes at MAX_SCALE (cached) and the window."""
    from robotaxi.map import RoutingGraph, build_network, load_map
    from robotaxi.metrics import calibration as cal
    from robotaxi.sim.calibrate import measured_window
    from robotaxi.world.background import plan_bay_area_routes

    built = build_network("sf", DATA_DIR, CACHE_DIR, traffic_model="meso")
    allowed = frozenset(RoutingGraph(load_map(built)).index)
    window = measured_window(PERIOD, cal.PERIODS[PERIOD], 1800.0, 3 * 3600.0)
    demand = plan_bay_area_routes(
        built.net_file, DATA_DIR, window.start_s, window.end_s,
        out_dir=built.net_file.parent / "routes", scale=MAX_SCALE, seed=SEED, day=DAY,
        allowed_edges=allowed,
    )  # fmt: skip
    return built.net_file, demand.path, window


def run_one(net: Path, routes: Path, window: Any, options: tuple[str, ...], scale: float) -> dict:
    """Background alone over the window with these SUMO options at this scale."""
    from robotaxi.world.calibration_runs import thin_routes
    from robotaxi.world.traffic import sumo_env, sumo_home

    end_s, begin_s = window.end_s - window.start_s, window.measure_begin_s - window.start_s
    with tempfile.TemporaryDirectory(prefix="cal-variant-") as tmp:
        out = Path(tmp)
        thin_routes(routes, out / "bg.rou.xml", scale / MAX_SCALE, SEED)
        (out / "ed.add.xml").write_text(
            f'<additional><edgeData id="c" file="edgedata.xml" begin="{begin_s:.0f}" '
            f'end="{end_s:.0f}" freq="{end_s - begin_s:.0f}" excludeEmpty="true"/></additional>'
        )
        cmd = [
            str(sumo_home() / "bin" / "sumo"), "-n", str(net), "-r", str(out / "bg.rou.xml"),
            "-a", str(out / "ed.add.xml"), "--step-length", "1", "--seed", str(SEED),
            "--time-to-teleport", "300", "--no-step-log", "true", "--ignore-route-errors", "true",
            "--end", f"{end_s:.0f}", *options, "--log", str(out / "sumo.log"),
            "--statistic-output", str(out / "stats.xml"),
        ]  # fmt: skip
        started = time.perf_counter()
        subprocess.run(cmd, env=sumo_env(), cwd=out, check=True, capture_output=True)
        wall = time.perf_counter() - started
        stats = (out / "stats.xml").read_text()
        inserted = int(re.search(r'inserted="(\d+)"', stats).group(1))  # type: ignore[union-attr]
        places = collections.Counter(
            m.group(1).decode() for m in _TELEPORT.finditer((out / "sumo.log").read_bytes())
        )
        from robotaxi.metrics import calibration as cal

        intervals = cal.read_edge_data(out / "edgedata.xml")
    return {
        "scale": scale, "inserted": inserted, "teleports": sum(places.values()),
        "places": places, "intervals": intervals, "wall_s": round(wall, 1),
    }  # fmt: skip


def _junction(net: Any, edge_id: str) -> str:
    """The junction an edge (or an internal edge, ':node_k') leads to."""
    if edge_id.startswith(":"):
        return edge_id[1:].rsplit("_", 1)[0]
    return net.getEdge(edge_id).getToNode().getID() if net.hasEdge(edge_id) else edge_id


def score(rows: list[dict], net_file: Path, window: Any) -> list[dict]:
    """Each row's PM arterial ratios against INRIX, by its variant's own free flow."""
    import sumolib

    from robotaxi.metrics import calibration as cal

    edges = cal.read_net_edges(net_file)
    inrix_file = DATA_DIR / "sf" / "traffic" / "inrix_champ" / "ESTFILE_2016.csv.gz"
    inrix = cal.inrix_targets(cal.read_inrix(inrix_file), (PERIOD, cal.EMPTY_PERIOD))
    empty = cal.empty_ratios(inrix)
    real = {k: v for k, v in inrix.items() if k[1] == PERIOD}
    net = sumolib.net.readNet(str(net_file), withInternal=False)
    free: dict[str, Any] = {}
    for row in rows:
        if row["scale"] == FREE_FLOW_SCALE:
            free[row["variant"]] = cal.free_flow_speeds(
                row["intervals"], edges, 10.0, scale_limits=True, measured_only=True
            )
    out = []
    for row in rows:
        if row["scale"] == FREE_FLOW_SCALE:
            continue
        sim = cal.simulated_ratios(
            row["intervals"], free[row["variant"]], edges, sim_start_of_day_s=window.start_s,
            periods=(PERIOD,),
        )  # fmt: skip
        table = {
            r["facility_type"]: r["sim_over_target"]
            for r in cal.rows_json(cal.compare(sim, real, empty))
        }
        junctions: collections.Counter[str] = collections.Counter()
        for edge_id, n in row["places"].items():
            junctions[_junction(net, edge_id)] += n
        top = []
        for node_id, n in junctions.most_common(8):
            names = set()
            if net.hasNode(node_id):
                node = net.getNode(node_id)
                names = {
                    e.getName() for e in node.getIncoming() + node.getOutgoing() if e.getName()
                }
            top.append(f"{' / '.join(sorted(names)) or node_id} ({n})")
        out.append(
            {
                "variant": row["variant"], "scale": row["scale"], "inserted": row["inserted"],
                "teleports": row["teleports"],
                "teleport_pct": round(100.0 * row["teleports"] / max(row["inserted"], 1), 2),
                "sim_over_target": table,
                "stalled_share": round(cal.stalled_share(row["intervals"]), 3),
                "junctions_with_teleports": len(junctions), "top_junctions": top,
                "wall_s": row["wall_s"],
            }
        )  # fmt: skip
    return out


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Calibration variants: SUMO set-ups against INRIX, PM window",
        "",
        f"`{result['command']}` — {result['date']}, SUMO {result['sumo_version']}, "
        f"{platform.machine()}, {result['wall_s']:.0f} s wall. Background alone, PM window "
        "(3 h warm-up, 16:15–16:45 measured), routes of `robotaxi calibrate` (scale 1.2, thinned, "
        "seed 7); each variant against its own near-empty run (scale 0.03). Target: arterials' "
        "sim / target (INRIX PM over INRIX EA) within 0.85–1.15; teleports ≤ 0.5 % of inserted.",
        "",
        "| variant | scale | major arterial | minor arterial | freeway | local | teleports | "
        "stalled share | junctions with teleports | most teleports at |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in result["rows"]:
        t = r["sim_over_target"]
        lines.append(
            f"| {r['variant']} | {r['scale']:g} | {t.get('major_arterial', float('nan')):.3f} | "
            f"{t.get('minor_arterial', float('nan')):.3f} | {t.get('freeway', float('nan')):.3f} | "
            f"{t.get('local', float('nan')):.3f} | {r['teleports']:,} of {r['inserted']:,} "
            f"({r['teleport_pct']:.2f} %) | {r['stalled_share']:.3f} | "
            f"{r['junctions_with_teleports']} | {'; '.join(r['top_junctions'][:4])} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="0.176,0.3", help="demand scales, comma-separated")
    parser.add_argument("--jobs", type=int, default=2, help="SUMO runs at once (processes)")
    parser.add_argument("--only", default="", help="variants whose names contain this text")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    from robotaxi.map.build import sumo_version

    net, routes, window = _routes()
    chosen = {k: v for k, v in variants().items() if args.only in k}
    scales = [FREE_FLOW_SCALE, *(float(s) for s in args.scales.split(","))]
    jobs = [(name, opts, s) for name, opts in chosen.items() for s in scales]
    rows = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [
            (name, pool.submit(run_one, net, routes, window, opts, s)) for name, opts, s in jobs
        ]
        for k, (name, future) in enumerate(futures, start=1):
            row = {**future.result(), "variant": name}
            rows.append(row)
            print(
                f"  [{k}/{len(futures)}] {name}, scale {row['scale']:g}: {row['teleports']} "
                f"teleports of {row['inserted']} ({row['wall_s']} s)",
                file=sys.stderr, flush=True,
            )  # fmt: skip
    result = {
        "command": "python benchmarks/bench_calibration_variants.py "
        + " ".join(argv or sys.argv[1:]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "sumo_version": sumo_version(),
        "rows": score(rows, net, window),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "calibration_variants.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "calibration_variants.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
