"""Background traffic from real demand: Plan Bay Area's car trips between districts → SUMO.

Where the numbers come from (credit these wherever results built on them are shown):

- **Trips**: MTC/ABAG Plan Bay Area travel model, daily person trips between 15 districts
  (12 in San Francisco, plus the South, East and North Bay), 2015, `group_mode` "drive"
  (drive alone and shared ride; TNC trips are a separate mode), via cb-cities/sf_abm.
- **Car occupancy** (persons per car, to turn person trips into vehicles), per trip purpose:
  NHTS 2001, BTS "Highlights of the 2001 NHTS", Table A-14 (vehicle occupancy per vehicle
  mile by trip purpose): work 1.14 → Plan Bay Area's "mandatory" trips (work, school);
  family/personal business 1.81, the lowest of the non-work purposes (social/recreational
  2.05, other 2.02) → "discretionary". Over San Francisco's trips this averages 1.50
  persons per car.
- **Hour of day**: NHTS 2001 weekday (Wednesday) vehicle trips by start hour, FHWA Highway
  Statistics 2006, Table NT-3 (`HOURLY_VEHICLE_TRIPS`).
- **Gateways** to the rest of the Bay Area: the Bay Bridge (East Bay), the Golden Gate
  Bridge (North Bay) and seven roads across the San Mateo county line (South Bay), each
  weighted by its approach capacity (`Gateway.capacity_vph`, an assumption until Caltrans
  counts are wired in). North Bay ↔ South Bay trips cross the city as through traffic;
  the other trips between outside districts do not touch San Francisco and are left out.

Inside the city, trips start and end on streets (not freeways or service roads) inside their
district's polygon, chosen in proportion to street length. Trips are Poisson counts per
(origin district, destination district, hour), drawn hour by hour from their own random
stream, so a window's trips are the same whichever window around it is asked for, and a run
is deterministic in (seed, day). `scale` multiplies all demand: calibration picks it.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import os
import struct
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import reduce
from pathlib import Path

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import Transformer

from robotaxi.core.errors import DataNotFoundError, WorldError
from robotaxi.core.types import FloatArray
from robotaxi.map.model import allows_vclass, sumo_shape
from robotaxi.map.zones import TncZones, load_tnc_zones
from robotaxi.world.traffic import BACKGROUND_TYPE, sumo_env, sumo_home

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

PLANBAYAREA_SUBDIR = Path("sf") / "traffic" / "planbayarea"
TRIP_PATTERN_CSV = "data_trippattern.csv"
DISTRICT_SHAPEFILE = "DIST15_wgs84"  # .shp (polygons, lon/lat) + .dbf (DIST15, DIST15NAME)

# Plan Bay Area's 15 districts in DIST15 order (the shapefile's numbers 1..15); the CSV's
# destination columns come in the same order.
DISTRICTS: tuple[str, ...] = (
    "Downtown", "SoMa", "N. Beach/Chinatown", "Western Market", "Mission/Potrero",
    "Noe/Glen/Bernal", "Marina/N. Heights", "Richmond", "Bayshore", "Outer Mission",
    "Hill Districts", "Sunset", "South Bay", "East Bay", "North Bay",
)  # fmt: skip
SF_DISTRICTS = DISTRICTS[:12]
SOUTH_BAY, EAST_BAY, NORTH_BAY = 12, 13, 14
PURPOSES = ("mandatory", "discretionary")

# persons per car by purpose; see the module docstring for the source
OCCUPANCY: Mapping[str, float] = {"mandatory": 1.14, "discretionary": 1.81}

# Weekday vehicle trips by start hour 00..23 (sample counts; only the shape is used).
# Source: NHTS 2001, Wednesday travel days; FHWA Highway Statistics 2006, Table NT-3
# "Number of Vehicle Trips by Time of Day". 07:00–08:00 carries 7.7 % of the day's trips.
HOURLY_VEHICLE_TRIPS: tuple[int, ...] = (
    147, 82, 83, 36, 249, 639, 1607, 3893, 2994, 2294, 2600, 2967,
    3166, 3032, 3321, 3888, 3959, 4377, 3746, 2819, 2061, 1559, 783, 381,
)  # fmt: skip

DAY_S = 86400.0
# trips inside the city start and end on streets, not on freeways, ramps or service roads
ENDPOINT_TYPES = frozenset(
    f"highway.{c}"
    for c in (
        "primary", "secondary", "tertiary", "unclassified", "residential", "living_street",
    )
)  # fmt: skip
FREEWAY_TYPES = frozenset({"highway.motorway", "highway.trunk"})
ARTERIAL_TYPES = frozenset({"highway.motorway", "highway.trunk", "highway.primary"})
ALL_ROAD_TYPES = ARTERIAL_TYPES | {"highway.secondary"}
MAX_SNAP_M = 1200.0  # a gateway further than this from any matching edge is not on the map
FORMAT_VERSION = "pba-v2"  # v2: gateways may lie outside the main part


@dataclass(frozen=True, slots=True)
class Gateway:
    """Where trips to or from districts outside the city cross the network's boundary.

    `capacity_vph` (vehicles per hour, one direction) weighs the gateways of one district:
    lanes per direction at the county line × 2,000 veh/h for a freeway lane, 800 for a
    signalised arterial lane (an assumption, a stand-in for Caltrans traffic counts).
    """

    name: str
    lon: float
    lat: float
    road_types: frozenset[str]
    districts: tuple[int, ...]  # indices into DISTRICTS
    capacity_vph: float


GATEWAYS: tuple[Gateway, ...] = (
    Gateway("Bay Bridge (I-80)", -122.3610, 37.8140, FREEWAY_TYPES, (EAST_BAY,), 10000.0),
    Gateway("Golden Gate Bridge (US-101)", -122.4844, 37.8352, FREEWAY_TYPES, (NORTH_BAY,), 6000.0),
    Gateway("US-101 Bayshore Freeway", -122.3940, 37.7024, FREEWAY_TYPES, (SOUTH_BAY,), 8000.0),
    Gateway("I-280", -122.4718, 37.7000, FREEWAY_TYPES, (SOUTH_BAY,), 8000.0),
    Gateway("Junipero Serra Blvd (CA-1)", -122.4712, 37.7083, ALL_ROAD_TYPES, (SOUTH_BAY,), 1600.0),
    Gateway("Skyline Blvd (CA-35)", -122.4982, 37.7080, ALL_ROAD_TYPES, (SOUTH_BAY,), 1600.0),
    Gateway("John Daly Blvd", -122.4812, 37.7024, ALL_ROAD_TYPES, (SOUTH_BAY,), 1600.0),
    Gateway("Mission St (CA-82)", -122.4639, 37.6990, ALL_ROAD_TYPES, (SOUTH_BAY,), 1600.0),
    Gateway("Bayshore Blvd", -122.4085, 37.7015, ALL_ROAD_TYPES, (SOUTH_BAY,), 1600.0),
)  # fmt: skip


# --- Plan Bay Area's district matrix -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DistrictTrips:
    """Daily person trips between districts: `person_trips[p, o, d]` for purpose PURPOSES[p],
    origin DISTRICTS[o], destination DISTRICTS[d]."""

    year: int
    mode: str
    person_trips: FloatArray  # len(PURPOSES) × 15 × 15, person trips per day


def load_district_trips(data_dir: Path, year: int = 2015, mode: str = "drive") -> DistrictTrips:
    """Read Plan Bay Area's trip pattern (`data_dir`/sf/traffic/planbayarea)."""
    path = data_dir / PLANBAYAREA_SUBDIR / TRIP_PATTERN_CSV
    if not path.is_file():
        raise DataNotFoundError(
            f"{path} not found (background traffic from Plan Bay Area needs it): "
            "point --data-dir at the shared data folder"
        )
    trips = np.zeros((len(PURPOSES), len(DISTRICTS), len(DISTRICTS)))
    seen = np.zeros((len(PURPOSES), len(DISTRICTS)), dtype=bool)
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        if header[:4] != ["year", "group_mode", "group_purpose", "odistrict"] or len(header) != 19:
            raise WorldError(f"{path}: unexpected header {header[:5]}…; not the 15-district file")
        for row in reader:
            if row[0] != str(year) or row[1] != mode or row[2] not in PURPOSES:
                continue
            if row[3] not in DISTRICTS:
                raise WorldError(f"{path}: unknown district {row[3]!r}")
            p, o = PURPOSES.index(row[2]), DISTRICTS.index(row[3])
            trips[p, o] = [float(v) for v in row[4:]]
            seen[p, o] = True
    if not seen.all():
        raise WorldError(f"{path}: no complete {mode!r} matrix for {year}")
    return DistrictTrips(year, mode, trips)


