"""Ride demand: who asks for a ride, when, from where and to where.

Two models behind one `DemandModel` protocol:

- `TncDemand` samples San Francisco requests from SFCTA's "TNCs Today" data (average Uber
  and Lyft pick-ups and drop-offs per traffic zone, day of week and hour; SFCTA, TNCs Today
  (2017)), scaled by a market share;
- `SyntheticDemand` serves the built-in grid city, which has no data: a few hot spots.

The map is passed in as plain callables (`ServiceArea`), so this module never imports
`robotaxi.map` and stays a pure function of its inputs and the seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt
import shapely

from robotaxi.config.models import DemandConfig
from robotaxi.core.errors import ConfigError
from robotaxi.core.time import TimePoint
from robotaxi.core.types import BoolArray, FloatArray, IntArray, RideRequest
from robotaxi.fleet.names import FIRST_NAMES
from robotaxi.map import RoadMap
from robotaxi.map.zones import (
    DemandDataError,
    TncZones,
)

ToXY = Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]]
InsideFn = Callable[[FloatArray, FloatArray], BoolArray]


PATIENCE_MIN_S = 180.0
PATIENCE_MAX_S = 1200.0
PATIENCE_SIGMA = 0.35  # lognormal shape: most riders wait 0.6×–1.6× the mean
MAX_RESAMPLE_ROUNDS = 50


# --- the map as the demand model sees it ----------------------------------------------


def _default_config() -> DemandConfig:
    return DemandConfig.model_validate({})


def _everywhere(x: FloatArray, y: FloatArray) -> BoolArray:
    return np.ones(np.shape(x), dtype=bool)


@dataclass(frozen=True)
class ServiceArea:
    """The loaded map, reduced to what demand needs.

    `to_xy(lon, lat) -> (x, y)` projects degrees to map metres (vectorised);
    `inside(x, y) -> bool array` says whether a point is within the road network's service
    area; `bbox_m` = (xmin, ymin, xmax, ymax) in map metres must contain every point for
    which `inside` is true (zones outside it are skipped without sampling). `outline_m`
    (optional, map metres) is the outline of the road network: a zone that lies wholly
    inside it is served everywhere, so a point of it that falls far from a road (a park, a
    reservoir) is drawn again in the same zone instead of being dropped.
    """

    to_xy: ToXY
    inside: InsideFn = _everywhere
    bbox_m: tuple[float, float, float, float] | None = None
    outline_m: shapely.Geometry | None = None

    @classmethod
    def of_map(cls, road_map: RoadMap, walk_m: float = 250.0) -> ServiceArea:
        """The service area of a loaded map: its curbs within `walk_m`, its bounds, and the
        outline of its roads (the convex hull of the curb spots, `walk_m` wider)."""
        hull = shapely.convex_hull(shapely.multipoints(road_map.curbs.xy))
        return cls(
            to_xy=road_map.projection.lonlat_to_xy,
            inside=road_map.inside,
            bbox_m=road_map.bounds,
            outline_m=hull.buffer(walk_m),
        )


# --- results --------------------------------------------------------------------------


@dataclass(frozen=True)
class DemandSample:
    """Ride requests for one service window, sorted by time, ids "r000001", ...

    `drawn` counts every request the rates produced; of those, `dropped_outside_map` had a
    pick-up or drop-off point outside the service area and were not generated, and
    `dropped_short` stayed shorter than the minimum trip length after resampling.
    `zones_used` is the number of distinct zones among the requests' origins and
    destinations; `districts` names the district (neighbourhood) of each zone a request
    names, where the zones have one.
    """

    requests: tuple[RideRequest, ...]
    dropped_outside_map: int
    dropped_short: int
    drawn: int
    zones_used: int
    districts: Mapping[str, str] = field(default_factory=dict)


class DemandModel(Protocol):
    """What the simulation and the rebalancer need from a demand model."""

    def sample(self, day: int, start_hour: float, hours: float, seed: int) -> DemandSample:
        """Requests for `hours` from `start_hour` (0–24) of `day` (0 = Monday).

        Times are relative to the service start (t = 0 at `start_hour`).
        """
        ...

    def expected_pickups(self, day: int, hour: float) -> tuple[FloatArray, FloatArray]:
        """(xy: N×2 zone centres in map metres, rate: N expected requests per hour)."""
        ...


# --- shared sampling pieces -----------------------------------------------------------


def _check_window(day: int, start_hour: float, hours: float) -> None:
    if not (isinstance(day, int | np.integer) and 0 <= day <= 6):
        raise ConfigError(f"day of week {day!r} must be an integer 0 (Monday) to 6 (Sunday)")
    if not (0 <= start_hour < 24):
        raise ConfigError(f"start hour {start_hour} must be within 0–24 (e.g. 8.0 for 08:00)")
    if not (0 < hours <= 24 * 7):
        raise ConfigError(f"service duration {hours} h must be positive and at most a week")


def _hour_segments(
    day: int, start_hour: float, hours: float
) -> list[tuple[int, int, float, float]]:
    """Split the window into pieces of whole clock hours: (day, hour, from_h, to_h).

    `from_h`/`to_h` are hours since the service start.
    """
    segments = []
    end = start_hour + hours
    h = math.floor(start_hour)
    while h < end:
        a, b = max(start_hour, h), min(end, h + 1)
        if b > a:
            segments.append(((day + h // 24) % 7, h % 24, a - start_hour, b - start_hour))
        h += 1
    return segments


def _patience_s(rng: np.random.Generator, mean_s: float, n: int) -> FloatArray:
    mu = math.log(mean_s) - PATIENCE_SIGMA**2 / 2  # so the unclipped mean is `mean_s`
    return np.clip(rng.lognormal(mu, PATIENCE_SIGMA, n), PATIENCE_MIN_S, PATIENCE_MAX_S)


def _build_requests(
    rng: np.random.Generator,
    t_s: FloatArray,
    pickup: FloatArray,
    dropoff: FloatArray,
    origin_zone: list[str],
    destination_zone: list[str],
    patience_mean_s: float,
) -> tuple[RideRequest, ...]:
    order = np.argsort(t_s, kind="stable")
    n = order.size
    names = rng.integers(0, len(FIRST_NAMES), n)
    patience = _patience_s(rng, patience_mean_s, n)
    requests = []
    for k, i in enumerate(order):
        requests.append(
            RideRequest(
                request_id=f"r{k + 1:06d}",
                rider_id=f"rider{k + 1:06d}",
                rider_name=FIRST_NAMES[int(names[k])],
                time=TimePoint.from_s(float(t_s[i])),
                pickup_x=float(pickup[i, 0]),
                pickup_y=float(pickup[i, 1]),
                dropoff_x=float(dropoff[i, 0]),
                dropoff_y=float(dropoff[i, 1]),
                patience_s=float(patience[k]),
                origin_zone=origin_zone[i],
                destination_zone=destination_zone[i],
            )
        )
    return tuple(requests)


def _rngs(seed: int, n: int) -> list[np.random.Generator]:
    # one stream per stage, so the number of requests drawn does not depend on the map
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]


def sample_points_in_polygons(
    rng: np.random.Generator,
    polygons: npt.NDArray[np.object_],
    bounds: FloatArray,
    acceptance: FloatArray,
    zone: IntArray,
) -> tuple[FloatArray, FloatArray]:
    """Points uniform inside `polygons[zone[i]]`, by vectorised rejection sampling.

    `bounds` is N×4 (xmin, ymin, xmax, ymax) per polygon and `acceptance` N the share of
    each bounding box the polygon covers; each round draws enough candidates per pending
    point that thin, diagonal zones finish in a few rounds too.
    """
    n = zone.size
    x = np.empty(n)
    y = np.empty(n)
    pending = np.arange(n)
    tries = np.clip(np.ceil(3.0 / np.maximum(acceptance, 1e-3)), 1, 64).astype(np.int64)
    for _ in range(MAX_RESAMPLE_ROUNDS):
        if pending.size == 0:
            break
        owner = np.repeat(pending, tries[zone[pending]])
        z = zone[owner]
        box = bounds[z]
        cx = box[:, 0] + rng.random(owner.size) * (box[:, 2] - box[:, 0])
        cy = box[:, 1] + rng.random(owner.size) * (box[:, 3] - box[:, 1])
        hit = shapely.contains_xy(polygons[z], cx, cy)
        # `owner` is sorted, so the first hit of each owner is its first accepted candidate
        won, first = np.unique(owner[hit], return_index=True)
        x[won] = cx[hit][first]
        y[won] = cy[hit][first]
        pending = np.setdiff1d(pending, won, assume_unique=True)
    if pending.size:
        raise DemandDataError(
            f"could not place a point inside polygon number {int(zone[pending[0]])}: "
            "its area is too small for its bounding box"
        )
    return x, y


def _bbox_overlaps(bounds: FloatArray, bbox: tuple[float, float, float, float] | None) -> BoolArray:
    if bbox is None:
        return np.ones(bounds.shape[0], dtype=bool)
    xmin, ymin, xmax, ymax = bbox
    return (
        (bounds[:, 2] >= xmin)
        & (bounds[:, 0] <= xmax)
        & (bounds[:, 3] >= ymin)
        & (bounds[:, 1] <= ymax)
    )


# --- San Francisco demand from the TNC data -------------------------------------------


@dataclass(frozen=True, eq=False)
class TncDemand:
    """Ride requests sampled from SFCTA's TNCs Today zone counts.

    Per zone and clock hour, the number of requests is Poisson with mean = pick-ups ×
    market share × the share of that hour inside the window; the origin point is uniform
    in the zone; the destination zone is drawn ∝ drop-offs × exp(−decay × centroid
    distance in km) and its point is uniform in that zone. Requests with either point
    outside the service area are not generated (and counted); trips shorter than
    `min_trip_m` get a new destination.
    """

    zones: TncZones
    area: ServiceArea
    config: DemandConfig = field(default_factory=_default_config)
    # derived once per map (see __post_init__); N = number of zones
    polygons_m: npt.NDArray[np.object_] = field(init=False, repr=False)
    bounds_m: FloatArray = field(init=False, repr=False)  # N×4
    acceptance: FloatArray = field(init=False, repr=False)  # N, polygon area / bbox area
    near_map: BoolArray = field(init=False, repr=False)  # N, bounds overlap the map bbox
    decay_weight: FloatArray = field(init=False, repr=False)  # N×N, exp(-decay × km)
    inside_share: FloatArray = field(init=False, repr=False)  # N, share of area in the map
    covered: BoolArray = field(init=False, repr=False)  # N, wholly inside the map's outline
    centre_m: FloatArray = field(init=False, repr=False)  # N×2, centre of the in-map part
    # `expected_pickups` per (day, hour): rebalancing asks every round, the answer changes
    # once an hour
    _expected: dict[tuple[int, int], tuple[FloatArray, FloatArray]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        to_xy = self.area.to_xy

        def project(coords: FloatArray) -> FloatArray:
            x, y = to_xy(coords[:, 0], coords[:, 1])
            return np.column_stack([x, y])

        polygons_m = shapely.transform(self.zones.polygons, project)
        shapely.prepare(polygons_m)
        bounds = shapely.bounds(polygons_m)
        box_area = (bounds[:, 2] - bounds[:, 0]) * (bounds[:, 3] - bounds[:, 1])
        centroid = shapely.get_coordinates(shapely.centroid(polygons_m))
        distance_km = np.hypot(*(centroid[:, None, :] - centroid[None, :, :]).transpose(2, 0, 1))
        distance_km /= 1000.0
        near_map = _bbox_overlaps(bounds, self.area.bbox_m)
        setattr_ = object.__setattr__
        setattr_(self, "polygons_m", polygons_m)
        setattr_(self, "bounds_m", bounds)
        setattr_(self, "acceptance", shapely.area(polygons_m) / np.maximum(box_area, 1e-9))
        setattr_(self, "near_map", near_map)
        setattr_(self, "decay_weight", np.exp(-self.config.distance_decay_per_km * distance_km))
        covered = (
            np.asarray(shapely.within(polygons_m, self.area.outline_m), dtype=bool)
            if self.area.outline_m is not None
            else np.zeros(len(polygons_m), dtype=bool)
        )
        setattr_(self, "covered", covered)
        share, centre = self._inside_share(centroid, polygons_m)
        share[covered] = 1.0  # every request of a covered zone finds a road (`_place`)
        setattr_(self, "inside_share", share)
        setattr_(self, "centre_m", centre)

    def _inside_share(
        self, centroid: FloatArray, polygons_m: npt.NDArray[np.object_], per_zone: int = 256
    ) -> tuple[FloatArray, FloatArray]:
        """Monte-Carlo share of each zone's area inside the map, and its in-map centre.

        Fixed seed: this is a property of the map, not of a run.
        """
        n = self.zones.n_zones
        share = np.zeros(n)
        centre = centroid.copy()
        near = np.flatnonzero(self.near_map)
        if near.size == 0:
            return share, centre
        zone = np.repeat(near, per_zone)
        rng = np.random.default_rng(20161)
        x, y = sample_points_in_polygons(rng, polygons_m, self.bounds_m, self.acceptance, zone)
        ok = np.asarray(self.area.inside(x, y), dtype=bool)
        hits = np.bincount(zone[ok], minlength=n).astype(np.float64)
        share = hits / per_zone
        with np.errstate(invalid="ignore", divide="ignore"):
            cx = np.bincount(zone[ok], weights=x[ok], minlength=n) / hits
            cy = np.bincount(zone[ok], weights=y[ok], minlength=n) / hits
        has = hits > 0
        centre[has, 0] = cx[has]
        centre[has, 1] = cy[has]
        return share, centre

    def _place(
        self, rng: np.random.Generator, zone: IntArray
    ) -> tuple[FloatArray, FloatArray, BoolArray]:
        """A point per request, uniform in its zone, and whether it is in the service area.
        A point of a covered zone that misses the service area is drawn again (up to
        `MAX_RESAMPLE_ROUNDS` times): the rider is somewhere in that zone near a road."""
        x, y = sample_points_in_polygons(rng, self.polygons_m, self.bounds_m, self.acceptance, zone)
        on = np.asarray(self.area.inside(x, y), dtype=bool)
        for _ in range(MAX_RESAMPLE_ROUNDS):
            again = np.flatnonzero(~on & self.covered[zone])
            if again.size == 0:
                break
            ax, ay = sample_points_in_polygons(
                rng, self.polygons_m, self.bounds_m, self.acceptance, zone[again]
            )
            x[again], y[again] = ax, ay
            on[again] = np.asarray(self.area.inside(ax, ay), dtype=bool)
        return x, y, on

    def _zone_name(self, index: int) -> str:
        return f"taz{int(self.zones.taz[index])}"

    def expected_pickups(self, day: int, hour: float) -> tuple[FloatArray, FloatArray]:
        """Zones with expected requests in the clock hour containing `hour` (may exceed 24).

        Returns (xy: N×2 centres of each zone's in-map part, rate: N requests per hour):
        pick-ups × market share × share of the zone inside the map × probability that the
        destination is inside the map too, i.e. the requests `sample` will generate (on a
        small map a few % fewer: redrawn short trips land off the map more often).
        """
        h = math.floor(hour)
        d, h = (day + h // 24) % 7, h % 24
        known = self._expected.get((d, h))
        if known is None:
            drop = self.zones.dropoffs[d, h]
            weight = self.decay_weight * drop[None, :]
            total = weight.sum(axis=1)
            # (a sum, not a matrix product: BLAS's idle threads would spin ~0.1 s of CPU after)
            inside = (weight * self.inside_share[None, :]).sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                dest_inside = np.where(total > 0, inside / total, 0.0)
            rate = self.zones.pickups[d, h] * self.config.market_share
            rate = rate * self.inside_share * dest_inside
            keep = rate > 0
            known = self._expected[(d, h)] = (self.centre_m[keep], rate[keep])
        return known[0].copy(), known[1].copy()

    def sample(self, day: int, start_hour: float, hours: float, seed: int) -> DemandSample:
        _check_window(day, start_hour, hours)
        rng_count, rng_time, rng_origin, rng_dest, rng_rider = _rngs(seed, 5)
        share = self.config.market_share
        zone_parts, time_parts, seg_parts = [], [], []
        segments = _hour_segments(day, start_hour, hours)
        for k, (d, h, a, b) in enumerate(segments):
            counts = rng_count.poisson(self.zones.pickups[d, h] * share * (b - a))
            zone = np.repeat(np.arange(counts.size), counts)
            zone_parts.append(zone)
            time_parts.append((a + rng_time.random(zone.size) * (b - a)) * 3600.0)
            seg_parts.append(np.full(zone.size, k))
        origin = np.concatenate(zone_parts).astype(np.int64)
        t_s = np.concatenate(time_parts)
        seg = np.concatenate(seg_parts).astype(np.int64)
        drawn = int(origin.size)

        # origins: points in their zones; drop those off the map
        keep = self.near_map[origin]
        origin, t_s, seg = origin[keep], t_s[keep], seg[keep]
        ox, oy, keep = self._place(rng_origin, origin)
        origin, t_s, seg, ox, oy = origin[keep], t_s[keep], seg[keep], ox[keep], oy[keep]

        # destinations: redraw zone and point while the trip is too short
        n = origin.size
        dest = np.full(n, -1, dtype=np.int64)
        dx, dy = np.zeros(n), np.zeros(n)
        alive = np.ones(n, dtype=bool)  # not dropped off the map
        pending = np.arange(n)
        for _ in range(MAX_RESAMPLE_ROUNDS):
            if pending.size == 0:
                break
            z = self._draw_destinations(rng_dest, segments, seg[pending], origin[pending])
            off = ~self.near_map[z]
            alive[pending[off]] = False
            pending, z = pending[~off], z[~off]
            px, py, on = self._place(rng_dest, z)
            alive[pending[~on]] = False
            pending, z, px, py = pending[on], z[on], px[on], py[on]
            dest[pending], dx[pending], dy[pending] = z, px, py
            short = np.hypot(px - ox[pending], py - oy[pending]) < self.config.min_trip_m
            pending = pending[short]
        done = alive.copy()
        done[pending] = False
        dropped_outside = drawn - n + int((~alive).sum())

        idx = np.flatnonzero(done)
        names = [self._zone_name(i) for i in range(self.zones.n_zones)]
        requests = _build_requests(
            rng_rider,
            t_s[idx],
            np.column_stack([ox[idx], oy[idx]]),
            np.column_stack([dx[idx], dy[idx]]),
            [names[i] for i in origin[idx]],
            [names[i] for i in dest[idx]],
            self.config.patience_mean_s,
        )
        used = np.union1d(origin[idx], dest[idx])
        districts = {names[i]: self.zones.nhood[i] for i in used.tolist()}
        return DemandSample(
            requests, dropped_outside, int(pending.size), drawn, int(used.size), districts
        )

    def _draw_destinations(
        self,
        rng: np.random.Generator,
        segments: list[tuple[int, int, float, float]],
        seg: IntArray,
        origin: IntArray,
    ) -> IntArray:
        """Destination zone per trip ∝ drop-offs × exp(−decay × distance), vectorised.

        Each distinct (segment, origin) pair gets a normalised CDF row; row r is shifted by
        r so that one `searchsorted` over the concatenated rows serves every trip.
        """
        out = np.empty(origin.size, dtype=np.int64)
        u = rng.random(origin.size)
        n = self.zones.n_zones
        for k in np.unique(seg):
            d, h = segments[int(k)][:2]
            mine = np.flatnonzero(seg == k)
            rows, row_of = np.unique(origin[mine], return_inverse=True)
            weight = self.decay_weight[rows] * self.zones.dropoffs[d, h][None, :]
            cdf = np.cumsum(weight, axis=1)
            total = cdf[:, -1:]
            # an origin whose row is all zero (no drop-offs anywhere) stays in its own zone
            cdf = np.where(total > 0, cdf / np.where(total > 0, total, 1.0), 1.0)
            flat = (cdf + np.arange(rows.size)[:, None]).ravel()
            pos = np.searchsorted(flat, row_of + u[mine], side="right")
            col = np.minimum(pos - row_of * n, n - 1)
            col = np.where(total[row_of, 0] > 0, col, rows[row_of])
            out[mine] = col
        return out


# --- synthetic demand for the grid city -----------------------------------------------


@dataclass(frozen=True, eq=False)
class SyntheticDemand:
    """Requests at a fixed rate around a few hot spots, for a map without demand data.

    Hot spots (3–5, from `layout_seed`) sit inside `bbox_m` away from its edges. Each
    origin comes with probability `uniform_share` from anywhere in the box, otherwise
    from a hot spot chosen by its weight, Gaussian around it with `spot_sigma_m`;
    destinations likewise, at least `config.min_trip_m` away. Points where `inside` is
    false are redrawn, so the rate is the rate of generated requests.
    """

    bbox_m: tuple[float, float, float, float]
    config: DemandConfig = field(default_factory=_default_config)
    layout_seed: int = 0
    inside: InsideFn = _everywhere
    uniform_share: float = 0.3
    spots_m: FloatArray = field(init=False, repr=False)  # K×2
    spot_weight: FloatArray = field(init=False, repr=False)  # K, sums to 1
    spot_sigma_m: float = field(init=False)

    def __post_init__(self) -> None:
        xmin, ymin, xmax, ymax = self.bbox_m
        if not (xmax > xmin and ymax > ymin):
            raise ConfigError(f"service area box {self.bbox_m} must have a positive size")
        if not (0 <= self.uniform_share <= 1):
            raise ConfigError(f"uniform share {self.uniform_share} must be within 0–1")
        rng = np.random.default_rng(np.random.SeedSequence([self.layout_seed, 0x5EED]))
        count = int(rng.integers(3, 6))
        width, height = xmax - xmin, ymax - ymin
        spacing = 0.25 * min(width, height)
        spots: list[FloatArray] = []
        for _ in range(10_000):
            candidate = np.array(
                [xmin + (0.15 + 0.7 * rng.random()) * width,
                 ymin + (0.15 + 0.7 * rng.random()) * height]
            )  # fmt: skip
            far = all(np.hypot(*(candidate - s)) >= spacing for s in spots)
            on_map = bool(np.asarray(self.inside(candidate[:1], candidate[1:]))[0])
            if far and on_map:
                spots.append(candidate)
                if len(spots) == count:
                    break
        if len(spots) < 3:
            raise ConfigError(f"could not place 3 demand hot spots inside the map {self.bbox_m}")
        weight = 0.5 + rng.random(len(spots))
        object.__setattr__(self, "spots_m", np.array(spots))
        object.__setattr__(self, "spot_weight", weight / weight.sum())
        object.__setattr__(self, "spot_sigma_m", float(np.clip(0.08 * min(width, height), 80, 600)))

    def expected_pickups(self, day: int, hour: float) -> tuple[FloatArray, FloatArray]:
        """Hot-spot centres (K×2, m) and their requests per hour; the uniform part
        (rate × `uniform_share`) is spread over the whole map and not listed."""
        rate = self.config.requests_per_hour * (1 - self.uniform_share) * self.spot_weight
        return self.spots_m.copy(), rate

    def _draw_points(self, rng: np.random.Generator, n: int) -> tuple[FloatArray, IntArray]:
        """n points (n×2) and their source: hot-spot index, or -1 for the uniform part."""
        xmin, ymin, xmax, ymax = self.bbox_m
        xy = np.empty((n, 2))
        source = np.empty(n, dtype=np.int64)
        pending = np.arange(n)
        for _ in range(MAX_RESAMPLE_ROUNDS * 4):
            if pending.size == 0:
                break
            m = pending.size
            uniform = rng.random(m) < self.uniform_share
            spot = rng.choice(self.spot_weight.size, size=m, p=self.spot_weight)
            gauss = self.spots_m[spot] + rng.normal(0.0, self.spot_sigma_m, (m, 2))
            flat = np.column_stack(
                [xmin + rng.random(m) * (xmax - xmin), ymin + rng.random(m) * (ymax - ymin)]
            )
            cand = np.where(uniform[:, None], flat, gauss)
            in_box = (
                (cand[:, 0] >= xmin) & (cand[:, 0] <= xmax)
                & (cand[:, 1] >= ymin) & (cand[:, 1] <= ymax)
            )  # fmt: skip
            ok = in_box & np.asarray(self.inside(cand[:, 0], cand[:, 1]), dtype=bool)
            xy[pending[ok]] = cand[ok]
            source[pending[ok]] = np.where(uniform[ok], -1, spot[ok])
            pending = pending[~ok]
        if pending.size:
            raise ConfigError(f"the service area inside {self.bbox_m} is too small for demand")
        return xy, source

    def sample(self, day: int, start_hour: float, hours: float, seed: int) -> DemandSample:
        _check_window(day, start_hour, hours)
        rng_count, rng_origin, rng_dest, rng_rider = _rngs(seed, 4)
        n = int(rng_count.poisson(self.config.requests_per_hour * hours))
        t_s = rng_count.random(n) * hours * 3600.0
        pickup, origin_src = self._draw_points(rng_origin, n)
        dropoff = np.empty((n, 2))
        dest_src = np.empty(n, dtype=np.int64)
        pending = np.arange(n)
        for _ in range(MAX_RESAMPLE_ROUNDS):
            if pending.size == 0:
                break
            xy, src = self._draw_points(rng_dest, pending.size)
            dropoff[pending], dest_src[pending] = xy, src
            length = np.hypot(*(xy - pickup[pending]).T)
            pending = pending[length < self.config.min_trip_m]
        keep = np.ones(n, dtype=bool)
        keep[pending] = False

        def label(source: int) -> str:
            return "uniform" if source < 0 else f"hotspot{source + 1}"

        requests = _build_requests(
            rng_rider,
            t_s[keep],
            pickup[keep],
            dropoff[keep],
            [label(int(s)) for s in origin_src[keep]],
            [label(int(s)) for s in dest_src[keep]],
            self.config.patience_mean_s,
        )
        used = np.union1d(origin_src[keep], dest_src[keep]).size
        return DemandSample(requests, 0, int(pending.size), n, int(used))
