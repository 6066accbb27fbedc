"""Kinematic bicycle model of a Jaguar I-PACE: pure single steps and batched roll-outs.

Reference point: the centre of the rear axle (as in nuPlan's PDM planner), so the yaw rate
is `v·tan(δ)/L` without a slip-angle term and constant speed and steering give an exact
circle of radius `L/tan(δ)`. The footprint centre lies `rear_axle_to_center_m` ahead of it
along the heading (`footprint_center`).

Geometry: wheelbase 2.99 m, length 4.68 m, width 2.01 m and a kerb-to-kerb turning circle
of 11.98 m (Jaguar's published figures; length and width as in `FleetConfig`). Assumptions we
could not check against a primary source: a front track of 1.64 m, a rear overhang of 0.80 m
and a steering ratio of 15.9 : 1. The road-wheel limit of the equivalent bicycle follows from
the turning circle — the outer front wheel on a 5.99 m radius gives
atan(L / (√(5.99² − L²) − track/2)) ≈ 0.60 rad (34°), i.e. ≈ 1.5 steering-wheel turns from
centre. Steering rate ≤ 0.4 rad/s at the road wheels (≈ 365°/s at the wheel). Acceleration is
capped at a passenger-comfortable 3 m/s² (the car could do more) and braking at 8 m/s²
(≈ 0.8 g).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from robotaxi.core.types import ControlCommand, FloatArray, TrajectoryColumn

N_COLUMNS = len(TrajectoryColumn)
IPACE_WHEELBASE_M = 2.99
IPACE_TURNING_CIRCLE_M = 11.98
IPACE_FRONT_TRACK_M = 1.64
IPACE_MAX_STEER_RAD = math.atan(
    IPACE_WHEELBASE_M
    / (
        math.sqrt((IPACE_TURNING_CIRCLE_M / 2) ** 2 - IPACE_WHEELBASE_M**2)
        - IPACE_FRONT_TRACK_M / 2
    )
)


@dataclass(frozen=True, slots=True)
class VehicleParams:
    """Geometry (m), limits (rad, rad/s, m/s, m/s²) and steering ratio of the modelled car."""

    wheelbase_m: float = IPACE_WHEELBASE_M
    length_m: float = 4.68
    width_m: float = 2.01
    rear_overhang_m: float = 0.80
    steering_ratio: float = 15.9
    front_track_m: float = IPACE_FRONT_TRACK_M
    max_steer_rad: float = IPACE_MAX_STEER_RAD
    max_steer_rate_rad_s: float = 0.4
    max_accel_mps2: float = 3.0
    max_brake_mps2: float = 8.0
    max_speed_mps: float = 25.0

    @property
    def rear_axle_to_center_m(self) -> float:
        """Distance from the rear axle forward to the centre of the footprint (m)."""
        return self.length_m / 2.0 - self.rear_overhang_m

    @property
    def rear_axle_to_front_m(self) -> float:
        """Distance from the rear axle forward to the front bumper (m)."""
        return self.length_m - self.rear_overhang_m


IPACE = VehicleParams()


@dataclass(frozen=True, slots=True)
class VehicleState:
    """State of the car at its rear-axle centre: pose (m, m, rad), speed (m/s), the last
    applied acceleration (m/s²) and the road-wheel angle `steer_rad` (rad, left positive)."""

    x: float
    y: float
    heading: float
    speed: float
    steer_rad: float = 0.0
    accel: float = 0.0
    steering_ratio: float = IPACE.steering_ratio

    @property
    def steering_wheel_rad(self) -> float:
        """Steering-wheel angle (rad): road-wheel angle × steering ratio."""
        return self.steer_rad * self.steering_ratio

    def as_row(self, t_s: float = 0.0) -> FloatArray:
        """This state as one trajectory row (columns `TrajectoryColumn`)."""
        return np.array([t_s, self.x, self.y, self.heading, self.speed, self.accel, self.steer_rad])


def footprint_center(
    x: FloatArray | float, y: FloatArray | float, heading: FloatArray | float, params: VehicleParams
) -> tuple[FloatArray, FloatArray]:
    """Footprint centre (m) of cars whose rear axles are at (x, y) with `heading` (rad)."""
    offset = params.rear_axle_to_center_m
    return (
        np.asarray(x) + offset * np.cos(heading),
        np.asarray(y) + offset * np.sin(heading),
    )


def rear_axle_from_front_bumper(
    x: float, y: float, heading: float, params: VehicleParams = IPACE
) -> tuple[float, float]:
    """Rear-axle position (m) of a car whose front-bumper centre is at (x, y) — SUMO's
    vehicle position — with `heading` (rad)."""
    back = params.rear_axle_to_front_m
    return x - back * math.cos(heading), y - back * math.sin(heading)


def front_bumper(
    x: float, y: float, heading: float, params: VehicleParams = IPACE
) -> tuple[float, float]:
    """Front-bumper centre (m) of a car whose rear axle is at (x, y) with `heading` (rad),
    e.g. for SUMO's `moveToXY`, which places the front bumper."""
    ahead = params.rear_axle_to_front_m
    return x + ahead * math.cos(heading), y + ahead * math.sin(heading)


