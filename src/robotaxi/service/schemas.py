"""Request and response bodies: `...Create` for what a client sends, `...Public` for answers.

Positions on the wire are WGS84 degrees; times are simulation seconds since the live
simulation started (`sim_now_s` says what "now" is); distances in m, durations in s.
"""

from __future__ import annotations

import enum
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)

# control, format (bidi overrides, zero-width joiners), surrogate, private-use and unassigned
# characters: none belongs in a name a screen shows and a car says
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


def _composed(name: str) -> str:
    return unicodedata.normalize("NFC", name) if isinstance(name, str) else name


def _visible(name: str) -> str:
    hidden = sorted(
        {f"U+{ord(ch):04X}" for ch in name if unicodedata.category(ch) in _HIDDEN_CATEGORIES}
    )
    if hidden:
        raise ValueError(
            f"a name may not contain control or text-direction characters ({', '.join(hidden)}): "
            "use letters, digits, spaces and punctuation"
        )
    name = " ".join(name.split())  # trimmed, one space between words
    if not name:
        raise ValueError("a name needs at least one letter or digit")
    return name


# a rider's name, the same for the screen, the speech and the store: NFC-composed, trimmed,
# runs of spaces made one, and refused (422) with hidden characters in it
Name = Annotated[
    str,
    BeforeValidator(_composed),
    StringConstraints(strip_whitespace=True, min_length=1, max_length=80),
    AfterValidator(_visible),
    # JSON Schema cannot say "no character of these Unicode categories": a named format does
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": 80,
            "format": "rider-name",
            "description": "1-80 characters once trimmed, at least one visible; control, "
            "format (bidi, zero-width), private-use and unassigned characters are refused",
        }
    ),
]
# at least one character that is not white space (the text is trimmed)
Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000, pattern=r"\S")
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LatLon(_In):
    """A WGS84 position in degrees."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # strict: a JSON number only (true is not 1.0, "37.7" is not a number)
    lat: float = Field(ge=-90, le=90, strict=True, description="latitude, degrees north")
    lon: float = Field(ge=-180, le=180, strict=True, description="longitude, degrees east")


# --- riders -------------------------------------------------------------------------------


class RiderCreate(_In):
    name: Name = Field(description="the name the car greets you with")


class RiderPublic(BaseModel):
    id: str
    name: str


class RiderSignedIn(RiderPublic):
    token: str = Field(description="bearer token: shown once, send as 'Authorization: Bearer …'")


# --- rides --------------------------------------------------------------------------------


class RideCreate(_In):
    pickup: LatLon
    dropoff: LatLon


class FarePublic(BaseModel):
    """What an ended ride cost: integer cents of `currency`, and what was refunded since."""

    cents: int = Field(description="charged, in cents (minor units) of `currency`")
    refunded_cents: int = Field(description="refunded by an operator so far, in cents")
    currency: str = Field(description="ISO 4217 code, e.g. USD")
    rule: str = Field(
        description="'metered' (distance and time), 'cancel_fee' (cancelled after the car "
        "waited), 'cancel_free', 'interrupted_distance' (the service stopped: distance only)"
    )
    text: str = Field(description="the amount as riders read it, e.g. '$12.40'")
    note: str = Field(description="why this amount, said for the rider")


class QuotePublic(BaseModel):
    pickup_eta_s: float | None = Field(description="time for the nearest free car to arrive")
    fare_low_cents: int = Field(description="the fare at the planned ride time, in cents")
    fare_high_cents: int = Field(description="the fare if the ride takes longer than planned")
    currency: str = Field(description="ISO 4217 code of the fare, e.g. USD")
    fare_text: str = Field(description="the range as riders read it, e.g. '$12.40 – $14.10'")
    free_cars: int
    trip_s: float = Field(description="driving time from pick-up to drop-off")
    trip_m: float
    pickup_curb: LatLon = Field(description="where the car will stop for you")
    dropoff_curb: LatLon
    pickup_name: str | None = Field(
        None, description="the pick-up curb's street corner, e.g. 'Valencia St & 16th St'"
    )
    dropoff_name: str | None = Field(None, description="the drop-off curb's street corner")
    pickup_walk_m: float
    dropoff_walk_m: float
    route: list[list[float]] = Field(description="[[lat, lon], ...] of the planned ride")


class BuckleCreate(_In):
    buckled: bool


class RideEventPublic(BaseModel):
    seq: int
    state: str
    time_s: float
    cause: str
    vehicle_id: str | None = None


class VehiclePosition(BaseModel):
    lat: float
    lon: float
    heading_deg: float = Field(description="compass heading, degrees clockwise from north")


class RidePublic(BaseModel):
    id: str
    state: str
    sim_now_s: float
    vehicle_id: str | None
    pickup: LatLon | None
    dropoff: LatLon | None
    pickup_curb: LatLon | None = None
    dropoff_curb: LatLon | None = None
    pickup_name: str | None = Field(
        None, description="where the pick-up is, e.g. 'Valencia St & 16th St' (no house numbers)"
    )
    dropoff_name: str | None = Field(None, description="where the drop-off is, named the same way")
    requested_s: float
    updated_s: float
    live: bool = Field(description="false for rides of an earlier server run (history only)")
    eta_s: float | None = None
    vehicle: VehiclePosition | None = None
    car_route: list[list[float]] | None = Field(
        None, description="[[lat, lon], ...] the car drives to your pick-up, while it comes"
    )
    greeting: str | None = None
    on_board: bool = False
    buckled: bool = False
    unlocked: bool = Field(
        False, description="the doors are unlocked for you (the car stays locked until you do)"
    )
    signalled_s: float | None = Field(
        None, description="when the car last honked and flashed its lights for you (sim s)"
    )
    updates_delayed: bool = Field(
        False, description="the service is busy: the car's position updates more slowly now"
    )
    can_start: bool = False
    start_blocked_reason: str | None = None
    yielding_for_emergency: bool = False
    support_note: str | None = Field(
        None, description="what the car is doing with the support team now, for the rider"
    )
    close_reason: str | None = None
    fare: FarePublic | None = Field(None, description="what the ride cost, once it has ended")
    events: list[RideEventPublic] = []


class PickupSpotPublic(BaseModel):
    """A kerb spot where a car may stop for you (not at a junction, crossing or freeway)."""

    lat: float
    lon: float
    name: str | None = Field(None, description="e.g. 'Valencia St near 16th St'")
    walk_m: float = Field(description="walk from where you are along the streets, metres")
    walk_s: float = Field(description="walking time at 1.3 m/s, seconds")
    walk_path: list[tuple[float, float]] = Field(
        default_factory=list,
        description="the way to walk, [lat, lon] points from where you are to the spot",
    )
    car_eta_s: float | None = Field(
        None,
        description="when the nearest free car could be at this spot, seconds from now: "
        "the same estimate as a quote's `pickup_eta_s`; null when no car is free",
    )


class SharePublic(BaseModel):
    """A read-only link to your ride for someone else: shown once, until you stop sharing."""

    url: str = Field(description="the page that follows your ride, e.g. /share/<token>")
    token: str = Field(description="the link's secret part; anyone who has it can follow")


class SharesRevokedPublic(BaseModel):
    revoked: int = Field(description="how many links stopped working")


class SharedRidePublic(BaseModel):
    """What someone you shared your ride with sees: where the car is and when you arrive —
    no account, no ride history, nothing once the ride is over."""

    rider_first_name: str
    state: str
    status_text: str = Field(description="the ride's state in words")
    over: bool = Field(description="the ride has ended: no position or ETA any more")
    vehicle_id: str | None = None
    vehicle: VehiclePosition | None = None
    eta_s: float | None = Field(
        None, description="to the pick-up before it, to the drop-off while riding"
    )
    pickup_name: str | None = None
    dropoff_name: str | None = None
    pickup_curb: LatLon | None = None
    dropoff_curb: LatLon | None = None


class ReceiptPublic(BaseModel):
    ride_id: str
    state: str
    ended: bool
    pickup_name: str | None = Field(None, description="where the ride was to start")
    dropoff_name: str | None = Field(None, description="where the ride was to end")
    requested_s: float
    picked_up_s: float | None
    dropped_off_s: float | None
    wait_s: float | None
    ride_s: float | None
    ride_m: float | None
    pickup_walk_m: float | None
    dropoff_walk_m: float | None
    vehicle_id: str | None
    ended_by: str | None = Field(description="cause of the last event, e.g. rider, no_show")
    close_reason: str | None
    route: list[list[float]] = Field(description="[[lat, lon], ...] pick-up curb to drop-off")
    route_kind: str | None = Field(
        description="'driven' (sampled positions) or 'planned' (rides of an earlier run)"
    )
    fare: FarePublic | None = Field(description="what the ride cost; null until it has ended")


# --- vehicles -----------------------------------------------------------------------------


class VehiclePublic(BaseModel):
    vehicle_id: str
    lat: float
    lon: float
    heading_deg: float
    available: bool


class CarGroup(enum.StrEnum):
    """What a car is doing, in the words the operations view filters by. A car may be in
    two at once: with a rider and pulled over for an ambulance, say."""

    IDLE = "idle"  # no ride: parked at a kerb, or moving to a better spot
    TO_PICKUP = "to_pickup"  # driving to a rider, or waiting for them at the kerb
    WITH_RIDER = "with_rider"  # a rider aboard: from the seat belt to getting out
    CHARGING = "charging"  # driving to a charger, in line for one, or plugged in
    PULLED_OVER = "pulled_over"  # pulling over for an ambulance, or for its rider
    NEEDS_ASSISTANCE = "needs_assistance"  # an open request to remote assistance


class VehicleOperator(VehiclePublic):
    status: str = Field(description="the fleet's own status of the car (e.g. 'to_dropoff')")
    groups: list[CarGroup] = Field(
        description="what the car is doing, as the `status` filter of /api/vehicles/state "
        "groups cars: idle, to_pickup, with_rider, charging, pulled_over, needs_assistance"
    )
    speed_mps: float
    stopped: bool
    trip_id: str | None
    next_trip_id: str | None
    stage: str
    yielding_for: str | None


class NearbyPublic(BaseModel):
    id: str
    kind: str
    lat: float
    lon: float
    distance_m: float
    speed_mps: float
    heading_deg: float | None = Field(
        None, description="compass degrees from north; None when unknown (standing still)"
    )


class SteeringPublic(BaseModel):
    angle_deg: float | None
    note: str


class HearingPublic(BaseModel):
    siren_heard: bool = Field(description="a siren detected during the last second")
    siren_probability: float = Field(description="the detector's highest probability then")
    siren_heard_since_s: float | None = Field(
        description="sim time the siren of the current emergency was first heard"
    )
    ev_seen_since_s: float | None = Field(
        description="sim time the cameras first saw its flashing lights"
    )
    heard_before_seen_s: float | None = Field(
        description="how long the siren was heard before the lights were seen (s), or null"
    )
    note: str


class CarScreenPublic(BaseModel):
    vehicle_id: str
    sim_now_s: float
    status: str
    position: VehiclePosition
    place_name: str | None = Field(
        None, description="where the car is, e.g. 'Mission St near 24th St'"
    )
    speed_mps: float
    ride: RidePublic | None
    route: list[list[float]]
    nearby: list[NearbyPublic]
    nearby_source: str = Field(
        description="where `nearby` comes from: 'sumo' (the traffic simulation's ground truth; "
        "the car is driven by SUMO at fleet fidelity) or 'autonomy' (the car's own tracks)"
    )
    nearby_note: str = Field(
        description="the source, said for the car's rider (operators also read why an "
        "autonomous car is driven by SUMO on this leg)"
    )
    steering: SteeringPublic
    emergency_banner: str | None
    behaviour: str | None = Field(
        None, description="the autonomy stack's behaviour now (e.g. lane_follow, curbside_stop)"
    )
    emergency_state: str | None = Field(
        None,
        description="'siren_heard' (an autonomous car hears a siren it has not seen: slowing), "
        "'pulling_over' (pulling over for an emergency vehicle), or null",
    )
    hearing: HearingPublic | None = Field(
        None, description="the roof microphones' siren detector (autonomous cars that have them)"
    )


# --- places -------------------------------------------------------------------------------


class PlacePublic(BaseModel):
    """A search result: a street, an intersection or a named place of the city."""

    name: str = Field(description="e.g. 'Valencia St & 16th St', 'Mission Dolores Park'")
    kind: str = Field(
        description="'street', 'intersection', 'station', 'hospital', 'park' or 'landmark'"
    )
    lat: float
    lon: float


class PlaceNamePublic(BaseModel):
    """What a point is called (no house numbers: the map has none)."""

    name: str | None = Field(
        description="'Valencia St & 16th St', 'Mission St near 24th St', 'near Dolores Park'; "
        "null when no named street or place is near"
    )
    street: str | None = Field(description="the nearest named street")
    cross_street: str | None = Field(description="the nearest street crossing it, if near")
    place: str | None = Field(description="a named place within 400 m, if any")
    distance_m: float | None = Field(description="from the point to the street (or place)")


# --- support and operations ---------------------------------------------------------------


TicketTopicName = Literal["lost_item", "comfort", "safety", "other"]


class TicketCreate(_In):
    text: Text
    ride_id: str | None = Field(
        None, max_length=64, description="the ride it is about; its car is attached too"
    )
    topic: TicketTopicName | None = Field(
        None, description="what it is about, as the in-car Help buttons offer it"
    )


class TicketMessageCreate(_In):
    text: Text


class TicketMessagePublic(BaseModel):
    author: Literal["rider", "operator"]
    text: str | None = Field(description="None when the entry only changed the status")
    status: Literal["open", "answered", "closed"] = Field(
        description="the ticket's status after this entry"
    )
    created_at: str


class TicketPublic(BaseModel):
    id: int
    text: str
    status: Literal["open", "answered", "closed"] = Field(
        description="open: waiting for support; answered: support replied; closed"
    )
    created_at: str
    updated_at: str | None
    ride_id: str | None
    rider_id: str | None
    rider_name: str | None
    vehicle_id: str | None = Field(description="the ride's car when the ticket was opened")
    topic: TicketTopicName | None
    messages: list[TicketMessagePublic] = Field(
        description="replies, follow-ups and closings after the opening text, oldest first"
    )


def _whole_number(value: Any) -> Any:
    """A JSON number (354 or 354.0, as JSON Schema's integer allows), never true or "354"."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a whole number of cents (a JSON number)")
    return value


class RefundCreate(_In):
    cents: Annotated[int, BeforeValidator(_whole_number)] = Field(
        ge=1, le=100_000_000, description="how much to refund, in cents"
    )
    reason: Text = Field(description="why, for the record")


class RefundPublic(BaseModel):
    ride_id: str
    fare: FarePublic


class TripOperator(BaseModel):
    id: str
    state: str
    vehicle_id: str | None
    rider: str = Field(description="'app' for a rider of this service, 'simulated' otherwise")
    requested_s: float
    eta_s: float | None


class YieldPublic(BaseModel):
    vehicle_id: str
    ev_id: str
    trip_id: str | None
    approach: str
    in_range_s: float
    stopped_s: float | None
    resumed_s: float | None
    active: bool
    decided_by: str = Field(
        description="'fleet': its range check on the car's road; 'car': the car's own stack"
    )
    basis: str | None = Field(
        description="a car's own decision: 'heard', 'seen' or 'heard_and_seen'; else null"
    )


AssistAnswerName = Literal["another_way", "wait", "pull_over", "pass_opposite", "lane_closed"]


class AssistAnswerPublic(BaseModel):
    answer: AssistAnswerName
    at_s: float
    outcome: str = Field(description="'' (not checked yet), 'accepted' or 'refused'")
    reason: str = Field(description="why the car refused the answer ('' if it did not)")


class AssistancePublic(BaseModel):
    """A car's request for remote assistance: where it stands, since when, what it sees."""

    id: str
    vehicle_id: str
    trip_id: str | None
    leg: str = Field(description="'pickup' or 'dropoff': where the car was going")
    street: str = Field(description="the street it is held on or in front of")
    edge: str = Field(description="the SUMO edge the car stands on")
    blocked_edge: str = Field(description="the edge 'take another way' avoids")
    where: LatLon
    standing_since_s: float
    opened_s: float
    standing_s: float = Field(description="how long the car has stood (until it closed), s")
    sees: str
    open: bool
    answers: list[AssistAnswerPublic]
    refusal: str = Field(description="why the car refused the last answer ('' if it did not)")
    closed_s: float | None
    closed_how: str
    resolution_s: float | None = Field(
        description="time to resolution: from the request opening to its closing, s "
        "(null while open)"
    )


class AssistanceAnswerCreate(_In):
    """An operator's answer: 'another_way' (this street is blocked: take another way),
    'wait' (it will clear), 'pull_over' (at the next safe kerb) or 'pass_opposite' (you may
    pass the blocker using the opposite lane, across a solid centre line, when it is clear:
    the car still checks the oncoming traffic itself)."""

    model_config = ConfigDict(extra="forbid")

    answer: AssistAnswerName


class VehicleEventPublic(BaseModel):
    """One entry of the durable vehicle event log (e.g. pulling over for an ambulance)."""

    run_id: str | None = Field(description="the server run that wrote it")
    this_run: bool = Field(description="false for events of an earlier server run")
    time_s: float = Field(description="simulation time of that run")
    vehicle_id: str
    kind: str = Field(description="'ev_in_range', 'ev_pulled_over', 'ev_resumed', …")
    data: dict[str, Any] = Field(description="details: 'ev' (the emergency vehicle), 'trip', …")


class KpisPublic(BaseModel):
    model_config = ConfigDict(extra="allow")

    sim_time_s: float
    requests: int
    completed: int
    cancelled: int
    open: int
    fleet: int
    speed: float
    real_time_factor: float | None


class KpiSamplePublic(BaseModel):
    """The service at one simulated minute (the operations view's charts)."""

    time_s: float = Field(description="simulated seconds since the service started")
    requests: int = Field(description="rides requested so far")
    completed: int = Field(description="rides completed so far")
    cancelled: int = Field(description="rides cancelled so far")
    waiting: int = Field(description="riders waiting for their car now")
    wait_p50_s: float | None = Field(
        description="median pick-up wait of the riders their car reached in the last minute, "
        "seconds; null when none was reached"
    )
    cars: dict[str, int] = Field(
        description="cars by what they are doing: idle, to_pickup, with_rider, charging"
    )


class HealthPublic(BaseModel):
    status: str = Field(description="ok, behind (the clock cannot keep its speed) or ended")
    note: str | None = Field(None, description="when behind: why, and what to do")
    city: str
    sim_time_s: float
    speed: float
    real_time_factor: float | None
    behind_s: float
    ended: bool


# --- errors -------------------------------------------------------------------------------


class ErrorPublic(BaseModel):
    """Every error answer but 422 (FastAPI's validation shape): what is wrong, what to do."""

    detail: str = Field(description="what went wrong and what to do about it")


class ValidationErrorPublic(BaseModel):
    """One thing wrong with the input: where (`loc`), what (`msg`), its kind (`type`)."""

    loc: list[str | int] = Field(description="e.g. ['body', 'pickup', 'lat'], ['query', 'x']")
    msg: str
    type: str
    input: Any = None
    ctx: dict[str, Any] | None = None


class ValidationErrorsPublic(BaseModel):
    """422: FastAPI's validation shape, for its checks and the service's own alike."""

    detail: list[ValidationErrorPublic]


ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "the body could not be read as JSON text (not UTF-8, or cut short)",
    401: "no bearer token, a malformed one, or one the service does not know",
    403: "an operator's token is required",
    404: "no such thing, or it is not yours",
    409: "the current state does not allow this (the detail says why)",
    413: "the request body is over the size limit",
    422: "invalid input, an unknown query parameter among it (the detail lists each)",
    429: "too many requests: wait the Retry-After seconds",
    503: "the simulation, the database or a helper program cannot serve now",
}
# headers every answer of that status carries
ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "'Bearer'", "schema": {"type": "string"}}},
    429: {
        "Retry-After": {
            "description": "seconds to wait before trying again",
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        }
    },
}


def error_responses(*codes: int, **why: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses: `ErrorPublic` bodies (422: FastAPI's).

    `why` overrides a status's description for one endpoint, keyed `e404="no such ride"`.
    """
    responses: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        entry: dict[str, Any] = {
            "model": ValidationErrorsPublic if code == 422 else ErrorPublic,
            "description": why.get(f"e{code}", ERROR_DESCRIPTIONS[code]),
        }
        if code in ERROR_HEADERS:
            entry["headers"] = ERROR_HEADERS[code]
        responses[code] = entry
    return responses
