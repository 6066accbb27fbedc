"""Fare arithmetic on hand-computed trips (fleet.fares), and the tariff's start-up checks.

Default tariff (San Francisco taxi meter, Transportation Code Div. II §1124(b)(1)): base 350 c,
275 c a mile, 55 c a minute, minimum 350 c; cancellation 500 c after 120 s of waiting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from robotaxi.core import TimePoint, TripEvent, TripState
from robotaxi.fleet.fares import (
    Charge,
    FareRule,
    Tariff,
    charge,
    distance_cents,
    metered_cents,
    money_text,
    quote_range,
    range_text,
)
from robotaxi.service.settings import ServiceSettings

S = TripState
SF = Tariff()
MILE_M = 1609.344


def trip(
    *steps: tuple[float, TripState] | tuple[float, TripState, dict[str, Any]],
) -> list[TripEvent]:
    """A trip's log from (time s, state[, data]) steps; its causes are the usual ones."""
    events = []
    for seq, step in enumerate(steps):
        time_s, state = step[0], step[1]
        data = step[2] if len(step) == 3 else {}
        cause = "no_show" if state == S.CANCELLED and data.get("no_show") else "rider"
        events.append(TripEvent("t1", seq, TimePoint.from_s(time_s), state, "taxi001", cause, data))
    return events


RIDE_TO = [(0.0, S.REQUESTED), (5.0, S.ASSIGNED), (6.0, S.EN_ROUTE), (100.0, S.ARRIVED)]


def test_default_tariff_is_the_sf_taxi_meter() -> None:
    assert (SF.currency, SF.base_cents, SF.per_mile_cents, SF.per_minute_cents) == (
        "USD", 350, 275, 55,
    )  # fmt: skip
    assert SF.minimum_cents == 350 and SF.cancel_fee_cents == 500
    assert SF.cancel_free_wait_s == 120.0


@pytest.mark.parametrize(
    ("metres", "seconds", "cents"),
    [
        # 350 + 275 × 1 mi + 55 × 10 min = 1175
        (MILE_M, 600.0, 1175),
        # 350 + 275 × 3200/1609.344 (= 546.807…) + 55 × 12.5 (= 687.5) = 1584.307… → 1584
        (3200.0, 750.0, 1584),
        # 350 + 275 × 5 mi + 55 × 20.25 min (= 1113.75) = 2838.75 → 2839
        (5 * MILE_M, 1215.0, 2839),
        # nothing driven, no time: the base, which is also the minimum
        (0.0, 0.0, 350),
    ],
)
def test_metered_fare_by_hand(metres: float, seconds: float, cents: int) -> None:
    assert metered_cents(SF, metres, seconds) == cents


def test_minimum_fare_applies_to_short_rides() -> None:
    tariff = Tariff(minimum_cents=1000)
    # 350 + 275 × 200/1609.344 (= 34.18) + 55 × 1 min = 439.18 → 439, below the 1000 minimum
    assert metered_cents(tariff, 200.0, 60.0) == 1000
    # above it, the minimum plays no part: 350 + 275 × 2 + 55 × 3 = 1065
    assert metered_cents(tariff, 2 * MILE_M, 180.0) == 1065


def test_rounding_is_half_up_once_at_the_end() -> None:
    per_minute_only = Tariff(base_cents=0, per_mile_cents=0, per_minute_cents=1, minimum_cents=0)
    assert metered_cents(per_minute_only, 0.0, 30.0) == 1  # 0.5 → 1 (banker's would give 0)
    assert metered_cents(per_minute_only, 0.0, 90.0) == 2  # 1.5 → 2
    assert metered_cents(per_minute_only, 0.0, 150.0) == 3  # 2.5 → 3 (banker's: 2)
    assert metered_cents(per_minute_only, 0.0, 29.0) == 0  # 0.483 → 0
    # summed exactly before rounding: 0.4 + 0.4 = 0.8 → 1 (rounding each part would give 0)
    both = Tariff(base_cents=0, per_mile_cents=1, per_minute_cents=1, minimum_cents=0)
    assert metered_cents(both, 0.4 * MILE_M, 24.0) == 1


def test_quote_range_spans_the_uncertain_time() -> None:
    low, high = quote_range(SF, MILE_M, 600.0, 1.5)
    # low: 1175 as above; high: 350 + 275 + 55 × 15 min = 1450
    assert (low, high) == (1175, 1450)
    assert range_text(low, high, "USD") == "$11.75 – $14.50"
    assert range_text(350, 350, "USD") == "$3.50"
    with pytest.raises(ValueError, match="slow_factor"):
        quote_range(SF, MILE_M, 600.0, 0.9)


def test_completed_ride_is_metered_from_start_to_drop_off() -> None:
    log = trip(
        *RIDE_TO,
        (130.0, S.BOARDED),
        (140.0, S.STARTED),
        (141.0, S.DRIVING, {"odometer_m": 12.0}),
        (140.0 + 600.0, S.ARRIVED_AT_DESTINATION, {"ride_m": MILE_M}),
        (760.0, S.COMPLETED),  # getting out is not charged
    )
    assert charge(SF, log) == Charge(1175, "USD", FareRule.METERED, MILE_M, 600.0)
    assert charge(SF, log[:-1]) is None  # not ended yet: no fare


