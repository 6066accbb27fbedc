"""SUMO's mesoscopic model has no junction interiors, so the network it drives gives each edge
its centre-to-centre length (`map.meso_lengths`): an edge netconvert cut to 0.1 m between
two close signals otherwise lets one car at a time through and jams the street behind it
(the whole city's morning gridlock). Real netconvert and real SUMO."""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path

import pytest

from robotaxi.config import load_config
from robotaxi.map import build_network
from robotaxi.map.build import _binary, _run
from robotaxi.map.meso_lengths import meso_lengths
from robotaxi.world.sumo_world import sumo_command
from robotaxi.world.traffic import sumo_env, sumo_home

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

_LANE = re.compile(r'<lane id="([^"]+)".*? length="([^"]+)" shape="([^"]+)"')
_EDGE = re.compile(r'<edge id="([^"]+)" from="([^"]+)" to="([^"]+)"')
_JUNCTION = re.compile(r'<junction id="([^"]+)" type="([^"]+)" x="([^"]+)" y="([^"]+)"')


def _lanes(net: Path) -> dict[str, tuple[float, list[tuple[float, float]]]]:
    out = {}
    for m in _LANE.finditer(net.read_text()):
        pts = [tuple(float(v) for v in p.split(",")[:2]) for p in m.group(3).split()]
        out[m.group(1)] = (float(m.group(2)), pts)
    return out


def _two_close_signals(tmp_path: Path) -> Path:
    """A 2-lane street W→E through two signalised crossings 12 m apart (node centres), each
    with a 2-lane cross street: netconvert leaves 0.2 m of street between their junctions."""
    nodes = tmp_path / "n.nod.xml"
    nodes.write_text(
        "<nodes>"
        '<node id="w" x="0" y="0"/><node id="e" x="700" y="0"/>'
        '<node id="a" x="300" y="0" type="traffic_light"/>'
        '<node id="b" x="312" y="0" type="traffic_light"/>'
        '<node id="an" x="300" y="200"/><node id="as" x="300" y="-200"/>'
        '<node id="bn" x="312" y="200"/><node id="bs" x="312" y="-200"/>'
        "</nodes>"
    )
    streets = [("wa", "w", "a"), ("ab", "a", "b"), ("be", "b", "e")]
    cross = [("an", "an", "a"), ("a_s", "a", "as"), ("bn", "bn", "b"), ("b_s", "b", "bs")]
    edges = tmp_path / "n.edg.xml"
    edges.write_text(
        "<edges>"
        + "".join(
            f'<edge id="{i}" from="{f}" to="{t}" numLanes="2" speed="{v}"/>'
            for group, v in ((streets, 13.4), (cross, 11.2))
            for i, f, t in group
        )
        + "</edges>"
    )
    net = tmp_path / "two.net.xml"
    _run(
        [_binary("netconvert"), "--node-files", str(nodes), "--edge-files", str(edges),
         "--no-turnarounds", "true", "-o", str(net), "--no-warnings"],
        "netconvert (two close signals)",
    )  # fmt: skip
    return net


def test_every_edge_is_centre_to_centre_and_internal_lanes_are_untouched(
    tmp_path: Path,
) -> None:
    net = _two_close_signals(tmp_path)
    micro = _lanes(net)
    assert micro["ab_0"][0] < 1.0  # netconvert's cut: the two junctions nearly touch
    meso = tmp_path / "two.meso.net.xml"
    assert meso_lengths(net, meso) == 7
    lanes = _lanes(meso)
    centres = {
        m.group(1): (float(m.group(3)), float(m.group(4)))
        for m in _JUNCTION.finditer(meso.read_text())
    }
    ends = {m.group(1): (m.group(2), m.group(3)) for m in _EDGE.finditer(meso.read_text())}
    assert set(lanes) == set(micro)
    for lane_id, (length, pts) in lanes.items():
        if lane_id.startswith(":"):
            assert length == micro[lane_id][0]  # junction interiors as they were
            continue
        start, end = ends[lane_id.rsplit("_", 1)[0]]
        a, b = centres[start], centres[end]
        expected = (
            micro[lane_id][0]
            + math.hypot(pts[0][0] - a[0], pts[0][1] - a[1])
            + math.hypot(b[0] - pts[-1][0], b[1] - pts[-1][1])
        )
        assert length == pytest.approx(expected, abs=0.011)
        assert pts == micro[lane_id][1]  # shapes unchanged: maps draw the same streets
    # the street between the two signals now stores cars: ≥ the 12 m between the centres
    assert lanes["ab_0"][0] >= 12.0 and lanes["ab_1"][0] >= 12.0


