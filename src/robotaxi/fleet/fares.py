"""Fares: a tariff and the arithmetic of what a ride costs, in integer cents.

Pure functions of a tariff and a trip's event log (no clock, no store). The rules:

- **metered fare** = max(minimum, base + per-mile × miles + per-minute × minutes), the sum
  computed exactly (fractions) and rounded half-up to a whole cent once, at the end. Miles
  are the distance driven with the rider (the car's odometer between "Start ride" and the
  drop-off, `ride_m` of the drop-off event); minutes run from "Start ride" to the drop-off
  (arriving at the destination, or the rider's "pull over").
- **quote** = a range: the planned distance at the planned time (low) and at the planned
  time × `slow_factor` (high). Distance is the planned route's; only the time is uncertain.
- **cancellation** is free until the car has arrived and waited `cancel_free_wait_s`; a
  rider who cancels later, or does not show up, pays `cancel_fee_cents`.
- **interrupted** (the service stopped mid-ride, not the rider's doing): only the distance
  driven is charged, at the per-mile rate — no base, no minutes, no minimum; nothing when
  the distance driven is not on record.
- a ride cancelled before the car arrived, or within the free wait, costs nothing.

The default tariff is San Francisco's taxi meter rate, San Francisco Transportation Code,
Division II, §1124(b)(1) "Standard Fare" (set by the SFMTA Board in 2011; also published as
SF Paratransit's "Taxi Meter Rates"): $3.50 for the first fifth of a mile ("flag"), $0.55 for
each additional fifth of a mile ($2.75 a mile), $0.55 for each minute of waiting or traffic
delay. A taxi meter charges the minute rate only while waiting or slowed; this tariff, like
ride-hail services', adds both, so it errs above a taxi for slow rides; and it charges every
mile from the start where the taxi's flag includes the first fifth. The taxi tariff has no
minimum beyond its flag (the default minimum is the flag, $3.50) and no cancellation fee:
the $5.00 fee after 2 minutes' free wait is this service's own choice. Check the SFMTA's
current rates before quoting real money: they have changed since.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from robotaxi.core import TripEvent, TripState

S = TripState
METRES_PER_MILE = Fraction(1_609_344, 1000)  # international mile, exact
# ISO 4217 codes with two minor units (cents) and how riders see them; a tariff in any other
# currency is refused (amounts are integer cents everywhere)
CURRENCY_SYMBOLS: dict[str, str] = {
    "USD": "$",
    "CAD": "CA$",
    "AUD": "A$",
    "NZD": "NZ$",
    "EUR": "€",
    "GBP": "£",
    "CHF": "CHF ",
    "SEK": "SEK ",
    "NOK": "NOK ",
    "DKK": "DKK ",
    "SGD": "S$",
    "HKD": "HK$",
    "CNY": "CN¥",
    "INR": "₹",
    "MXN": "MX$",
    "BRL": "R$",
}


class FareRule(enum.StrEnum):
    """Which rule set a ride's charge (stored with it)."""

    METERED = "metered"  # completed (or pulled over at the rider's request)
    CANCEL_FEE = "cancel_fee"  # cancelled or no-show after the car arrived and waited
    CANCEL_FREE = "cancel_free"  # cancelled before that: nothing to pay
    INTERRUPTED = "interrupted_distance"  # the service stopped mid-ride: distance only


@dataclass(frozen=True, slots=True)
class Tariff:
    """What riders pay, in integer cents of `currency` (an ISO 4217 code).

    Raises `ValueError` with one line naming the bad field when an amount is negative or
    the currency is not one with cents that this service knows (`CURRENCY_SYMBOLS`).
    """

    currency: str = "USD"
    base_cents: int = 350
    per_mile_cents: int = 275
    per_minute_cents: int = 55
    minimum_cents: int = 350
    cancel_fee_cents: int = 500
    cancel_free_wait_s: float = 120.0

    def __post_init__(self) -> None:
        if self.currency not in CURRENCY_SYMBOLS:
            raise ValueError(
                f"unknown currency code {self.currency!r}: use one of "
                f"{', '.join(sorted(CURRENCY_SYMBOLS))}"
            )
        for name in (
            "base_cents",
            "per_mile_cents",
            "per_minute_cents",
            "minimum_cents",
            "cancel_fee_cents",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"tariff {name} must be a whole number of cents, got {value!r}")
            if value < 0:
                raise ValueError(f"tariff {name} must not be negative, got {value}")
        wait = self.cancel_free_wait_s
        if not (isinstance(wait, int | float) and math.isfinite(wait) and wait >= 0):
            raise ValueError(f"tariff cancel_free_wait_s must be ≥ 0 seconds, got {wait!r}")


