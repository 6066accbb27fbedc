"""Remote assistance ("fleet response"): a robotaxi stuck on its way asks a person for context.

A car on its way to a pick-up or a drop-off that has stood still (under `MOVING_MPS`, not at
a stop, not pulled over for an ambulance) for `assist_after_s` opens one request: where it
stands, since when, and what it sees (a vehicle ahead that does not move, if it can tell).
An operator answers with context — `ANOTHER_WAY` (the street ahead is blocked), `WAIT` (it
will clear), `PULL_OVER` (at the next safe kerb), `PASS_OPPOSITE` (you may pass the
blocker through the oncoming lane, across its solid centre line, when that lane is clear) or
`LANE_CLOSED` (the lane you are in is closed ahead: use another lane of this street) — and
the car stays in control: it checks the answer (another way is taken only if one reaches its
target without the blocked street; leave to pass only where there is an oncoming lane, and
the car still waits for a gap in its traffic; another lane only where its street has one in
its direction that leads on along its way, and it still waits for a gap there; else it
refuses and says why) and acts on it. Never remote driving: an answer is context, the car
decides. The request closes when the car moves again; its time to resolution is from opening
to closing (`resolution_s`). Every step is a `VehicleEvent`. The desk is bookkeeping over
what the fleet reports each tick: "another way" goes to the world as an `AvoidStreet`
command, "pass opposite" as a `PassOpposite`, "lane closed" as a `LaneClosed` for the
street the car stands on (the world's refusal comes back as a command failure); the fleet
itself carries out a pull-over.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from robotaxi.core import (
    AgentKind,
    AgentState,
    RobotaxiError,
    TimePoint,
    VehicleEvent,
    VehicleEventKind,
)
from robotaxi.core.commands import AvoidStreet, LaneClosed, PassOpposite, VehicleCommand
from robotaxi.map import RoadMap

MOVING_MPS = 1.0  # slower than this, a car on its way counts as standing
CLOSED_KEEP_S = 900.0  # closed requests stay listed this long (sim s)
AHEAD_M = 30.0  # a vehicle this close ahead, standing, is what holds the car
STANDING_MPS = 0.5
LANE_HALF_M = 2.5  # straight ahead: this far to either side of the car's axis

# what the operator sees in answers and refusals, by the car's leg
LEG_TEXT = {"pickup": "the pick-up", "dropoff": "the drop-off", "route": "the end of its route"}


class AssistAnswer(enum.StrEnum):
    """The context an operator gives a car that asked for help."""

    ANOTHER_WAY = "another_way"  # "this street is blocked: take another way"
    WAIT = "wait"  # "wait: it will clear"
    PULL_OVER = "pull_over"  # "pull over at the next safe kerb"
    # "you may pass the blocker using the opposite lane when clear" (across a solid line)
    PASS_OPPOSITE = "pass_opposite"
    # "the lane you are in is closed ahead (works, a blocker): use another lane of this street"
    LANE_CLOSED = "lane_closed"


# answers the car checks with the world (or its own stack) a tick after they are given
SENT_ANSWERS = (AssistAnswer.ANOTHER_WAY, AssistAnswer.PASS_OPPOSITE, AssistAnswer.LANE_CLOSED)
AnswerCommand = AvoidStreet | PassOpposite | LaneClosed


class AssistanceError(RobotaxiError):
    """An answer to a request that cannot take it (unknown, or closed already)."""


class NoSuchAssistRequestError(AssistanceError):
    """No open or recent request has this id."""


@dataclass(frozen=True, slots=True)
class StandingCar:
    """What the fleet reports of a car that may need help, each tick: `leg` is "pickup" or
    "dropoff" when it is on its way with a trip ("route" for a scenario's car), else "";
    `held`: on its way and not at a stop, not pulled over (standing there would have no
    reason the car knows); `note`: why it stands, when the car itself can say (e.g. behind a
    blocker it may pass only across a solid centre line), else ""."""

    vehicle_id: str
    trip_id: str | None
    leg: str
    held: bool
    edge: str
    xy: tuple[float, float]
    heading: float
    speed: float
    note: str = ""


@dataclass
class AssistAnswerRecord:
    """One answer and what the car made of it: `outcome` "" (sent, not checked yet),
    "accepted" or "refused" (with `reason`)."""

    answer: AssistAnswer
    at_s: float
    outcome: str = ""
    reason: str = ""


@dataclass
class AssistRequest:
    """One car's call for help, from opening to closing (times in sim s)."""

    request_id: str
    vehicle_id: str
    trip_id: str | None
    leg: str
    edge: str  # where the car stands
    blocked_edge: str  # the street it is held on or in front of (a blocker's, when seen)
    street: str
    xy: tuple[float, float]
    standing_since_s: float
    opened_s: float
    sees: str
    answers: list[AssistAnswerRecord] = field(default_factory=list)
    closed_s: float | None = None
    closed_how: str = ""

    @property
    def open(self) -> bool:
        return self.closed_s is None

    @property
    def resolution_s(self) -> float | None:
        """Time to resolution: from opening to closing (s; None while open)."""
        return None if self.closed_s is None else round(self.closed_s - self.opened_s, 1)

    @property
    def refusal(self) -> str:
        """The car's reason for refusing the last answer ("" when it did not)."""
        last = self.answers[-1] if self.answers else None
        return last.reason if last is not None and last.outcome == "refused" else ""

    def to_json(self, now_s: float) -> dict[str, object]:
        return {
            "id": self.request_id,
            "vehicle_id": self.vehicle_id,
            "trip_id": self.trip_id,
            "leg": self.leg,
            "edge": self.edge,
            "blocked_edge": self.blocked_edge,
            "street": self.street,
            "x": self.xy[0],
            "y": self.xy[1],
            "standing_since_s": self.standing_since_s,
            "opened_s": self.opened_s,
            "standing_s": round((self.closed_s or now_s) - self.standing_since_s, 1),
            "sees": self.sees,
            "open": self.open,
            "answers": [
                {"answer": str(a.answer), "at_s": a.at_s, "outcome": a.outcome, "reason": a.reason}
                for a in self.answers
            ],
            "refusal": self.refusal,
            "closed_s": self.closed_s,
            "closed_how": self.closed_how,
            "resolution_s": self.resolution_s,
        }


Look = Callable[[str], Sequence[AgentState]]
# why a car stands, as the car itself can tell ("" when it cannot)
Says = Callable[[str], str]


def _closed_how(request: AssistRequest, car: StandingCar) -> str:
    """Why a request closes: the car moves again (by itself: "cleared"), or it stopped
    needing help another way (parked at its stop, pulled over, lost its ride)."""
    if car.speed >= MOVING_MPS:
        return "moving again" if request.answers else "cleared"
    return "pulled over" if car.leg else "no longer on its way"


class AssistanceDesk:
    """The requests of a fleet: opened, answered, checked and closed from what the fleet
    reports each tick (`observe`). `look(vehicle_id)` returns the road users around a car
    (its sensors); without it a request says only that the car stands. `says(vehicle_id)`
    is why the car stands as its own stack tells it (for cars our stack drives), used where
    the fleet's report carries no `note`."""

    def __init__(
        self, road_map: RoadMap, after_s: float, look: Look | None = None, says: Says | None = None
    ) -> None:
        self.map = road_map
        self.after_s = after_s
        self.look = look
        self.says = says
        self.requests: dict[str, AssistRequest] = {}  # open and recently closed, by id
        self._open_of: dict[str, str] = {}  # car → its open request
        self._standing_since: dict[str, float] = {}
        # answers for the world ("another way", "pass opposite"): to send at the next tick,
        # and sent at the last one
        self._to_send: list[tuple[str, AssistAnswerRecord]] = []
        self._in_flight: list[tuple[str, AssistAnswerRecord]] = []
        self._outbox: list[VehicleEvent] = []
        self._count = 0

    def connect(self, look: Look | None, says: Says | None) -> None:
        """Give the desk the cars' senses once they exist: the fleet (and its desk) is built
        before the world's sensors and the stack that drives the cars."""
        self.look, self.says = look, says

    # --- reading --------------------------------------------------------------------------

    def open_for_trip(self, trip_id: str) -> bool:
        return any(
            self.requests[r].trip_id == trip_id
            for r in self._open_of.values()
            if r in self.requests
        )

    def open_for(self, vehicle_id: str) -> AssistRequest | None:
        request_id = self._open_of.get(vehicle_id)
        return None if request_id is None else self.requests[request_id]

    def watching(self, vehicle_id: str) -> bool:
        """Whether the desk follows this car (standing, or with an open request)."""
        return vehicle_id in self._standing_since or vehicle_id in self._open_of

    def watched(self) -> set[str]:
        """The cars the desk follows now (`watching`), at once: for a fleet that asks about
        a thousand cars a tick."""
        return self._standing_since.keys() | self._open_of.keys()

    # --- the tick ---------------------------------------------------------------------------

    def observe(
        self,
        cars: Iterable[StandingCar],
        now: float,
        events: list[VehicleEvent],
        commands: list[VehicleCommand],
    ) -> None:
        """Settle the answers the world carried out last tick (not refused: accepted), send
        the new ones, open requests for cars held long enough, close those of cars that move
        again (or are no longer on their way)."""
        events.extend(self._outbox)
        self._outbox.clear()
        for request_id, record in self._in_flight:
            if record.outcome == "" and request_id in self.requests:
                events.append(self.accept(self.requests[request_id], record, now))
        self._in_flight = self._to_send
        self._to_send = []
        for request_id, record in self._in_flight:
            commands.append(self._command(self.requests[request_id], record.answer))
        seen: set[str] = set()
        for car in cars:
            seen.add(car.vehicle_id)
            request = self.open_for(car.vehicle_id)
            if car.held and car.speed < MOVING_MPS:
                since = self._standing_since.setdefault(car.vehicle_id, now)
                if request is None and now - since >= self.after_s:
                    events.append(self._open(car, since, now))
                continue
            self._standing_since.pop(car.vehicle_id, None)
            if request is not None:
                events.append(self._close(request, now, _closed_how(request, car)))
        for vid in [v for v in self._standing_since if v not in seen]:
            del self._standing_since[vid]
        for vid in [v for v in self._open_of if v not in seen]:  # not reported: it moves
            request = self.requests[self._open_of[vid]]
            events.append(
                self._close(request, now, "moving again" if request.answers else "cleared")
            )
        for request_id in [
            r.request_id
            for r in self.requests.values()
            if r.closed_s is not None and now - r.closed_s > CLOSED_KEEP_S
        ]:
            del self.requests[request_id]

    def _open(self, car: StandingCar, since: float, now: float) -> VehicleEvent:
        self._count += 1
        blocker = self._blocker(car)
        minutes = max(1, round((now - since) / 60))
        stood = f"stopped {minutes} min"
        if blocker is not None:
            sees = f"{stood} behind a vehicle that does not move"
            lane = self.map.lanes.get(blocker.lane_id)
            blocked = lane.edge_id if lane is not None and not lane.internal else car.edge
        else:
            sees, blocked = f"{stood}, not at a stop", car.edge
        note = car.note or (self.says(car.vehicle_id) if self.says is not None else "")
        if note:
            sees = f"{stood} {note}"
        edge = self.map.edges.get(blocked)
        request = AssistRequest(
            request_id=f"assist-{self._count}",
            vehicle_id=car.vehicle_id,
            trip_id=car.trip_id,
            leg=car.leg,
            edge=car.edge,
            blocked_edge=blocked,
            street=edge.name if edge is not None and edge.name else blocked,
            xy=car.xy,
            standing_since_s=since,
            opened_s=now,
            sees=sees,
        )
        self.requests[request.request_id] = request
        self._open_of[car.vehicle_id] = request.request_id
        return self._event(request, now, VehicleEventKind.ASSIST_REQUESTED, sees=sees,
                           edge=car.edge, blocked_edge=blocked, street=request.street)  # fmt: skip

    def _blocker(self, car: StandingCar) -> AgentState | None:
        """The nearest standing vehicle on a lane ahead of the car — straight on, or across
        the junction it waits at, on a street that leads away from it — if any."""
        if self.look is None:
            return None
        ch, sh = math.cos(car.heading), math.sin(car.heading)
        best: tuple[float, AgentState] | None = None
        for other in self.look(car.vehicle_id):
            if other.kind == AgentKind.PEDESTRIAN or not other.lane_id:
                continue  # a person, or a car parked off its lane: neither holds a lane
            if other.speed >= STANDING_MPS:
                continue
            dx, dy = other.x - car.xy[0], other.y - car.xy[1]
            lon, lat = dx * ch + dy * sh, -dx * sh + dy * ch
            dist = math.hypot(dx, dy)
            # pointing away from the car (a street it would drive on), not toward the
            # junction (cross traffic or oncoming cars waiting at their stop lines)
            away = dx * math.cos(other.heading) + dy * math.sin(other.heading)
            if (
                lon > -0.5 * other.length
                and dist <= AHEAD_M
                and abs(lat) <= LANE_HALF_M + 2.0 * max(lon, 0.0)
                and away > 0.3 * dist
                and (best is None or dist < best[0])
            ):
                best = (dist, other)
        return None if best is None else best[1]

    def _close(self, request: AssistRequest, now: float, how: str) -> VehicleEvent:
        request.closed_s, request.closed_how = now, how
        self._open_of.pop(request.vehicle_id, None)
        self._standing_since.pop(request.vehicle_id, None)
        return self._event(request, now, VehicleEventKind.ASSIST_CLOSED, how=how,
                           resolution_s=request.resolution_s)  # fmt: skip

    @staticmethod
    def _command(request: AssistRequest, answer: AssistAnswer) -> AnswerCommand:
        if answer == AssistAnswer.PASS_OPPOSITE:
            return PassOpposite(request.vehicle_id, request.blocked_edge)
        if answer == AssistAnswer.LANE_CLOSED:
            # the lane it is in: on the street where it stands
            return LaneClosed(request.vehicle_id, request.edge)
        return AvoidStreet(request.vehicle_id, request.blocked_edge)

    # --- answers ----------------------------------------------------------------------------

    def answer(
        self, request_id: str, answer: AssistAnswer, now: float
    ) -> tuple[AssistRequest, AssistAnswerRecord, list[VehicleEvent]]:
        """Record an operator's answer (the fleet acts on it); raises `AssistanceError` if
        the request is unknown or closed."""
        request = self.requests.get(request_id)
        if request is None:
            raise NoSuchAssistRequestError(
                f"no assistance request {request_id}: list the open ones at /api/assistance"
            )
        if not request.open:
            raise AssistanceError(
                f"request {request_id} was closed at {request.closed_s:.0f} s "
                f"({request.closed_how}): the car needs no answer now"
            )
        record = AssistAnswerRecord(answer, now)
        request.answers.append(record)
        event = self._event(request, now, VehicleEventKind.ASSIST_ANSWERED, answer=answer)
        return request, record, [event]

    def refuse(
        self, request: AssistRequest, record: AssistAnswerRecord, reason: str, now: float
    ) -> VehicleEvent:
        """The car checked the answer and will not act on it: the request stays open."""
        record.outcome, record.reason = "refused", reason
        return self._event(request, now, VehicleEventKind.ASSIST_REFUSED,
                           answer=record.answer, reason=reason)  # fmt: skip

    def accept(
        self, request: AssistRequest, record: AssistAnswerRecord, now: float
    ) -> VehicleEvent:
        record.outcome = "accepted"
        return self._event(request, now, VehicleEventKind.ASSIST_ACCEPTED, answer=record.answer)

    def send(self, request: AssistRequest, record: AssistAnswerRecord) -> None:
        """Hand an answer in `SENT_ANSWERS` to the world at the next tick: "another way" asks
        for a way around the blocked street, "pass opposite" gives the car leave to pass the
        blocker there through the oncoming lane, "lane closed" asks it to leave its lane for
        another of the street it stands on. A refusal comes back through
        `world_refused`, else the answer counts as accepted a tick later."""
        if record.answer not in SENT_ANSWERS:
            raise AssistanceError(f"the answer {record.answer} is not one for the world")
        self._to_send.append((request.request_id, record))

    def send_another_way(self, request: AssistRequest, record: AssistAnswerRecord) -> None:
        """`send` for "another way" (kept for callers of the first version)."""
        self.send(request, record)

    def world_refused(self, command: AnswerCommand, reason: str, now: float) -> None:
        """The world (or the car's stack) cannot act on the answer: the car refuses it, and
        says why."""
        for request_id, record in self._in_flight:
            request = self.requests[request_id]
            if (
                request.vehicle_id == command.vehicle_id
                and record.outcome == ""
                and self._command(request, record.answer) == command
            ):
                leg = LEG_TEXT.get(request.leg, "its target")
                if isinstance(command, PassOpposite):
                    why = f"no pass through the oncoming lane: {reason}"
                elif isinstance(command, LaneClosed):
                    why = f"no other lane to take: {reason}"
                else:
                    why = f"no other way to {leg}: {reason}"
                self._outbox.append(self.refuse(request, record, why, now))
                return

    def _event(
        self, request: AssistRequest, now: float, kind: VehicleEventKind, **data: object
    ) -> VehicleEvent:
        body: dict[str, object] = {"request": request.request_id, **data}
        if request.trip_id is not None:
            body["trip"] = request.trip_id
        return VehicleEvent(request.vehicle_id, TimePoint.from_s(now), kind, body)