def _arrivals_through(net: Path, tmp_path: Path, name: str) -> tuple[int, int]:
    """(inserted, arrived) along the street, 1,500 cars an hour for 20 min (and 300 an hour
    on each cross street), meso, with the world's own meso options."""
    routes = tmp_path / f"{name}.rou.xml"
    flows = (("f", "wa ab be", 1500), ("g", "an a_s", 300), ("h", "bn b_s", 300))
    routes.write_text(
        '<routes><vType id="car" vClass="passenger"/>'
        + "".join(
            f'<flow id="{i}" type="car" begin="0" end="1200" vehsPerHour="{vph}" '
            f'departLane="best"><route edges="{edges}"/></flow>'
            for i, edges, vph in flows
        )
        + "</routes>"
    )
    types = tmp_path / "types.add.xml"
    types.write_text("<additional/>")
    world = load_config(overrides={"world.traffic_model": "meso"}).world
    cmd = sumo_command(net, types, [routes], world, 1, end_s=1500.0)
    cmd[0] = str(sumo_home() / "bin" / "sumo")
    summary = tmp_path / f"{name}.summary.xml"
    cmd += ["--summary-output", str(summary)]
    subprocess.run(cmd, env=sumo_env(), check=True, capture_output=True)
    last = summary.read_text().strip().splitlines()[-2]
    inserted = int(re.search(r'inserted="(\d+)"', last).group(1))  # type: ignore[union-attr]
    arrived = int(re.search(r'arrived="(\d+)"', last).group(1))  # type: ignore[union-attr]
    return inserted, arrived


@pytest.mark.sumo
def test_meso_carries_a_street_through_two_close_signals(tmp_path: Path) -> None:
    net = _two_close_signals(tmp_path)
    meso = tmp_path / "two.meso.net.xml"
    meso_lengths(net, meso)
    inserted, arrived = _arrivals_through(meso, tmp_path, "meso_lengths")
    # 700 cars in 20 min (500 along, 200 across): every one of them in, and all but those
    # still driving at the end through
    assert inserted == 700
    assert arrived >= 0.9 * inserted
    # the cut network, same cars: the 0.2 m edge between the signals holds one car at a
    # time, the street jams back to where the cars start (why the city gridlocked)
    cut_inserted, cut_arrived = _arrivals_through(net, tmp_path, "cut")
    assert cut_inserted < 0.8 * inserted
    assert cut_arrived < 0.8 * arrived


def test_the_meso_network_is_cached_beside_the_micro_one(tmp_path: Path) -> None:
    micro = build_network("grid", SHARED_DATA, tmp_path)
    meso = build_network("grid", SHARED_DATA, tmp_path, traffic_model="meso")
    assert meso.net_file != micro.net_file and meso.net_file.exists()
    assert (meso.name, meso.crs, meso.offset) == (micro.name, micro.crs, micro.offset)
    assert not meso.from_cache
    again = build_network("grid", SHARED_DATA, tmp_path, traffic_model="meso")
    assert again.net_file == meso.net_file and again.from_cache
    lanes_micro, lanes_meso = _lanes(micro.net_file), _lanes(meso.net_file)
    longer = [k for k in lanes_micro if lanes_meso[k][0] > lanes_micro[k][0]]
    assert longer and all(not k.startswith(":") for k in longer)


@pytest.mark.sumo
def test_a_background_run_can_be_stopped_and_still_counts(tmp_path: Path) -> None:
    """The calibration's day runs stop once a jammed day has failed its bound (more
    teleports than `max_teleports`): SUMO gets SIGINT at its next step report and still
    writes its statistics. Here the limit is below zero, so the first report stops it."""
    from robotaxi.world.calibration_runs import run_background

    net = _two_close_signals(tmp_path)
    routes = tmp_path / "street.rou.xml"
    routes.write_text(
        '<routes><vType id="car" vClass="passenger"/>'
        '<flow id="f" type="car" begin="0" end="14400" vehsPerHour="1500" departLane="best">'
        '<route edges="wa ab be"/></flow></routes>'
    )
    world = load_config(overrides={"world.traffic_model": "meso"}).world
    whole = run_background(
        net, [routes], world, seed=1, end_s=14400.0, measure_begin_s=14340.0,
        out_dir=tmp_path / "whole", max_teleports=10_000,
    )  # fmt: skip
    assert not whole.stopped_early and whole.inserted > 2_000
    stopped = run_background(
        net, [routes], world, seed=1, end_s=14400.0, measure_begin_s=14340.0,
        out_dir=tmp_path / "stopped", max_teleports=-1,
    )  # fmt: skip
    assert stopped.stopped_early
    # SUMO's statistics at the stop: some cars in, far fewer than the whole run's
    assert 0 < stopped.inserted < whole.inserted / 2
