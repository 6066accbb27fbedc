"""Driving metrics: pure functions of a recorded `DrivingHistory`, chosen by name, and a
nuPlan-style score (multipliers × weighted average).

Metrics (registry `METRICS`): no_at_fault_collision, drivable_area_compliance,
driving_direction_compliance, making_progress, time_to_collision, progress_along_route,
speed_limit_compliance, comfort, red_light_violations, ev_yield. Each returns a
`MetricResult` with a score in [0, 1], the raw value it was computed from and details.

Conventions: the ego's recorded (x, y) is its reference point; its footprint centre lies
`ego_center_offset_m` ahead along the heading (1.54 m for the I-PACE's rear axle). Frenet
coordinates are taken along the history's reference path, d positive to the left.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.signal import savgol_filter

from robotaxi.core.geometry import box_corners, boxes_overlap
from robotaxi.core.types import BoolArray, FloatArray, TrajectoryColumn

C = TrajectoryColumn

# thresholds (nuPlan's values where nuPlan has one)
TTC_THRESHOLD_S = 0.95
TTC_STEP_S = 0.1
STOPPED_SPEED_MPS = 0.1
DRIVABLE_TOLERANCE_M = 0.1
DIRECTION_WINDOW_S = 1.0
DIRECTION_BAD_M = 6.0
DIRECTION_POOR_M = 2.0
MIN_PROGRESS_M = 5.0
MAX_OVERSPEED_MPS = 2.23
COMFORT_MAX_LON_ACCEL = 2.40
COMFORT_MIN_LON_ACCEL = -4.05
COMFORT_MAX_LAT_ACCEL = 4.89
COMFORT_MAX_JERK = 4.13
COMFORT_MAX_YAW_RATE = 0.95
COMFORT_MAX_YAW_ACCEL = 1.93
EV_RANGE_M = 80.0
EV_PULL_OVER_WITHIN_S = 10.0
EV_PULL_OVER_MIN_OFFSET_M = 0.3
EV_STOPPED_SPEED_MPS = 0.3
EV_PASSED_MARGIN_M = 10.0
EV_RESUMED_SPEED_MPS = 2.0
EV_PATH_LOOKAHEAD_S = 3.0
EV_PATH_MIN_M = 10.0

# score: these multiply; the rest enter a weighted average with these weights
MULTIPLIER_METRICS = (
    "no_at_fault_collision",
    "drivable_area_compliance",
    "driving_direction_compliance",
    "making_progress",
    "red_light_violations",
    "ev_yield",
)
WEIGHTS: Mapping[str, float] = {
    "time_to_collision": 5.0,
    "progress_along_route": 5.0,
    "speed_limit_compliance": 4.0,
    "comfort": 2.0,
}


@dataclass(frozen=True)
class DrivingHistory:
    """A recorded closed-loop run, as arrays (T ticks, M other agents, P path points, S stop
    lines).

    - `time_s` (T); `ego` T×7 (`TrajectoryColumn`); ego size and reference-point offset;
    - agents: `agents_xy` T×M×2 (footprint centres), `agents_heading` T×M, `agents_speed`
      T×M, `agents_valid` T×M (present this tick), `agents_length`/`agents_width` M,
      `agents_is_ev` M, `agents_siren` T×M (flashing lights on);
    - route: `path_xy` P×2, `path_lane_width_m`, `path_left_room_m`, `path_right_room_m`,
      `path_speed_limit_mps` (P each), `goal_s_m` (arc length of the goal; None = path end),
      `path_oncoming_room_m` (P, the other direction's lanes left of `path_left_room_m`: road
      surface too, as nuPlan's drivable area counts every lane; None = none);
    - `stop_line_s_m` (S) with `signal_states` T×S state characters ('r', 'y', 'g', …);
    - `planned` optional planned trajectories, one per tick.
    """

    time_s: FloatArray
    ego: FloatArray
    agents_xy: FloatArray
    agents_heading: FloatArray
    agents_speed: FloatArray
    agents_valid: BoolArray
    agents_length: FloatArray
    agents_width: FloatArray
    agents_is_ev: BoolArray
    agents_siren: BoolArray
    path_xy: FloatArray
    path_lane_width_m: FloatArray
    path_left_room_m: FloatArray
    path_right_room_m: FloatArray
    path_speed_limit_mps: FloatArray
    stop_line_s_m: FloatArray = field(default_factory=lambda: np.zeros(0))
    signal_states: npt.NDArray[np.str_] = field(default_factory=lambda: np.zeros((0, 0), "U1"))
    ego_length_m: float = 4.68
    ego_width_m: float = 2.01
    ego_center_offset_m: float = 1.54
    goal_s_m: float | None = None
    planned: tuple[FloatArray, ...] | None = None
    path_oncoming_room_m: FloatArray | None = None

    def __post_init__(self) -> None:
        t = len(self.time_s)
        m = len(self.agents_length)
        checks = {
            "ego": (self.ego.shape, (t, len(TrajectoryColumn))),
            "agents_xy": (self.agents_xy.shape, (t, m, 2)),
            "agents_heading": (self.agents_heading.shape, (t, m)),
            "agents_speed": (self.agents_speed.shape, (t, m)),
            "agents_valid": (self.agents_valid.shape, (t, m)),
            "agents_siren": (self.agents_siren.shape, (t, m)),
            "agents_width": (self.agents_width.shape, (m,)),
            "agents_is_ev": (self.agents_is_ev.shape, (m,)),
        }
        for name, (got, want) in checks.items():
            if got != want:
                raise ValueError(f"DrivingHistory.{name} has shape {got}, expected {want}")
        if t < 2:
            raise ValueError("a driving history needs at least two ticks")
        if self.signal_states.size and self.signal_states.shape != (t, len(self.stop_line_s_m)):
            raise ValueError(
                f"signal_states must be T×S = {(t, len(self.stop_line_s_m))}, got "
                f"{self.signal_states.shape}"
            )

    @property
    def dt_s(self) -> float:
        return float(np.median(np.diff(self.time_s)))

    def ego_center(self) -> FloatArray:
        h = self.ego[:, C.HEADING]
        off = self.ego_center_offset_m
        return np.stack([self.ego[:, C.X] + off * np.cos(h), self.ego[:, C.Y] + off * np.sin(h)], 1)

    def ego_corners(self) -> FloatArray:
        """T×4×2 footprint corners."""
        center = self.ego_center()
        return box_corners(
            center[:, 0], center[:, 1], self.ego[:, C.HEADING], self.ego_length_m, self.ego_width_m
        )


@dataclass(frozen=True)
class MetricResult:
    name: str
    score: float
    value: float
    details: Mapping[str, Any] = field(default_factory=dict)


# --- geometry -------------------------------------------------------------------------


def project_to_path(path_xy: FloatArray, points: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Frenet (s, d) of points …×2 on the polyline `path_xy` (P×2); the end segments
    extrapolate."""
    shape = points.shape[:-1]
    pts = points.reshape(-1, 2)
    a = path_xy[:-1]
    seg = np.diff(path_xy, axis=0)
    seg_len2 = np.einsum("ij,ij->i", seg, seg)
    cum = np.concatenate([[0.0], np.cumsum(np.sqrt(seg_len2))])
    rel = pts[:, None, :] - a[None]
    t = np.einsum("mnj,nj->mn", rel, seg) / seg_len2
    closest = a[None] + np.clip(t, 0, 1)[..., None] * seg[None]
    i = np.argmin(np.sum((pts[:, None] - closest) ** 2, axis=2), axis=1)
    rows = np.arange(len(pts))
    tb = t[rows, i]
    last = len(seg) - 1
    tb = np.where((i == 0) & (tb < 0), tb, np.where((i == last) & (tb > 1), tb, np.clip(tb, 0, 1)))
    seg_len = np.sqrt(seg_len2[i])
    r = rel[rows, i]
    d = (seg[i, 0] * r[:, 1] - seg[i, 1] * r[:, 0]) / seg_len
    return (cum[i] + tb * seg_len).reshape(shape), d.reshape(shape)


def _path_s(h: DrivingHistory) -> FloatArray:
    seg = np.diff(h.path_xy, axis=0)
    return np.concatenate([[0.0], np.cumsum(np.hypot(seg[:, 0], seg[:, 1]))])


def _path_heading_at(h: DrivingHistory, s: FloatArray) -> FloatArray:
    seg = np.diff(h.path_xy, axis=0)
    heading = np.unwrap(np.arctan2(seg[:, 1], seg[:, 0]))
    cum = _path_s(h)
    i = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(seg) - 1)
    return heading[i]