def daily_vehicle_trips(
    trips: DistrictTrips,
    occupancy: Mapping[str, float] = OCCUPANCY,
    through_traffic: bool = True,
) -> FloatArray:
    """Vehicle trips per day (15×15) that touch San Francisco: person trips / occupancy.

    Trips between two outside districts are zero, except North Bay ↔ South Bay (through
    traffic across the city) when `through_traffic`.
    """
    vehicles = sum(trips.person_trips[p] / occupancy[name] for p, name in enumerate(PURPOSES))
    vehicles = np.asarray(vehicles, dtype=np.float64).copy()
    outside = np.arange(len(DISTRICTS)) >= len(SF_DISTRICTS)
    keep = ~np.outer(outside, outside)
    if through_traffic:
        keep[NORTH_BAY, SOUTH_BAY] = keep[SOUTH_BAY, NORTH_BAY] = True
    vehicles[~keep] = 0.0
    return vehicles


def hourly_shares(profile: Sequence[float] = HOURLY_VEHICLE_TRIPS) -> FloatArray:
    """Share of the day's trips starting in each hour 00..23 (sums to 1)."""
    shares = np.asarray(profile, dtype=np.float64)
    if shares.shape != (24,) or (shares < 0).any() or shares.sum() <= 0:
        raise WorldError("an hourly profile needs 24 non-negative numbers, not all zero")
    return shares / shares.sum()


