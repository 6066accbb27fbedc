"""How much slower than free flow the city drives: INRIX targets vs a simulation, per
facility type × time period. Pure functions over files a run already wrote.

- **Target**: INRIX speeds of 2016 on San Francisco's major roads (Erhardt et al., "Do
  transportation network companies decrease or increase congestion?", Science Advances,
  2019; sfcta/tncsandcongestion, Apache-2.0): per facility type (`FT2`) and period, the
  mean of INRIX speed / free-flow speed over road sections, weighted by section length.
  Its free-flow speed (`FFS`) is a high percentile of measured speeds, not the speed of a
  car in an empty city: in EA (03:00–06:00, ~2 % of the day's car trips) INRIX measures
  0.75 of it on major arterials, 0.72 on minor ones, 0.73 on locals and 0.88 on freeways.
- **Reference** (`compare(…, empty=…)`): the simulation's free flow is measured in a
  near-empty run, signal and junction delays included, so it stands for INRIX's EA speed,
  not for its FFS. The like-for-like target is therefore INRIX's period ratio over its EA
  ratio (speed in the period / speed in the near-empty early morning); the ratio against
  FFS is kept beside it (`sim_over_inrix`).
- **Simulation**: SUMO's edgeData (`<edgeData id=… freq=…/>`: per interval and edge, the
  mean `speed` and the vehicle-seconds `sampledSeconds`) of a run with background traffic,
  divided by each edge's free-flow speed — measured the same way in a run with almost no
  traffic where that run saw the edge, else the edge's speed limit (`FreeFlow` says which;
  `robotaxi calibrate` keeps measured edges only, as INRIX's free flow is measured too) —
  and averaged over edges weighted by length.

SUMO edge types map to INRIX facility types by road class (`facility_type`).
"""

from __future__ import annotations

import csv
import gzip
import math
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from robotaxi.core.errors import DataNotFoundError, RobotaxiError

INRIX_SUBDIR = Path("sf") / "traffic" / "inrix_champ"
INRIX_2016 = "ESTFILE_2016.csv.gz"
MILE_M = 1609.344
DAY_S = 86400.0


class CalibrationDataError(RobotaxiError):
    """An INRIX, edgeData or network file exists but cannot be read."""


class FacilityType(IntEnum):
    """INRIX/SF-CHAMP facility types (`FT2`)."""

    FREEWAY = 1  # freeway, expressway or ramp
    MAJOR_ARTERIAL = 2
    MINOR_ARTERIAL = 3
    LOCAL = 4  # local or collector


# Time periods of SF-CHAMP, as [begin, end) seconds after midnight; EV runs past midnight.
PERIODS: Mapping[str, tuple[float, float]] = {
    "EA": (3 * 3600.0, 6 * 3600.0),
    "AM": (6 * 3600.0, 9 * 3600.0),
    "MD": (9 * 3600.0, 15.5 * 3600.0),
    "PM": (15.5 * 3600.0, 18.5 * 3600.0),
    "EV": (18.5 * 3600.0, 27 * 3600.0),
}
DAYTIME_PERIODS = ("AM", "MD", "PM")
EMPTY_PERIOD = "EA"  # INRIX's period nearest to an empty city: 03:00–06:00

# OpenStreetMap road class (SUMO edge type "highway.<class>") → facility type. Freeway and
# trunk ramps are freeway (INRIX counts ramps as freeway); other links follow their road.
FACILITY_BY_ROAD_CLASS: Mapping[str, FacilityType] = {
    "motorway": FacilityType.FREEWAY,
    "motorway_link": FacilityType.FREEWAY,
    "trunk": FacilityType.FREEWAY,
    "trunk_link": FacilityType.FREEWAY,
    "primary": FacilityType.MAJOR_ARTERIAL,
    "primary_link": FacilityType.MAJOR_ARTERIAL,
    "secondary": FacilityType.MINOR_ARTERIAL,
    "secondary_link": FacilityType.MINOR_ARTERIAL,
    "tertiary": FacilityType.MINOR_ARTERIAL,
    "tertiary_link": FacilityType.MINOR_ARTERIAL,
}


def facility_type(edge_type: str) -> FacilityType:
    """A SUMO edge type ("highway.primary", "highway.motorway_link", …) as a facility type;
    anything not listed (residential, service, unclassified, no type) is local."""
    road_class = edge_type.split("|")[0].removeprefix("highway.")
    return FACILITY_BY_ROAD_CLASS.get(road_class, FacilityType.LOCAL)


@dataclass(frozen=True, slots=True)
class SpeedRatio:
    """A length-weighted mean of speed / free-flow speed over road sections or edges."""

    ratio: float
    length_km: float
    sections: int


