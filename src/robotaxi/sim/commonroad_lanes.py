"""The ego's `ReferencePath` from a CommonRoad lanelet network: route search and geometry.

The route starts at the lanelet under the planning problem's initial state (the one whose
direction best matches the initial heading) and follows successors — and, where the goal
lies in a neighbouring lane, lane changes into adjacent same-direction lanelets — to the
goal region's lanelets (a shortest-path search in metres, a lane change costing
`LANE_CHANGE_COST_M`). Goals without a position (survive until a time step) follow the
straightest successors. The route is extended past the goal so the planner never sees the
road end where the goal begins.

Geometry: centre lines sampled about every metre; a lane change blends from one centre line
to the next with a cosine ramp over `lane_change_length_m` (lane changes in a row share the
lanelet they start on); pieces are chained without stepping back where centre lines overlap
at a joint; the joined line is resampled every metre and smoothed with a 2 m Gaussian (kinks
at lanelet joints would otherwise read as sharp bends). Per point:
lane width from the lanelet's bounds; right/left room to the outer bound of the outermost
adjacent lanelet in the same direction; speed limit from MAX_SPEED traffic signs
(CommonRoad stores m/s), otherwise a default. Stop lines: the end of each route lanelet
that a traffic light controls, keyed by the light's id.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.ndimage import gaussian_filter1d

from robotaxi.core.errors import MissingExtraError

try:  # CommonRoad is an optional extra: without it, say how to install it
    from commonroad.planning.planning_problem import PlanningProblem
    from commonroad.scenario.lanelet import Lanelet, LaneletNetwork
    from commonroad.scenario.scenario import Scenario
    from commonroad.scenario.traffic_sign import SupportedTrafficSignCountry
    from commonroad.scenario.traffic_sign_interpreter import TrafficSignInterpreter
except ModuleNotFoundError as exc:
    MissingExtraError.raise_for(exc, extra="commonroad", what="CommonRoad support")

from robotaxi.autonomy.planning.reference import ReferencePath, StopLine
from robotaxi.core.types import FloatArray

SAMPLE_SPACING_M = 1.0
LANE_CHANGE_COST_M = 40.0
EXTENSION_M = 150.0
# where no sign says otherwise: an urban 50 km/h
DEFAULT_SPEED_LIMIT_MPS = 50.0 / 3.6
MIN_POINT_GAP_M = 0.05
SMOOTHING_SIGMA_M = 2.0
# a road user follows a lanelet in prediction if it heads within this of the lanelet (rad)
LANE_MATCH_RAD = math.radians(30.0)


@dataclass(frozen=True)
class LaneRoute:
    """The route as lanelet ids (with whether each was entered by a lane change) and the
    reference path built along it."""

    lanelet_ids: tuple[int, ...]
    lane_changes: tuple[bool, ...]
    path: ReferencePath
    reaches_goal: bool
    # the car's fraction along its first lanelet and the lane-change length the path was
    # built with (m), for rebuilding it with lane changes begun later (`LaneletRouter.path`)
    start_u: float = 0.0
    lane_change_length_m: float = 0.0


@dataclass(frozen=True)
class ChangeStart:
    """Where a lane change of the route begins: into hop `hop` (lanelet `to_lanelet`) from
    `from_lanelet`, at map point `start_xy` (m), the fraction `start_u` along `from_lanelet`
    (of length `length_m`), at the earliest `earliest_u`; `run` lane changes in a row share
    the stretch."""

    hop: int
    from_lanelet: int
    to_lanelet: int
    start_xy: FloatArray
    earliest_u: float
    start_u: float
    length_m: float
    run: int


@dataclass(frozen=True)
class _LaneGeometry:
    """One lanelet resampled: columns x, y, width, right room, left room, speed limit (m,
    m/s), indexed by the arc-length fraction `u` in [0, 1]."""

    u: FloatArray
    columns: FloatArray
    length_m: float

    def at(self, u: FloatArray) -> FloatArray:
        return np.column_stack([np.interp(u, self.u, col) for col in self.columns.T])


def _polyline_length(xy: FloatArray) -> FloatArray:
    seg = np.hypot(*np.diff(xy, axis=0).T)
    return np.concatenate([[0.0], np.cumsum(seg)])


def _distance_to_polyline(points: FloatArray, line: FloatArray) -> FloatArray:
    """Distance (m) from each of N points to a polyline (M×2), as an N×(M−1) array sweep."""
    a, b = line[:-1], line[1:]
    ab = b - a
    len2 = np.maximum(np.sum(ab * ab, axis=1), 1e-12)
    rel = points[:, None, :] - a[None]
    t = np.clip(np.sum(rel * ab[None], axis=2) / len2, 0.0, 1.0)
    foot = a[None] + t[..., None] * ab[None]
    return np.min(np.hypot(*(points[:, None, :] - foot).transpose(2, 0, 1)), axis=1)


def _join(parts: Sequence[FloatArray]) -> FloatArray:
    """Chain route pieces (rows x, y, …) into one polyline without doubling back at joints.

    Successive lanelets share their joint point, but recorded maps often let the next
    centre line start a little behind the previous one's end (an overlap) or beside it.
    Points of the next piece that are not at least `MIN_POINT_GAP_M` ahead of the joint,
    measured along the direction the line arrives in, are dropped: kept, they make the
    line step back and forth — a hairpin the curvature would read as a sharp bend. Points
    closer together than `MIN_POINT_GAP_M` anywhere are dropped too."""
    out: list[FloatArray] = []
    for part in parts:
        part = np.asarray(part, dtype=np.float64)
        if out:
            line = np.concatenate(out)[:, :2]
            end = line[-1]
            back = line[:-1][np.hypot(*(line[:-1] - end).T) > MIN_POINT_GAP_M]
            arrive = end - back[-1] if len(back) else part[-1, :2] - end
            norm = float(np.hypot(*arrive))
            if norm > 0.0:
                along = (part[:, :2] - end) @ (arrive / norm)
                ahead = np.flatnonzero(along > MIN_POINT_GAP_M)
                part = part[ahead[0] :] if len(ahead) else part[:0]
        if len(part):
            out.append(part)
    cols = np.concatenate(out)
    keep = np.concatenate([[True], np.hypot(*np.diff(cols[:, :2], axis=0).T) > MIN_POINT_GAP_M])
    return cols[keep]


def _outermost(network: LaneletNetwork, lanelet: Lanelet, side: str) -> Lanelet:
    """The outermost lanelet reached by stepping to adjacent same-direction lanelets."""
    seen = {lanelet.lanelet_id}
    current = lanelet
    while True:
        adj = getattr(current, f"adj_{side}")
        same = getattr(current, f"adj_{side}_same_direction")
        if adj is None or not same or adj in seen:
            return current
        seen.add(adj)
        current = network.find_lanelet_by_id(adj)


def heading_along(lanelet: Lanelet, xy: FloatArray) -> float:
    """Direction (rad) of a lanelet's centre line at the vertex nearest to `xy`."""
    centre = lanelet.center_vertices
    i = int(np.argmin(np.hypot(*(centre - xy).T)))
    i = min(i, len(centre) - 2)
    d = centre[i + 1] - centre[i]
    return math.atan2(d[1], d[0])


