"""Demand: TNC zone loading, request sampling statistics, the map filter, synthetic demand."""

from __future__ import annotations

import csv
import gzip
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import shapely
from pyproj import Transformer
from scipy import stats

from robotaxi.config.models import DemandConfig
from robotaxi.core.errors import ConfigError, DataNotFoundError, RobotaxiError
from robotaxi.fleet.demand import (
    DemandModel,
    DemandSample,
    ServiceArea,
    SyntheticDemand,
    TncDemand,
)
from robotaxi.fleet.names import FIRST_NAMES
from robotaxi.map.zones import DemandDataError, TncZones, load_tnc_zones

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA_DIR.is_dir(), reason=f"{DATA_DIR} is absent")

SF_TM = "+proj=tmerc +lat_0=37.76 +lon_0=-122.44 +k=1 +x_0=0 +y_0=0 +ellps=WGS84 +units=m"
_FWD = Transformer.from_crs("EPSG:4326", SF_TM, always_xy=True)
_INV = Transformer.from_crs(SF_TM, "EPSG:4326", always_xy=True)
MISSION = {"lat": (37.731, 37.774), "lon": (-122.446, -122.377)}
TUESDAY = 1


def demand_config(**values: float) -> DemandConfig:
    return DemandConfig.model_validate(values)