def _weighted(pairs: Iterable[tuple[float, float]]) -> SpeedRatio | None:
    """(ratio, length_km) pairs → their length-weighted mean (None without any length)."""
    total = weighted = 0.0
    count = 0
    for ratio, length in pairs:
        total += length
        weighted += ratio * length
        count += 1
    return SpeedRatio(weighted / total, total, count) if total > 0 else None


# --- INRIX -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InrixSection:
    """One directional road section in one period (a row of ESTFILE)."""

    facility_type: FacilityType
    period: str
    length_mi: float
    speed_mph: float  # INRIX mean speed
    free_flow_mph: float  # FFS


def read_inrix(path: Path) -> tuple[InrixSection, ...]:
    """Rows of an ESTFILE_*.csv(.gz) with a usable speed, free-flow speed and length."""
    if not path.is_file():
        raise DataNotFoundError(
            f"{path} not found (INRIX calibration targets): point --data-dir at the shared data"
        )
    opener = gzip.open if path.suffix == ".gz" else open
    sections = []
    with opener(path, "rt", newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"FT2", "TOD", "DISTANCE", "INRIX_SPEED", "FFS"}
        if not need <= set(reader.fieldnames or ()):
            raise CalibrationDataError(
                f"{path}: missing columns {sorted(need - set(reader.fieldnames or ()))}"
            )
        for row in reader:
            try:
                ft = FacilityType(int(float(row["FT2"])))
                length, speed, ffs = (float(row[k]) for k in ("DISTANCE", "INRIX_SPEED", "FFS"))
            except ValueError:
                continue  # an empty or unknown value: the section has no measurement
            if length > 0 and speed > 0 and ffs > 0:
                sections.append(InrixSection(ft, row["TOD"], length, speed, ffs))
    return tuple(sections)


def inrix_targets(
    sections: Iterable[InrixSection], periods: Sequence[str] = DAYTIME_PERIODS
) -> dict[tuple[FacilityType, str], SpeedRatio]:
    """Per facility type × period: the length-weighted mean of INRIX speed / free-flow speed."""
    groups: dict[tuple[FacilityType, str], list[tuple[float, float]]] = defaultdict(list)
    for s in sections:
        if s.period in periods:
            groups[(s.facility_type, s.period)].append(
                (s.speed_mph / s.free_flow_mph, s.length_mi * MILE_M / 1000)
            )
    return {key: r for key, pairs in sorted(groups.items()) if (r := _weighted(pairs))}


# --- the simulation ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EdgeInfo:
    """What calibration needs to know about one network edge."""

    edge_type: str
    length_m: float
    speed_limit_mps: float


def read_net_edges(net_file: Path) -> dict[str, EdgeInfo]:
    """Type, length and speed limit of every normal edge of a SUMO network."""
    edges: dict[str, EdgeInfo] = {}
    try:
        for _event, elem in ET.iterparse(net_file, events=("end",)):
            if elem.tag == "edge":
                lanes = elem.findall("lane")
                if elem.get("function") is None and lanes:
                    edges[elem.get("id", "")] = EdgeInfo(
                        elem.get("type", ""),
                        float(lanes[0].get("length", "0")),
                        max(float(ln.get("speed", "0")) for ln in lanes),
                    )
                elem.clear()
            elif elem.tag in ("junction", "connection", "tlLogic"):
                elem.clear()
    except (ET.ParseError, OSError) as exc:
        raise CalibrationDataError(f"cannot read network {net_file}: {exc}") from None
    return edges


@dataclass(frozen=True, slots=True)
class EdgeInterval:
    """One edge in one edgeData interval (simulation seconds)."""

    edge_id: str
    begin_s: float
    end_s: float
    speed_mps: float
    sampled_s: float  # vehicle-seconds spent on the edge


def read_edge_data(path: Path) -> tuple[EdgeInterval, ...]:
    """SUMO edgeData (meandata) output; edges no vehicle used in an interval are skipped."""
    rows = []
    try:
        begin = end = 0.0
        for event, elem in ET.iterparse(path, events=("start", "end")):
            if elem.tag == "interval" and event == "start":
                begin, end = float(elem.get("begin", "0")), float(elem.get("end", "0"))
            elif elem.tag == "edge" and event == "end":
                sampled = float(elem.get("sampledSeconds", "0"))
                speed = elem.get("speed")
                if sampled > 0 and speed is not None:
                    rows.append(EdgeInterval(elem.get("id", ""), begin, end, float(speed), sampled))
                elem.clear()
    except (ET.ParseError, OSError) as exc:
        raise CalibrationDataError(f"cannot read edgeData {path}: {exc}") from None
    return tuple(rows)