def _wrap(a: FloatArray) -> FloatArray:
    return (a + np.pi) % (2 * np.pi) - np.pi


def _contacts(h: DrivingHistory, probe_s: float = 0.0) -> tuple[BoolArray, BoolArray]:
    """(overlap, ego to blame), both T×M: the ego box overlaps the agent box (both carried
    `probe_s` ahead at constant velocity); the ego is to blame if it is moving and the agent
    is not behind it while the ego keeps to the lane direction (nuPlan's at-fault rules,
    simplified). Blame is meant to be read at the first tick of a contact."""
    ego_c = h.ego_center()
    eh = h.ego[:, C.HEADING]
    ev = h.ego[:, C.SPEED]
    ego_c = ego_c + probe_s * ev[:, None] * np.stack([np.cos(eh), np.sin(eh)], axis=1)
    ah = h.agents_heading
    a_c = h.agents_xy + probe_s * h.agents_speed[..., None] * np.stack(
        [np.cos(ah), np.sin(ah)], axis=-1
    )
    overlap = (
        boxes_overlap(
            ego_c[:, None], eh[:, None], h.ego_length_m, h.ego_width_m,
            a_c, ah, h.agents_length[None], h.agents_width[None],
        )
        & h.agents_valid
    )  # fmt: skip
    rel = h.agents_xy - h.ego_center()[:, None]
    rel_x = rel[..., 0] * np.cos(eh)[:, None] + rel[..., 1] * np.sin(eh)[:, None]
    s, _ = project_to_path(h.path_xy, h.ego[:, [C.X, C.Y]])
    lane_keeping = np.abs(_wrap(eh - _path_heading_at(h, s))) < 0.15
    rear_ended = (rel_x < -0.25 * h.ego_length_m) & lane_keeping[:, None]
    moving = (ev > STOPPED_SPEED_MPS)[:, None]
    return overlap, ~rear_ended & moving


