"""A DataSF signal whose point fell beside its junction, on a bend of one street, stands for
the crossings near it: they are signalised too (`robotaxi.map.signal_clusters`)."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

from robotaxi.map.signal_clusters import SIGNAL_CLUSTER_M, signal_cluster_patch

Nodes = dict[str, tuple[float, float, str]]  # id -> (x m, y m, type)
Edges = list[tuple[str, str, str]]  # (from, to, road class)
M_PER_DEG = 111_320.0
LAT = 37.76
PRIMARY, RES, SERVICE = "highway.primary", "highway.residential", "highway.service"


def _lonlat(x_m: float, y_m: float) -> tuple[float, float]:
    return -122.43 + x_m / (M_PER_DEG * math.cos(math.radians(LAT))), LAT + y_m / M_PER_DEG


def _patched(tmp_path: Path, nodes: Nodes, edges: Edges) -> set[str]:
    root = ET.Element("nodes")
    for node_id, (x, y, kind) in nodes.items():
        lon, lat = _lonlat(x, y)
        ET.SubElement(
            root,
            "node",
            {"id": node_id, "x": repr(lon), "y": repr(lat)} | ({"type": kind} if kind else {}),
        )
    node_file = tmp_path / "city.nod.xml"
    ET.ElementTree(root).write(node_file)
    root = ET.Element("edges")
    for k, (a, b, road) in enumerate(edges):
        ET.SubElement(root, "edge", {"id": f"e{k}", "from": a, "to": b, "type": road})
    edge_file = tmp_path / "city.edg.xml"
    ET.ElementTree(root).write(edge_file)
    out = tmp_path / "signals.nod.xml"
    count = signal_cluster_patch(node_file, edge_file, out)
    patched = list(ET.parse(out).iter("node"))
    assert all(n.get("type") == "traffic_light" for n in patched)
    for n in patched:  # where the node is
        lon, lat = _lonlat(*nodes[n.get("id", "")][:2])
        assert (float(n.get("x", 0)), float(n.get("y", 0))) == (lon, lat)
    assert count == len(patched)
    return {n.get("id", "") for n in patched}


def _market_16th_noe(signal_at: str) -> tuple[Nodes, Edges]:
    """Market Street crossed by 16th Street and, 12 m on, by Noe Street, which bends 5 m
    north of Market (`noe_bend`); Sanchez crosses Market 50 m east."""
    nodes: Nodes = {
        "m_w": (-100, -10, ""), "m16": (-8, -5, ""), "mnoe": (4, -3, ""), "m_e": (100, 5, ""),
        "noe_bend": (4, 2, ""), "noe_n": (4, 100, ""),
        "s16_w": (-100, -5, ""), "s16_e": (100, -5, ""), "noe_s": (4, -100, ""),
        "sanchez": (4 + SIGNAL_CLUSTER_M + 30, -3, ""), "sanchez_n": (54, 100, ""),
    }  # fmt: skip
    x, y, _ = nodes[signal_at]
    nodes[signal_at] = (x, y, "traffic_light")
    edges: Edges = [
        ("m_w", "m16", PRIMARY), ("m16", "mnoe", PRIMARY), ("mnoe", "sanchez", PRIMARY),
        ("sanchez", "m_e", PRIMARY), ("s16_w", "m16", RES), ("m16", "noe_s", RES),
        ("noe_n", "noe_bend", RES), ("noe_bend", "mnoe", RES), ("mnoe", "s16_e", RES),
        ("sanchez", "sanchez_n", RES),
    ]  # fmt: skip
    return nodes, edges


def test_a_signal_beside_its_junction_signalises_the_crossings_near_it(tmp_path: Path) -> None:
    """DataSF's point for Market, 16th and Noe lies on the bend of Noe Street, 5 m from the
    junction: both crossings become signals, the next one along Market (Sanchez) does not."""
    nodes, edges = _market_16th_noe("noe_bend")
    assert _patched(tmp_path, nodes, edges) == {"m16", "mnoe"}


def test_a_signal_on_a_crossing_is_left_as_it_is(tmp_path: Path) -> None:
    """A signal on a crossing adds nothing, even with another crossing 12 m away (netconvert
    joins close nodes itself; signalising the other nodes of divided roads jammed more)."""
    nodes, edges = _market_16th_noe("mnoe")
    assert _patched(tmp_path, nodes, edges) == set()


def test_driveways_do_not_make_a_crossing(tmp_path: Path) -> None:
    nodes, edges = _market_16th_noe("noe_bend")
    # Market Street's node at 16th is only where a driveway leaves a two-node street
    edges = [e for e in edges if e[2] != RES or "m16" not in e[:2]]
    nodes["lot"] = (-8, -40, "")
    edges.append(("m16", "lot", SERVICE))
    assert _patched(tmp_path, nodes, edges) == {"mnoe"}


def test_a_city_without_signals_gets_an_empty_patch(tmp_path: Path) -> None:
    nodes, edges = _market_16th_noe("noe_bend")
    nodes["noe_bend"] = (4, 2, "")
    assert _patched(tmp_path, nodes, edges) == set()
