"""San Francisco's traffic zones (SFCTA's TAZ) with their average Uber and Lyft pick-ups and
drop-offs per day of week and hour (SFCTA, "TNCs Today", 2017): where people go, zone by
zone. The ride demand samples requests from them (`fleet.demand`); the background traffic
places car trips' ends by them (`world.background`).
"""

from __future__ import annotations

import functools
import gzip
import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import shapely

from robotaxi.core.errors import DataNotFoundError, RobotaxiError
from robotaxi.core.types import FloatArray, IntArray
from robotaxi.map.model import RoadMap

TNC_SUBDIR = Path("sf") / "tncs_today"
TNC_CSV = "TNC_pickups_dropoffs.csv"
TNC_ZONES = "taz_boundaries.json.gz"
SF_MAX_TAZ = 981  # higher zone numbers are the rest of the Bay Area
CSV_HEADER = ("taz", "day_of_week", "hour", "pickups", "dropoffs")


# San Francisco (city and county, the SFCTA zones' extent) in degrees: lon min, lat min, lon
# max, lat max. A map that does not reach into it has no TNC demand to draw from.
SF_LONLAT_BOX = (-122.53, 37.70, -122.35, 37.84)


def reaches_san_francisco(road_map: RoadMap) -> bool:
    """Whether the map's extent overlaps San Francisco's (`SF_LONLAT_BOX`)."""
    xmin, ymin, xmax, ymax = road_map.bounds
    lon, lat = road_map.projection.xy_to_lonlat(
        np.array([xmin, xmax, xmin, xmax]), np.array([ymin, ymin, ymax, ymax])
    )
    w, s, e, n = SF_LONLAT_BOX
    return bool(lon.min() <= e and lon.max() >= w and lat.min() <= n and lat.max() >= s)


class DemandDataError(RobotaxiError):
    """A demand data file exists but cannot be read (malformed CSV or zone file)."""


# --- the TNC data ---------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TncZones:
    """San Francisco's traffic zones with average TNC pick-ups and drop-offs.

    `taz` (N) are zone numbers 1..981 in ascending order; `polygons` (N, shapely
    MultiPolygons in lon/lat degrees) and `nhood` (N neighbourhood names) are in the same
    order; `pickups` and `dropoffs` are 7×24×N arrays of average counts per hour indexed
    by (calendar day of week 0 = Monday, clock hour 0–23, zone); the file's service-day
    hours 24–26 are stored as 00–02 of the next day. Arrays are read-only.
    """

    source: Path
    taz: IntArray
    nhood: tuple[str, ...]
    polygons: npt.NDArray[np.object_]
    pickups: FloatArray
    dropoffs: FloatArray

    @property
    def n_zones(self) -> int:
        return int(self.taz.size)

    def pickups_per_hour(self, day: int, hour: int) -> FloatArray:
        """Average pick-ups per zone (N) in the hour starting at `hour` of `day`."""
        return self.pickups[day % 7, hour % 24]


def tnc_paths(data_dir: Path) -> tuple[Path, Path]:
    """The trip table and the zone polygons below the shared data folder."""
    folder = Path(data_dir) / TNC_SUBDIR
    return folder / TNC_CSV, folder / TNC_ZONES


def load_tnc_zones(data_dir: Path) -> TncZones:
    """Load the TNCs Today zones and rates from `data_dir`/sf/tncs_today.

    Raises DataNotFoundError when a file is missing and DemandDataError when one is
    malformed. Parsed results are cached per (path, size, modification time), so repeated
    calls in one process cost nothing and an edited file is read again.
    """
    csv_path, zones_path = tnc_paths(data_dir)
    for path in (csv_path, zones_path):
        if not path.is_file():
            raise DataNotFoundError(
                f"demand data {path} not found: San Francisco demand needs SFCTA's TNCs "
                f"Today files in <data-dir>/{TNC_SUBDIR}; point --data-dir at the shared "
                f"data folder (e.g. --data-dir ../shared/data) or use --city grid"
            )
    csv_stat, zones_stat = csv_path.stat(), zones_path.stat()
    return _load_tnc_zones_cached(
        csv_path.resolve(),
        zones_path.resolve(),
        (csv_stat.st_size, csv_stat.st_mtime_ns),
        (zones_stat.st_size, zones_stat.st_mtime_ns),
    )


@functools.lru_cache(maxsize=4)
def _load_tnc_zones_cached(
    csv_path: Path,
    zones_path: Path,
    _csv_version: tuple[int, int],
    _zones_version: tuple[int, int],
) -> TncZones:
    taz, nhood, polygons = _read_zone_polygons(zones_path)
    pickups, dropoffs = _read_rates(csv_path, taz)
    for array in (taz, polygons, pickups, dropoffs):
        array.setflags(write=False)
    return TncZones(csv_path.parent, taz, nhood, polygons, pickups, dropoffs)