# --- metrics --------------------------------------------------------------------------


def no_at_fault_collision(h: DrivingHistory) -> MetricResult:
    """At-fault collisions, counted once per contact and judged at its first tick."""
    overlap, blame = _contacts(h)
    onsets = overlap & ~np.vstack([np.zeros((1, overlap.shape[1]), bool), overlap[:-1]])
    at_fault = onsets & blame
    n = int(at_fault.sum())
    agents = sorted({int(j) for j in np.nonzero(at_fault)[1]})
    return MetricResult("no_at_fault_collision", float(n == 0), float(n), {"agents": agents})


def drivable_area_compliance(h: DrivingHistory) -> MetricResult:
    s, d = project_to_path(h.path_xy, h.ego_corners())
    ps = _path_s(h)
    right = np.interp(s, ps, h.path_right_room_m)
    left_room = h.path_left_room_m
    if h.path_oncoming_room_m is not None:
        left_room = left_room + h.path_oncoming_room_m
    left = np.interp(s, ps, left_room)
    excess = np.maximum(np.maximum(-right - d, d - left), 0.0).max(axis=1)
    worst = float(excess.max())
    ok = worst <= DRIVABLE_TOLERANCE_M
    return MetricResult(
        "drivable_area_compliance",
        float(ok),
        worst,
        {"ticks_outside": int(np.sum(excess > DRIVABLE_TOLERANCE_M))},
    )


def driving_direction_compliance(h: DrivingHistory) -> MetricResult:
    s, _ = project_to_path(h.path_xy, h.ego[:, [C.X, C.Y]])
    window = max(1, round(DIRECTION_WINDOW_S / h.dt_s))
    back = 0.0
    if len(s) > window:
        back = float(np.max(np.maximum(s[:-window] - s[window:], 0.0)))
    score = 0.0 if back > DIRECTION_BAD_M else 0.5 if back > DIRECTION_POOR_M else 1.0
    return MetricResult("driving_direction_compliance", score, back)