# --- district polygons: a tiny shapefile reader (polygons only) ----------------------------


def read_district_polygons(data_dir: Path) -> tuple[shapely.Geometry, ...]:
    """The 15 district polygons (lon/lat) in DISTRICTS order, from DIST15_wgs84.shp/.dbf."""
    base = data_dir / PLANBAYAREA_SUBDIR / DISTRICT_SHAPEFILE
    shp, dbf = base.with_suffix(".shp"), base.with_suffix(".dbf")
    for path in (shp, dbf):
        if not path.is_file():
            raise DataNotFoundError(f"{path} not found (the Plan Bay Area district shapes)")
    shapes = _read_shp_polygons(shp.read_bytes())
    numbers = [int(r["DIST15"]) for r in _read_dbf(dbf.read_bytes())]
    if sorted(numbers) != list(range(1, 16)) or len(shapes) != 15:
        raise WorldError(f"{shp}: expected districts 1..15, found {sorted(numbers)}")
    by_number = dict(zip(numbers, shapes, strict=True))
    return tuple(by_number[n] for n in range(1, 16))


def _read_shp_polygons(data: bytes) -> list[shapely.Geometry]:
    """Polygon records of an ESRI shapefile (type 5); rings combined by the even-odd rule."""
    (shape_type,) = struct.unpack("<i", data[32:36])
    if shape_type != 5:
        raise WorldError(f"shapefile holds shape type {shape_type}, not polygons (5)")
    shapes = []
    pos = 100
    while pos + 8 <= len(data):
        _number, words = struct.unpack(">ii", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + 2 * words]
        pos += 8 + 2 * words
        if struct.unpack("<i", body[:4])[0] != 5:
            continue  # a null shape
        n_parts, n_points = struct.unpack("<ii", body[36:44])
        parts = [*struct.unpack(f"<{n_parts}i", body[44 : 44 + 4 * n_parts]), n_points]
        start = 44 + 4 * n_parts
        xy = np.frombuffer(body[start : start + 16 * n_points], dtype="<f8").reshape(-1, 2)
        rings = [shapely.Polygon(xy[a:b]) for a, b in itertools.pairwise(parts)]
        shapes.append(reduce(shapely.symmetric_difference, rings))
    return shapes


def _read_dbf(data: bytes) -> list[dict[str, str]]:
    """Records of a dBASE III table as strings (quotes some writers add are stripped)."""
    n_records, header_len, record_len = struct.unpack("<IHH", data[4:12])
    fields: list[tuple[str, int]] = []
    pos = 32
    while data[pos] != 0x0D:
        name = data[pos : pos + 11].split(b"\0")[0].decode("ascii")
        fields.append((name, data[pos + 16]))
        pos += 32
    records = []
    for r in range(n_records):
        rec = data[header_len + r * record_len : header_len + (r + 1) * record_len]
        off, values = 1, {}
        for name, length in fields:
            values[name] = rec[off : off + length].decode("latin-1").strip().strip("'")
            off += length
        records.append(values)
    return records


# --- the network as this module needs it ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class NetEdges:
    """The network's edges as columns (N rows): what placing trips needs, nothing more."""

    ids: tuple[str, ...]
    types: tuple[str, ...]  # SUMO edge type, e.g. "highway.primary"
    length_m: FloatArray
    start_xy: FloatArray  # N×2, net metres: first point of the first lane
    end_xy: FloatArray  # N×2, last point
    mid_lonlat: FloatArray  # N×2, the lane's middle point in degrees
    to_xy: Transformer  # lon/lat → net metres (offset added by `lonlat_to_xy`)
    offset: tuple[float, float]
    # With a main (strongly connected) part given: which edges lie in it (trip ends in the
    # city), which can reach it (where trips from outside may enter) and which it can reach
    # (where trips to outside may leave). None: every edge is all three.
    in_main: BoolArray | None = None
    reaches_main: BoolArray | None = None
    reached_from_main: BoolArray | None = None

    def lonlat_to_xy(self, lon: float, lat: float) -> FloatArray:
        x, y = self.to_xy.transform(lon, lat)
        return np.array([x + self.offset[0], y + self.offset[1]])


