"""San Francisco's real traffic signals (DataSF) matched to the traffic lights of a built net.

DataSF's "Traffic Signals" table lists every signalised intersection with its location and
its pre-emption equipment; `FIRE PREEMPT` in `PREEMPT_PR` means an approaching fire engine or
ambulance can turn the light green. A signal is matched to the traffic-light junction of the
network nearest to it, within `max_distance_m` (joined junctions sit at the centre of the
junction cluster, a few metres from the signal's own point).
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from robotaxi.core.errors import DataNotFoundError, MapBuildError
from robotaxi.map.model import RoadMap

# DataSF snapshot inside the shared data folder
DATASF_SIGNALS = Path("sf/city/traffic_signals_datasf_2023-04.csv.gz")
MATCH_DISTANCE_M = 30.0
FIRE_PREEMPT = "FIRE PREEMPT"

_POINT = re.compile(r"POINT\s*\(\s*(-?[\d.]+)\s+(-?[\d.]+)\s*\)")
_COLUMNS = ("CNN", "STREET1", "STREET2", "TYPE", "PREEMPT_PR", "shape")


@dataclass(frozen=True, slots=True)
class CitySignal:
    """One signalised intersection of DataSF's table."""

    cnn: str  # the city's centreline-network node id of the intersection
    streets: str  # "MISSION & ITALY"
    lon: float
    lat: float
    fire_preempt: bool


@dataclass(frozen=True, slots=True)
class SignalMatch:
    """A city signal and the network's traffic light nearest to it ("" when none is near)."""

    signal: CitySignal
    tls_id: str
    distance_m: float  # inf when unmatched


def read_city_signals(path: Path) -> list[CitySignal]:
    """The rows of `TYPE` SIGNAL (working signals, not beacons or planned ones) of a DataSF
    traffic-signal CSV (plain or .gz)."""
    if not path.is_file():
        raise DataNotFoundError(
            f"{path} not found: the DataSF signal table is in the shared data "
            f"({DATASF_SIGNALS}); check --data-dir"
        )
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.decompress(raw)
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8-sig")))
    missing = [c for c in _COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        raise MapBuildError(
            f"{path} is not DataSF's traffic-signal table (no column {', '.join(missing)})"
        )
    signals = []
    for row in reader:
        if row["TYPE"].strip() != "SIGNAL":
            continue
        point = _POINT.search(row["shape"])
        if point is None:
            continue  # a signal without a location cannot be placed on the map
        streets = " & ".join(s.strip() for s in (row["STREET1"], row["STREET2"]) if s.strip())
        signals.append(
            CitySignal(
                cnn=row["CNN"].strip(),
                streets=streets,
                lon=float(point.group(1)),
                lat=float(point.group(2)),
                fire_preempt=FIRE_PREEMPT in row["PREEMPT_PR"].upper(),
            )
        )
    return signals


def match_signals(
    road_map: RoadMap,
    signals: Iterable[CitySignal],
    max_distance_m: float = MATCH_DISTANCE_M,
) -> list[SignalMatch]:
    """Match each city signal to the nearest traffic-light junction of the map within
    `max_distance_m` (m, in the map's projected frame)."""
    signals = list(signals)
    junctions = road_map.signal_junctions
    if not signals:
        return []
    if not junctions:
        return [SignalMatch(s, "", float("inf")) for s in signals]
    x, y = road_map.projection.lonlat_to_xy(
        np.array([s.lon for s in signals]), np.array([s.lat for s in signals])
    )
    tree = cKDTree(np.array([(j.x, j.y) for j in junctions]))
    dist, idx = tree.query(np.column_stack([x, y]), distance_upper_bound=max_distance_m)
    return [
        SignalMatch(s, junctions[i].tls_id, float(d))
        if np.isfinite(d)
        else SignalMatch(s, "", float("inf"))
        for s, d, i in zip(signals, dist, idx, strict=True)
    ]


def preemption_tls_ids(
    road_map: RoadMap, signals_csv: Path, max_distance_m: float = MATCH_DISTANCE_M
) -> frozenset[str]:
    """SUMO traffic-light ids of the map whose real signal has fire/emergency pre-emption."""
    matches = match_signals(road_map, read_city_signals(signals_csv), max_distance_m)
    return frozenset(m.tls_id for m in matches if m.tls_id and m.signal.fire_preempt)