def _clamp(value: FloatArray, limit: float) -> FloatArray:
    return np.minimum(np.maximum(value, -limit), limit)


def _advance(
    x: FloatArray,
    y: FloatArray,
    heading: FloatArray,
    speed: FloatArray,
    steer: FloatArray,
    accel_cmd: FloatArray,
    steer_rate_cmd: FloatArray,
    dt: float,
    params: VehicleParams,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """One step on arrays of any shape; returns (x, y, heading, speed, steer, applied accel)."""
    # np.minimum/np.maximum rather than np.clip: several times faster on small arrays, and
    # this runs at every step of every roll-out
    rate = _clamp(steer_rate_cmd, params.max_steer_rate_rad_s)
    new_steer = _clamp(steer + rate * dt, params.max_steer_rad)
    accel = np.minimum(np.maximum(accel_cmd, -params.max_brake_mps2), params.max_accel_mps2)
    # The car does not reverse: braking stops at zero speed, which also caps the applied accel.
    new_speed = np.minimum(np.maximum(speed + accel * dt, 0.0), params.max_speed_mps)
    applied_accel = (new_speed - speed) / dt
    mean_speed = 0.5 * (speed + new_speed)
    # Exact integration over the step for constant speed and steering (the mean speed and the
    # new angle over the step): a circular arc, whose chord has length
    # distance·sin(Δψ/2)/(Δψ/2) and points along heading + Δψ/2.
    yaw_rate = mean_speed * np.tan(new_steer) / params.wheelbase_m
    dpsi = yaw_rate * dt
    half = 0.5 * dpsi
    # sin(x)/x, with its limit 1 at x = 0 (np.sinc costs several more array operations)
    straight = half == 0.0
    safe = np.where(straight, 1.0, half)
    chord = mean_speed * dt * np.where(straight, 1.0, np.sin(safe) / safe)
    mid = heading + 0.5 * dpsi
    chord_x = chord * np.cos(mid)
    chord_y = chord * np.sin(mid)
    return x + chord_x, y + chord_y, heading + dpsi, new_speed, new_steer, applied_accel


def step(
    state: VehicleState, command: ControlCommand, dt: float, params: VehicleParams = IPACE
) -> VehicleState:
    """Advance one car by `dt` seconds under `command`, respecting every limit in `params`."""
    if dt <= 0.0:
        raise ValueError(f"time step must be positive, got {dt} s")
    x, y, h, v, d, a = _advance(
        np.asarray(state.x, dtype=np.float64),
        np.asarray(state.y, dtype=np.float64),
        np.asarray(state.heading, dtype=np.float64),
        np.asarray(state.speed, dtype=np.float64),
        np.asarray(state.steer_rad, dtype=np.float64),
        np.asarray(command.accel, dtype=np.float64),
        np.asarray(command.steering_rate, dtype=np.float64),
        dt,
        params,
    )
    return VehicleState(
        x=float(x),
        y=float(y),
        heading=float(h),
        speed=float(v),
        steer_rad=float(d),
        accel=float(a),
        steering_ratio=params.steering_ratio,
    )


def rollout(
    initial: FloatArray,
    accel_cmd: FloatArray,
    steer_rate_cmd: FloatArray,
    dt: float,
    params: VehicleParams = IPACE,
) -> FloatArray:
    """Open-loop roll-out of B candidates over N steps in one array computation.

    `initial` is a trajectory row (k,) or B×k (columns `TrajectoryColumn`); `accel_cmd` and
    `steer_rate_cmd` are B×N commands. Returns B×(N+1)×k states; row 0 is the initial state,
    the time column counts from its time in steps of `dt`.
    """
    accel_cmd = np.atleast_2d(np.asarray(accel_cmd, dtype=np.float64))
    steer_rate_cmd = np.atleast_2d(np.asarray(steer_rate_cmd, dtype=np.float64))
    if accel_cmd.shape != steer_rate_cmd.shape:
        raise ValueError(f"command shapes differ: {accel_cmd.shape} vs {steer_rate_cmd.shape}")
    b, n = accel_cmd.shape
    init = np.broadcast_to(np.asarray(initial, dtype=np.float64), (b, N_COLUMNS))
    out = np.empty((b, n + 1, N_COLUMNS))
    out[:, 0] = init
    c = TrajectoryColumn
    x, y, h = init[:, c.X].copy(), init[:, c.Y].copy(), init[:, c.HEADING].copy()
    v, d = init[:, c.SPEED].copy(), init[:, c.STEER].copy()
    for k in range(n):
        x, y, h, v, d, a = _advance(
            x, y, h, v, d, accel_cmd[:, k], steer_rate_cmd[:, k], dt, params
        )
        row = out[:, k + 1]
        row[:, c.T] = init[:, c.T] + (k + 1) * dt
        row[:, c.X], row[:, c.Y], row[:, c.HEADING] = x, y, h
        row[:, c.SPEED], row[:, c.ACCEL], row[:, c.STEER] = v, a, d
    return out