@dataclass(frozen=True, slots=True)
class FreeFlow:
    """Free-flow speed per edge (m/s) and which edges it was measured on; the rest have
    their speed limit × `limit_factor` of their facility type (1 with `scale_limits` off)."""

    speed_mps: Mapping[str, float]
    measured: frozenset[str]
    limit_factor: Mapping[FacilityType, float]

    def measured_share(self, edges: Mapping[str, EdgeInfo], ids: Iterable[str]) -> float:
        """Share of the length of `ids` whose free-flow speed was measured."""
        ids = list(ids)
        total = sum(edges[e].length_m for e in ids)
        hit = sum(edges[e].length_m for e in ids if e in self.measured)
        return hit / total if total > 0 else 0.0


def free_flow_speeds(
    low_traffic: Iterable[EdgeInterval],
    edges: Mapping[str, EdgeInfo],
    min_sampled_s: float = 60.0,
    *,
    scale_limits: bool = False,
    measured_only: bool = False,
) -> FreeFlow:
    """Each edge's mean speed in a run with almost no traffic, where cars spent at least
    `min_sampled_s` vehicle-seconds on it; elsewhere its speed limit — with `scale_limits`,
    times the length-weighted mean of measured speed / limit over the measured edges of its
    facility type (signals and turns keep even an empty street below its limit). With
    `measured_only` the other edges get no free-flow speed, so ratios leave them out: the
    measured edges are the busy ones, and their type's mean factor, applied to quiet streets
    without signal delay, underestimated those and put loaded speeds above free flow."""
    distance, time = _accumulate((iv, iv.edge_id, 1.0) for iv in low_traffic)
    measured = {e: distance[e] / t for e, t in time.items() if e in edges and t >= min_sampled_s}
    factor = {ft: 1.0 for ft in FacilityType}
    if scale_limits:
        groups: dict[FacilityType, list[tuple[float, float]]] = defaultdict(list)
        for e, speed in measured.items():
            info = edges[e]
            if info.speed_limit_mps > 0:
                groups[facility_type(info.edge_type)].append(
                    (speed / info.speed_limit_mps, info.length_m)
                )
        for ft, pairs in groups.items():
            if mean := _weighted(pairs):
                factor[ft] = mean.ratio
    speeds = {
        e: measured.get(e, info.speed_limit_mps * factor[facility_type(info.edge_type)])
        for e, info in edges.items()
        if not measured_only or e in measured
    }
    return FreeFlow(speeds, frozenset(measured), factor)


def _accumulate(
    weighted: Iterable[tuple[EdgeInterval, str, float]],
) -> tuple[dict[str, float], dict[str, float]]:
    """Distance (m) and time (vehicle-s) per key: their ratio is the space-mean speed."""
    distance: dict[str, float] = defaultdict(float)
    time: dict[str, float] = defaultdict(float)
    for iv, key, share in weighted:
        distance[key] += iv.speed_mps * iv.sampled_s * share
        time[key] += iv.sampled_s * share
    return distance, time


def period_overlap_s(begin_s: float, end_s: float, period: str) -> float:
    """Seconds of [begin_s, end_s) (time of day, may pass midnight) inside a period."""
    lo, hi = PERIODS[period]
    total = 0.0
    for shift in (-DAY_S, 0.0, DAY_S):
        total += max(0.0, min(end_s, hi + shift) - max(begin_s, lo + shift))
    return total


def simulated_ratios(
    intervals: Iterable[EdgeInterval],
    free_flow: FreeFlow,
    edges: Mapping[str, EdgeInfo],
    *,
    sim_start_of_day_s: float = 0.0,
    periods: Sequence[str] = DAYTIME_PERIODS,
    min_sampled_s: float = 0.0,
) -> dict[tuple[FacilityType, str], SpeedRatio]:
    """Per facility type × period: the length-weighted mean over edges of (the edge's mean
    speed in the period / its free-flow speed). Simulation time t is time of day
    `sim_start_of_day_s + t`; an interval counts towards a period in proportion to their
    overlap; edges with less than `min_sampled_s` vehicle-seconds in a period are left out."""
    shares = []
    for iv in intervals:
        if iv.edge_id not in edges or iv.end_s <= iv.begin_s:
            continue
        begin, end = sim_start_of_day_s + iv.begin_s, sim_start_of_day_s + iv.end_s
        for p in periods:
            overlap = period_overlap_s(begin, end, p)
            if overlap > 0:
                shares.append((iv, f"{p}\0{iv.edge_id}", overlap / (end - begin)))
    distance, time = _accumulate(shares)
    groups: dict[tuple[FacilityType, str], list[tuple[float, float]]] = defaultdict(list)
    for key, t in time.items():
        period, edge_id = key.split("\0")
        free = free_flow.speed_mps.get(edge_id, 0.0)
        if t <= 0 or t < min_sampled_s or free <= 0:
            continue
        info = edges[edge_id]
        groups[(facility_type(info.edge_type), period)].append(
            (distance[key] / t / free, info.length_m / 1000)
        )
    return {key: r for key, pairs in sorted(groups.items()) if (r := _weighted(pairs))}


