"""Pure pursuit + PI speed control in a pure-Python closed loop with the vehicle model."""

from __future__ import annotations

import math

import numpy as np

from robotaxi.autonomy.control import TrajectoryController
from robotaxi.autonomy.vehicle import IPACE, VehicleState, step
from robotaxi.core.time import TimePoint
from robotaxi.core.types import ControlCommand, Trajectory


def _reference(xy: np.ndarray, heading: np.ndarray, speed: float) -> Trajectory:
    n = len(xy)
    states = np.zeros((n, 7))
    states[:, 1:3] = xy
    states[:, 3] = heading
    states[:, 4] = speed
    return Trajectory(TimePoint(0), states)


def test_tracks_a_straight_line_from_an_offset_start() -> None:
    s = np.linspace(0, 400, 801)
    ref = _reference(np.column_stack([s, np.zeros_like(s)]), np.zeros_like(s), 10.0)
    ctrl = TrajectoryController()
    ego = VehicleState(0.0, 1.0, math.radians(5), 6.0)
    for _ in range(200):
        ego = step(ego, ctrl.command(ego, ref, 0.1), 0.1)
    assert abs(ego.y) < 0.05
    assert abs(ego.heading) < 0.01
    assert abs(ego.speed - 10.0) < 0.1


def test_tracks_a_circle_within_tolerance() -> None:
    radius, v = 20.0, 6.0
    phi = np.linspace(-math.pi / 2, 1.4 * math.pi, 1200)
    xy = np.column_stack([radius * np.cos(phi), radius + radius * np.sin(phi)])
    ref = _reference(xy, phi + math.pi / 2, v)
    ctrl = TrajectoryController()
    ego = VehicleState(0.0, 0.0, 0.0, v, steer_rad=0.0)
    errors = []
    for k in range(150):
        ego = step(ego, ctrl.command(ego, ref, 0.1), 0.1)
        if k >= 40:
            errors.append(abs(math.hypot(ego.x, ego.y - radius) - radius))
    assert max(errors) < 0.15
    # steady state: the road-wheel angle of the circle, seen on the steering wheel too
    assert abs(ego.steer_rad - math.atan(IPACE.wheelbase_m / radius)) < 0.02
    assert abs(ego.steering_wheel_rad - ego.steer_rad * IPACE.steering_ratio) < 1e-12


def test_commands_stay_within_limits_and_hold_at_rest() -> None:
    s = np.linspace(0, 50, 101)
    ref = _reference(np.column_stack([s, 30 + 0 * s]), np.zeros_like(s), 25.0)
    ctrl = TrajectoryController()
    cmd = ctrl.command(VehicleState(0.0, 0.0, math.pi, 0.0), ref, 0.1)
    assert -IPACE.max_brake_mps2 <= cmd.accel <= IPACE.max_accel_mps2
    assert abs(cmd.steering_rate) <= IPACE.max_steer_rate_rad_s
    standing = _reference(np.zeros((41, 2)), np.zeros(41), 0.0)
    rest = VehicleState(0.0, 0.0, 0.0, 0.0)
    cmd = ctrl.command(rest, standing, 0.1)
    assert cmd == ControlCommand(accel=min(cmd.accel, 0.0), steering_rate=0.0)
    assert step(rest, cmd, 0.1).speed == 0.0