def _read_zone_polygons(path: Path) -> tuple[IntArray, tuple[str, ...], npt.NDArray[np.object_]]:
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            records = json.load(handle)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DemandDataError(
            f"zone file {path} is not a gzipped JSON list of zones ({exc}); "
            "restore it from the shared data folder"
        ) from None
    if not isinstance(records, list):
        raise DemandDataError(f"zone file {path} must hold a JSON list of zone records")
    rows: dict[int, tuple[str, str]] = {}
    for i, record in enumerate(records):
        try:
            number = int(record["taz"])
            geometry = str(record["geometry"])
            name = str(record.get("nhood", ""))
        except (TypeError, KeyError, ValueError):
            raise DemandDataError(
                f"zone file {path}: record {i} lacks an integer 'taz' or a 'geometry'"
            ) from None
        if 1 <= number <= SF_MAX_TAZ:
            rows[number] = (name, geometry)
    if not rows:
        raise DemandDataError(f"zone file {path} holds no San Francisco zones (taz 1–981)")
    taz = np.array(sorted(rows), dtype=np.int64)
    try:
        polygons = shapely.from_geojson([rows[int(t)][1] for t in taz])
    except shapely.errors.GEOSException as exc:
        raise DemandDataError(f"zone file {path}: a zone geometry is not GeoJSON ({exc})") from None
    kinds = shapely.get_type_id(polygons)
    polygonal = (kinds == shapely.GeometryType.POLYGON) | (
        kinds == shapely.GeometryType.MULTIPOLYGON
    )
    bad = ~polygonal | ~(shapely.area(polygons) > 0)
    if bad.any():
        raise DemandDataError(
            f"zone file {path}: zone {int(taz[np.argmax(bad)])} is not a polygon with an area"
        )
    invalid = ~shapely.is_valid(polygons)
    if invalid.any():
        # self-touching rings from the shapefile conversion would break point-in-polygon tests
        polygons[invalid] = shapely.make_valid(polygons[invalid])
    nhood = tuple(rows[int(t)][0] for t in taz)
    return taz, nhood, polygons


def _read_rates(path: Path, taz: IntArray) -> tuple[FloatArray, FloatArray]:
    try:
        with path.open(encoding="utf-8") as handle:
            header = tuple(h.strip() for h in handle.readline().split(","))
            if header != CSV_HEADER:
                raise DemandDataError(
                    f"trip table {path} has columns {','.join(header)!r}, "
                    f"expected {','.join(CSV_HEADER)!r}"
                )
            table = np.loadtxt(handle, delimiter=",", dtype=np.float64, ndmin=2)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DemandDataError(f"trip table {path} is not a numeric CSV ({exc})") from None
    if table.shape[1] != len(CSV_HEADER) or table.shape[0] == 0:
        raise DemandDataError(f"trip table {path} must have {len(CSV_HEADER)} columns and rows")
    zone, day, hour = (table[:, k] for k in range(3))
    counts = table[:, 3:5]
    whole = (zone == np.round(zone)) & (day == np.round(day)) & (hour == np.round(hour))
    # SFCTA counts a service day from 03:00 to 03:00: hours 24–26 are 00–02 of the next day
    in_range = (day >= 0) & (day <= 6) & (hour >= 0) & (hour <= 26)
    sane = np.isfinite(counts).all(axis=1) & (counts >= 0).all(axis=1)
    bad = ~(whole & in_range & sane)
    if bad.any():
        row = int(np.argmax(bad))
        raise DemandDataError(
            f"trip table {path}, data row {row + 1}: {table[row].tolist()} is out of range "
            "(taz integer, day_of_week 0–6, hour 0–26, counts ≥ 0)"
        )
    sf = zone <= SF_MAX_TAZ
    column = np.searchsorted(taz, zone[sf].astype(np.int64))
    column = np.minimum(column, taz.size - 1)
    unknown = taz[column] != zone[sf].astype(np.int64)
    if unknown.any():
        raise DemandDataError(
            f"trip table {path} names zone {int(zone[sf][np.argmax(unknown)])}, "
            "which the zone file does not have"
        )
    pickups = np.zeros((7, 24, taz.size))
    dropoffs = np.zeros((7, 24, taz.size))
    # hours without a row had no trips; np.add.at also sums duplicate rows instead of keeping one
    service_hour = hour[sf].astype(np.int64)
    calendar_day = (day[sf].astype(np.int64) + service_hour // 24) % 7
    index = (calendar_day, service_hour % 24, column)
    np.add.at(pickups, index, counts[sf, 0])
    np.add.at(dropoffs, index, counts[sf, 1])
    return pickups, dropoffs