def read_net_edges(net_file: Path, allowed: frozenset[str] | None = None) -> NetEdges:
    """Normal edges of a geo-referenced SUMO network that passenger cars may drive. With
    `allowed` (the network's main strongly connected part), the edges in it and those
    leading into or out of it: a freeway crossing the network's boundary comes in from a
    dead end, so it is not in the main part, yet it is where trips from outside enter (kept
    to `allowed`, the I-280 gateway snapped to a ramp 1 km away that feeds one-lane
    residential streets; at half of Plan Bay Area's demand, PM, 3,224 cars never got in).
    ≈2 s for the whole city."""
    ids: list[str] = []
    types: list[str] = []
    lengths: list[float] = []
    start: list[FloatArray] = []
    end: list[FloatArray] = []
    mid: list[FloatArray] = []
    proj, offset = "!", (0.0, 0.0)
    links: list[tuple[str, str]] = []
    try:
        for _event, elem in ET.iterparse(net_file, events=("end",)):
            if elem.tag == "location":
                proj = elem.get("projParameter", "!")
                ox, oy = (float(v) for v in elem.get("netOffset", "0,0").split(","))
                offset = (ox, oy)
            elif elem.tag == "edge":
                edge_id = elem.get("id", "")
                if elem.get("function") is None:
                    lanes = [ln for ln in elem.iter("lane") if allows_vclass(ln, "passenger")]
                    if lanes:
                        pts = sumo_shape(lanes[0].get("shape", ""))
                        ids.append(edge_id)
                        types.append(elem.get("type", ""))
                        lengths.append(float(lanes[0].get("length", "0")))
                        start.append(pts[0])
                        end.append(pts[-1])
                        mid.append(pts[len(pts) // 2] if len(pts) > 2 else pts.mean(axis=0))
                elem.clear()
            elif elem.tag == "connection":
                src = elem.get("from", "")
                if allowed is not None and not src.startswith(":"):
                    links.append((src, elem.get("to", "")))
                elem.clear()
            elif elem.tag in ("junction", "tlLogic", "roundabout"):
                elem.clear()
    except (ET.ParseError, OSError) as exc:
        raise WorldError(f"cannot read network {net_file}: {exc}") from None
    masks: tuple[BoolArray, BoolArray, BoolArray] | None = None
    if allowed is not None and ids:
        masks = _main_part_masks(ids, links, allowed)
        keep = np.flatnonzero(masks[0] | masks[1] | masks[2])
        ids, types, lengths = (
            [ids[k] for k in keep],
            [types[k] for k in keep],
            [lengths[k] for k in keep],
        )
        start, end, mid = [start[k] for k in keep], [end[k] for k in keep], [mid[k] for k in keep]
        masks = (masks[0][keep], masks[1][keep], masks[2][keep])
    if proj == "!" or not ids:
        raise WorldError(
            f"{net_file} is not geo-referenced or has no roads: Plan Bay Area traffic needs a "
            "network built from lon/lat data (city sf or sf-mission)"
        )
    to_xy = Transformer.from_crs("EPSG:4326", proj, always_xy=True)
    from_xy = Transformer.from_crs(proj, "EPSG:4326", always_xy=True)
    mid_arr = np.asarray(mid, dtype=np.float64)
    lon, lat = from_xy.transform(mid_arr[:, 0] - offset[0], mid_arr[:, 1] - offset[1])
    return NetEdges(
        ids=tuple(ids),
        types=tuple(types),
        length_m=np.asarray(lengths, dtype=np.float64),
        start_xy=np.asarray(start, dtype=np.float64),
        end_xy=np.asarray(end, dtype=np.float64),
        mid_lonlat=np.column_stack([lon, lat]),
        to_xy=to_xy,
        offset=offset,
        in_main=None if masks is None else masks[0],
        reaches_main=None if masks is None else masks[1],
        reached_from_main=None if masks is None else masks[2],
    )


def _main_part_masks(
    ids: Sequence[str], links: Sequence[tuple[str, str]], main: frozenset[str]
) -> tuple[BoolArray, BoolArray, BoolArray]:
    """Per edge of `ids`: in `main`; can reach it; can be reached from it (over `links`,
    the network's connections between normal edges)."""
    index = {e: k for k, e in enumerate(ids)}
    succ: dict[int, list[int]] = {}
    pred: dict[int, list[int]] = {}
    for a, b in links:
        ia, ib = index.get(a), index.get(b)
        if ia is not None and ib is not None:
            succ.setdefault(ia, []).append(ib)
            pred.setdefault(ib, []).append(ia)
    in_main = np.array([e in main for e in ids], dtype=bool)

    def spread(step: dict[int, list[int]]) -> BoolArray:
        seen = in_main.copy()
        stack: list[int] = np.flatnonzero(in_main).tolist()
        while stack:
            for nxt in step.get(stack.pop(), ()):
                if not seen[nxt]:
                    seen[nxt] = True
                    stack.append(nxt)
        return seen

    return in_main, spread(pred), spread(succ)


# --- where trips start and end -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GatewayEdges:
    gateway: Gateway
    entry: int  # index into NetEdges: where trips from outside enter
    exit: int  # where trips to outside leave
    entry_gap_m: float  # distance from the gateway point to the entry edge's start
    exit_gap_m: float


@dataclass(frozen=True, eq=False)
class EndpointActivity:
    """How busy each part of the city is, to place trip ends within a district: zones
    (lon/lat polygons) and a weight each (e.g. SFCTA's TNC pick-ups + drop-offs a day). A
    district's trips then start and end in each zone in proportion to its weight, spread
    over its streets by length, not by street length alone (which sends 8.6 % of the
    city's car trips to Treasure Island's many empty streets, and queues them on the Bay
    Bridge)."""

    polygons: npt.NDArray[np.object_]
    weight: FloatArray

    @classmethod
    def of_tnc_zones(cls, zones: TncZones) -> EndpointActivity:
        """The zones' average TNC pick-ups and drop-offs over the week."""
        return cls(zones.polygons, zones.pickups.sum(axis=(0, 1)) + zones.dropoffs.sum(axis=(0, 1)))

    def edge_weights(self, lonlat: FloatArray, length_m: FloatArray) -> FloatArray:
        """Weight of each edge (mid point `lonlat`, `length_m`): its zone's weight spread
        over the zone's edges by length; an edge in no zone gets the median density."""
        zone = np.full(len(length_m), -1, dtype=np.int64)
        point, polygon = shapely.STRtree(self.polygons).query(
            shapely.points(lonlat), predicate="within"
        )
        zone[point] = polygon
        inside = zone >= 0
        zone_m = np.bincount(zone[inside], weights=length_m[inside], minlength=len(self.weight))
        with np.errstate(divide="ignore", invalid="ignore"):
            density = np.where(zone_m > 0, self.weight / zone_m, 0.0)
        fallback = float(np.median(density[zone_m > 0])) if (zone_m > 0).any() else 1.0
        return np.asarray(
            length_m * np.where(inside, density[np.maximum(zone, 0)], fallback), dtype=float
        )

    def digest(self) -> str:
        """A short hash of the zones and weights (for caches keyed by what went in)."""
        h = hashlib.sha256(np.ascontiguousarray(self.weight, dtype=float).tobytes())
        for wkb in shapely.to_wkb(self.polygons):
            h.update(wkb)
        return h.hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class DemandPlacement:
    """Where each district's trips may start and end on a network.

    For a city district: candidate edges and their weights (street length, or the
    `EndpointActivity` along it). For an outside district: the gateways that serve it, with
    their weights (capacity).
    """

    edges: NetEdges
    district_edges: tuple[IntArray, ...]  # per district, indices into `edges` (empty outside)
    district_weights: tuple[FloatArray, ...]  # same shapes, sums to 1 where non-empty
    gateways: tuple[GatewayEdges, ...]  # those found on this network
    missing_gateways: tuple[str, ...]  # names of gateways too far from any matching edge

    def placeable(self) -> BoolArray:
        """Which districts can send or receive trips on this network (15 booleans)."""
        ok = np.array([len(e) > 0 for e in self.district_edges])
        for g in self.gateways:
            ok[list(g.gateway.districts)] = True
        return ok


def place_demand(
    edges: NetEdges,
    polygons: Sequence[shapely.Geometry],
    gateways: Sequence[Gateway] = GATEWAYS,
    max_snap_m: float = MAX_SNAP_M,
    activity: EndpointActivity | None = None,
) -> DemandPlacement:
    """Edges inside each city district (by their middle point) and each gateway's edges;
    within a district, trip ends are weighted by street length, or by `activity`."""
    ok_type = np.array([t in ENDPOINT_TYPES for t in edges.types])
    if edges.in_main is not None:
        ok_type &= edges.in_main
    lon, lat = edges.mid_lonlat[:, 0], edges.mid_lonlat[:, 1]
    edge_weight = (
        edges.length_m
        if activity is None
        else activity.edge_weights(edges.mid_lonlat, edges.length_m)
    )
    district_edges, district_weights = [], []
    taken = np.zeros(len(edges.ids), dtype=bool)
    for d, polygon in enumerate(polygons):
        if d >= len(SF_DISTRICTS):
            district_edges.append(np.zeros(0, dtype=np.int64))
            district_weights.append(np.zeros(0))
            continue
        inside = ok_type & ~taken & shapely.contains_xy(polygon, lon, lat)
        taken |= inside  # shared borders: an edge belongs to one district
        idx = np.flatnonzero(inside).astype(np.int64)
        weight = edge_weight[idx]
        district_edges.append(idx)
        district_weights.append(weight / weight.sum() if weight.sum() > 0 else weight)
    city = shapely.union_all([polygons[d] for d in range(len(SF_DISTRICTS))])
    centre = edges.lonlat_to_xy(*shapely.get_coordinates(city.centroid)[0])
    found, missing = [], []
    for gw in gateways:
        point = edges.lonlat_to_xy(gw.lon, gw.lat)
        inward = (edges.end_xy - edges.start_xy) @ (centre - point)
        typed = np.array([t in gw.road_types for t in edges.types])
        enters = typed & (inward > 0)
        leaves = typed & (inward < 0)
        if edges.reaches_main is not None and edges.reached_from_main is not None:
            enters &= edges.reaches_main
            leaves &= edges.reached_from_main
        gap_in = np.where(enters, np.hypot(*(edges.start_xy - point).T), np.inf)
        gap_out = np.where(leaves, np.hypot(*(edges.end_xy - point).T), np.inf)
        entry, leave = int(np.argmin(gap_in)), int(np.argmin(gap_out))
        if gap_in[entry] > max_snap_m or gap_out[leave] > max_snap_m:
            missing.append(gw.name)
            continue
        found.append(GatewayEdges(gw, entry, leave, float(gap_in[entry]), float(gap_out[leave])))
    return DemandPlacement(
        edges, tuple(district_edges), tuple(district_weights), tuple(found), tuple(missing)
    )


# --- sampling trips ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BackgroundTrips:
    """Sampled vehicle trips as columns, sorted by departure (seconds after midnight)."""

    ids: tuple[str, ...]
    depart_s: FloatArray  # time of day, s
    from_edge: IntArray  # indices into the placement's NetEdges
    to_edge: IntArray
    origin: IntArray  # district indices
    destination: IntArray
    expected: float  # the mean number of trips in the window (before dropping)
    dropped: int  # trips whose district or gateway is not on this network

    def __len__(self) -> int:
        return len(self.ids)

    def od_counts(self) -> IntArray:
        """Trips per (origin district, destination district): a 15×15 matrix."""
        counts = np.zeros((len(DISTRICTS), len(DISTRICTS)), dtype=np.int64)
        np.add.at(counts, (self.origin, self.destination), 1)
        return counts


def sample_trips(
    daily_vehicles: FloatArray,
    placement: DemandPlacement,
    start_s: float,
    end_s: float,
    *,
    scale: float = 1.0,
    seed: int = 0,
    day: int = 0,
    profile: Sequence[float] = HOURLY_VEHICLE_TRIPS,
) -> BackgroundTrips:
    """Vehicle trips departing in [start_s, end_s) (seconds after midnight, within one day).

    Each hour's trips are Poisson draws from their own stream (seed, day, hour), so the
    same hour always yields the same trips whatever window is asked for.
    """
    if not 0 <= start_s <= end_s <= DAY_S:
        raise WorldError(f"window [{start_s}, {end_s}) s must lie within one day [0, 86400]")
    if scale < 0:
        raise WorldError(f"demand scale must be ≥ 0, not {scale}")
    shares = hourly_shares(profile)
    placeable = placement.placeable()
    columns: list[tuple[FloatArray, IntArray, IntArray, IntArray, IntArray, list[str]]] = []
    expected, dropped = 0.0, 0
    for hour in range(int(start_s // 3600), int(np.ceil(end_s / 3600))):
        lo, hi = hour * 3600.0, hour * 3600.0 + 3600.0
        overlap = (min(hi, end_s) - max(lo, start_s)) / 3600.0
        if overlap <= 0:
            continue
        rng = np.random.default_rng([seed, day, hour, 0x9BA])
        mean = daily_vehicles * scale * shares[hour]
        counts = rng.poisson(mean)
        origin, dest = np.nonzero(counts)
        reps = counts[origin, dest]
        origin, dest = np.repeat(origin, reps), np.repeat(dest, reps)
        depart = lo + 3600.0 * rng.random(len(origin))
        from_edge = _draw_endpoints(placement, origin, rng, start=True)
        to_edge = _draw_endpoints(placement, dest, rng, start=False)
        same = (from_edge == to_edge) & (from_edge >= 0)
        if same.any():  # an intra-district trip drew one street twice: draw the end again
            to_edge[same] = _draw_endpoints(placement, dest[same], rng, start=False)
        ids = [f"pba{day}_{hour:02d}_{k}" for k in range(len(origin))]
        in_window = (depart >= start_s) & (depart < end_s)
        expected += float(mean.sum() * overlap)
        ok = in_window & placeable[origin] & placeable[dest] & (from_edge != to_edge)
        ok &= (from_edge >= 0) & (to_edge >= 0)
        dropped += int((in_window & ~ok).sum())
        keep = np.flatnonzero(ok)
        columns.append(
            (depart[keep], from_edge[keep], to_edge[keep], origin[keep], dest[keep],
             [ids[k] for k in keep])
        )  # fmt: skip
    if not columns:
        empty_i = np.zeros(0, dtype=np.int64)
        return BackgroundTrips((), np.zeros(0), empty_i, empty_i, empty_i, empty_i, 0.0, 0)
    depart = np.concatenate([c[0] for c in columns])
    order = np.argsort(depart, kind="stable")
    all_ids = [i for c in columns for i in c[5]]
    return BackgroundTrips(
        ids=tuple(all_ids[k] for k in order),
        depart_s=depart[order],
        from_edge=np.concatenate([c[1] for c in columns])[order],
        to_edge=np.concatenate([c[2] for c in columns])[order],
        origin=np.concatenate([c[3] for c in columns]).astype(np.int64)[order],
        destination=np.concatenate([c[4] for c in columns]).astype(np.int64)[order],
        expected=expected,
        dropped=dropped,
    )


def _draw_endpoints(
    placement: DemandPlacement, district: IntArray, rng: np.random.Generator, *, start: bool
) -> IntArray:
    """An edge per trip end: a street in its district, or, outside the city, the entry
    (`start`) or exit edge of one of its gateways; −1 where the network has neither."""
    out = np.full(len(district), -1, dtype=np.int64)
    u = rng.random(len(district))
    for d in np.unique(district):
        rows = np.flatnonzero(district == d)
        if d < len(SF_DISTRICTS):
            cand, weight = placement.district_edges[d], placement.district_weights[d]
            if len(cand):
                out[rows] = cand[_pick(weight, u[rows])]
            continue
        serving = [g for g in placement.gateways if d in g.gateway.districts]
        if serving:
            ends = np.array([g.entry if start else g.exit for g in serving])
            out[rows] = ends[_pick(np.array([g.gateway.capacity_vph for g in serving]), u[rows])]
    return out


def _pick(weights: FloatArray, u: FloatArray) -> IntArray:
    """Indices drawn in proportion to `weights`, one per uniform number in `u`."""
    cum = np.cumsum(weights)
    return np.minimum(np.searchsorted(cum, u * cum[-1], side="right"), len(cum) - 1)


# --- SUMO files ----------------------------------------------------------------------------


def trips_xml(
    trips: BackgroundTrips, placement: DemandPlacement, start_s: float, sim_begin_s: float = 0.0
) -> str:
    """A SUMO trips file; departures are shifted so that `start_s` becomes `sim_begin_s`."""
    edges = placement.edges
    gateway_in = {edges.ids[g.entry] for g in placement.gateways}
    gateway_out = {edges.ids[g.exit] for g in placement.gateways}
    lines = [
        "<routes>",
        f'    <vType id="{BACKGROUND_TYPE}" vClass="passenger" color="120,120,140" sigma="0.5"/>',
    ]
    for k, trip_id in enumerate(trips.ids):
        src, dst = edges.ids[int(trips.from_edge[k])], edges.ids[int(trips.to_edge[k])]
        depart = sim_begin_s + float(trips.depart_s[k]) - start_s
        # off the freeway a car leaves from and parks anywhere along its street
        pos = "base" if src in gateway_in else "random"
        arrive = "max" if dst in gateway_out else "random"
        lines.append(
            f'    <trip id="{trip_id}" type="{BACKGROUND_TYPE}" depart="{depart:.2f}" '
            f'from="{src}" to="{dst}" departLane="best" departSpeed="max" '
            f'departPos="{pos}" arrivalPos="{arrive}"/>'
        )
    lines.append("</routes>\n")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class BackgroundDemand:
    """A background traffic file for one window and what went into it."""

    path: Path  # SUMO routes (routed) or trips (SUMO routes them at insertion)
    routed: bool
    vehicles: int  # vehicles in the file
    sampled: int  # trips sampled and placed on the network
    expected: float  # mean number of trips in the window at this scale
    dropped: int  # trips whose district or gateway is not on the network
    missing_gateways: tuple[str, ...]


def plan_bay_area_routes(
    net_file: Path,
    data_dir: Path,
    start_s: float,
    end_s: float,
    *,
    out_dir: Path,
    scale: float = 1.0,
    seed: int = 0,
    day: int = 0,
    sim_begin_s: float = 0.0,
    route: bool = True,
    allowed_edges: frozenset[str] | None = None,
    occupancy: Mapping[str, float] = OCCUPANCY,
    by_activity: bool = True,
) -> BackgroundDemand:
    """Plan Bay Area background traffic for [start_s, end_s) of a day, cached by content.

    With `by_activity`, trip ends within a district follow SFCTA's TNC activity per zone
    (`EndpointActivity`, from `data_dir`), else street length.

    With `route`, duarouter (contraction hierarchies) writes full routes; otherwise the file
    holds trips and SUMO routes each car when it enters. `sim_begin_s` is the simulation time
    at which the window starts (SumoWorld starts at 0).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    pattern = data_dir / PLANBAYAREA_SUBDIR / TRIP_PATTERN_CSV
    shp = (data_dir / PLANBAYAREA_SUBDIR / DISTRICT_SHAPEFILE).with_suffix(".shp")
    for path in (pattern, shp):
        if not path.is_file():
            raise DataNotFoundError(f"{path} not found (background traffic from Plan Bay Area)")
    allowed_key = (
        hashlib.sha256(" ".join(sorted(allowed_edges)).encode()).hexdigest()[:12]
        if allowed_edges is not None
        else None
    )
    activity = EndpointActivity.of_tnc_zones(load_tnc_zones(data_dir)) if by_activity else None
    key = _digest(
        activity.digest() if activity is not None else None,
        net_file.name, net_file.stat().st_size, _file_digest(pattern), _file_digest(shp),
        round(start_s, 3), round(end_s, 3), round(scale, 6), seed, day, round(sim_begin_s, 3),
        route, allowed_key, sorted(occupancy.items()), HOURLY_VEHICLE_TRIPS,
        _gateways_key(GATEWAYS), FORMAT_VERSION,
    )  # fmt: skip
    target = out_dir / f"pba-{key}.{'rou' if route else 'trips'}.xml"
    meta_file = out_dir / f"pba-{key}.json"
    if target.exists() and meta_file.exists():
        return _demand_from_meta(target, route, json.loads(meta_file.read_text()))
    edges = read_net_edges(net_file, allowed_edges)
    placement = place_demand(edges, read_district_polygons(data_dir), activity=activity)
    daily = daily_vehicle_trips(load_district_trips(data_dir), occupancy)
    trips = sample_trips(daily, placement, start_s, end_s, scale=scale, seed=seed, day=day)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".pba-") as tmp:
        trips_file = Path(tmp) / "bg.trips.xml"
        trips_file.write_text(trips_xml(trips, placement, start_s, sim_begin_s))
        result = trips_file
        if route and len(trips):
            result = Path(tmp) / "bg.rou.xml"
            _duarouter(net_file, trips_file, result, seed)
        vehicles = count_vehicles(result) if route else len(trips)
        meta = {
            "vehicles": vehicles,
            "sampled": len(trips),
            "expected": trips.expected,
            "dropped": trips.dropped,
            "missing_gateways": list(placement.missing_gateways),
        }
        tmp_meta = Path(tmp) / "meta.json"
        tmp_meta.write_text(json.dumps(meta))
        os.replace(result, target)
        os.replace(tmp_meta, meta_file)
    return _demand_from_meta(target, route, meta)


def _demand_from_meta(path: Path, routed: bool, meta: dict) -> BackgroundDemand:
    return BackgroundDemand(
        path=path,
        routed=routed,
        vehicles=int(meta["vehicles"]),
        sampled=int(meta["sampled"]),
        expected=float(meta["expected"]),
        dropped=int(meta["dropped"]),
        missing_gateways=tuple(meta["missing_gateways"]),
    )


def _duarouter(net_file: Path, trips_file: Path, out: Path, seed: int) -> None:
    binary = sumo_home() / "bin" / "duarouter"
    cmd = [
        str(binary), "-n", str(net_file), "--route-files", str(trips_file), "-o", str(out),
        "--routing-algorithm", "CH", "--ignore-errors", "true", "--no-step-log", "true",
        "--no-warnings", "true", "--seed", str(seed),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=sumo_env(), check=False)
    if proc.returncode != 0 or not out.exists():
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise WorldError(f"routing background traffic (duarouter) failed: {last[0]}")


def count_vehicles(routes: Path) -> int:
    """Vehicles in a SUMO routes file (one `<vehicle` element per line, as SUMO writes)."""
    count = 0
    with routes.open("rb") as fh:
        for line in fh:
            count += line.lstrip().startswith(b"<vehicle ")
    return count


def _gateways_key(gateways: Sequence[Gateway]) -> tuple[object, ...]:
    """Gateways as a cache-key part that is the same in every process: a frozenset's repr
    follows string hashing, which Python salts per process (PYTHONHASHSEED), so keying on
    the gateways themselves re-routed the same trips in every new process."""
    return tuple(
        (g.name, g.lon, g.lat, tuple(sorted(g.road_types)), g.districts, g.capacity_vph)
        for g in gateways
    )


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _digest(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:12]