def _angle_diff(a: float, b: float) -> float:
    return abs((a - b + math.pi) % (2 * math.pi) - math.pi)


class LaneletRouter:
    """Route search and reference-path geometry over one scenario's lanelet network."""

    def __init__(self, scenario: Scenario, default_speed_mps: float = DEFAULT_SPEED_LIMIT_MPS):
        self.network = scenario.lanelet_network
        self.default_speed_mps = default_speed_mps
        try:
            country = SupportedTrafficSignCountry(scenario.scenario_id.country_id)
        except ValueError:
            country = SupportedTrafficSignCountry.ZAMUNDA
        self._signs = TrafficSignInterpreter(country, self.network)
        self._geometry: dict[int, _LaneGeometry] = {}
        self._lane_lines: dict[int, FloatArray] = {}

    def lanelet(self, lanelet_id: int) -> Lanelet:
        return self.network.find_lanelet_by_id(lanelet_id)

    def speed_limit(self, lanelet_id: int) -> float | None:
        """The lanelet's signed speed limit (m/s), or None."""
        return self._signs.speed_limit(frozenset([lanelet_id]))

    def geometry(self, lanelet_id: int) -> _LaneGeometry:
        cached = self._geometry.get(lanelet_id)
        if cached is not None:
            return cached
        lane = self.lanelet(lanelet_id)
        centre = np.asarray(lane.center_vertices, dtype=np.float64)
        width = np.hypot(*(lane.left_vertices - lane.right_vertices).T)
        right_edge = _outermost(self.network, lane, "right").right_vertices
        left_edge = _outermost(self.network, lane, "left").left_vertices
        right_room = _distance_to_polyline(centre, np.asarray(right_edge, dtype=np.float64))
        left_room = _distance_to_polyline(centre, np.asarray(left_edge, dtype=np.float64))
        limit = self.speed_limit(lanelet_id)
        speed = np.full(len(centre), self.default_speed_mps if limit is None else limit)
        s = _polyline_length(centre)
        length = float(s[-1])
        u = s / length if length > 0 else np.linspace(0.0, 1.0, len(centre))
        cols = np.column_stack([centre, width, right_room, left_room, speed])
        geo = _LaneGeometry(u, cols, length)
        self._geometry[lanelet_id] = geo
        return geo

    def start_lanelet(self, xy: FloatArray, heading: float) -> int:
        """The lanelet under `xy` whose direction best matches `heading` (rad)."""
        found = self.network.find_lanelet_by_position([np.asarray(xy, dtype=np.float64)])[0]
        if not found:
            # just off every lanelet: take the lanelet with the nearest centre line
            found = [
                min(
                    self.network.lanelets,
                    key=lambda ll: float(np.min(np.hypot(*(ll.center_vertices - xy).T))),
                ).lanelet_id
            ]
        return min(
            found, key=lambda lid: _angle_diff(heading_along(self.lanelet(lid), xy), heading)
        )

    def goal_lanelets(self, problem: PlanningProblem) -> set[int]:
        """Lanelets of the goal region: those the file names, else those under the goal
        shapes' centres (matching the goal orientation, if it has one)."""
        goal = problem.goal
        named = goal.lanelets_of_goal_position
        if named:
            return {lid for ids in named.values() for lid in ids}
        out: set[int] = set()
        for state in goal.state_list:
            if not state.has_value("position"):
                continue
            shapes = getattr(state.position, "shapes", [state.position])
            centres = [np.asarray(sh.center, dtype=np.float64) for sh in shapes]
            heading = None
            if state.has_value("orientation"):
                heading = 0.5 * (state.orientation.start + state.orientation.end)
            for centre, ids in zip(
                centres, self.network.find_lanelet_by_position(centres), strict=True
            ):
                for lid in ids:
                    lane_heading = heading_along(self.lanelet(lid), centre)
                    if heading is None or _angle_diff(lane_heading, heading) < math.radians(45):
                        out.add(lid)
        return out

    def _search(self, start: int, goals: set[int]) -> list[tuple[int, bool]] | None:
        """Shortest route (m) from `start` to any goal lanelet; each hop says whether it is a
        lane change."""
        best: dict[int, float] = {start: 0.0}
        back: dict[int, tuple[int, bool]] = {}
        queue: list[tuple[float, int]] = [(0.0, start)]
        while queue:
            cost, lid = heapq.heappop(queue)
            if cost > best.get(lid, math.inf):
                continue
            if lid in goals:
                route: list[tuple[int, bool]] = []
                while lid in back:
                    prev, change = back[lid]
                    route.append((lid, change))
                    lid = prev
                route.append((start, False))
                return route[::-1]
            lane = self.lanelet(lid)
            hops = [(nxt, self.geometry(lid).length_m, False) for nxt in lane.successor]
            for side in ("left", "right"):
                adj = getattr(lane, f"adj_{side}")
                if adj is not None and getattr(lane, f"adj_{side}_same_direction"):
                    hops.append((adj, LANE_CHANGE_COST_M, True))
            for nxt, step, change in hops:
                new = cost + step
                if new < best.get(nxt, math.inf):
                    best[nxt] = new
                    back[nxt] = (lid, change)
                    heapq.heappush(queue, (new, nxt))
        return None

    def _straight_successors(self, lid: int, length_m: float) -> list[tuple[int, bool]]:
        """Follow the successor that turns least until `length_m` metres are covered."""
        out: list[tuple[int, bool]] = []
        covered = 0.0
        seen = {lid}
        current = self.lanelet(lid)
        while covered < length_m and current.successor:
            end = current.center_vertices[-1]
            h = heading_along(current, end)
            nxt = min(
                current.successor,
                key=lambda n: _angle_diff(heading_along(self.lanelet(n), end), h),
            )
            if nxt in seen:
                break
            seen.add(nxt)
            out.append((nxt, False))
            current = self.lanelet(nxt)
            covered += self.geometry(nxt).length_m
        return out

    def route(
        self, problem: PlanningProblem, lane_change_length_m: float, min_length_m: float
    ) -> LaneRoute:
        """The ego's route and reference path for `problem` (module docstring)."""
        init = problem.initial_state
        xy = np.asarray(init.position, dtype=np.float64)
        start = self.start_lanelet(xy, float(init.orientation))
        goals = self.goal_lanelets(problem)
        hops = self._search(start, goals) if goals else None
        reaches = hops is not None
        if hops is None:
            hops = [(start, False), *self._straight_successors(start, min_length_m)]
        hops += self._straight_successors(hops[-1][0], EXTENSION_M)
        start_u = self._fraction_on(start, xy)
        hops = self._defer_lane_changes(hops, start_u, lane_change_length_m)
        path = self._build_path(hops, start_u, lane_change_length_m)
        path = self._with_stop_lines(path, [lid for lid, _ in hops])
        return LaneRoute(
            tuple(lid for lid, _ in hops),
            tuple(c for _, c in hops),
            path,
            reaches,
            start_u,
            lane_change_length_m,
        )

    def path(
        self, route: LaneRoute, delays_m: Mapping[int, float]
    ) -> tuple[ReferencePath, list[ChangeStart]]:
        """`route`'s path rebuilt with the lane change into hop i begun `delays_m[i]` m
        later, and where each of its lane changes begins."""
        hops = list(zip(route.lanelet_ids, route.lane_changes, strict=True))
        starts: list[ChangeStart] = []
        path = self._build_path(hops, route.start_u, route.lane_change_length_m, delays_m, starts)
        return self._with_stop_lines(path, route.lanelet_ids), starts

    def defer_change(self, route: LaneRoute, hop: int) -> LaneRoute | None:
        """`route` with its lane change into hop `hop` moved one lanelet on — prev → ⇢lid →
        next becomes prev → prev's successor → ⇢next, where prev's successor runs beside
        `next` — or None where the lanelets do not allow it (no successor beside `next`, or
        another lane change follows)."""
        ids, changes = list(route.lanelet_ids), list(route.lane_changes)
        if not (0 < hop < len(ids) - 1 and changes[hop] and not changes[hop + 1]):
            return None
        nxt = ids[hop + 1]
        beside = [
            ps
            for ps in self.lanelet(ids[hop - 1]).successor
            if self._adjacent_same_direction(ps, nxt)
        ]
        if not beside:
            return None
        ids[hop : hop + 2] = [beside[0], nxt]
        changes[hop : hop + 2] = [False, True]
        return replace(route, lanelet_ids=tuple(ids), lane_changes=tuple(changes))

    def lane_path(self, lanelet_id: int, ahead_m: float = 120.0) -> ReferencePath:
        """The centre line of one lane as a path: the lanelet, its (single) predecessor
        before it and its straightest successors for `ahead_m` after it."""
        lane = self.lanelet(lanelet_id)
        hops = [(lanelet_id, False), *self._straight_successors(lanelet_id, ahead_m)]
        if len(lane.predecessor) == 1 and lane.predecessor[0] not in {h for h, _ in hops}:
            hops.insert(0, (lane.predecessor[0], False))
        parts = [self._span(lid, 0.0, 1.0) for lid, _ in hops]
        cols = _join(parts)
        return ReferencePath(cols[:, :2], cols[:, 2], cols[:, 5], cols[:, 3], cols[:, 4])

    def _adjacent_same_direction(self, a: int, b: int) -> bool:
        lane = self.lanelet(a)
        return (lane.adj_left == b and bool(lane.adj_left_same_direction)) or (
            lane.adj_right == b and bool(lane.adj_right_same_direction)
        )

    def _defer_lane_changes(
        self, hops: list[tuple[int, bool]], start_u: float, lane_change_length_m: float
    ) -> list[tuple[int, bool]]:
        """Move a lane change that has no room left on its lanelet (the car starts near the
        lanelet's end, or the lanelet is short) one lanelet on — prev → ⇢lid → next becomes
        prev → prev's successor → ⇢next — where prev's successor runs beside `next`.
        Otherwise the change would be squeezed into nothing: the path would jump sideways
        by a lane width at the joint, a kink no car can follow."""
        hops = list(hops)
        i = 1
        while i < len(hops) - 1:
            change = hops[i][1]
            prev = hops[i - 1][0]
            nxt, nxt_change = hops[i + 1]
            if change and not nxt_change:
                u0 = start_u if i == 1 else 0.0
                room = (1.0 - u0) * self.geometry(prev).length_m - (5.0 if i == 1 else 0.0)
                beside = [
                    ps
                    for ps in self.lanelet(prev).successor
                    if self._adjacent_same_direction(ps, nxt)
                ]
                if room < 0.5 * lane_change_length_m and beside:
                    hops[i : i + 2] = [(beside[0], False), (nxt, True)]
                    continue
            i += 1
        return hops

    def lane_of(self, x: float, y: float, heading: float) -> FloatArray | None:
        """Centre line (N×2, m) of the lane a road user at (x, y) heading `heading` (rad)
        drives along — its lanelet, continued into the successor when there is only one —
        or None where no lanelet under it runs within `LANE_MATCH_RAD` of its heading."""
        xy = np.array([x, y])
        ids = self.network.find_lanelet_by_position([xy])[0]
        best, best_err = None, LANE_MATCH_RAD
        for lid in ids:
            err = _angle_diff(heading_along(self.lanelet(lid), xy), heading)
            if err < best_err:
                best, best_err = lid, err
        if best is None:
            return None
        cached = self._lane_lines.get(best)
        if cached is None:
            lane = self.lanelet(best)
            parts = [np.asarray(lane.center_vertices, dtype=np.float64)]
            if len(lane.successor) == 1:
                nxt = self.lanelet(lane.successor[0]).center_vertices
                parts.append(np.asarray(nxt, dtype=np.float64)[1:])
            cached = np.concatenate(parts)
            self._lane_lines[best] = cached
        return cached

    def _fraction_on(self, lanelet_id: int, xy: FloatArray) -> float:
        geo = self.geometry(lanelet_id)
        pts = geo.columns[:, :2]
        i = int(np.argmin(np.hypot(*(pts - xy).T)))
        return float(geo.u[i])

    def _span(self, lid: int, u0: float, u1: float) -> FloatArray:
        geo = self.geometry(lid)
        n = max(2, math.ceil(geo.length_m * (u1 - u0) / SAMPLE_SPACING_M) + 1)
        return geo.at(np.linspace(u0, u1, n))

    def _blend(self, a: int, b: int, u0: float, u1: float) -> FloatArray:
        geo_a, geo_b = self.geometry(a), self.geometry(b)
        n = max(2, math.ceil(geo_a.length_m * (u1 - u0) / SAMPLE_SPACING_M) + 1)
        u = np.linspace(u0, u1, n)
        w = 0.5 - 0.5 * np.cos(np.pi * (u - u0) / max(u1 - u0, 1e-9))
        # adjacent lanelets run side by side: the same fraction is the same place along them
        return (1 - w)[:, None] * geo_a.at(u) + w[:, None] * geo_b.at(u)

    def _build_path(
        self,
        hops: Sequence[tuple[int, bool]],
        start_u: float,
        lane_change_length_m: float,
        delays_m: Mapping[int, float] | None = None,
        starts: list[ChangeStart] | None = None,
    ) -> ReferencePath:
        """The route's path; a lane change into hop i begins `delays_m[i]` metres later than
        it would (0 by default); `starts`, if given, receives where each lane change begins."""
        # spans: (kind, from lanelet, to lanelet, u0, u1)
        spans: list[tuple[str, int, int, float, float]] = [("lane", hops[0][0], hops[0][0], 0, 1)]
        changes = [change for _, change in hops]
        for i, (lid, change) in enumerate(hops[1:], start=1):
            if not change:
                spans.append(("lane", lid, lid, 0.0, 1.0))
                continue
            kind, prev, _, u0, _ = spans[-1]
            if kind != "lane":
                # no room left for this change (the lanelets run out): it is dropped
                continue
            spans.pop()
            length = self.geometry(prev).length_m
            # the first lane change begins a little ahead of the car, not behind it
            uc = max(u0, start_u + 5.0 / length) if not spans else u0
            earliest_uc = min(uc, 1.0)
            delay_m = (delays_m or {}).get(i, 0.0)
            uc = min(uc + delay_m / max(length, 1e-9), 1.0)
            # Lane changes in a row (two lanes over on one stretch) share the stretch: one
            # full-length blend would use it all and leave the next change no room, and a
            # dropped change makes the path jump a lane width sideways at the next joint.
            run = 1
            while i + run < len(hops) and changes[i + run]:
                run += 1
            blend_m = min(lane_change_length_m, (1.0 - uc) * length / run)
            ue = min(1.0, uc + blend_m / length)
            if starts is not None:
                start_xy = self.geometry(prev).at(np.array([uc]))[0, :2]
                starts.append(ChangeStart(i, prev, lid, start_xy, earliest_uc, uc, length, run))
            if uc > u0:
                spans.append(("lane", prev, prev, u0, uc))
            if ue > uc:
                spans.append(("blend", prev, lid, uc, ue))
            if ue < 1.0:
                spans.append(("lane", lid, lid, ue, 1.0))
        parts = [
            self._span(a, u0, u1) if kind == "lane" else self._blend(a, b, u0, u1)
            for kind, a, b, u0, u1 in spans
        ]
        cols = _join(parts)
        # Centre lines meet at lanelet joints with kinks (and recorded maps are jagged): on
        # an even 1 m grid, a Gaussian of SMOOTHING_SIGMA_M takes them out of the curvature
        # the planner slows for, leaving real bends (radius ≥ 10 m) nearly untouched.
        s = _polyline_length(cols[:, :2])
        grid = np.linspace(0.0, s[-1], max(2, math.ceil(s[-1] / SAMPLE_SPACING_M) + 1))
        cols = np.column_stack([np.interp(grid, s, c) for c in cols.T])
        sigma = SMOOTHING_SIGMA_M / (grid[1] - grid[0])
        cols[:, :2] = gaussian_filter1d(cols[:, :2], sigma, axis=0, mode="nearest")
        # The lane the route is on is drivable: where the bounds of lanelets that meet at an
        # angle (inside an intersection) put a kerb nearer than half the lane width, the
        # half width wins.
        cols[:, 3:5] = np.maximum(cols[:, 3:5], 0.5 * cols[:, 2:3])
        return ReferencePath(cols[:, :2], cols[:, 2], cols[:, 5], cols[:, 3], cols[:, 4])

    def _with_stop_lines(self, path: ReferencePath, lanelet_ids: Sequence[int]) -> ReferencePath:
        lines: list[StopLine] = []
        for lid in lanelet_ids:
            lane = self.lanelet(lid)
            if not lane.traffic_lights:
                continue
            end_s, _ = path.project(*lane.center_vertices[-1])
            for light in sorted(lane.traffic_lights):
                lines.append(StopLine(float(end_s), str(light)))
        if not lines:
            return path
        return ReferencePath(
            path.xy,
            path.lane_width_m,
            path.speed_limit_mps,
            path.right_room_m,
            path.left_room_m,
            tuple(lines),
        )


def signal_states(scenario: Scenario, time_step: int) -> dict[str, str]:
    """Every active traffic light's state at `time_step` as our signal characters."""
    codes = {"red": "r", "redYellow": "r", "yellow": "y", "green": "g"}
    out: dict[str, str] = {}
    for light in scenario.lanelet_network.traffic_lights:
        if not getattr(light, "active", True):
            continue
        state = light.get_state_at_time_step(time_step)
        code = codes.get(getattr(state, "value", ""))
        if code is not None:
            out[str(light.traffic_light_id)] = code
    return out