def to_xy(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = _FWD.transform(lon, lat)
    return np.asarray(x, dtype=float), np.asarray(y, dtype=float)


def to_lonlat(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lon, lat = _INV.transform(x, y)
    return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)


def in_mission(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    lon, lat = to_lonlat(x, y)
    (lat0, lat1), (lon0, lon1) = MISSION["lat"], MISSION["lon"]
    return (lat >= lat0) & (lat <= lat1) & (lon >= lon0) & (lon <= lon1)


def mission_area() -> ServiceArea:
    # the box's edges bow slightly in a transverse Mercator: bound a densified outline
    (lat0, lat1), (lon0, lon1) = MISSION["lat"], MISSION["lon"]
    s = np.linspace(0, 1, 50)
    lon = np.concatenate([lon0 + s * (lon1 - lon0), np.full(50, lon1), lon0 + s * (lon1 - lon0),
                          np.full(50, lon0)])  # fmt: skip
    lat = np.concatenate([np.full(50, lat0), lat0 + s * (lat1 - lat0), np.full(50, lat1),
                          lat0 + s * (lat1 - lat0)])  # fmt: skip
    x, y = to_xy(lon, lat)
    return ServiceArea(to_xy, in_mission, (x.min() - 1, y.min() - 1, x.max() + 1, y.max() + 1))


def request_arrays(sample: DemandSample) -> dict[str, np.ndarray]:
    r = sample.requests
    return {
        "t": np.array([q.time.time_s for q in r]),
        "pickup": np.array([(q.pickup_x, q.pickup_y) for q in r]).reshape(-1, 2),
        "dropoff": np.array([(q.dropoff_x, q.dropoff_y) for q in r]).reshape(-1, 2),
        "origin": np.array([int(q.origin_zone.removeprefix("taz")) for q in r], dtype=int),
        "dest": np.array([int(q.destination_zone.removeprefix("taz")) for q in r], dtype=int),
    }


@pytest.fixture(scope="module")
def zones() -> TncZones:
    return load_tnc_zones(DATA_DIR)


@pytest.fixture(scope="module")
def city(zones: TncZones) -> TncDemand:
    """The whole city as the service area, every request kept."""
    return TncDemand(zones, ServiceArea(to_xy), demand_config(market_share=0.5))


# --- loading --------------------------------------------------------------------------


@needs_data
def test_load_zones_matches_the_csv(zones: TncZones) -> None:
    assert zones.n_zones == 981
    assert zones.taz.tolist() == list(range(1, 982))
    assert len(zones.polygons) == len(zones.nhood) == 981
    assert zones.pickups.shape == zones.dropoffs.shape == (7, 24, 981)
    # README: a weekday 08:00–09:00 has about 8,900 pick-ups
    assert zones.pickups[TUESDAY, 8].sum() == pytest.approx(8850.6, abs=0.05)
    # brute force with the csv module: the same totals, and service-day hour 24 = 00:00 next day
    total_pickups = total_dropoffs = 0.0
    monday_24_taz1 = None
    with (DATA_DIR / "sf" / "tncs_today" / "TNC_pickups_dropoffs.csv").open() as handle:
        for row in csv.DictReader(handle):
            if int(row["taz"]) <= 981:
                total_pickups += float(row["pickups"])
                total_dropoffs += float(row["dropoffs"])
            if row["taz"] == "1" and row["day_of_week"] == "0" and row["hour"] == "24":
                monday_24_taz1 = float(row["pickups"])
    assert zones.pickups.sum() == pytest.approx(total_pickups, rel=1e-12)
    assert zones.dropoffs.sum() == pytest.approx(total_dropoffs, rel=1e-12)
    assert monday_24_taz1 is not None
    assert zones.pickups[TUESDAY, 0, 0] == pytest.approx(monday_24_taz1)
    assert not zones.pickups.flags.writeable


@needs_data
def test_load_is_cached_per_path(zones: TncZones) -> None:
    assert load_tnc_zones(DATA_DIR) is zones
    assert load_tnc_zones(DATA_DIR / "." / "sf" / "..") is zones


def test_missing_data_folder_names_the_path_and_the_option(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-data"
    with pytest.raises(DataNotFoundError) as info:
        load_tnc_zones(missing)
    message = str(info.value)
    assert str(missing / "sf" / "tncs_today") in message
    assert "--data-dir" in message
    assert "\n" not in message


# --- a hand-built city with known answers ---------------------------------------------

LON0, LAT0 = -122.44, 37.76
M_PER_DEG_LAT = 110_540.0
M_PER_DEG_LON = 111_320.0 * math.cos(math.radians(LAT0))


def flat_xy(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (np.asarray(lon) - LON0) * M_PER_DEG_LON, (np.asarray(lat) - LAT0) * M_PER_DEG_LAT


def square(x0_m: float, size_m: float = 200.0) -> str:
    """A GeoJSON MultiPolygon string: a square of `size_m` starting `x0_m` east of LON0."""
    lon = [LON0 + (x0_m + dx) / M_PER_DEG_LON for dx in (0, size_m, size_m, 0, 0)]
    lat = [LAT0 + dy / M_PER_DEG_LAT for dy in (0, 0, size_m, size_m, 0)]
    ring = [[a, b] for a, b in zip(lon, lat, strict=True)]
    return json.dumps({"type": "MultiPolygon", "coordinates": [[ring]]})


def write_city(folder: Path, rows: list[str], zones: list[tuple[int, str]]) -> Path:
    target = folder / "sf" / "tncs_today"
    target.mkdir(parents=True, exist_ok=True)
    (target / "TNC_pickups_dropoffs.csv").write_text("\n".join(rows) + "\n")
    records = [{"taz": t, "nhood": f"zone {t}", "geometry": g} for t, g in zones]
    records.append({"taz": 2005, "nhood": "East Bay", "geometry": square(9e5)})
    with gzip.open(target / "taz_boundaries.json.gz", "wt") as handle:
        json.dump(records, handle)
    return folder


def three_zone_city(folder: Path) -> Path:
    """Pick-ups only in zone 1; zones 2 and 3 have equal drop-offs, 1 km and 3 km away."""
    rows = ["taz,day_of_week,hour,pickups,dropoffs", "1,1,8,4000,0", "2,1,8,0,10", "3,1,8,0,10"]
    return write_city(folder, rows, [(1, square(0)), (2, square(1000)), (3, square(3000))])


def test_destination_choice_follows_the_decay_formula(tmp_path: Path) -> None:
    zones = load_tnc_zones(three_zone_city(tmp_path))
    decay = 0.5
    config = demand_config(market_share=1.0, distance_decay_per_km=decay, min_trip_m=0.0)
    sample = TncDemand(zones, ServiceArea(flat_xy), config).sample(TUESDAY, 8.0, 1.0, seed=3)
    dest = [q.destination_zone for q in sample.requests]
    near, far = dest.count("taz2"), dest.count("taz3")
    assert near + far == len(dest) == sample.drawn  # zone 1 has no drop-offs
    p_near = 1 / (1 + math.exp(-decay * 2.0))  # equal drop-offs, 2 km further
    assert near / len(dest) == pytest.approx(
        p_near, abs=4 * math.sqrt(p_near * (1 - p_near) / len(dest))
    )
    # 4000 expected requests: Poisson, so within 5 σ
    assert abs(sample.drawn - 4000) < 5 * math.sqrt(4000)
    for q in sample.requests:
        assert 0 <= q.pickup_x <= 200 and 0 <= q.pickup_y <= 200
        assert (1000 if q.destination_zone == "taz2" else 3000) <= q.dropoff_x


def test_short_trips_are_redrawn(tmp_path: Path) -> None:
    zones = load_tnc_zones(three_zone_city(tmp_path))
    # zone 2's far edge is 1.2 km from zone 1's near edge: 1.5 km trips must all go to zone 3
    config = demand_config(market_share=0.1, distance_decay_per_km=0.0, min_trip_m=1500.0)
    sample = TncDemand(zones, ServiceArea(flat_xy), config).sample(TUESDAY, 8.0, 1.0, seed=4)
    assert sample.requests and sample.dropped_short == 0
    assert {q.destination_zone for q in sample.requests} == {"taz3"}


@pytest.mark.parametrize(
    ("rows", "hint"),
    [
        (["taz,day,hour,pickups,dropoffs", "1,1,8,1,1"], "columns"),
        (["taz,day_of_week,hour,pickups,dropoffs", "1,1,eight,1,1"], "numeric"),
        (["taz,day_of_week,hour,pickups,dropoffs", "1,1,30,1,1"], "out of range"),
        (["taz,day_of_week,hour,pickups,dropoffs", "1,1,8,-1,1"], "out of range"),
        (["taz,day_of_week,hour,pickups,dropoffs", "7,1,8,1,1"], "zone 7"),
    ],
)
def test_malformed_trip_table_is_a_clear_error(tmp_path: Path, rows: list[str], hint: str) -> None:
    write_city(tmp_path, rows, [(1, square(0))])
    with pytest.raises(DemandDataError, match=hint) as info:
        load_tnc_zones(tmp_path)
    assert "TNC_pickups_dropoffs.csv" in str(info.value)
    assert isinstance(info.value, RobotaxiError)


def test_malformed_zone_file_is_a_clear_error(tmp_path: Path) -> None:
    write_city(tmp_path, ["taz,day_of_week,hour,pickups,dropoffs", "1,1,8,1,1"], [(1, square(0))])
    zone_file = tmp_path / "sf" / "tncs_today" / "taz_boundaries.json.gz"
    zone_file.write_bytes(b"not gzip at all")
    with pytest.raises(DemandDataError, match=r"taz_boundaries\.json\.gz"):
        load_tnc_zones(tmp_path)
    with gzip.open(zone_file, "wt") as handle:
        json.dump([{"taz": 1, "geometry": '{"type": "Point", "coordinates": [0, 0]}'}], handle)
    with pytest.raises(DemandDataError, match="zone 1 is not a polygon"):
        load_tnc_zones(tmp_path)


def test_bad_window_is_a_config_error(tmp_path: Path) -> None:
    zones = load_tnc_zones(three_zone_city(tmp_path))
    demand = TncDemand(zones, ServiceArea(flat_xy))
    for day, start, hours in [(7, 8.0, 1.0), (1, 24.0, 1.0), (1, 8.0, 0.0), (-1, 8.0, 1.0)]:
        with pytest.raises(ConfigError):
            demand.sample(day, start, hours, seed=1)


# --- the real city --------------------------------------------------------------------


def aggregated_chi_square(observed: np.ndarray, probability: np.ndarray) -> float:
    """p-value of observed zone counts against `probability`, zones pooled to expected ≥ 5."""
    expected = probability / probability.sum() * observed.sum()
    order = np.argsort(expected)
    groups_obs, groups_exp = [], []
    acc_obs = acc_exp = 0.0
    for i in order:
        acc_obs += observed[i]
        acc_exp += expected[i]
        if acc_exp >= 5:
            groups_obs.append(acc_obs)
            groups_exp.append(acc_exp)
            acc_obs = acc_exp = 0.0
    groups_obs[-1] += acc_obs  # the leftover joins the largest group
    groups_exp[-1] += acc_exp
    assert min(groups_exp) >= 5 and len(groups_exp) > 50
    return float(stats.chisquare(groups_obs, groups_exp).pvalue)


@needs_data
def test_origins_follow_the_pickup_distribution(zones: TncZones, city: TncDemand) -> None:
    sample = city.sample(TUESDAY, 8.0, 1.0, seed=7)
    origin = request_arrays(sample)["origin"]
    assert len(origin) == sample.drawn > 4000  # nothing dropped on the whole-city map
    observed = np.bincount(origin - 1, minlength=981).astype(float)
    assert aggregated_chi_square(observed, zones.pickups[TUESDAY, 8]) > 0.01
    # the check can fail: the evening's pick-ups, or all zones alike, are rejected
    assert aggregated_chi_square(observed, zones.pickups[TUESDAY, 17]) < 1e-6
    assert aggregated_chi_square(observed, np.ones(981)) < 1e-6


@needs_data
def test_destinations_shrink_with_distance_decay(zones: TncZones) -> None:
    mean_km = []
    for decay in (0.0, 0.25, 1.0):
        config = demand_config(market_share=0.2, distance_decay_per_km=decay)
        sample = TncDemand(zones, ServiceArea(to_xy), config).sample(TUESDAY, 8.0, 1.0, seed=5)
        a = request_arrays(sample)
        length = np.hypot(*(a["dropoff"] - a["pickup"]).T)
        assert length.min() >= config.min_trip_m
        mean_km.append(length.mean() / 1000)
    assert mean_km[0] > mean_km[1] + 0.3 > mean_km[2] + 0.6


@needs_data
def test_points_lie_inside_their_zone_polygons(city: TncDemand) -> None:
    sample = city.sample(TUESDAY, 17.5, 0.5, seed=11)
    a = request_arrays(sample)
    # independent of the sampler: raw GeoJSON, lon/lat, the inverse projection
    with gzip.open(DATA_DIR / "sf" / "tncs_today" / "taz_boundaries.json.gz", "rt") as handle:
        raw = {
            r["taz"]: shapely.geometry.shape(json.loads(r["geometry"])) for r in json.load(handle)
        }
    for points, zone in ((a["pickup"], a["origin"]), (a["dropoff"], a["dest"])):
        lon, lat = to_lonlat(points[:, 0], points[:, 1])
        polygons = np.array([raw[int(t)] for t in zone], dtype=object)
        gap_deg = shapely.distance(polygons, shapely.points(lon, lat))
        assert gap_deg.max() < 1e-7  # ≈ 1 cm: projected straight edges vs lon/lat ones
        assert shapely.contains_xy(polygons, lon, lat).mean() > 0.999


@needs_data
def test_requests_outside_the_map_are_dropped_and_counted(zones: TncZones) -> None:
    config = demand_config(market_share=0.5)
    mission = TncDemand(zones, mission_area(), config).sample(TUESDAY, 8.0, 1.0, seed=9)
    whole = TncDemand(zones, ServiceArea(to_xy), config).sample(TUESDAY, 8.0, 1.0, seed=9)
    assert mission.drawn == whole.drawn  # the same requests were drawn...
    kept = len(mission.requests)
    assert kept + mission.dropped_outside_map + mission.dropped_short == mission.drawn
    assert 0 < kept < 0.2 * mission.drawn < mission.dropped_outside_map  # ...most fell outside
    a = request_arrays(mission)
    assert in_mission(a["pickup"][:, 0], a["pickup"][:, 1]).all()
    assert in_mission(a["dropoff"][:, 0], a["dropoff"][:, 1]).all()
    assert mission.zones_used < 250 < whole.zones_used
    # every zone a request names has its neighbourhood, for the KPIs per district
    named = {r.origin_zone for r in whole.requests} | {r.destination_zone for r in whole.requests}
    assert named == set(whole.districts) and len(named) == whole.zones_used
    nhood = dict(zip((f"taz{t}" for t in zones.taz), zones.nhood, strict=True))
    assert all(whole.districts[z] == nhood[z] for z in named)
    assert 20 < len(set(whole.districts.values())) <= len(set(zones.nhood))


@needs_data
def test_expected_pickups_match_what_sample_generates(zones: TncZones) -> None:
    config = demand_config(market_share=0.5, min_trip_m=0.0)
    demand = TncDemand(zones, mission_area(), config)
    xy, rate = demand.expected_pickups(TUESDAY, 8.0)
    assert xy.shape == (rate.size, 2) and (rate > 0).all()
    assert in_mission(xy[:, 0], xy[:, 1]).mean() > 0.95  # centres of the in-map parts
    counts = [len(demand.sample(TUESDAY, 8.0, 1.0, seed=s).requests) for s in range(20)]
    assert np.mean(counts) == pytest.approx(rate.sum(), rel=0.04)
    # asked again in the same clock hour (rebalancing asks every round): the same answer,
    # whatever the caller did with the last one
    xy[:] = 0.0
    rate[:] = 0.0
    again_xy, again = demand.expected_pickups(TUESDAY, 8.9)
    assert (again > 0).all() and np.mean(counts) == pytest.approx(again.sum(), rel=0.04)
    assert in_mission(again_xy[:, 0], again_xy[:, 1]).mean() > 0.95
    # whole city: every pick-up × market share, hour 25 = 01:00 of the next day
    full = TncDemand(zones, ServiceArea(to_xy), config)
    _, rate = full.expected_pickups(TUESDAY, 25.5)
    assert rate.sum() == pytest.approx(0.5 * zones.pickups[TUESDAY + 1, 1].sum())


@needs_data
def test_window_splits_hours_fractionally(zones: TncZones) -> None:
    demand = TncDemand(zones, ServiceArea(to_xy), demand_config(market_share=1.0))
    sample = demand.sample(TUESDAY, 8.5, 1.0, seed=2)
    mean = 0.5 * (zones.pickups[TUESDAY, 8].sum() + zones.pickups[TUESDAY, 9].sum())
    assert abs(sample.drawn - mean) < 5 * math.sqrt(mean)
    t = request_arrays(sample)["t"]
    assert t.min() >= 0 and t.max() < 3600
    assert np.all(np.diff(t) >= 0)
    # the first half hour draws from 08:00's zones, the second from 09:00's
    assert abs(np.sum(t < 1800) - zones.pickups[TUESDAY, 8].sum() / 2) < 5 * math.sqrt(mean / 2)


@needs_data
def test_same_seed_same_requests(city: TncDemand) -> None:
    first = city.sample(TUESDAY, 8.0, 0.25, seed=42)
    assert first == city.sample(TUESDAY, 8.0, 0.25, seed=42)
    assert first.requests != city.sample(TUESDAY, 8.0, 0.25, seed=43).requests


@needs_data
def test_request_fields(city: TncDemand) -> None:
    requests = city.sample(TUESDAY, 8.0, 1.0, seed=8).requests
    assert [q.request_id for q in requests[:3]] == ["r000001", "r000002", "r000003"]
    assert len({q.rider_id for q in requests}) == len(requests)
    assert {q.rider_name for q in requests} <= set(FIRST_NAMES)
    assert len({q.rider_name for q in requests}) > 250
    patience = np.array([q.patience_s for q in requests])
    assert patience.min() >= 180 and patience.max() <= 1200
    assert patience.mean() == pytest.approx(demand_config().patience_mean_s, rel=0.03)
    assert all(a.time <= b.time for a, b in itertools.pairwise(requests))


# --- synthetic demand -----------------------------------------------------------------

GRID_BOX = (0.0, 0.0, 3000.0, 3000.0)


def test_synthetic_rate_and_hot_spots() -> None:
    config = demand_config(requests_per_hour=120.0)
    demand = SyntheticDemand(GRID_BOX, config, layout_seed=7)
    spots = demand.spots_m
    assert 3 <= len(spots) <= 5
    assert ((spots >= 0.15 * 3000) & (spots <= 0.85 * 3000)).all()
    sample = demand.sample(TUESDAY, 8.0, 10.0, seed=1)
    n = len(sample.requests)
    assert abs(n - 1200) < 4 * math.sqrt(1200) and sample.dropped_outside_map == 0
    a = request_arrays_synthetic(sample)
    # origins crowd around the hot spots: within 2 σ of one, far more than the area share
    near = np.hypot(*(a["pickup"][:, None, :] - spots[None]).transpose(2, 0, 1)).min(axis=1)
    area_share = len(spots) * math.pi * (2 * demand.spot_sigma_m) ** 2 / 3000**2
    share_near = np.mean(near < 2 * demand.spot_sigma_m)
    # 70 % from hot spots, of which 86 % fall within 2 σ, plus the uniform part's area share
    assert share_near == pytest.approx(0.7 * 0.865 + 0.3 * area_share, abs=0.05)
    assert np.hypot(*(a["dropoff"] - a["pickup"]).T).min() >= config.min_trip_m
    assert ((a["pickup"] >= 0) & (a["pickup"] <= 3000)).all()
    xy, rate = demand.expected_pickups(TUESDAY, 8.0)
    assert np.array_equal(xy, spots)
    assert rate.sum() == pytest.approx(120.0 * 0.7)


def request_arrays_synthetic(sample: DemandSample) -> dict[str, np.ndarray]:
    r = sample.requests
    return {
        "pickup": np.array([(q.pickup_x, q.pickup_y) for q in r]),
        "dropoff": np.array([(q.dropoff_x, q.dropoff_y) for q in r]),
    }


def test_synthetic_is_deterministic_and_respects_inside() -> None:
    def west_half(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.asarray(x) < 1500

    a = SyntheticDemand(GRID_BOX, layout_seed=3, inside=west_half)
    b = SyntheticDemand(GRID_BOX, layout_seed=3, inside=west_half)
    assert np.array_equal(a.spots_m, b.spots_m)
    assert (a.spots_m[:, 0] < 1500).all()
    assert not np.array_equal(a.spots_m, SyntheticDemand(GRID_BOX, layout_seed=4).spots_m)
    first = a.sample(0, 23.5, 1.0, seed=5)
    assert first == b.sample(0, 23.5, 1.0, seed=5)
    assert first.requests != a.sample(0, 23.5, 1.0, seed=6).requests
    points = request_arrays_synthetic(first)
    assert (points["pickup"][:, 0] < 1500).all() and (points["dropoff"][:, 0] < 1500).all()


def test_both_models_satisfy_the_protocol(tmp_path: Path) -> None:
    models: list[DemandModel] = [
        SyntheticDemand(GRID_BOX),
        TncDemand(load_tnc_zones(three_zone_city(tmp_path)), ServiceArea(flat_xy)),
    ]
    for model in models:
        sample = model.sample(TUESDAY, 8.0, 0.5, seed=1)
        xy, rate = model.expected_pickups(TUESDAY, 8.0)
        assert xy.shape == (rate.size, 2) and rate.sum() > 0
        assert all(0 <= q.time.time_s < 1800 for q in sample.requests)


def test_names_list() -> None:
    assert len(FIRST_NAMES) >= 300
    assert len(set(FIRST_NAMES)) == len(FIRST_NAMES)
    assert all(name.isalpha() and name[0].isupper() for name in FIRST_NAMES)
