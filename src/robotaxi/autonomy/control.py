"""Trajectory tracking: pure-pursuit steering and PI speed control with acceleration feed-forward.

Why pure pursuit: our vehicle model is a kinematic bicycle referenced at the rear axle, and
pure pursuit is the exact geometric law for that model — the arc it commands through the
look-ahead point is one the car can drive, so on a circle or a straight line the steady-state
cross-track error is zero with no tuning beyond the look-ahead distance. At city speeds
(≤ 15 m/s) the kinematic model is accurate and the lag pure pursuit shows in tight
high-speed curves does not arise; Stanley would need a front-axle reference and a speed-
dependent gain, LQR a linearised error model and a Riccati solve per speed, for no gain
here. The same law is used inside the motion planner's roll-outs, so the plan that is scored
is the plan this controller flies.

Longitudinal: the planned acceleration at the car's position along the trajectory is fed
forward and a PI loop corrects the speed error to the planned speed there. Commands respect
the vehicle's limits: acceleration in [-max_brake, max_accel], steering rate within
±max_steer_rate, steering angle within ±max_steer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from robotaxi.autonomy.vehicle import IPACE, VehicleParams, VehicleState
from robotaxi.core.types import ControlCommand, FloatArray, Trajectory, TrajectoryColumn


@dataclass(frozen=True, slots=True)
class ControllerGains:
    """Look-ahead `max(min_lookahead_m, lookahead_time_s·v)` up to `max_lookahead_m`; speed
    PI gains (1/s, 1/s²); `steer_time_constant_s` spreads a steering change over at least
    this long (never faster than the vehicle's rate limit)."""

    lookahead_time_s: float = 0.8
    min_lookahead_m: float = 4.0
    max_lookahead_m: float = 20.0
    speed_kp: float = 1.0
    speed_ki: float = 0.1
    integral_limit_mps: float = 2.0
    steer_time_constant_s: float = 0.1


DEFAULT_GAINS = ControllerGains()
# a plan that stays at rest over this many rows (1 s at 10 Hz) means "hold the brake"
HOLD_HORIZON_ROWS = 10


def lookahead_distance(speed: npt.ArrayLike, gains: ControllerGains = DEFAULT_GAINS) -> FloatArray:
    """Pure-pursuit look-ahead distance (m) at `speed` (m/s), vectorised."""
    ld = gains.lookahead_time_s * np.asarray(speed, dtype=np.float64)
    return np.minimum(np.maximum(ld, gains.min_lookahead_m), gains.max_lookahead_m)


def pure_pursuit_steer(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    heading: npt.ArrayLike,
    target_x: npt.ArrayLike,
    target_y: npt.ArrayLike,
    params: VehicleParams = IPACE,
) -> FloatArray:
    """Road-wheel angle (rad) that puts the rear axle at (x, y) on an arc through the target
    point, clipped to the vehicle's steering limit; vectorised over any matching shapes."""
    dx = np.asarray(target_x) - np.asarray(x)
    dy = np.asarray(target_y) - np.asarray(y)
    dist = np.maximum(np.hypot(dx, dy), 1e-6)
    alpha = np.arctan2(dy, dx) - np.asarray(heading)
    steer = np.arctan(2.0 * params.wheelbase_m * np.sin(alpha) / dist)
    return np.minimum(np.maximum(steer, -params.max_steer_rad), params.max_steer_rad)


def steer_rate_toward(
    steer: npt.ArrayLike,
    steer_target: npt.ArrayLike,
    dt: float,
    gains: ControllerGains = DEFAULT_GAINS,
    params: VehicleParams = IPACE,
) -> FloatArray:
    """Steering rate (rad/s) that moves the road wheels toward `steer_target`, rate-limited."""
    tau = max(dt, gains.steer_time_constant_s)
    rate = (np.asarray(steer_target) - np.asarray(steer)) / tau
    limit = params.max_steer_rate_rad_s
    return np.minimum(np.maximum(rate, -limit), limit)


class TrajectoryController:
    """Tracks planned trajectories; keeps only the speed-error integral between ticks."""

    def __init__(
        self, gains: ControllerGains = DEFAULT_GAINS, params: VehicleParams = IPACE
    ) -> None:
        self.gains = gains
        self.params = params
        self._integral = 0.0

    def reset(self) -> None:
        self._integral = 0.0

    def command(self, ego: VehicleState, trajectory: Trajectory, dt: float) -> ControlCommand:
        """The command for the next `dt` seconds that follows `trajectory` from `ego`."""
        if dt <= 0.0:
            raise ValueError(f"control step must be positive, got {dt} s")
        c = TrajectoryColumn
        states = trajectory.states
        pts = states[:, [c.X, c.Y]]
        seg = np.diff(pts, axis=0)
        seg_len = np.hypot(seg[:, 0], seg[:, 1])
        moving = seg_len > 1e-6
        v_now = ego.speed
        if not np.any(moving):
            # A standing plan: hold the wheel, brake to (or stay at) rest.
            # row k's accel column is what was applied reaching row k; the plan's next
            # command is therefore row 1's
            v_ref = float(states[0, c.SPEED])
            a_ff = float(states[min(1, len(states) - 1), c.ACCEL])
            steer_rate = 0.0
        else:
            seg, seg_len = seg[moving], seg_len[moving]
            starts = pts[:-1][moving]
            idx = np.flatnonzero(moving)
            rel = np.array([ego.x, ego.y]) - starts
            t = np.clip(np.einsum("ij,ij->i", rel, seg) / seg_len**2, 0.0, 1.0)
            closest = starts + t[:, None] * seg
            i = int(np.argmin(np.hypot(*(np.array([ego.x, ego.y]) - closest).T)))
            row, frac = idx[i], float(t[i])
            v_ref = float((1 - frac) * states[row, c.SPEED] + frac * states[row + 1, c.SPEED])
            a_ff = float(states[row + 1, c.ACCEL])
            cum = np.concatenate([[0.0], np.cumsum(seg_len)])
            s_here = cum[i] + frac * seg_len[i]
            s_target = s_here + float(lookahead_distance(max(v_now, v_ref), self.gains))
            if s_target <= cum[-1]:
                j = min(int(np.searchsorted(cum, s_target, side="right")) - 1, len(seg) - 1)
                tx = starts[j, 0] + (s_target - cum[j]) / seg_len[j] * seg[j, 0]
                ty = starts[j, 1] + (s_target - cum[j]) / seg_len[j] * seg[j, 1]
            else:
                # Past the plan's end: continue along its final heading.
                h_end = float(states[-1, c.HEADING])
                extra = s_target - cum[-1]
                tx = float(states[-1, c.X]) + extra * math.cos(h_end)
                ty = float(states[-1, c.Y]) + extra * math.sin(h_end)
            steer_des = pure_pursuit_steer(ego.x, ego.y, ego.heading, tx, ty, self.params)
            steer_rate = float(
                steer_rate_toward(ego.steer_rad, steer_des, dt, self.gains, self.params)
            )
        err = v_ref - v_now
        g = self.gains
        self._integral = float(
            np.clip(self._integral + err * dt, -g.integral_limit_mps, g.integral_limit_mps)
        )
        accel = a_ff + g.speed_kp * err + g.speed_ki * self._integral
        plan_standing = float(np.max(states[: HOLD_HORIZON_ROWS + 1, c.SPEED])) <= 0.05
        if plan_standing and v_now <= 0.05:
            # At rest with a standing plan: hold the brake instead of integrating noise.
            accel = min(accel, 0.0)
            self._integral = 0.0
        accel = float(np.clip(accel, -self.params.max_brake_mps2, self.params.max_accel_mps2))
        return ControlCommand(accel=accel, steering_rate=steer_rate)
