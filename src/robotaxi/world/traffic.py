"""Route files for the city: background trips (SUMO's randomTrips.py) and ambulance runs.

Both are generated once per (network, settings, seed) and cached next to the network, so a
repeated run with the same seed reads the same files and is deterministic.
"""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robotaxi.core.errors import WorldError
from robotaxi.map import RoadMap, RoutingGraph
from robotaxi.map.model import ROBOTAXI_VCLASS

ROBOTAXI_TYPE = "robotaxi"
AMBULANCE_TYPE = "ambulance"
PROBE_TYPE = "probe"  # an ordinary car on an ambulance's route, to compare travel times
BACKGROUND_TYPE = "background"
CAR_TYPE = "car"  # a scripted ordinary car in a driving scenario
PROBE_LAG_S = 90.0
# SUMO's travel time per edge for routing around jams: updated every 10 s and averaged over
# the last 18 updates (3 minutes), long enough to smooth a signal's cycle, short enough to see
# a queue build (SUMO's default: every second, over 180 updates)
AMBULANCE_LENGTH_M = 6.5  # the ambulances' vType (`vehicle_types_xml`)
AMBULANCE_WIDTH_M = 2.16


def sumo_heading(angle_deg: float) -> float:
    """SUMO's angle (degrees clockwise from north) → ours (radians counter-clockwise from east)."""
    return math.radians(90.0 - angle_deg)


REROUTING_OPTIONS = (
    "--device.rerouting.adaptation-interval", "10",
    "--device.rerouting.adaptation-steps", "18",
)  # fmt: skip


def sumo_home() -> Path:
    import sumo  # the wheel: tools/ and data/ live beside it

    return Path(sumo.SUMO_HOME)


def sumo_env() -> dict[str, str]:
    home = sumo_home()
    env = dict(os.environ, SUMO_HOME=str(home))
    env["PROJ_DATA"] = env["PROJ_LIB"] = str(home / "data" / "proj")
    return env


def vehicle_types_xml(
    robotaxi_length: float, robotaxi_width: float, max_speed: float, *, rerouting: bool = False
) -> str:
    """vTypes: our robotaxi (I-PACE sized, white), background cars, ambulances with bluelight.

    With `rerouting`, robotaxis carry SUMO's rerouting device: SUMO then keeps travel times
    per edge smoothed over the last minutes (`REROUTING_OPTIONS`), which our cars' routing
    uses (routing mode "aggregated"). The device's own periodic rerouting stays off."""
    device = '\n        <param key="has.rerouting.device" value="true"/>' if rerouting else ""
    return f"""<additional>
    <vType id="{ROBOTAXI_TYPE}" vClass="{ROBOTAXI_VCLASS}" length="{robotaxi_length}"
           width="{robotaxi_width}" maxSpeed="{max_speed}" color="255,255,255"
           accel="2.6" decel="4.5" sigma="0.2" minGap="2.0">{device}
    </vType>
    <vType id="{PROBE_TYPE}" vClass="passenger" color="0,160,255" sigma="0.5"/>
    <vType id="{CAR_TYPE}" vClass="passenger" color="150,150,170" sigma="0.3"/>
    <vType id="{AMBULANCE_TYPE}" vClass="emergency" length="{AMBULANCE_LENGTH_M}"
           width="{AMBULANCE_WIDTH_M}" color="255,40,40"
           guiShape="emergency" speedFactor="1.3" accel="2.6" decel="5" sigma="0.2"
           jmDriveRedSpeed="13.89" minGap="2.5">
        <param key="has.bluelight.device" value="true"/>
    </vType>
</additional>
"""


def _digest(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:12]


