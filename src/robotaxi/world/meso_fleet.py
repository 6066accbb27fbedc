"""Robotaxis in SUMO's mesoscopic model: a car at the kerb is out of the simulation.

Meso moves cars as queues per street segment: no lanes, no lateral position, no parking off
the lane; and SUMO 1.28's meso cannot release a stopped car (`resume` is not implemented,
`replaceStop` and `remove` crash). So a robotaxi is in SUMO only while it drives from one
kerb to the next. `DriveTo` puts it into SUMO where it stands, with a route to its target
street; it leaves SUMO as it enters that street (SUMO's arrival), drives the stretch to its
spot at the street's current speed (SUMO's travel time of the street; at least a crawl: a
queue inside the target street, where SUMO would teleport it in the end, cannot hold it),
and from then on stands at its target spot, as a row kept here (parked, off the lane) until
its next command. `PullOver`
ends its route at the end of the street it is on: it stands there until `Resume` sends it
on to its target. The odometer carries over from one leg to the next.

What this model cannot do, and micro does: the car's position along a street is SUMO's
segment (about 100 m) until it enters its target street; the last stretch is ours, not
SUMO's; and a car standing at the kerb takes no room on the street. Our
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
import numpy as np
from libsumo import constants as tc

from robotaxi.core import WorldError
from robotaxi.map import RoadMap
from robotaxi.world.traffic import sumo_heading

Row = dict[int, Any]
# the slowest a robotaxi drives the last stretch of its target street (`MesoFleet.arrived`)
LAST_STRETCH_MIN_MPS = 1.0
_PARKED_STATE = 1 | 2  # VAR_STOPSTATE bits: stopped, parking (off the lane)
# a row's keys, as plain ints: the per-car loops read them for every car and tick
_POSITION, _ANGLE, _SPEED = tc.VAR_POSITION, tc.VAR_ANGLE, tc.VAR_SPEED
_ROAD, _ALONG, _LANE = tc.VAR_ROAD_ID, tc.VAR_LANEPOSITION, tc.VAR_LANE_ID
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
    the kerb is written when it arrives, a driving car every step. The numbers are numpy
    columns, which a snapshot copies whole (a thousand rows in microseconds); the texts are
    plain lists."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.slot: dict[str, int] = {}
        self.xy = np.zeros((0, 2))
        self.heading = np.zeros(0)
        self.speed = np.zeros(0)
        self.lane_pos = np.zeros(0)
        self.odometer = np.zeros(0)
        self.stopped: list[bool] = []
        self.present = np.zeros(0, dtype=bool)  # False: the car has no row (not in SUMO)
        self.roads: list[str] = []
        self.lanes: list[str] = []
        self._ids: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def id_tuple(self) -> tuple[str, ...]:
        """`ids` as a tuple (the same object until a car is added)."""
        if len(self._ids) != len(self.ids):
            self._ids = tuple(self.ids)
        return self._ids

    def add(self, vid: str) -> None:
        k = len(self.ids)
        if k == len(self.speed):  # grow by doubling; slots stay where they are
            size = max(16, 2 * k)
            self.xy = np.concatenate([self.xy, np.zeros((size - k, 2))])
            for name in ("heading", "speed", "lane_pos", "odometer"):
                setattr(self, name, np.concatenate([getattr(self, name), np.zeros(size - k)]))
            self.present = np.concatenate([self.present, np.zeros(size - k, dtype=bool)])
        self.slot[vid] = k
        self.ids.append(vid)
        self.stopped.append(False)
        self.roads.append("")
        self.lanes.append("")

    def write(self, vid: str, row: Row | None) -> None:
        k = self.slot[vid]
        if row is None:
            self.present[k] = False
            return
        self.present[k] = True
        self.xy[k] = row[tc.VAR_POSITION]
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
        # cars SUMO let arrive on entering their target street, driving its last stretch to
        # their spot: until when (SUMO's clock) and the row they report meanwhile
        self._finishing: dict[str, tuple[float, Row]] = {}
        self._odometer: dict[str, float] = {}  # m driven in all
        self._last_seen: dict[str, tuple[str, float]] = {}  # street and m along it, driving
        self._legs = 0
        # each driving car's route (as given to SUMO) and its index on it when last seen
        self._routes: dict[str, tuple[str, ...]] = {}
        self._route_at: dict[str, int] = {}
        self.table = FleetTable()
        self._driving: set[str] = set()  # cars that reported from SUMO in the last update
        # cars added to SUMO and not arrived yet, in the order added: read every step with
        # getters (`read`), not subscribed. The same values; SUMO's step then collects no
        # subscription results (~100 driving robotaxis in the city's 07:00 peak: 0–0.8 s
        # of CPU less in SUMO's step per simulated 15 min in three paired runs, the getters
        # costing about what `getAllSubscriptionResults` did)
        self._in_sumo: dict[str, None] = {}
        # per car in SUMO, where it was last read: street, m along it, position, angle (in
        # meso the last two follow from the first two: SUMO places a car on its street's
        # shape by its distance along it), so a car standing in a queue is read with three
        # getters, not five
        self._where: dict[str, tuple[str, float, Any, Any]] = {}
        # per driving car, the street, m along it and speed last written to the table: a
        # row equal to that one changes nothing there (nor the odometer)
        self._written: dict[str, tuple[str, float, float]] = {}
        # the last `read`: SUMO's time, how many cars were in SUMO, their rows
        self._read: tuple[float, int, dict[str, Row]] | None = None

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
        self._finishing.pop(vid, None)  # sent on before it reached its last spot: from there
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
            departPos=f"{pos:.2f}", departSpeed="0", arrivalPos="0",
        )  # fmt: skip
        self._in_sumo[vid] = None
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

    def hold_short(self, vid: str) -> Spot | None:
        """A driving car held in a queue ends its leg at the end of the street it is on (where
        SUMO lets it arrive without entering the next one) and stands there; returns the goal
        it gives up. None, and nothing changes, when it is not driving, pulls over already, or
        is on its goal's street (its leg cannot end sooner)."""
        if vid not in self._in_sumo or vid in self.leaving or vid in self._pull_over:
            return None
        here, goal = libsumo.vehicle.getRoadID(vid), self._goal.get(vid)
        if goal is None or here == goal.edge or here not in self.road_map.edges:
            return None
        self.set_route(vid, (here,))
        lane = self.road_map.curb_lane(here)
        self._pull_over[vid] = Spot(here, max(lane.length - 1.0, 0.0), lane.index)
        return self._goal.pop(vid)

    def road_of(self, vid: str) -> str:
        """The street a car is on, or stands at."""
        row = self.parked.get(vid) or self.leaving.get(vid)
        return str(row[tc.VAR_ROAD_ID]) if row is not None else libsumo.vehicle.getRoadID(vid)

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
        its target, or (when its route ended elsewhere) at the end of the route's last
        street. (Where it was last read may be a street or more before: a tick may hold
        several of SUMO's steps.)"""
        start = self.leaving.pop(vid, None)
        self._in_sumo.pop(vid, None)
        self._where.pop(vid, None)
        self._written.pop(vid, None)
        road, pos = self._last_seen.pop(vid, ("", 0.0))
        route = self._routes.get(vid, ())
        end = route[-1] if route else road
        spot = self._pull_over.pop(vid, None)
        if spot is None:
            goal = self._goal.get(vid)
            if goal is not None and (goal.edge == end or not end):
                spot = self._goal.pop(vid)
            elif end in self.road_map.edges:
                lane = self.road_map.curb_lane(end)
                spot = Spot(end, max(lane.length - 1.0, 0.0), lane.index)
            elif goal is not None:
                spot = goal
            else:
                return
        if not road and start is not None:  # it drove the whole leg within one tick
            road, pos = str(start[tc.VAR_ROAD_ID]), float(start[tc.VAR_LANEPOSITION])
        if road in self.road_map.edges:
            self._odometer[vid] = self._odometer.get(vid, 0.0) + self._rest(vid, road, pos, spot)
        self.parked[vid] = self._row(vid, spot)
        # SUMO let it arrive as it entered the street (or a segment of it): the rest of the
        # way to its spot at the street's current speed (SUMO's travel time for it), at
        # least a crawl of LAST_STRETCH_MIN_MPS (a street whose cars all stand: it edges
        # along to the kerb, where SUMO's queue would hold it and, in the end, teleport it)
        start_m = pos if road == spot.edge else 0.0
        rest_m = spot.pos - start_m
        if rest_m > 0.5:
            lane = self.road_map.curb_lane(spot.edge)
            street_s = max(float(libsumo.edge.getTraveltime(spot.edge)), 1e-3)
            mps = min(max(lane.length / street_s, LAST_STRETCH_MIN_MPS), lane.speed_limit)
            moving = dict(self.parked[vid])
            moving[tc.VAR_STOPSTATE] = 0
            moving[tc.VAR_SPEED] = mps
            self._finishing[vid] = (libsumo.simulation.getTime() + rest_m / mps, moving)
            self.table.write(vid, moving)
        else:
            self.table.write(vid, self.parked[vid])

    def _rest(self, vid: str, road: str, pos: float, spot: Spot) -> float:
        """Metres from where the car was last seen (`road`, `pos` m along it) to `spot`, where
        it arrived: along its route, which may pass its street again (a loop round the block
        to a spot behind it)."""
        route, at = self._routes.get(vid, ()), self._route_at.get(vid, 0)
        if spot.edge == road and road not in route[at + 1 :]:  # on its last street
            return max(spot.pos - pos, 0.0)
        rest = self.road_map.edges[road].length - pos + spot.pos
        return max(rest + self._between(vid, road, spot.edge), 0.0)

    def _between(self, vid: str, first: str, last: str) -> float:
        """Metres of the streets between `first` and `last` on the car's route (neither
        counted): those it passed since it was last read, as it arrives (a tick may hold
        several of SUMO's steps)."""
        route, at = self._routes.get(vid, ()), self._route_at.get(vid, 0)
        try:
            i = route.index(first, at)
            j = route.index(last, i + 1)
        except ValueError:  # not on the route we gave it
            return 0.0
        edges = self.road_map.edges
        return sum(edges[e].length for e in route[i + 1 : j] if e in edges)

    def read(self) -> dict[str, Row]:
        """The rows of the cars in SUMO now, as a subscription to `MESO_CAR_VARS` would give
        them (a car waiting for room to enter is on no street). Read once per SUMO step: a
        second call at the same time (the stuck check, then the snapshot) gets the same."""
        now = libsumo.simulation.getTime()
        if self._read is not None and self._read[0] == now and self._read[1] == len(self._in_sumo):
            return self._read[2]
        out = self._read_now()
        self._read = (now, len(self._in_sumo), out)
        return out

    def _read_now(self) -> dict[str, Row]:
        veh, out, where = libsumo.vehicle, {}, self._where
        road_of, position, angle = veh.getRoadID, veh.getPosition, veh.getAngle
        speed, lane_pos = veh.getSpeed, veh.getLanePosition
        for vid in self._in_sumo:
            try:
                road, along = road_of(vid), lane_pos(vid)
                last = where.get(vid)
                if last is not None and last[0] == road and last[1] == along:
                    xy, heading = last[2], last[3]  # where it stood: the same point
                else:
                    xy, heading = position(vid), angle(vid)
                    where[vid] = (road, along, xy, heading)
                out[vid] = {
                    _POSITION: xy, _ANGLE: heading, _SPEED: speed(vid), _ROAD: road, _ALONG: along
                }  # fmt: skip
            except libsumo.TraCIException:  # no longer in SUMO (it arrives this step)
                continue
        return out

    def update(self, results: dict[str, Row]) -> FleetTable:
        """This step's rows into the table: the cars SUMO reports (`results`: `read`'s rows,
        or this step's subscription results), and the cars that left SUMO since the last
        update."""
        slot_of, table = self.table.slot.get, self.table
        now_driving = set()
        # the driving cars' rows, column by column, written at once below
        slots: list[int] = []
        xy: list[tuple[float, float]] = []
        heading: list[float] = []
        speed: list[float] = []
        lane_pos: list[float] = []
        odometer: list[float] = []
        roads, lanes, stopped = table.roads, table.lanes, table.stopped
        written, leaving, seen_driving = self._written, self.leaving, self._seen_driving
        for vid, row in results.items():
            k = slot_of(vid)
            if k is None:
                continue
            now_driving.add(vid)
            road = row[_ROAD]
            if not road:  # added and waiting for room to enter: it stands where it stood
                written.pop(vid, None)
                table.write(vid, self.parked.get(vid) or leaving.get(vid))
                continue
            along, mps = row[_ALONG], row[_SPEED]
            key = (road, along, mps)
            if written.get(vid) == key and vid not in leaving:
                continue  # the row it had: the same point, speed and odometer
            written[vid] = key
            slots.append(k)
            odometer.append(max(seen_driving(vid, row), 0.0))
            xy.append(row[_POSITION])
            heading.append(row[_ANGLE])
            speed.append(mps)
            lane_pos.append(along)
            stopped[k] = False
            roads[k] = road
            lanes[k] = row.get(_LANE, "")
        if slots:
            table.present[slots] = True
            table.xy[slots] = xy
            # SUMO's angles to ours in one go (`sumo_heading`, the same arithmetic per car)
            table.heading[slots] = np.radians(90.0 - np.array(heading, dtype=float))
            table.speed[slots] = speed
            table.lane_pos[slots] = lane_pos
            table.odometer[slots] = odometer
        for vid in self._driving - now_driving:
            written.pop(vid, None)
            table.write(vid, self.report(vid, None))
        self._driving = now_driving
        self.finish_last_stretches()
        return table

    def finish_last_stretches(self) -> None:
        """The cars whose last stretch (`arrived`) is driven by now stand at their spots."""
        if self._finishing:
            now = libsumo.simulation.getTime()
            for vid in [v for v, (until, _) in self._finishing.items() if until <= now]:
                del self._finishing[vid]
                self.table.write(vid, self.parked[vid])

    def report(self, vid: str, row: Row | None) -> Row | None:
        """A car's row as the fleet reads it: SUMO's `row` while it drives (with the whole
        odometer, not stopped), else where it stands (None: not a car of this fleet)."""
        if row is None or not row[tc.VAR_ROAD_ID]:
            # out of SUMO, or added and waiting for room to enter (SUMO reports such a car
            # on no street): it stands where it stood (or drives the last stretch to it)
            finishing = self._finishing.get(vid)
            if finishing is not None:
                return finishing[1]
            return self.parked.get(vid) or self.leaving.get(vid)
        out = dict(row)
        out[tc.VAR_DISTANCE] = self._seen_driving(vid, row)
        out[tc.VAR_STOPSTATE] = 0
        return out

    def _seen_driving(self, vid: str, row: Row) -> float:
        """SUMO reports the car driving (`row`): its odometer (m) from the streets it passed
        since it was last seen, or since it left its spot."""
        start = self.leaving.pop(vid, None)
        road, pos = str(row[_ROAD]), float(row[_ALONG])
        if start is not None:  # its first step: from where it stood
            before = (str(start[_ROAD]), float(start[_ALONG]))
        else:
            before = self._last_seen.get(vid, (road, pos))
        last_road, last_pos = before
        if road == last_road:  # most reads: still on the street it was last seen on
            driven = max(pos - last_pos, 0.0)
            pos = max(pos, last_pos)  # meso puts a car leaving a street back at its start
        else:
            driven = self._driven(vid, last_road, last_pos, road, pos)
        odometer = self._odometer.get(vid, 0.0) + driven
        self._odometer[vid] = odometer
        self._last_seen[vid] = (road, pos)
        return odometer

    def _driven(self, vid: str, last_road: str, last_pos: float, road: str, pos: float) -> float:
        """Metres from `last_road` (`last_pos` m along it) to `road` (`pos` m along it), two
        different streets."""
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