def test_pulled_over_ride_is_charged_its_time_and_recorded_distance() -> None:
    ridden = (*RIDE_TO, (130.0, S.BOARDED), (140.0, S.STARTED), (141.0, S.DRIVING))
    log = trip(*ridden, (440.0, S.PULLED_OVER), (470.0, S.COMPLETED))
    # a log without the distance (before it was recorded): 350 + 55 × 5 min = 625
    assert charge(SF, log) == Charge(625, "USD", FareRule.METERED, 0.0, 300.0)
    # the distance driven to the pull-over kerb is on the completion: + 275 a mile
    recorded = trip(*ridden, (440.0, S.PULLED_OVER), (470.0, S.COMPLETED, {"ride_m": MILE_M}))
    assert charge(SF, recorded) == Charge(900, "USD", FareRule.METERED, MILE_M, 300.0)


@pytest.mark.parametrize(
    ("cancel_s", "cents", "rule"),
    [
        (219.9, 0, FareRule.CANCEL_FREE),  # waited 119.9 s: within the free 2 minutes
        (220.0, 500, FareRule.CANCEL_FEE),  # waited exactly 120 s
        (400.0, 500, FareRule.CANCEL_FEE),
    ],
)
def test_cancellation_fee_after_the_car_arrived_and_waited(
    cancel_s: float, cents: int, rule: FareRule
) -> None:
    charged = charge(SF, trip(*RIDE_TO, (cancel_s, S.CANCELLED)))
    assert charged is not None and (charged.cents, charged.rule) == (cents, rule)
    assert charged.duration_s == pytest.approx(cancel_s - 100.0)


def test_cancelling_before_the_car_arrived_is_free_and_no_show_pays_the_fee() -> None:
    early = charge(SF, trip((0.0, S.REQUESTED), (5.0, S.ASSIGNED), (900.0, S.CANCELLED)))
    assert early == Charge(0, "USD", FareRule.CANCEL_FREE, None, None)
    no_show = charge(SF, trip(*RIDE_TO, (400.0, S.CANCELLED, {"no_show": True})))
    assert no_show is not None and no_show.cents == 500
    boarded_then_cancelled = charge(SF, trip(*RIDE_TO, (130.0, S.BOARDED), (250.0, S.CANCELLED)))
    assert boarded_then_cancelled is not None and boarded_then_cancelled.cents == 500


def test_interrupted_ride_is_charged_only_the_distance_driven() -> None:
    riding = [*RIDE_TO, (130.0, S.BOARDED), (140.0, S.STARTED), (141.0, S.DRIVING)]
    # 2 miles driven: 275 × 2 = 550, no base, no minutes, no minimum
    two_miles = charge(SF, trip(*riding, (1340.0, S.INTERRUPTED, {"driven_m": 2 * MILE_M})))
    assert two_miles == Charge(550, "USD", FareRule.INTERRUPTED, 2 * MILE_M, None)
    # 100 m: 275 × 0.0621 = 17.09 → 17 (no minimum for the service's own failure)
    short = charge(SF, trip(*riding, (200.0, S.INTERRUPTED, {"ride_m": 100.0})))
    assert short is not None and short.cents == 17
    # distance not on record: nothing
    unknown = charge(SF, trip(*riding, (1340.0, S.INTERRUPTED)))
    assert unknown == Charge(0, "USD", FareRule.INTERRUPTED, None, None)
    assert distance_cents(SF, MILE_M) == 275


def test_money_reads_as_riders_read_it() -> None:
    assert money_text(1240, "USD") == "$12.40"
    assert money_text(5, "USD") == "$0.05"
    assert money_text(123456, "USD") == "$1,234.56"
    assert money_text(350, "EUR") == "€3.50"
    assert money_text(-100, "GBP") == "−£1.00"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"currency": "XYZ"}, "unknown currency code 'XYZ'"),
        ({"currency": "JPY"}, "unknown currency code 'JPY'"),  # no cents: refused
        ({"base_cents": -1}, "tariff base_cents must not be negative, got -1"),
        ({"per_minute_cents": -55}, "tariff per_minute_cents must not be negative"),
        ({"cancel_fee_cents": -500}, "tariff cancel_fee_cents must not be negative"),
        ({"cancel_free_wait_s": -1.0}, "cancel_free_wait_s must be ≥ 0"),
    ],
)
def test_bad_tariff_fails_at_start_up_with_one_line(
    bad: dict[str, Any], message: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=message):
        Tariff(**bad)
    with pytest.raises(ValidationError) as caught:
        ServiceSettings(data_dir=tmp_path, tariff=bad)
    (error,) = caught.value.errors()
    assert error["loc"][0] == "tariff" and message in error["msg"]
    assert "\n" not in error["msg"]


def test_tariff_in_settings() -> None:
    settings = ServiceSettings(tariff={"currency": "EUR", "base_cents": 300, "minimum_cents": 700})
    assert settings.tariff == Tariff(currency="EUR", base_cents=300, minimum_cents=700)
    assert ServiceSettings().tariff == SF
    with pytest.raises(ValidationError, match="fare_slow_factor"):
        ServiceSettings(fare_slow_factor=0.5)