def background_routes(
    road_map: RoadMap,
    vehicles_per_hour: float,
    end_s: float,
    seed: int,
    out_dir: Path,
) -> Path | None:
    """Background trips over the network (randomTrips + duarouter with CH), cached by content."""
    if vehicles_per_hour <= 0:
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    period = 3600.0 / vehicles_per_hour
    key = _digest(road_map.net_file.name, round(period, 4), round(end_s), seed, "bg-v1")
    target = out_dir / f"bg-{key}.rou.xml"
    if target.exists():
        return target
    script = sumo_home() / "tools" / "randomTrips.py"
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".trips-") as tmp:
        routes = Path(tmp) / "bg.rou.xml"
        cmd = [
            sys.executable, str(script), "-n", str(road_map.net_file), "-b", "0", "-e",
            str(int(end_s)), "-p", f"{period:.4f}", "--fringe-factor", "5", "--min-distance",
            "500", "--seed", str(seed), "--validate", "--duarouter-routing-algorithm", "CH",
            "--prefix", "bg", "--trip-attributes", f'type="{BACKGROUND_TYPE}"',
            "--additional-files", str(_types_file(out_dir)),
            "-o", str(Path(tmp) / "bg.trips.xml"), "-r", str(routes),
        ]  # fmt: skip
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=sumo_env(), cwd=tmp, check=False
        )
        if proc.returncode != 0 or not routes.exists():
            last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise WorldError(f"generating background traffic failed: {last[0]}")
        os.replace(routes, target)
    return target


def _types_file(out_dir: Path) -> Path:
    path = out_dir / "bg-types.add.xml"
    if not path.exists():
        path.write_text(
            f'<additional><vType id="{BACKGROUND_TYPE}" vClass="passenger" '
            'color="120,120,140" sigma="0.5"/></additional>\n'
        )
    return path


@dataclass(frozen=True, slots=True)
class EmergencyRun:
    """One ambulance crossing the service area, and its ordinary-car twin (the probe).

    The probe drives the same route PROBE_LAG_S later, so that it neither blocks the
    ambulance nor is cleared out of its way, and its travel time is an ordinary car's.
    """

    vehicle_id: str
    probe_id: str
    depart_s: float
    edges: tuple[str, ...]


def emergency_runs(
    road_map: RoadMap,
    graph: RoutingGraph,
    per_hour: float,
    end_s: float,
    seed: int,
    min_length_m: float = 1500.0,
) -> list[EmergencyRun]:
    """Ambulance runs at a Poisson rate, each between two far-apart edges of the main network."""
    if per_hour <= 0:
        return []
    rng = np.random.default_rng([seed, 911])
    count = rng.poisson(per_hour * end_s / 3600.0)
    if per_hour * end_s / 3600.0 >= 0.5:
        count = max(count, 1)  # a run that asks for ambulances sees at least one
    departs = np.sort(rng.uniform(0.02, 0.9, size=count)) * end_s
    edges = graph.edge_ids
    runs: list[EmergencyRun] = []
    for k, depart in enumerate(departs):
        for _attempt in range(50):
            a, b = rng.choice(len(edges), size=2, replace=False)
            route = graph.route(edges[a], edges[b])
            length = sum(road_map.edges[e].length for e in route)
            if route and length >= min_length_m:
                runs.append(EmergencyRun(f"ambulance{k}", f"probe{k}", float(depart), route))
                break
    return runs


def emergency_routes_xml(runs: list[EmergencyRun]) -> str:
    root = ET.Element("routes")
    entries = [(r.depart_s, r.vehicle_id, AMBULANCE_TYPE, r.edges) for r in runs]
    entries += [(r.depart_s + PROBE_LAG_S, r.probe_id, PROBE_TYPE, r.edges) for r in runs]
    for depart, vid, vtype, edges in sorted(entries):
        veh = ET.SubElement(
            root, "vehicle", id=vid, type=vtype, depart=f"{depart:.1f}",
            departLane="best", departSpeed="max",
        )  # fmt: skip
        ET.SubElement(veh, "route", edges=" ".join(edges))
    return ET.tostring(root, encoding="unicode")


@dataclass(frozen=True, slots=True)
class SumoSetup:
    """What a run adds to our city's SUMO inputs (SUMO's own taxi baseline uses it): vTypes
    in place of ours, more route files (taxis, riders), more options, SUMO's router, and
    SUMO's own end time (default: an hour past the service window).

    Our cars route with SUMO's A* (`changeTarget`): the same fastest routes as its default
    Dijkstra, 3× faster on the whole city (20 vs 60 ms a call, 600 random targets)."""

    types_xml: str | None = None
    route_files: tuple[Path, ...] = ()
    extra_args: tuple[str, ...] = ()
    routing_algorithm: str = "astar"
    sumo_end_s: float | None = None