def _progress(h: DrivingHistory) -> tuple[float, float]:
    s, _ = project_to_path(h.path_xy, h.ego[:, [C.X, C.Y]])
    goal = h.goal_s_m if h.goal_s_m is not None else float(_path_s(h)[-1])
    return float(s[-1] - s[0]), float(goal - s[0])


def making_progress(h: DrivingHistory) -> MetricResult:
    done, needed = _progress(h)
    ok = done >= min(MIN_PROGRESS_M, max(needed, 0.0) - 0.5)
    return MetricResult("making_progress", float(ok), done)


def progress_along_route(h: DrivingHistory) -> MetricResult:
    done, needed = _progress(h)
    ratio = 1.0 if needed <= 0 else float(np.clip(done / needed, 0.0, 1.0))
    return MetricResult("progress_along_route", ratio, done, {"needed_m": needed})


def time_to_collision(h: DrivingHistory) -> MetricResult:
    current, _ = _contacts(h)
    min_ttc = np.inf
    for probe in np.arange(0.0, TTC_THRESHOLD_S + 1e-9, TTC_STEP_S):
        overlap, blame = _contacts(h, float(probe))
        hits = overlap & blame & ~current
        if np.any(hits):
            min_ttc = float(probe)
            break
    return MetricResult("time_to_collision", float(min_ttc > TTC_THRESHOLD_S), min_ttc)


def speed_limit_compliance(h: DrivingHistory) -> MetricResult:
    s, _ = project_to_path(h.path_xy, h.ego[:, [C.X, C.Y]])
    limit = np.interp(s, _path_s(h), h.path_speed_limit_mps)
    over = np.maximum(h.ego[:, C.SPEED] - limit, 0.0)
    mean_over = float(over.mean())
    score = float(np.clip(1.0 - mean_over / MAX_OVERSPEED_MPS, 0.0, 1.0))
    return MetricResult("speed_limit_compliance", score, mean_over, {"max_over_mps": over.max()})


def _derivative(x: FloatArray, dt: float, deriv: int) -> FloatArray:
    n = len(x)
    window = min(15, n if n % 2 else n - 1)
    if window <= 2:
        out = x
        for _ in range(deriv):
            out = np.gradient(out, dt)
        return out
    return savgol_filter(x, window, min(2, window - 1), deriv=deriv, delta=dt)


def comfort(h: DrivingHistory) -> MetricResult:
    """Longitudinal/lateral acceleration, jerk, yaw rate and yaw acceleration within
    nuPlan's limits, from Savitzky–Golay-filtered derivatives of the recorded states."""
    dt = h.dt_s
    v = h.ego[:, C.SPEED]
    yaw = np.unwrap(h.ego[:, C.HEADING])
    lon_acc = _derivative(v, dt, 1)
    jerk = _derivative(v, dt, 2)
    yaw_rate = _derivative(yaw, dt, 1)
    yaw_acc = _derivative(yaw, dt, 2)
    lat_acc = v * yaw_rate
    values = {
        "max_lon_accel": float(lon_acc.max()),
        "min_lon_accel": float(lon_acc.min()),
        "max_abs_lat_accel": float(np.abs(lat_acc).max()),
        "max_abs_jerk": float(np.abs(jerk).max()),
        "max_abs_yaw_rate": float(np.abs(yaw_rate).max()),
        "max_abs_yaw_accel": float(np.abs(yaw_acc).max()),
    }
    ok = (
        values["max_lon_accel"] <= COMFORT_MAX_LON_ACCEL
        and values["min_lon_accel"] >= COMFORT_MIN_LON_ACCEL
        and values["max_abs_lat_accel"] <= COMFORT_MAX_LAT_ACCEL
        and values["max_abs_jerk"] <= COMFORT_MAX_JERK
        and values["max_abs_yaw_rate"] <= COMFORT_MAX_YAW_RATE
        and values["max_abs_yaw_accel"] <= COMFORT_MAX_YAW_ACCEL
    )
    return MetricResult("comfort", float(ok), float(not ok), values)