def stalled_share(intervals: Iterable[EdgeInterval], below_mps: float = 2.0) -> float:
    """Share of all vehicle-seconds spent on edges (per interval) slower than `below_mps`.

    The length-weighted ratios hide gridlock: queues fill a few per cent of the network's
    length while holding most of its cars. A calibration should bound this too."""
    total = stalled = 0.0
    for iv in intervals:
        total += iv.sampled_s
        stalled += iv.sampled_s if iv.speed_mps < below_mps else 0.0
    return stalled / total if total > 0 else 0.0


# --- the comparison ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ComparisonRow:
    """One facility type × period: simulated and INRIX speed / free-flow ratios."""

    facility_type: FacilityType
    period: str
    simulated: float | None
    inrix: float | None
    sim_over_inrix: float | None  # > 1: the simulation drives closer to free flow than SF
    sim_length_km: float
    inrix_length_km: float
    inrix_empty: float | None = None  # INRIX's ratio in EA (the near-empty city), if given

    @property
    def target(self) -> float | None:
        """What the simulated ratio should be: INRIX's ratio over its EA ratio when that is
        given (both relative to a near-empty city), else INRIX's ratio to its FFS."""
        if self.inrix is None or self.inrix_empty is None:
            return self.inrix
        return self.inrix / self.inrix_empty if self.inrix_empty > 0 else None

    @property
    def sim_over_target(self) -> float | None:
        target = self.target
        return self.simulated / target if self.simulated is not None and target else None


def compare(
    simulated: Mapping[tuple[FacilityType, str], SpeedRatio],
    inrix: Mapping[tuple[FacilityType, str], SpeedRatio],
    empty: Mapping[FacilityType, float] | None = None,
) -> list[ComparisonRow]:
    """Rows for every facility type × period in either table, in (type, period) order.
    `empty`: INRIX's ratio per facility type in a near-empty period (`empty_ratios`); the
    rows' target is then relative to it. Rows of the empty period itself are left out."""
    order = {p: i for i, p in enumerate(PERIODS)}
    keys = sorted(
        (k for k in set(simulated) | set(inrix) if empty is None or k[1] != EMPTY_PERIOD),
        key=lambda k: (k[0], order.get(k[1], 99)),
    )
    rows = []
    for key in keys:
        sim, real = simulated.get(key), inrix.get(key)
        rows.append(
            ComparisonRow(
                facility_type=key[0],
                period=key[1],
                simulated=sim.ratio if sim else None,
                inrix=real.ratio if real else None,
                sim_over_inrix=sim.ratio / real.ratio if sim and real else None,
                sim_length_km=sim.length_km if sim else 0.0,
                inrix_length_km=real.length_km if real else 0.0,
                inrix_empty=None if empty is None else empty.get(key[0]),
            )
        )
    return rows


def empty_ratios(
    inrix: Mapping[tuple[FacilityType, str], SpeedRatio], period: str = EMPTY_PERIOD
) -> dict[FacilityType, float]:
    """INRIX's ratio per facility type in the near-empty period (from `inrix_targets` asked
    for that period too)."""
    return {ft: r.ratio for (ft, p), r in inrix.items() if p == period}


def format_comparison(rows: Iterable[ComparisonRow]) -> str:
    """The comparison as a plain-text table (one line per row)."""

    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    lines = [f"{'facility type':<16}{'period':<8}{'simulated':>10}{'INRIX':>8}{'sim/INRIX':>11}"]
    for r in rows:
        name = r.facility_type.name.lower().replace("_", " ")
        lines.append(
            f"{name:<16}{r.period:<8}{num(r.simulated):>10}{num(r.inrix):>8}"
            f"{num(r.sim_over_inrix):>11}"
        )
    return "\n".join(lines)


# --- the calibration's objective and its report ---------------------------------------------

