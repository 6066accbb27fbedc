"""Simulated cameras: a 360° roof camera and two wide side cameras, from ground truth.

What a camera reports: objects whose centre is inside its field of view and range and that
are not hidden behind other road users' footprints (or static polygons such as city
blocks), with Gaussian noise on position (growing with range), heading and speed, random
missed detections and Poisson false positives. An emergency vehicle's flashing lights are
reported only on a detection of that vehicle. All cameras sit at the roof centre (the
footprint centre in plan view); the roof camera cannot see the ground right beside the car
(`min_range_m`), which is what the side cameras are for. An object seen by several cameras
is reported once, by the most precise camera that sees it.

City blocks come from the map (`map_block_occluders`: the areas between streets, the
complement of the road surface and its pavements) and are passed in as static occluders;
`StaticOccluders.near` picks the few within sensor range each frame.

Randomness comes only from the numpy `Generator` passed in, drawn in a fixed order, so the
same seed and the same input give the same detections.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from robotaxi.config.sensors import CameraConfig
from robotaxi.core.geometry import box_corners
from robotaxi.core.time import TimePoint
from robotaxi.core.types import (
    AgentKind,
    AgentState,
    BoolArray,
    Detection,
    FloatArray,
    Pose,
    SirenState,
)
from robotaxi.map import RoadMap

# centre and the four corners of each footprint are tested for line of sight
N_SAMPLE_POINTS = 5


def _segments_cross(
    o: FloatArray, p: FloatArray, e0: FloatArray, e1: FloatArray
) -> npt.NDArray[np.bool_]:
    """Whether segments o→p (R×2, broadcast against E) and e0→e1 (E×2) properly intersect.

    Returns R×E booleans.
    """

    def orient(
        ax: FloatArray,
        ay: FloatArray,
        bx: FloatArray,
        by: FloatArray,
        cx: FloatArray,
        cy: FloatArray,
    ) -> FloatArray:
        return (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)

    ox, oy = o[:, None, 0], o[:, None, 1]
    px, py = p[:, None, 0], p[:, None, 1]
    ax, ay = e0[None, :, 0], e0[None, :, 1]
    bx, by = e1[None, :, 0], e1[None, :, 1]
    d1 = orient(ox, oy, px, py, ax, ay)
    d2 = orient(ox, oy, px, py, bx, by)
    d3 = orient(ax, ay, bx, by, ox, oy)
    d4 = orient(ax, ay, bx, by, px, py)
    return ((d1 * d2) < 0) & ((d3 * d4) < 0)


def line_of_sight(
    origin: tuple[float, float],
    targets: FloatArray,
    target_owner: npt.NDArray[np.int_],
    occluder_polygons: Sequence[FloatArray],
    occluder_owner: Sequence[int],
) -> npt.NDArray[np.bool_]:
    """Which target points (R×2) are visible from `origin`: True where no occluder edge
    crosses the sight line. An occluder never hides points of its own owner (same index)."""
    if not occluder_polygons or len(targets) == 0:
        return np.ones(len(targets), dtype=bool)
    e0 = np.concatenate([np.asarray(poly, dtype=np.float64) for poly in occluder_polygons])
    e1 = np.concatenate(
        [np.roll(np.asarray(poly, dtype=np.float64), -1, axis=0) for poly in occluder_polygons]
    )
    owner = np.concatenate(
        [
            np.full(len(poly), own)
            for poly, own in zip(occluder_polygons, occluder_owner, strict=True)
        ]
    )
    o = np.broadcast_to(np.asarray(origin, dtype=np.float64), targets.shape)
    crosses = _segments_cross(o, targets, e0, e1)
    crosses &= target_owner[:, None] != owner[None, :]
    return ~np.any(crosses, axis=1)


def _wrap(angle: FloatArray) -> FloatArray:
    return (angle + np.pi) % (2 * np.pi) - np.pi


def simulate_cameras(
    agents: Sequence[AgentState],
    ego_pose: Pose,
    time: TimePoint,
    rng: np.random.Generator,
    config: CameraConfig | None = None,
    static_occluders: Sequence[FloatArray] = (),
    ego_id: str | None = None,
) -> list[Detection]:
    """Detections (map frame) of `agents` by the rig on a car at `ego_pose` (footprint centre).

    `static_occluders` are polygons (K×2 m, e.g. city blocks) that also block the view;
    `ego_id` drops the ego itself from `agents` if the caller left it in.
    """
    cfg = config if config is not None else CameraConfig()
    others = [a for a in agents if a.agent_id != ego_id]
    n = len(others)
    ox, oy = ego_pose.x, ego_pose.y
    # Draw every random number up front in a fixed layout: determinism does not depend on
    # which objects happen to be visible.
    miss_u = rng.random(n)
    noise = rng.standard_normal((n, 4))
    fp_counts = rng.poisson(cfg.false_positives_per_frame, len(cfg.cameras))
    detections: list[Detection] = []
    if n:
        x = np.array([a.x for a in others])
        y = np.array([a.y for a in others])
        heading = np.array([a.heading for a in others])
        length = np.array([a.length for a in others])
        width = np.array([a.width for a in others])
        corners = box_corners(x, y, heading, length, width)
        rng_m = np.hypot(x - ox, y - oy)
        bearing = _wrap(np.arctan2(y - oy, x - ox) - ego_pose.heading)
        if cfg.occlusion:
            points = np.concatenate([np.stack([x, y], axis=1)[:, None, :], corners], axis=1)
            owner = np.repeat(np.arange(n), N_SAMPLE_POINTS)
            polys = [corners[i] for i in range(n)] + [np.asarray(p) for p in static_occluders]
            poly_owner = list(range(n)) + [-1] * len(static_occluders)
            visible_pts = line_of_sight((ox, oy), points.reshape(-1, 2), owner, polys, poly_owner)
            visible = visible_pts.reshape(n, N_SAMPLE_POINTS).mean(axis=1) >= (
                cfg.min_visible_fraction - 1e-9
            )
        else:
            visible = np.ones(n, dtype=bool)
        best_std = np.full(n, np.inf)
        best_cam = np.full(n, -1)
        for ci, cam in enumerate(cfg.cameras):
            in_fov = np.abs(_wrap(bearing - cam.yaw_offset_rad)) <= 0.5 * cam.fov_rad + 1e-12
            in_range = (rng_m >= cam.min_range_m) & (rng_m <= cam.max_range_m)
            cam_std = cam.position_std_m + cam.position_std_per_m * rng_m
            better = in_fov & in_range & (cam_std < best_std)
            best_std = np.where(better, cam_std, best_std)
            best_cam = np.where(better, ci, best_cam)
        for i, agent in enumerate(others):
            if best_cam[i] < 0 or not visible[i] or miss_u[i] < cfg.miss_probability:
                continue
            std = float(best_std[i])
            detections.append(
                Detection(
                    sensor_id=cfg.cameras[int(best_cam[i])].camera_id,
                    time=time,
                    x=agent.x + std * float(noise[i, 0]),
                    y=agent.y + std * float(noise[i, 1]),
                    heading=float(
                        _wrap(np.asarray(agent.heading + cfg.heading_std_rad * noise[i, 2]))
                    ),
                    speed=max(0.0, agent.speed + cfg.speed_std_mps * float(noise[i, 3])),
                    kind=agent.kind,
                    length=agent.length,
                    width=agent.width,
                    flashing_lights=agent.siren == SirenState.ON,
                    position_std_m=std,
                    truth_id=agent.agent_id,
                )
            )
    for ci, cam in enumerate(cfg.cameras):
        for _ in range(int(fp_counts[ci])):
            u = rng.random(4)
            r = cam.min_range_m + u[0] * (cam.max_range_m - cam.min_range_m)
            b = ego_pose.heading + cam.yaw_offset_rad + (u[1] - 0.5) * cam.fov_rad
            detections.append(
                Detection(
                    sensor_id=cam.camera_id,
                    time=time,
                    x=ox + r * math.cos(b),
                    y=oy + r * math.sin(b),
                    heading=float((u[2] - 0.5) * 2 * math.pi),
                    speed=float(u[3] * 10.0),
                    kind=AgentKind.UNKNOWN,
                    length=4.5,
                    width=1.8,
                    position_std_m=cam.position_std_m + cam.position_std_per_m * r,
                    truth_id=None,
                )
            )
    return detections


# --- static occluders: the city blocks between streets ------------------------------------


def block_polygons(
    centerlines: Sequence[FloatArray],
    widths_m: Sequence[float],
    bounds: tuple[float, float, float, float],
    *,
    sidewalk_m: float = 2.0,
    simplify_m: float = 0.5,
    min_area_m2: float = 50.0,
) -> tuple[FloatArray, ...]:
    """The city blocks: the areas between streets, as polygons (K×2, m, exterior rings).

    The road surface is the union of every lane's centreline buffered by half its width;
    pavements add `sidewalk_m`; what remains of the map's `bounds` (xmin, ymin, xmax, ymax)
    is buildings and yards, which hide what is behind them. Rings are simplified to
    `simplify_m` (fewer edges to test per sight line); slivers under `min_area_m2` dropped.
    """
    from shapely import box, buffer, linestrings, union_all
    from shapely.geometry import MultiPolygon, Polygon

    lines = [np.asarray(c, dtype=np.float64) for c in centerlines if len(c) >= 2]
    if not lines:
        return ()
    widths = np.array(
        [w for c, w in zip(centerlines, widths_m, strict=True) if len(c) >= 2], dtype=np.float64
    )
    roads = union_all(
        buffer(
            np.array([linestrings(c) for c in lines]), 0.5 * widths + sidewalk_m, cap_style="flat"
        )
    )
    # the flat caps leave tiny notches where lanes meet at junctions: close them
    roads = roads.buffer(0.5).buffer(-0.5)
    rest = box(*bounds).difference(roads)
    parts = list(rest.geoms) if isinstance(rest, MultiPolygon) else [rest] if rest.area > 0 else []
    out = []
    for part in parts:
        if not isinstance(part, Polygon) or part.area < min_area_m2:
            continue
        ring = part.exterior.simplify(simplify_m)
        xy = np.asarray(ring.coords, dtype=np.float64)[:-1]
        if len(xy) >= 3:
            out.append(xy)
    return tuple(out)


class StaticOccluders:
    """Polygons that never move (city blocks), with a quick query for those near a point."""

    def __init__(self, polygons: Sequence[FloatArray]) -> None:
        self.polygons = tuple(np.asarray(p, dtype=np.float64) for p in polygons)
        if self.polygons:
            lo = np.array([p.min(axis=0) for p in self.polygons])
            hi = np.array([p.max(axis=0) for p in self.polygons])
        else:
            lo = hi = np.zeros((0, 2))
        self._lo, self._hi = lo, hi

    def __len__(self) -> int:
        return len(self.polygons)

    def near(self, x: float, y: float, radius_m: float) -> list[FloatArray]:
        """The polygons whose bounding box comes within `radius_m` of (x, y)."""
        if not self.polygons:
            return []
        dx = np.maximum(np.maximum(self._lo[:, 0] - x, x - self._hi[:, 0]), 0.0)
        dy = np.maximum(np.maximum(self._lo[:, 1] - y, y - self._hi[:, 1]), 0.0)
        close = np.flatnonzero(np.hypot(dx, dy) <= radius_m)
        return [self.polygons[i] for i in close]

    def blocks_sight(self, origin: tuple[float, float], targets: FloatArray) -> BoolArray:
        """For each target point (R×2), whether a polygon stands between it and `origin`."""
        targets = np.asarray(targets, dtype=np.float64).reshape(-1, 2)
        if len(targets) == 0:
            return np.zeros(0, dtype=bool)
        reach = float(np.max(np.hypot(targets[:, 0] - origin[0], targets[:, 1] - origin[1])))
        polys = self.near(origin[0], origin[1], reach)
        visible = line_of_sight(
            origin, targets, np.zeros(len(targets), dtype=int), polys, [-1] * len(polys)
        )
        return ~visible


# the blocks of the last few maps, by a digest of what they are made of (`_blocks_digest`):
# on a city the union of the streets takes seconds, and a process often drives one map many
# times (a scenario and its reference run, the cars of a service)
_BLOCKS_KEPT = 4
_blocks_memo: OrderedDict[str, tuple[FloatArray, ...]] = OrderedDict()
_blocks_lock = threading.Lock()


def map_block_occluders(road_map: RoadMap, sidewalk_m: float = 2.0) -> StaticOccluders:
    """`block_polygons` of every lane of `road_map`, within its bounds (read-only arrays,
    computed once for the same lanes, bounds and `sidewalk_m`)."""
    lanes = list(road_map.lanes.values())
    centerlines = [lane.centerline for lane in lanes]
    widths_m = [lane.width for lane in lanes]
    key = _blocks_digest(centerlines, widths_m, road_map.bounds, sidewalk_m)
    with _blocks_lock:
        polygons = _blocks_memo.get(key)
        if polygons is not None:
            _blocks_memo.move_to_end(key)
    if polygons is None:
        polygons = block_polygons(centerlines, widths_m, road_map.bounds, sidewalk_m=sidewalk_m)
        for polygon in polygons:
            polygon.setflags(write=False)
        with _blocks_lock:
            _blocks_memo[key] = polygons
            while len(_blocks_memo) > _BLOCKS_KEPT:
                _blocks_memo.popitem(last=False)
    return StaticOccluders(polygons)


def _blocks_digest(
    centerlines: Sequence[FloatArray],
    widths_m: Sequence[float],
    bounds: tuple[float, float, float, float],
    sidewalk_m: float,
) -> str:
    """A digest of everything `block_polygons` reads (the default simplification and sliver
    area): the same digest, the same blocks."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(np.array([len(c) for c in centerlines], dtype=np.int64).tobytes())
    for line in centerlines:
        digest.update(np.ascontiguousarray(line, dtype=np.float64).tobytes())
    digest.update(np.asarray(widths_m, dtype=np.float64).tobytes())
    digest.update(np.asarray([*bounds, sidewalk_m], dtype=np.float64).tobytes())
    return digest.hexdigest()