def red_light_violations(h: DrivingHistory) -> MetricResult:
    """Stop lines the front bumper crossed while the light was red."""
    if len(h.stop_line_s_m) == 0 or h.signal_states.size == 0:
        return MetricResult("red_light_violations", 1.0, 0.0)
    s, _ = project_to_path(h.path_xy, h.ego[:, [C.X, C.Y]])
    front = s + h.ego_center_offset_m + 0.5 * h.ego_length_m
    crossed = (front[:-1, None] < h.stop_line_s_m[None]) & (front[1:, None] >= h.stop_line_s_m)
    red = np.isin(h.signal_states[1:], ["r", "R"])
    n = int(np.sum(crossed & red))
    return MetricResult("red_light_violations", float(n == 0), float(n))


@dataclass(frozen=True)
class EvYield:
    """How the ego dealt with one emergency vehicle."""

    agent_index: int
    in_range_time_s: float
    pulled_over: bool
    stopped_within_s: float | None
    blocked_ev: bool
    resumed: bool
    passed_time_s: float | None = None  # when it had passed (None: not within the history)


def ev_yield_events(h: DrivingHistory) -> list[EvYield]:
    """One `EvYield` per EV whose lights were on while it was within `EV_RANGE_M` of the ego
    and in the ego's or an adjacent lane, or heading across the ego's road."""
    out: list[EvYield] = []
    ps = _path_s(h)
    ego_s, ego_d = project_to_path(h.path_xy, h.ego[:, [C.X, C.Y]])
    lane_w = np.interp(ego_s, ps, h.path_lane_width_m)
    ego_c = h.ego_center()
    v = h.ego[:, C.SPEED]
    for j in np.flatnonzero(h.agents_is_ev):
        lit = h.agents_siren[:, j] & h.agents_valid[:, j]
        ev_s, ev_d = project_to_path(h.path_xy, h.agents_xy[:, j])
        dist = np.hypot(*(h.agents_xy[:, j] - ego_c).T)
        # on our road (our lane or the next), or heading onto it (crossing ahead)
        path_h = _path_heading_at(h, ev_s)
        v_lateral = h.agents_speed[:, j] * np.sin(h.agents_heading[:, j] - path_h)
        on_road = np.abs(ev_d) <= 1.5 * lane_w
        toward_road = (ev_d * v_lateral < 0) & (np.abs(v_lateral) > 1.0)
        near = lit & (dist <= EV_RANGE_M) & (on_road | toward_road)
        if not np.any(near):
            continue
        t_in = int(np.argmax(near))
        # Passed: after coming in range, the EV is beyond the ego by the margin in its own
        # direction of travel along our road (ahead for one from behind, behind for one
        # coming head-on), has left our road (one crossing it), or is gone.
        after = np.arange(len(v)) >= t_in
        ev_speed = h.agents_speed[:, j]
        v_along = ev_speed * np.cos(h.agents_heading[:, j] - path_h)
        along_road = np.abs(v_along) >= 0.5 * np.maximum(ev_speed, 0.1)
        beyond = np.sign(v_along) * (ev_s - ego_s) > EV_PASSED_MARGIN_M
        off_road = ~on_road & ~toward_road
        passed_mask = after & (np.where(along_road, beyond, off_road) | ~h.agents_valid[:, j])
        t_pass = int(np.argmax(passed_mask)) if np.any(passed_mask) else None
        stop_until = t_pass if t_pass is not None else len(v)
        pulled = (v <= EV_STOPPED_SPEED_MPS) & (ego_d <= -EV_PULL_OVER_MIN_OFFSET_M)
        window = after & (np.arange(len(v)) < stop_until)
        stopped_idx = np.flatnonzero(pulled & window)
        stopped_within = (
            float(h.time_s[stopped_idx[0]] - h.time_s[t_in]) if len(stopped_idx) else None
        )
        # the EV's path: a box ahead of it, as long as 3 s of its travel (at least 10 m)
        eh = h.agents_heading[:, j]
        reach = np.maximum(EV_PATH_MIN_M, EV_PATH_LOOKAHEAD_S * h.agents_speed[:, j])
        box_c = h.agents_xy[:, j] + (0.5 * h.agents_length[j] + 0.5 * reach)[:, None] * np.stack(
            [np.cos(eh), np.sin(eh)], axis=1
        )
        in_path = boxes_overlap(
            ego_c,
            h.ego[:, C.HEADING],
            h.ego_length_m,
            h.ego_width_m,
            box_c,
            eh,
            reach,
            h.agents_width[j],
        )
        blocked = bool(np.any(in_path & lit & (v <= EV_STOPPED_SPEED_MPS) & after))
        resumed = t_pass is not None and bool(np.any(v[t_pass:] >= EV_RESUMED_SPEED_MPS))
        out.append(
            EvYield(
                int(j),
                float(h.time_s[t_in]),
                stopped_within is not None,
                stopped_within,
                blocked,
                resumed,
                float(h.time_s[t_pass]) if t_pass is not None else None,
            )
        )
    return out