@dataclass(frozen=True, slots=True)
class Charge:
    """What an ended ride costs: `cents` of `currency` by `rule`, with what it was based on."""

    cents: int
    currency: str
    rule: FareRule
    distance_m: float | None = None
    duration_s: float | None = None


def round_half_up(amount: Fraction) -> int:
    """The nearest whole number, halves away from zero (amounts here are never negative)."""
    if amount < 0:
        raise ValueError(f"a fare cannot be negative ({float(amount)})")
    return math.floor(amount + Fraction(1, 2))


def _exact(value: float) -> Fraction:
    # the decimal a float prints as (1609.344 m is exactly one mile), not its binary expansion
    return Fraction(repr(float(value)))


def metered_cents(tariff: Tariff, distance_m: float, duration_s: float) -> int:
    """max(minimum, base + per-mile × miles + per-minute × minutes), rounded half-up once."""
    if distance_m < 0 or duration_s < 0:
        raise ValueError(f"distance and time must be ≥ 0, got {distance_m} m, {duration_s} s")
    raw = (
        tariff.base_cents
        + tariff.per_mile_cents * _exact(distance_m) / METRES_PER_MILE
        + tariff.per_minute_cents * _exact(duration_s) / 60
    )
    return max(tariff.minimum_cents, round_half_up(raw))


def distance_cents(tariff: Tariff, distance_m: float) -> int:
    """Per-mile × miles only (interrupted rides), rounded half-up."""
    if distance_m < 0:
        raise ValueError(f"distance must be ≥ 0, got {distance_m} m")
    return round_half_up(tariff.per_mile_cents * _exact(distance_m) / METRES_PER_MILE)


def quote_range(
    tariff: Tariff, trip_m: float, trip_s: float, slow_factor: float
) -> tuple[int, int]:
    """(low, high) cents for a planned ride: at the planned time and at `slow_factor` × it."""
    if slow_factor < 1:
        raise ValueError(f"slow_factor must be ≥ 1, got {slow_factor}")
    return (
        metered_cents(tariff, trip_m, trip_s),
        metered_cents(tariff, trip_m, trip_s * slow_factor),
    )


def _first(events: Sequence[TripEvent], state: TripState) -> TripEvent | None:
    return next((e for e in events if e.state == state), None)


def _driven_m(event: TripEvent | None) -> float | None:
    if event is None:
        return None
    for key in ("ride_m", "driven_m"):
        value = event.data.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return float(value)
    return None


def charge(tariff: Tariff, events: Sequence[TripEvent]) -> Charge | None:
    """What a ride costs by the rules above, from its event log; None while it has not ended."""
    log = sorted(events, key=lambda e: e.seq)
    if not log or not log[-1].state.terminal:
        return None
    last = log[-1]
    if last.state == S.CANCELLED:
        arrived = _first(log, S.ARRIVED)
        waited = None if arrived is None else last.time.time_s - arrived.time.time_s
        if waited is not None and waited >= tariff.cancel_free_wait_s:
            return Charge(
                tariff.cancel_fee_cents, tariff.currency, FareRule.CANCEL_FEE, None, waited
            )
        return Charge(0, tariff.currency, FareRule.CANCEL_FREE, None, waited)
    started = _first(log, S.STARTED)
    if last.state == S.INTERRUPTED:
        driven = _driven_m(last)
        if driven is None:  # the drop-off event may have it when interrupted after it
            driven = _driven_m(_first(log, S.ARRIVED_AT_DESTINATION))
        cents = 0 if driven is None else distance_cents(tariff, driven)
        return Charge(cents, tariff.currency, FareRule.INTERRUPTED, driven, None)
    # completed: delivered, or let out early at the rider's request
    end = _first(log, S.ARRIVED_AT_DESTINATION) or _first(log, S.PULLED_OVER) or last
    # driven to the destination, or (let out early) to the kerb it pulled over at
    distance = _driven_m(_first(log, S.ARRIVED_AT_DESTINATION)) or _driven_m(last) or 0.0
    duration = 0.0 if started is None else max(end.time.time_s - started.time.time_s, 0.0)
    return Charge(
        metered_cents(tariff, distance, duration),
        tariff.currency,
        FareRule.METERED,
        distance,
        duration,
    )


def money_text(cents: int, currency: str) -> str:
    """How a rider reads an amount: "$12.40" (negative: "−$1.00")."""
    symbol = CURRENCY_SYMBOLS.get(currency, f"{currency} ")
    sign = "−" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{symbol}{whole:,}.{part:02d}"


def range_text(low_cents: int, high_cents: int, currency: str) -> str:
    """ "$12.40 – $14.10", or one amount when both ends agree."""
    if low_cents == high_cents:
        return money_text(low_cents, currency)
    return f"{money_text(low_cents, currency)} – {money_text(high_cents, currency)}"