# the facility types `robotaxi calibrate` fits (issue: arterials within ±15 % of INRIX)
TARGET_TYPES: tuple[FacilityType, ...] = (FacilityType.MAJOR_ARTERIAL, FacilityType.MINOR_ARTERIAL)


def log_error(
    rows: Iterable[ComparisonRow], targets: Sequence[FacilityType] = TARGET_TYPES
) -> float:
    """Mean of log(simulated / target) over the target rows that have both (NaN if none):
    > 0 when the simulation drives closer to free flow than the city."""
    logs = [
        math.log(q)
        for r in rows
        if r.facility_type in targets and (q := r.sim_over_target) is not None and q > 0
    ]
    return sum(logs) / len(logs) if logs else math.nan


def rows_json(rows: Iterable[ComparisonRow]) -> list[dict[str, object]]:
    """Comparison rows as JSON records (facility type by name)."""
    return [
        {
            "facility_type": r.facility_type.name.lower(),
            "period": r.period,
            "simulated": _round(r.simulated),
            "inrix": _round(r.inrix),
            "sim_over_inrix": _round(r.sim_over_inrix),
            "inrix_empty": _round(r.inrix_empty),
            "target": _round(r.target),
            "sim_over_target": _round(r.sim_over_target),
            "sim_length_km": round(r.sim_length_km, 1),
            "inrix_length_km": round(r.inrix_length_km, 1),
        }
        for r in rows
    ]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def calibration_png(report: Mapping[str, object], path: Path) -> Path:
    """Left: speed / free-flow ratio per facility type and period, simulated at the chosen
    scale against INRIX. Right: every candidate's arterial error and teleport share."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    table = list(report.get("table", []))  # type: ignore[call-overload]
    candidates = list(report.get("candidates", []))  # type: ignore[call-overload]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5), dpi=110)
    short = {
        "freeway": "fwy",
        "major_arterial": "major",
        "minor_arterial": "minor",
        "local": "local",
    }
    labels = [f"{short.get(r['facility_type'], r['facility_type'])}\n{r['period']}" for r in table]
    xs = range(len(table))
    sim = [r["simulated"] or 0.0 for r in table]
    # the target (INRIX relative to its near-empty EA period) where the report has one
    real = [r.get("target") or r["inrix"] or 0.0 for r in table]
    relative = any(r.get("inrix_empty") for r in table)
    left.bar([x - 0.2 for x in xs], sim, width=0.4, color="#2b83ba", label="simulated")
    left.bar(
        [x + 0.2 for x in xs], real, width=0.4, color="#fdae61",
        label="INRIX 2016, relative to its EA (03-06) speeds" if relative else "INRIX 2016",
    )  # fmt: skip
    left.set_xticks(list(xs), labels, fontsize=7)
    left.set_ylim(0, max([1.05, *[v + 0.05 for v in sim]]))
    left.set_ylabel("mean speed / free-flow speed (length-weighted)")
    left.set_title(f"{report.get('city')}: chosen scale {report.get('scale')}")
    left.legend(loc="lower right", fontsize=8)
    scales = [c["scale"] for c in candidates]
    errors = [100 * (math.exp(c["error"]) - 1) if c["error"] is not None else 0 for c in candidates]
    right.plot(scales, errors, "o", color="#2b83ba")
    for k, (s, e) in enumerate(zip(scales, errors, strict=True)):
        right.annotate(str(k + 1), (s, e), textcoords="offset points", xytext=(4, 4), fontsize=8)
    right.axhline(0, color="grey", lw=0.8)
    right.axhspan(-15, 15, color="#abdda4", alpha=0.3, label="±15 % (target)")
    right.set_xlabel("background scale (share of Plan Bay Area car trips)")
    right.set_ylabel("arterials: simulated / target ratio − 1 (%)", color="#2b83ba")
    twin = right.twinx()
    twin.plot(scales, [100 * c["teleport_share"] for c in candidates], "s", color="#d7191c")
    twin.axhline(
        100 * float(report.get("max_teleport_share", 0.005)),  # type: ignore[arg-type]
        color="#d7191c", ls="--", lw=0.8,
    )  # fmt: skip
    twin.set_ylabel("teleports, % of inserted vehicles", color="#d7191c")
    twin.set_ylim(bottom=0)
    right.set_title("candidates (numbers: order tried)")
    right.legend(loc="center right", fontsize=8)
    fig.text(
        0.01, 0.005, "Speeds: INRIX 2016 via SFCTA (tncsandcongestion); background demand: "
        "MTC/ABAG Plan Bay Area 2015; simulated with Eclipse SUMO", fontsize=7,
    )  # fmt: skip
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path)
    plt.close(fig)
    return path
