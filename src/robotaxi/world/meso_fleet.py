"""Robotaxis in SUMO's mesoscopic model: a car at the kerb is out of the simulation.

Meso moves cars as queues per street segment: no lanes, no lateral position, no parking off
the lane; and SUMO 1.28's meso cannot release a stopped car (`resume` is not implemented,
`replaceStop` and `remove` crash). So a robotaxi is in SUMO only while it drives from one
kerb to the next. `DriveTo` puts it into SUMO where it stands, with a route to its target
street; it leaves SUMO when it gets there (SUMO's arrival) and from then on stands at its
target spot, as a row kept here (parked, off the lane) until its next command. `PullOver`
ends its route at the end of the street it is on: it stands there until `Resume` sends it
on to its target. The odometer carries over from one leg to the next.

What this model cannot do, and micro does: the car's position along a street is SUMO's
segment (about 100 m) until it arrives; it arrives at its spot when it leaves the street's
segment holding the spot; and a car standing at the kerb takes no room on the street. Our
own autonomy stack needs lanes and lateral positions, so cars our stack drives need micro.
The odometer is counted here from the streets a car passes: SUMO 1.28's meso distance
(`VAR_DISTANCE`) comes out about 1.8 times the route's length.

Routes come from the fleet's routing graph (the travel times its ETAs use, measured from
SUMO every few minutes), not SUMO's `findRoute`: on the whole city that cost 11–20 ms a call
against the graph's 2–4 ms, and SUMO's measured-time routing makes it re-average every
street's travel time every 10 s. For the same reason robotaxis carry no rerouting device in
meso: with one, SUMO routed each leg again when the car entered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import libsumo
from libsumo import constants as tc

from robotaxi.core import WorldError
from robotaxi.map import RoadMap
from robotaxi.world.traffic import sumo_heading

Row = dict[int, Any]
_PARKED_STATE = 1 | 2  # VAR_STOPSTATE bits: stopped, parking (off the lane)
# meso implements no stop state (reading it only warns) and no lanes (a car's lane is ""):
# neither is subscribed
MESO_CAR_VARS = [
    tc.VAR_POSITION,
    tc.VAR_ANGLE,
    tc.VAR_SPEED,
    tc.VAR_ROAD_ID,
    tc.VAR_LANEPOSITION,
]


@dataclass(frozen=True, slots=True)
class Spot:
    """A place at the kerb: street, m along it, lane index."""

    edge: str
    pos: float
    lane: int


class FleetTable:
    """Every robotaxi's last row as columns (one slot per car, in the order added), so that
    a snapshot of a thousand cars costs the cars that moved, not a thousand rows: a car at
    the kerb is written when it arrives, a driving car every step. Plain lists: writing one
    element of a numpy array costs more than the whole row's other work."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.slot: dict[str, int] = {}
        self.x: list[float] = []
        self.y: list[float] = []
        self.heading: list[float] = []
        self.speed: list[float] = []
        self.lane_pos: list[float] = []
        self.odometer: list[float] = []
        self.stopped: list[bool] = []
        self.present: list[bool] = []  # False: the car has no row (not in SUMO)
        self.roads: list[str] = []
        self.lanes: list[str] = []

    def add(self, vid: str) -> None:
        self.slot[vid] = len(self.ids)
        self.ids.append(vid)
        for column in (self.x, self.y, self.heading, self.speed, self.lane_pos, self.odometer):
            column.append(0.0)
        self.stopped.append(False)
        self.present.append(False)
        self.roads.append("")
        self.lanes.append("")

    def write(self, vid: str, row: Row | None) -> None:
        k = self.slot[vid]
        if row is None:
            self.present[k] = False
            return
        self.present[k] = True
        self.x[k], self.y[k] = row[tc.VAR_POSITION]
        self.heading[k] = sumo_heading(row[tc.VAR_ANGLE])
        self.speed[k] = row[tc.VAR_SPEED]
        self.lane_pos[k] = row[tc.VAR_LANEPOSITION]
        self.odometer[k] = max(row.get(tc.VAR_DISTANCE, 0.0), 0.0)
        self.stopped[k] = bool(row.get(tc.VAR_STOPSTATE, 0) & 1)
        self.roads[k] = row[tc.VAR_ROAD_ID]
        self.lanes[k] = row.get(tc.VAR_LANE_ID, "")


