"""The vocabulary of a robotaxi yielding to an emergency vehicle, as stored and served.

Each value is the string the event log, `yields.json`, the HTTP API and the web pages have
always carried; a `StrEnum` member compares equal to it and serialises (`json.dumps`,
f-strings) as it, so changing a value here changes stored data.
"""

from __future__ import annotations

import enum


class EvApproach(enum.StrEnum):
    """Where the emergency vehicle comes from, seen from the car when the yield begins.

    The fleet's range check yields only for `BEHIND` and `HEAD_ON`; a car's own decision
    may also name `AHEAD` or `CROSS_STREET`, or `UNKNOWN` when no ambulance with its siren
    on is in the world to name."""

    BEHIND = "behind"
    HEAD_ON = "head-on"
    AHEAD = "ahead"
    CROSS_STREET = "cross-street"
    UNKNOWN = "unknown"


class YieldDecider(enum.StrEnum):
    """Who decided to pull over: the fleet's range check, or the car's own stack."""

    FLEET = "fleet"
    CAR = "car"


class YieldBasis(enum.StrEnum):
    """What a car's own stack reacted to: the siren (roof microphones), the flashing
    lights (cameras), or both."""

    HEARD = "heard"
    SEEN = "seen"
    HEARD_AND_SEEN = "heard_and_seen"


class VehicleEventKind(enum.StrEnum):
    """What a `VehicleEvent` records: an emergency vehicle coming in range, the car
    standing at the kerb for it, the car merging back."""

    EV_IN_RANGE = "ev_in_range"
    EV_PULLED_OVER = "ev_pulled_over"
    EV_RESUMED = "ev_resumed"
    SEATBELT_UNFASTENED = "seatbelt_unfastened"  # the rider undid the belt mid-ride
    SEATBELT_FASTENED = "seatbelt_fastened"  # … and fastened it again
    DOORS_UNLOCKED = "doors_unlocked"  # the rider unlocked the car from the app at the pick-up
    HORN_AND_LIGHTS = "horn_and_lights"  # "find my car": a short honk and a flash of the lights
    # remote assistance: a car standing still on its way asks a person for context
    ASSIST_REQUESTED = "assist_requested"  # the car opened a request (what it sees, where)
    ASSIST_ANSWERED = "assist_answered"  # an operator answered it (another way, wait, pull over)
    ASSIST_ACCEPTED = "assist_accepted"  # the car checked the answer and acts on it
    ASSIST_REFUSED = "assist_refused"  # the car found the answer unsafe or impossible: why
    ASSIST_CLOSED = "assist_closed"  # the car moves again (cleared by itself, or after an answer)
