"""Streets closed to some vehicle classes, patched into a plain-XML city before netconvert.

A restriction file (YAML, e.g. `restrictions_sf.yaml`) lists stretches of named streets:
the edges of `street` that head `heading` (east/west/north/south: the sign of the edge's
end minus its start) between where the street meets the cross streets `from` and `to` are
closed to the SUMO vehicle classes in `closed_to`. `restriction_patch` writes them as a
netconvert edge patch (`<edge id=… disallow=…/>`, loaded after the city's own edge file,
updates those edges); the road type's own `disallow` list is kept.
"""

from __future__ import annotations

import gzip
import math
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

import yaml

from robotaxi.core.errors import MapBuildError

RESTRICTIONS_SF = Path(__file__).with_name("restrictions_sf.yaml")
HEADINGS = {"east": (1, 0), "west": (-1, 0), "north": (0, 1), "south": (0, -1)}
# a cross street "meets" the street at a node of both, or at nodes this close (joined
# junctions: the two streets' edges can end at neighbouring nodes of one intersection)
MEET_RADIUS_M = 30.0
M_PER_DEG_LAT = 111_320.0


@dataclass(frozen=True, slots=True)
class Restriction:
    street: str
    heading: str
    from_street: str
    to_street: str
    closed_to: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PlainEdge:
    edge_id: str
    name: str
    type: str
    start: tuple[float, float]  # lon, lat
    end: tuple[float, float]


def load_restrictions(path: Path) -> list[Restriction]:
    """Read and check a restriction file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise MapBuildError(f"cannot read street restrictions {path}: {exc}") from exc
    if not isinstance(raw, list):
        raise MapBuildError(f"{path}: expected a list of street restrictions")
    out = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, Mapping):
            raise MapBuildError(f"{path}: entry {i + 1} is not a mapping")
        try:
            restriction = Restriction(
                street=str(entry["street"]),
                heading=str(entry["heading"]),
                from_street=str(entry["from"]),
                to_street=str(entry["to"]),
                closed_to=tuple(str(c) for c in entry["closed_to"]),
            )
        except (KeyError, TypeError) as exc:
            raise MapBuildError(
                f"{path}: entry {i + 1} needs street, heading, from, to and closed_to ({exc})"
            ) from exc
        if restriction.heading not in HEADINGS:
            raise MapBuildError(
                f"{path}: entry {i + 1} heading {restriction.heading!r}: "
                f"use one of {', '.join(HEADINGS)}"
            )
        out.append(restriction)
    return out


def read_plain_city(nodes: Path, edges: Path) -> list[PlainEdge]:
    """Named edges of a plain-XML city whose nodes are lon/lat."""
    coords: dict[str, tuple[float, float]] = {}
    with _open(nodes) as f:
        for _, elem in ET.iterparse(f):
            if elem.tag == "node":
                coords[elem.get("id", "")] = (float(elem.get("x", 0)), float(elem.get("y", 0)))
                elem.clear()
    out = []
    with _open(edges) as f:
        for _, elem in ET.iterparse(f):
            if elem.tag == "edge":
                name = elem.get("name")
                frm, to = elem.get("from", ""), elem.get("to", "")
                if name and frm in coords and to in coords:
                    out.append(
                        PlainEdge(
                            elem.get("id", ""), name, elem.get("type", ""), coords[frm], coords[to]
                        )
                    )
                elem.clear()
    return out


def closed_edges(
    restrictions: Iterable[Restriction], edges: list[PlainEdge]
) -> dict[str, tuple[str, ...]]:
    """Edge id → vehicle classes it is closed to."""
    points_by_name: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for e in edges:
        points_by_name[e.name].extend((e.start, e.end))
    closed: dict[str, set[str]] = defaultdict(set)
    for r in restrictions:
        street = [e for e in edges if e.name == r.street]
        if not street:
            raise MapBuildError(f"street restriction: no street named {r.street!r} in the city")
        a = _meeting_point(r.street, r.from_street, street, points_by_name)
        b = _meeting_point(r.street, r.to_street, street, points_by_name)
        hx, hy = HEADINGS[r.heading]
        lo, hi = sorted((a[0] * hx + a[1] * hy, b[0] * hx + b[1] * hy))
        for e in street:
            dx, dy = e.end[0] - e.start[0], e.end[1] - e.start[1]
            if dx * hx + dy * hy <= 0:  # heading the other way (or across)
                continue
            mid = ((e.start[0] + e.end[0]) / 2, (e.start[1] + e.end[1]) / 2)
            if lo <= mid[0] * hx + mid[1] * hy <= hi:
                closed[e.edge_id].update(r.closed_to)
    return {k: tuple(sorted(v)) for k, v in closed.items()}


def restriction_patch(
    closed: Mapping[str, tuple[str, ...]], edges: list[PlainEdge], type_map: Path, out: Path
) -> None:
    """Write a netconvert edge patch closing `closed`'s edges (keeping the type's disallow)."""
    type_disallow = {
        t.get("id", ""): t.get("disallow", "").split() for t in ET.parse(type_map).iter("type")
    }
    by_id = {e.edge_id: e for e in edges}
    root = ET.Element("edges")
    for edge_id, classes in sorted(closed.items()):
        base = type_disallow.get(by_id[edge_id].type, [])
        disallow = base + [c for c in classes if c not in base]
        ET.SubElement(root, "edge", {"id": edge_id, "disallow": " ".join(disallow)})
    ET.ElementTree(root).write(out, encoding="utf-8", xml_declaration=True)


def _meeting_point(
    street: str,
    cross: str,
    street_edges: list[PlainEdge],
    points_by_name: Mapping[str, list[tuple[float, float]]],
) -> tuple[float, float]:
    cross_points = [
        p for name, pts in points_by_name.items() if name.startswith(cross) for p in pts
    ]
    if not cross_points:
        raise MapBuildError(f"street restriction: no street named {cross!r} in the city")
    best: tuple[float, tuple[float, float]] | None = None
    for e in street_edges:
        for p in (e.start, e.end):
            for q in cross_points:
                d = _distance_m(p, q)
                if best is None or d < best[0]:
                    best = (d, p)
    if best is None or best[0] > MEET_RADIUS_M:
        raise MapBuildError(
            f"street restriction: {street!r} does not meet {cross!r} in the city "
            f"(closest {best[0] if best else math.inf:.0f} m)"
        )
    return best[1]


def _distance_m(p: tuple[float, float], q: tuple[float, float]) -> float:
    lat = math.radians((p[1] + q[1]) / 2)
    return math.hypot((p[0] - q[0]) * M_PER_DEG_LAT * math.cos(lat), (p[1] - q[1]) * M_PER_DEG_LAT)


def _open(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")