class MesoFleet:
    """The robotaxis of one meso world: which stand at the kerb (out of SUMO), where each
    is going, and the distance each drove on its earlier legs. `loop_route(here,
    target)` is the route from `here` once around the block back to `target` (the world's
    own, shared with micro)."""

    def __init__(
        self,
        road_map: RoadMap,
        vehicle_type: str,
        loop_route: Callable[[str, str], tuple[str, ...]],
        route: Callable[[str, str], tuple[str, ...]],
    ) -> None:
        self.road_map = road_map
        self.vehicle_type = vehicle_type
        self._loop_route = loop_route
        self._graph_route = route
        self.parked: dict[str, Row] = {}  # cars out of SUMO, as the row they report
        # cars sent off, until SUMO inserts them (it waits for room on the street)
        self.leaving: dict[str, Row] = {}
        self._goal: dict[str, Spot] = {}  # where each car was last sent (`DriveTo`)
        self._pull_over: dict[str, Spot] = {}  # where a car pulling over will stand
        self._odometer: dict[str, float] = {}  # m driven in all
        self._last_seen: dict[str, tuple[str, float]] = {}  # street and m along it, driving
        self._legs = 0
        # each driving car's route (as given to SUMO) and its index on it when last seen
        self._routes: dict[str, tuple[str, ...]] = {}
        self._route_at: dict[str, int] = {}
        self.table = FleetTable()
        self._driving: set[str] = set()  # cars that reported from SUMO in the last update

    # --- commands ----------------------------------------------------------------------

    def add(self, vid: str, spot: Spot) -> None:
        """A robotaxi that starts parked at `spot`."""
        self._odometer[vid] = 0.0
        self.parked[vid] = self._row(vid, spot)
        self.table.add(vid)
        self.table.write(vid, self.parked[vid])

    def drive_to(self, vid: str, spot: Spot) -> None:
        """Send a car to `spot` (the world's `DriveTo`): from the kerb it enters SUMO; on
        its way it changes its target."""
        self._goal[vid] = spot
        self._pull_over.pop(vid, None)
        self._head_for(vid, spot)

    def pull_over(self, vid: str) -> None:
        """Stand at the end of the street the car is on (the next one when it is about to
        leave this one): the route ends there and SUMO lets it arrive."""
        if vid in self.parked or vid in self.leaving:
            return  # at the kerb (still, when it waits for room to enter SUMO)
        veh = libsumo.vehicle
        here = veh.getRoadID(vid)
        route, idx = veh.getRoute(vid), veh.getRouteIndex(vid)
        if here not in self.road_map.edges:
            raise WorldError(f"{vid} is on {here or 'no street'}: pull over in a moment")
        edge = here if idx + 1 >= len(route) or veh.getLanePosition(vid) < (
            self.road_map.edges[here].length - 20.0
        ) else route[idx + 1]  # fmt: skip
        self.set_route(vid, (here,) if edge == here else (here, edge))
        lane = self.road_map.curb_lane(edge)
        self._pull_over[vid] = Spot(edge, max(lane.length - 1.0, 0.0), lane.index)

    def resume(self, vid: str) -> None:
        """After a pull-over, on to the car's target."""
        goal = self._goal.get(vid)
        self._pull_over.pop(vid, None)
        if goal is not None:
            self._head_for(vid, goal)

    def _head_for(self, vid: str, spot: Spot) -> None:
        veh = libsumo.vehicle
        row = self.parked.get(vid)
        if row is None and vid in self.leaving:  # sent off, not in SUMO yet: from its spot
            self.set_route(vid, self._leg(self.leaving[vid], spot))
            return
        if row is None:  # on its way: a new target
            here = veh.getRoadID(vid)
            if here == spot.edge and spot.pos < veh.getLanePosition(vid) + 10.0:
                self.set_route(vid, self._loop_route(here, spot.edge))  # the spot is behind
            else:
                self.set_route(vid, self._route(here, spot.edge))
            return
        here, pos = str(row[tc.VAR_ROAD_ID]), float(row[tc.VAR_LANEPOSITION])
        if here == spot.edge and abs(pos - spot.pos) < 1.0:
            return  # it stands there already
        edges = self._leg(row, spot)
        self._legs += 1
        route_id = f"meso_leg_{self._legs}"
        libsumo.route.add(route_id, list(edges))
        veh.add(
            vid, route_id, typeID=self.vehicle_type, depart="now",
            departPos=f"{pos:.2f}", departSpeed="0", arrivalPos=f"{spot.pos:.2f}",
        )  # fmt: skip
        veh.subscribe(vid, MESO_CAR_VARS)
        self._routes[vid], self._route_at[vid] = tuple(edges), 0
        self.leaving[vid] = self.parked.pop(vid)

    def _leg(self, row: Row, spot: Spot) -> tuple[str, ...]:
        """The route from where `row` has the car standing to `spot`."""
        here, pos = str(row[tc.VAR_ROAD_ID]), float(row[tc.VAR_LANEPOSITION])
        if here == spot.edge and spot.pos < pos:
            return self._loop_route(here, spot.edge)
        if here == spot.edge:
            return (here,)
        return self._route(here, spot.edge)

    def reroute(self, vid: str) -> None:
        """A driving car looks for a faster way to the end of its route, by the routing
        graph's travel times (in meso, SUMO's own `changeTarget` and `rerouteTraveltime`
        route from the street the car is leaving and corrupt its state; SUMO 1.28)."""
        veh = libsumo.vehicle
        here, target = veh.getRoadID(vid), veh.getRoute(vid)[-1]
        if here != target:
            self.set_route(vid, self._route(here, target))

    def set_route(self, vid: str, edges: tuple[str, ...]) -> None:
        """A driving car's new route, from the street it is on (every route change goes
        through here: the fleet keeps each car's route to count the streets it passes)."""
        libsumo.vehicle.setRoute(vid, list(edges))
        self._routes[vid], self._route_at[vid] = tuple(edges), 0

    def _route(self, here: str, target: str) -> tuple[str, ...]:
        try:
            edges = self._graph_route(here, target)
        except KeyError:  # a street robotaxis do not route over
            edges = ()
        if not edges:
            raise WorldError(f"no way from {here} to {target}")
        return edges

    # --- stepping ----------------------------------------------------------------------

    def arrived(self, vid: str) -> None:
        """The car left SUMO at the end of its route: it stands at its pull-over spot, at
        its target, or (when it arrived elsewhere) at the end of the street it left."""
        self.leaving.pop(vid, None)
        road, pos = self._last_seen.pop(vid, ("", 0.0))
        spot = self._pull_over.pop(vid, None)
        if spot is None:
            goal = self._goal.get(vid)
            if goal is not None and (goal.edge == road or not road):
                spot = self._goal.pop(vid)
            elif road in self.road_map.edges:
                lane = self.road_map.curb_lane(road)
                spot = Spot(road, max(lane.length - 1.0, 0.0), lane.index)
            elif goal is not None:
                spot = goal
            else:
                return
        if road in self.road_map.edges:
            rest = (
                spot.pos - pos
                if spot.edge == road
                else self.road_map.edges[road].length - pos + spot.pos
            )
            self._odometer[vid] = self._odometer.get(vid, 0.0) + max(rest, 0.0)
        self.parked[vid] = self._row(vid, spot)
        self.table.write(vid, self.parked[vid])

    def update(self, results: dict[str, Row]) -> FleetTable:
        """This step's rows into the table: the cars SUMO reports (`results`: this step's
        subscription results), and the cars that left SUMO since the last update."""
        slot, table = self.table.slot, self.table
        now_driving = set()
        for vid, row in results.items():
            if vid in slot:
                table.write(vid, self.report(vid, row))
                now_driving.add(vid)
        for vid in self._driving - now_driving:
            table.write(vid, self.report(vid, None))
        self._driving = now_driving
        return table

    def report(self, vid: str, row: Row | None) -> Row | None:
        """A car's row as the fleet reads it: SUMO's `row` while it drives (with the whole
        odometer, not stopped), else where it stands (None: not a car of this fleet)."""
        if row is None or not row[tc.VAR_ROAD_ID]:
            # out of SUMO, or added and waiting for room to enter (SUMO reports such a car
            # on no street): it stands where it stood
            return self.parked.get(vid) or self.leaving.get(vid)
        start = self.leaving.pop(vid, None)
        road, pos = str(row[tc.VAR_ROAD_ID]), float(row[tc.VAR_LANEPOSITION])
        if start is not None:  # its first step: from where it stood
            before = (str(start[tc.VAR_ROAD_ID]), float(start[tc.VAR_LANEPOSITION]))
        else:
            before = self._last_seen.get(vid, (road, pos))
        self._odometer[vid] = self._odometer.get(vid, 0.0) + self._driven(vid, before, row)
        if road == before[0]:
            pos = max(pos, before[1])  # meso puts a car leaving a street back at its start
        self._last_seen[vid] = (road, pos)
        out = dict(row)
        out[tc.VAR_DISTANCE] = self._odometer[vid]
        out[tc.VAR_STOPSTATE] = 0
        return out

    def _driven(self, vid: str, before: tuple[str, float], row: Row) -> float:
        """Metres from `before` (street, m along it) to where `row` has the car."""
        road, pos = str(row[tc.VAR_ROAD_ID]), float(row[tc.VAR_LANEPOSITION])
        last_road, last_pos = before
        if road == last_road:
            return max(pos - last_pos, 0.0)
        edges = self.road_map.edges
        metres = pos + (edges[last_road].length - last_pos if last_road in edges else 0.0)
        # where the two streets are on the car's route: the next `road` from where it was
        route, at = self._routes.get(vid, ()), self._route_at.get(vid, 0)
        try:
            index = route.index(road, at)
        except ValueError:  # not the route we gave it: ask SUMO
            route, index = tuple(libsumo.vehicle.getRoute(vid)), libsumo.vehicle.getRouteIndex(vid)
            self._routes[vid], at = route, 0
        self._route_at[vid] = index
        if last_road in route[at:index]:
            first = index - 1 - route[at:index][::-1].index(last_road)
            metres += sum(edges[e].length for e in route[first + 1 : index] if e in edges)
        return max(metres, 0.0)

    def _row(self, vid: str, spot: Spot) -> Row:
        lane_id = f"{spot.edge}_{spot.lane}"
        x, y = libsumo.simulation.convert2D(spot.edge, spot.pos, spot.lane)
        return {
            tc.VAR_POSITION: (x, y),
            tc.VAR_ANGLE: libsumo.lane.getAngle(lane_id, spot.pos),
            tc.VAR_SPEED: 0.0,
            tc.VAR_ROAD_ID: spot.edge,
            tc.VAR_LANE_ID: lane_id,
            tc.VAR_LANEPOSITION: spot.pos,
            tc.VAR_STOPSTATE: _PARKED_STATE,
            tc.VAR_DISTANCE: self._odometer.get(vid, 0.0),
        }
