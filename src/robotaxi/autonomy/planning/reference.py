"""The planner's input route: a lane-level reference polyline with its road attributes.

The map package fills a `ReferencePath` from the lanes of the route; the planner never sees
the map itself. Frenet convention: `s` is arc length along the polyline (m), `d` the signed
lateral offset, positive to the left of the driving direction (m).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

from robotaxi.core.types import FloatArray

DENSE_SPACING_M = 1.0
PROJECTION_NEIGHBOURS = 3
# a projection inside `s_window` wins over a nearer one outside it by at most this much (m)
WINDOW_SLACK_M = 2.0


@dataclass(frozen=True, slots=True)
class StopLine:
    """A stop line at arc length `s_m` (m); `signal_id` keys the signal state the planner
    receives each tick ('r', 'y', 'g', 'G', ... as SUMO writes them; absent means no light)."""

    s_m: float
    signal_id: str


def _per_point(value: npt.ArrayLike, n: int, name: str) -> FloatArray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(
            f"{name} must be a scalar or have one value per point ({n}), got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has non-finite values")
    return arr


@dataclass(frozen=True)
class ReferencePath:
    """A route as a polyline with per-point attributes.

    - `xy`: N×2 points in the map frame (m), N ≥ 2, consecutive points distinct;
    - `lane_width_m`: width of the lane the route is on at each point (m);
    - `speed_limit_mps`: legal speed limit at each point (m/s);
    - `right_room_m`: lateral distance from the polyline to the right kerb (m, positive);
    - `left_room_m`: lateral distance from the polyline to the left edge of the drivable road
      in the driving direction (m, positive), e.g. including adjacent same-direction lanes;
    - `stop_lines`: stop lines along the route, in any order;
    - `oncoming_room_m`: width of the lanes for the other direction just left of
      `left_room_m` (m, 0 where there are none: a one-way street, a median, a junction). Not
      drivable as such: only a pass round a standing vehicle may borrow it;
    - `solid_centre_line`: 1 where the line between our lanes and the oncoming ones is solid
      (the map's `solid_centre_lines`), 0 elsewhere: the oncoming lanes are borrowed there
      only with leave (remote assistance), never on the car's own decision.

    Scalars are broadcast to every point. Derived: `s` (N arc lengths, m), `length_m`.
    """

    xy: FloatArray
    lane_width_m: FloatArray
    speed_limit_mps: FloatArray
    right_room_m: FloatArray
    left_room_m: FloatArray
    stop_lines: tuple[StopLine, ...] = ()
    oncoming_room_m: FloatArray = field(default_factory=lambda: np.zeros(1))
    solid_centre_line: FloatArray = field(default_factory=lambda: np.zeros(1))
    s: FloatArray = field(init=False, repr=False)
    _seg_heading: FloatArray = field(init=False, repr=False)
    _vertex_heading: FloatArray = field(init=False, repr=False)
    _curvature: FloatArray = field(init=False, repr=False)
    _dense_xy: FloatArray = field(init=False, repr=False)
    _dense_s: FloatArray = field(init=False, repr=False)
    _tree: cKDTree = field(init=False, repr=False)

    def __post_init__(self) -> None:
        xy = np.asarray(self.xy, dtype=np.float64)
        if xy.ndim != 2 or xy.shape[1] != 2 or xy.shape[0] < 2:
            raise ValueError(f"reference path needs an N×2 polyline with N ≥ 2, got {xy.shape}")
        seg = np.diff(xy, axis=0)
        seg_len = np.hypot(seg[:, 0], seg[:, 1])
        if np.any(seg_len <= 1e-9):
            raise ValueError("reference path has repeated consecutive points")
        n = xy.shape[0]
        set_ = object.__setattr__
        set_(self, "xy", xy)
        for name in ("lane_width_m", "speed_limit_mps", "right_room_m", "left_room_m"):
            set_(self, name, _per_point(getattr(self, name), n, name))
        for name in ("oncoming_room_m", "solid_centre_line"):
            given = np.asarray(getattr(self, name), dtype=np.float64)
            set_(self, name, _per_point(given[0] if given.shape == (1,) else given, n, name))
        set_(self, "stop_lines", tuple(sorted(self.stop_lines, key=lambda line: line.s_m)))
        set_(self, "s", np.concatenate([[0.0], np.cumsum(seg_len)]))
        seg_heading = np.unwrap(np.arctan2(seg[:, 1], seg[:, 0]))
        set_(self, "_seg_heading", seg_heading)
        # Vertex tangents average the adjacent segments so that poses at an offset d ≠ 0 move
        # continuously across vertices.
        vertex = np.concatenate(
            [[seg_heading[0]], 0.5 * (seg_heading[:-1] + seg_heading[1:]), [seg_heading[-1]]]
        )
        set_(self, "_vertex_heading", vertex)
        set_(self, "_curvature", np.gradient(vertex, self.s) if n > 2 else np.zeros(n))
        # Projection searches a k-d tree of a densified copy (same arc length, vertices at
        # most DENSE_SPACING_M apart), so its cost grows with log(path length), not with it.
        s_arr = self.s
        n_sub = np.maximum(1, np.ceil(seg_len / DENSE_SPACING_M).astype(int))
        frac = np.concatenate([np.arange(k) / k for k in n_sub])
        seg_idx = np.repeat(np.arange(len(seg)), n_sub)
        dense = xy[seg_idx] + frac[:, None] * seg[seg_idx]
        set_(self, "_dense_xy", np.concatenate([dense, xy[-1:]]))
        set_(
            self, "_dense_s", np.concatenate([s_arr[seg_idx] + frac * seg_len[seg_idx], s_arr[-1:]])
        )
        set_(self, "_tree", cKDTree(self._dense_xy))

    @classmethod
    def straight(
        cls,
        start_xy: tuple[float, float],
        heading_rad: float,
        length_m: float,
        *,
        spacing_m: float = 1.0,
        lane_width_m: float = 3.5,
        speed_limit_mps: float = 13.4,
        right_room_m: float = 1.75,
        left_room_m: float = 1.75,
        stop_lines: Sequence[StopLine] = (),
    ) -> ReferencePath:
        """A straight path; handy for tests and synthetic scenes."""
        n = max(2, int(np.ceil(length_m / spacing_m)) + 1)
        t = np.linspace(0.0, length_m, n)
        xy = np.column_stack(
            [start_xy[0] + t * np.cos(heading_rad), start_xy[1] + t * np.sin(heading_rad)]
        )
        return cls(
            xy,
            np.asarray(lane_width_m),
            np.asarray(speed_limit_mps),
            np.asarray(right_room_m),
            np.asarray(left_room_m),
            tuple(stop_lines),
        )

    @property
    def length_m(self) -> float:
        return float(self.s[-1])

    def project(
        self,
        x: npt.ArrayLike,
        y: npt.ArrayLike,
        s_window: tuple[float, float] | None = None,
    ) -> tuple[FloatArray, FloatArray]:
        """Frenet coordinates (s, d) in m of points (x, y) of any (matching) shape.

        Points before the start or beyond the end extrapolate along the end segments, so s
        may be negative or exceed `length_m`. `s_window` (m, m) prefers the stretch of path
        in that range where the route passes the same place more than once (by at most
        `WINDOW_SLACK_M`); points far from that stretch keep their true projection.
        """
        px = np.asarray(x, dtype=np.float64)
        py = np.asarray(y, dtype=np.float64)
        shape = np.broadcast(px, py).shape
        pts = np.column_stack(
            [np.broadcast_to(px, shape).ravel(), np.broadcast_to(py, shape).ravel()]
        )
        n_pts = len(pts)
        dense, dense_s = self._dense_xy, self._dense_s
        n_seg = len(dense) - 1
        k = min(PROJECTION_NEIGHBOURS, len(dense))
        _, idx = self._tree.query(pts, k=k)
        idx = np.asarray(idx).reshape(n_pts, k)
        # the segments on either side of each of the k nearest dense vertices (P×2k), with
        # x and y in separate arrays: numpy is much slower on a trailing axis of length 2
        cand = np.concatenate([idx - 1, idx], axis=1)
        np.clip(cand, 0, n_seg - 1, out=cand)
        dense_x, dense_y = dense[:, 0], dense[:, 1]
        ax, ay = dense_x[cand], dense_y[cand]
        seg_x, seg_y = dense_x[cand + 1] - ax, dense_y[cand + 1] - ay
        seg_len2 = seg_x * seg_x + seg_y * seg_y
        rel_x, rel_y = pts[:, :1] - ax, pts[:, 1:] - ay
        t = (rel_x * seg_x + rel_y * seg_y) / seg_len2
        # only the path's own end segments may extrapolate
        lo_open = (cand == 0) & (t < 0)
        hi_open = (cand == n_seg - 1) & (t > 1)
        t_on = np.clip(t, 0.0, 1.0)
        t_use = np.where(lo_open | hi_open, t, t_on)
        off_x = pts[:, :1] - (ax + t_on * seg_x)
        off_y = pts[:, 1:] - (ay + t_on * seg_y)
        dist2 = off_x * off_x + off_y * off_y
        seg_len = np.sqrt(seg_len2)
        s_cand = dense_s[cand] + t_use * seg_len
        if s_window is not None:
            # Prefer a match inside the window only where it is about as near as the best
            # one (a route passing the same place twice); a point simply beyond the window
            # keeps its true projection.
            outside = (s_cand < s_window[0]) | (s_cand > s_window[1])
            # only perpendicular feet count: a clamped end point of some segment inside the
            # window is not a real alternative
            foot_on_segment = (t >= 0.0) & (t <= 1.0)
            inside_d2 = np.where(outside | ~foot_on_segment, np.inf, dist2)
            best = np.sqrt(dist2.min(axis=1, keepdims=True))
            near_enough = inside_d2.min(axis=1, keepdims=True) <= (best + WINDOW_SLACK_M) ** 2
            dist2 = np.where(near_enough, inside_d2, dist2)
        # the best candidate of each point, as an index into the flattened P×2k arrays
        pick = np.argmin(dist2, axis=1) + np.arange(0, dist2.size, dist2.shape[1])
        r_x, r_y = rel_x.ravel()[pick], rel_y.ravel()[pick]
        sg_x, sg_y = seg_x.ravel()[pick], seg_y.ravel()[pick]
        t_best = t_use.ravel()[pick]
        # |d| is the distance to the nearest path point (a vertex, outside a bend), with the
        # side given by the segment it lies on
        side = np.where(sg_x * r_y - sg_y * r_x >= 0.0, 1.0, -1.0)
        d = side * np.hypot(r_x - t_best * sg_x, r_y - t_best * sg_y)
        return s_cand.ravel()[pick].reshape(shape), d.reshape(shape)

    def project_series(
        self,
        x: FloatArray,
        y: FloatArray,
        stride: int = 1,
        s_window: tuple[float, float] | None = None,
    ) -> tuple[FloatArray, FloatArray]:
        """Frenet (s, d) of time series …×T of points, projecting every `stride`-th sample
        (and the last) and interpolating linearly in between — for smooth motion sampled
        finely this matches `project` closely at a fraction of the cost."""
        t = x.shape[-1]
        if stride <= 1 or t <= 2:
            return self.project(x, y, s_window)
        keep = np.unique(np.concatenate([np.arange(0, t, stride), [t - 1]]))
        s_sub, d_sub = self.project(x[..., keep], y[..., keep], s_window)
        pos = np.arange(t)
        hi = np.minimum(np.searchsorted(keep, pos, side="right"), len(keep) - 1)
        lo = np.maximum(hi - 1, 0)
        span = np.maximum(keep[hi] - keep[lo], 1)
        w = np.clip((pos - keep[lo]) / span, 0.0, 1.0)
        s_full = s_sub[..., lo] * (1 - w) + s_sub[..., hi] * w
        d_full = d_sub[..., lo] * (1 - w) + d_sub[..., hi] * w
        return s_full, d_full

    def pose_at(
        self, s: npt.ArrayLike, d: npt.ArrayLike = 0.0
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Map-frame (x, y, heading) at Frenet (s, d), vectorised over any matching shapes.

        s outside [0, length] extrapolates along the end segments.
        """
        s_arr = np.asarray(s, dtype=np.float64)
        d_arr = np.asarray(d, dtype=np.float64)
        # np.minimum/np.maximum instead of np.clip: this runs every roll-out step
        i = np.minimum(
            np.maximum(np.searchsorted(self.s, s_arr, side="right") - 1, 0), len(self.s) - 2
        )
        along = s_arr - self.s[i]
        seg_h = self._seg_heading[i]
        cx = self.xy[i, 0] + along * np.cos(seg_h)
        cy = self.xy[i, 1] + along * np.sin(seg_h)
        heading = np.interp(s_arr, self.s, self._vertex_heading)
        x = cx - d_arr * np.sin(heading)
        y = cy + d_arr * np.cos(heading)
        return x, y, heading

    def _interp(self, values: FloatArray, s: npt.ArrayLike) -> FloatArray:
        return np.interp(np.asarray(s, dtype=np.float64), self.s, values)

    def speed_limit_at(self, s: npt.ArrayLike) -> FloatArray:
        return self._interp(self.speed_limit_mps, s)

    def lane_width_at(self, s: npt.ArrayLike) -> FloatArray:
        return self._interp(self.lane_width_m, s)

    def right_room_at(self, s: npt.ArrayLike) -> FloatArray:
        return self._interp(self.right_room_m, s)

    def left_room_at(self, s: npt.ArrayLike) -> FloatArray:
        return self._interp(self.left_room_m, s)

    def oncoming_room_at(self, s: npt.ArrayLike) -> FloatArray:
        return self._interp(self.oncoming_room_m, s)

    def solid_centre_line_at(self, s: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Whether the centre line is solid at arc length(s) `s` (m): where it changes, the
        points on either side count (a pass may not start or end across a solid line)."""
        return np.asarray(self._interp(self.solid_centre_line, s) > 0.0)

    def curvature_at(self, s: npt.ArrayLike) -> FloatArray:
        """Signed curvature of the path (1/m, left turns positive) at arc length s."""
        return np.interp(np.asarray(s, dtype=np.float64), self.s, self._curvature)

    def heading_at(self, s: npt.ArrayLike) -> FloatArray:
        """Heading of the path (rad) at arc length s, interpolated between vertex tangents."""
        return np.interp(np.asarray(s, dtype=np.float64), self.s, self._vertex_heading)
