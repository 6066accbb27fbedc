"""The trip state machine: every allowed transition works, every other one raises."""

from __future__ import annotations

import itertools

import pytest

from robotaxi.core import InvalidTransitionError, RideRequest, TimePoint, TripState
from robotaxi.fleet.trips import ALLOWED, Trip, fold_state, greeting, new_trip

S = TripState

# the shortest event path from "requested" to each state
PATH_TO = {
    S.REQUESTED: [],
    S.ASSIGNED: [S.ASSIGNED],
    S.EN_ROUTE: [S.ASSIGNED, S.EN_ROUTE],
    S.ARRIVED: [S.ASSIGNED, S.EN_ROUTE, S.ARRIVED],
    S.BOARDED: [S.ASSIGNED, S.EN_ROUTE, S.ARRIVED, S.BOARDED],
    S.STARTED: [S.ASSIGNED, S.EN_ROUTE, S.ARRIVED, S.BOARDED, S.STARTED],
    S.DRIVING: [S.ASSIGNED, S.EN_ROUTE, S.ARRIVED, S.BOARDED, S.STARTED, S.DRIVING],
    S.ARRIVED_AT_DESTINATION: [
        S.ASSIGNED, S.EN_ROUTE, S.ARRIVED, S.BOARDED, S.STARTED, S.DRIVING,
        S.ARRIVED_AT_DESTINATION,
    ],
    S.PULLED_OVER: [
        S.ASSIGNED, S.EN_ROUTE, S.ARRIVED, S.BOARDED, S.STARTED, S.DRIVING, S.PULLED_OVER,
    ],
    S.COMPLETED: [
        S.ASSIGNED, S.EN_ROUTE, S.ARRIVED, S.BOARDED, S.STARTED, S.DRIVING,
        S.ARRIVED_AT_DESTINATION, S.COMPLETED,
    ],
    S.CANCELLED: [S.CANCELLED],
    S.INTERRUPTED: [S.ASSIGNED, S.EN_ROUTE, S.ARRIVED, S.BOARDED, S.STARTED, S.DRIVING,
                    S.INTERRUPTED],
}  # fmt: skip


def _request() -> RideRequest:
    return RideRequest("r1", "rider1", "Kevin", TimePoint(0), 0.0, 0.0, 500.0, 0.0)


def _trip_in(state: TripState) -> Trip:
    trip = new_trip(_request())
    for k, step in enumerate(PATH_TO[state], start=1):
        trip.transition(step, TimePoint.from_s(k), vehicle_id="taxi1", cause="test")
    assert trip.state == state
    return trip


@pytest.mark.parametrize(
    ("source", "target"),
    [(a, b) for a in S for b in S if b in ALLOWED[a]],
)
def test_every_allowed_transition_works(source: TripState, target: TripState) -> None:
    trip = _trip_in(source)
    event = trip.transition(target, TimePoint.from_s(100), cause="test")
    assert trip.state == target
    assert event.seq == len(trip.events) - 1
    assert fold_state(trip.events) == target


@pytest.mark.parametrize(
    ("source", "target"),
    [(a, b) for a in S for b in S if b not in ALLOWED[a]],
)
def test_every_forbidden_transition_raises(source: TripState, target: TripState) -> None:
    trip = _trip_in(source)
    before = list(trip.events)
    with pytest.raises(InvalidTransitionError):
        trip.transition(target, TimePoint.from_s(100), cause="test")
    assert trip.state == source and trip.events == before  # nothing changed


def test_the_happy_path_visits_the_life_cycle_in_order() -> None:
    trip = _trip_in(S.COMPLETED)
    assert [e.state for e in trip.events] == [S.REQUESTED, *PATH_TO[S.COMPLETED]]
    assert [e.seq for e in trip.events] == list(range(len(trip.events)))


def test_terminal_states_have_no_way_out() -> None:
    assert {s for s in S if not ALLOWED[s]} == {S.COMPLETED, S.CANCELLED, S.INTERRUPTED}
    assert all(s.terminal == (not ALLOWED[s]) for s in S)


def test_time_may_not_run_backwards() -> None:
    trip = _trip_in(S.ASSIGNED)
    with pytest.raises(InvalidTransitionError):
        trip.transition(S.EN_ROUTE, TimePoint.from_s(0.5), cause="test")


def test_fold_rejects_a_log_with_a_forbidden_step() -> None:
    trip = _trip_in(S.ARRIVED)
    events = list(trip.events)
    bad = events[:2] + events[3:]  # drop en_route: assigned → arrived is not allowed
    with pytest.raises(InvalidTransitionError):
        fold_state(bad)


def test_every_state_is_reachable_from_requested() -> None:
    reachable = {S.REQUESTED}
    for _ in range(len(S)):
        reachable |= set(itertools.chain.from_iterable(ALLOWED[s] for s in reachable))
    assert reachable == set(S)


def test_greeting_names_the_rider() -> None:
    assert greeting("Kevin") == "Hey there, Kevin!"
