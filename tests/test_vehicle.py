"""Kinematic bicycle: closed-form arcs and lines, limits, batched = repeated single steps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robotaxi.autonomy.vehicle import (
    IPACE,
    VehicleState,
    front_bumper,
    rear_axle_from_front_bumper,
    rollout,
    step,
)
from robotaxi.core.types import ControlCommand, TrajectoryColumn

C = TrajectoryColumn


def test_constant_steering_drives_the_closed_form_circle() -> None:
    delta, v, dt = 0.2, 7.0, 0.1
    radius = IPACE.wheelbase_m / math.tan(delta)
    state = VehicleState(0.0, 0.0, 0.0, v, steer_rad=delta)
    for k in range(1, 101):
        state = step(state, ControlCommand(0.0, 0.0), dt)
        phi = v * k * dt / radius
        assert state.x == pytest.approx(radius * math.sin(phi), abs=1e-9)
        assert state.y == pytest.approx(radius * (1 - math.cos(phi)), abs=1e-9)
        assert state.heading == pytest.approx(phi, abs=1e-12)
    assert state.steering_wheel_rad == pytest.approx(delta * IPACE.steering_ratio)


def test_constant_acceleration_on_a_straight_line() -> None:
    state = VehicleState(1.0, 2.0, math.pi / 4, 3.0)
    for _ in range(30):
        state = step(state, ControlCommand(1.5, 0.0), 0.1)
    t = 3.0
    dist = 3.0 * t + 0.5 * 1.5 * t * t
    assert state.x == pytest.approx(1.0 + dist / math.sqrt(2), abs=1e-9)
    assert state.y == pytest.approx(2.0 + dist / math.sqrt(2), abs=1e-9)
    assert state.speed == pytest.approx(3.0 + 1.5 * t)
    assert state.accel == pytest.approx(1.5)


def test_limits_are_respected() -> None:
    p = IPACE
    state = VehicleState(0.0, 0.0, 0.0, 5.0)
    state = step(state, ControlCommand(50.0, 10.0), 0.1)
    assert state.accel == pytest.approx(p.max_accel_mps2)
    assert state.steer_rad == pytest.approx(p.max_steer_rate_rad_s * 0.1)
    for _ in range(50):
        state = step(state, ControlCommand(0.0, 10.0), 0.1)
    assert state.steer_rad == pytest.approx(p.max_steer_rad)
    # braking harder than the limit, and never into reverse
    state = step(state, ControlCommand(-100.0, 0.0), 0.1)
    assert state.accel == pytest.approx(-p.max_brake_mps2)
    for _ in range(20):
        state = step(state, ControlCommand(-100.0, 0.0), 0.1)
    assert state.speed == 0.0
    assert state.accel <= 0.0
    with pytest.raises(ValueError):
        step(state, ControlCommand(0.0, 0.0), 0.0)


def test_ipace_full_lock_gives_the_published_turning_circle() -> None:
    # kerb-to-kerb: the circle of the outer front wheel at full lock
    r_rear = IPACE.wheelbase_m / math.tan(IPACE.max_steer_rad)
    outer_wheel = math.hypot(r_rear + IPACE.front_track_m / 2, IPACE.wheelbase_m)
    assert 2 * outer_wheel == pytest.approx(11.98, abs=1e-9)
    # and the model drives that circle: a full lap at full lock returns to the start
    state = VehicleState(0.0, 0.0, 0.0, 3.0, steer_rad=IPACE.max_steer_rad)
    lap_s = 2 * math.pi * r_rear / 3.0
    n = 1000
    for _ in range(n):
        state = step(state, ControlCommand(0.0, 0.0), lap_s / n)
    assert math.hypot(state.x, state.y) < 1e-6


def test_batched_rollout_equals_repeated_single_steps() -> None:
    rng = np.random.default_rng(3)
    b, n, dt = 6, 25, 0.1
    accel = rng.uniform(-9, 4, (b, n))
    rate = rng.uniform(-1, 1, (b, n))
    init = VehicleState(3.0, -1.0, 0.3, 6.0, steer_rad=0.05)
    batch = rollout(init.as_row(), accel, rate, dt)
    assert batch.shape == (b, n + 1, len(C))
    for i in range(b):
        state = init
        for k in range(n):
            state = step(state, ControlCommand(float(accel[i, k]), float(rate[i, k])), dt)
            row = batch[i, k + 1]
            assert row[C.X] == pytest.approx(state.x, abs=1e-9)
            assert row[C.Y] == pytest.approx(state.y, abs=1e-9)
            assert row[C.HEADING] == pytest.approx(state.heading, abs=1e-12)
            assert row[C.SPEED] == pytest.approx(state.speed, abs=1e-12)
            assert row[C.STEER] == pytest.approx(state.steer_rad, abs=1e-12)
            assert row[C.T] == pytest.approx((k + 1) * dt)


def test_front_bumper_conversions_round_trip() -> None:
    fx, fy = front_bumper(1.0, 2.0, 0.5)
    assert math.hypot(fx - 1.0, fy - 2.0) == pytest.approx(IPACE.length_m - IPACE.rear_overhang_m)
    assert rear_axle_from_front_bumper(fx, fy, 0.5) == pytest.approx((1.0, 2.0))