def first_kerb_stop_s(
    h: DrivingHistory, after_s: float, before_s: float | None = None
) -> float | None:
    """The first time in [`after_s`, `before_s`) that the ego stands at the kerb (stopped, at
    least `EV_PULL_OVER_MIN_OFFSET_M` right of its lane centre) — the pull-over of
    `ev_yield_events` — or None."""
    _, ego_d = project_to_path(h.path_xy, h.ego[:, [C.X, C.Y]])
    pulled = (h.ego[:, C.SPEED] <= EV_STOPPED_SPEED_MPS) & (ego_d <= -EV_PULL_OVER_MIN_OFFSET_M)
    window = h.time_s >= after_s - 1e-9
    if before_s is not None:
        window &= h.time_s < before_s - 1e-9
    idx = np.flatnonzero(pulled & window)
    return float(h.time_s[idx[0]]) if len(idx) else None


def ev_yield(h: DrivingHistory) -> MetricResult:
    events = ev_yield_events(h)
    if not events:
        return MetricResult("ev_yield", 1.0, float("nan"), {"applicable": False})
    good = [
        e.pulled_over
        and not e.blocked_ev
        and e.resumed
        and e.stopped_within_s is not None
        and e.stopped_within_s <= EV_PULL_OVER_WITHIN_S
        for e in events
    ]
    first = events[0]
    return MetricResult(
        "ev_yield",
        float(all(good)),
        float(sum(good)),
        {
            "applicable": True,
            "pulled_over": all(e.pulled_over for e in events),
            "stopped_within_s": first.stopped_within_s,
            "blocked_ev": any(e.blocked_ev for e in events),
            "resumed": all(e.resumed for e in events),
            "events": [asdict(e) for e in events],
        },
    )


MetricFn = Callable[[DrivingHistory], MetricResult]

METRICS: Mapping[str, MetricFn] = {
    "no_at_fault_collision": no_at_fault_collision,
    "drivable_area_compliance": drivable_area_compliance,
    "driving_direction_compliance": driving_direction_compliance,
    "making_progress": making_progress,
    "time_to_collision": time_to_collision,
    "progress_along_route": progress_along_route,
    "speed_limit_compliance": speed_limit_compliance,
    "comfort": comfort,
    "red_light_violations": red_light_violations,
    "ev_yield": ev_yield,
}


def evaluate(h: DrivingHistory, names: Iterable[str] | None = None) -> dict[str, MetricResult]:
    """Run the named metrics (all by default) on one history."""
    chosen = list(METRICS) if names is None else list(names)
    unknown = [n for n in chosen if n not in METRICS]
    if unknown:
        raise KeyError(f"unknown driving metrics {unknown}; known: {sorted(METRICS)}")
    return {n: METRICS[n](h) for n in chosen}


def scenario_score(results: Mapping[str, MetricResult]) -> float:
    """nuPlan-style score: Π multiplier-metric scores × weighted mean of the others."""
    multiplier = 1.0
    for name in MULTIPLIER_METRICS:
        if name in results:
            multiplier *= results[name].score
    total_w = sum(w for n, w in WEIGHTS.items() if n in results)
    if total_w == 0:
        return multiplier
    weighted = sum(w * results[n].score for n, w in WEIGHTS.items() if n in results) / total_w
    return float(multiplier * weighted)
