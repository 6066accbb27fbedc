"""Multi-object tracker: constant-velocity Kalman filters, Mahalanobis gating and optimal
(Hungarian) association of detections to tracks.

State per track: (x, y, vx, vy) in m and m/s with a 4×4 covariance. The camera reports
position and a speed along a heading, so the measurement is (x, y, vx, vy). Tracks are born
tentative from unassociated detections, confirmed after `confirm_hits` associated frames,
coast (predicted only) while unseen and are dropped after `max_coast_s` without a detection;
coasting is what carries an object through a brief occlusion with its identity kept. All
tracks are predicted and updated as arrays; only the bookkeeping loops over tracks.

Box heading. A parked or creeping car's filtered velocity is mostly position noise and may
point anywhere, so each track also keeps the orientation of the object's box, filtered from
the detections' headings: a scalar Kalman filter on the angle (random walk, measurement noise
`box_heading_std_rad`), which is a low-pass filter whose gain adapts to how sure the estimate
is (a fresh or long-unseen track follows the detections quickly). A box says nothing about
front and back, so a detection's heading is first turned by 180° if that brings it nearer the
track's current orientation (`Track.heading`: the velocity's direction when the object moves
clearly, else the previous box heading). Detections whose heading is far outside what the
filter expects (a clutter detection taken into the track) are ignored; a run of them in a row
means the estimate itself was wrong, and it restarts from the detection.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.optimize import linear_sum_assignment

from robotaxi.core.time import TimePoint
from robotaxi.core.types import AgentKind, Detection, FloatArray, Track

# Cost assigned to gated-out pairs; any real cost is below the gate, so these are never kept.
_FORBIDDEN = 1e9


class TrackerConfig(BaseModel):
    """Parameters of the tracker (units in the descriptions)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    accel_std_mps2: float = Field(default=2.0, gt=0, description="white-noise acceleration, m/s²")
    velocity_std_base_mps: float = Field(
        default=0.5, gt=0, description="velocity measurement noise at rest, m/s"
    )
    heading_std_rad: float = Field(
        default=0.05, ge=0, description="heading noise, scales with speed"
    )
    gate_chi2: float = Field(
        default=18.47, gt=0, description="Mahalanobis² gate (χ², 4 dof, 99.9 %) for association"
    )
    confirm_hits: int = Field(default=3, ge=1, description="associated frames to confirm a track")
    max_coast_s: float = Field(
        default=1.6, gt=0, description="drop a confirmed track unseen this long"
    )
    tentative_max_misses: int = Field(
        default=1, ge=0, description="drop a tentative track after this many consecutive misses"
    )
    initial_velocity_std_mps: float = Field(
        default=3.0, gt=0, description="prior on a new track's v"
    )
    flashing_hold_s: float = Field(
        default=1.0, ge=0, description="flashing lights stay on the track this long after last seen"
    )
    box_heading_std_rad: float = Field(
        default=0.05, gt=0, description="noise of a detection's box heading, rad"
    )
    box_heading_drift_std_radps: float = Field(
        default=0.03,
        gt=0,
        description="random-walk drift of the box heading, rad/√s (sets the low-pass gain)",
    )
    box_heading_gate_sigmas: float = Field(
        default=3.0, gt=0, description="a heading innovation beyond this many σ is an outlier"
    )
    box_heading_gate_min_rad: float = Field(
        default=0.35, ge=0, description="innovations below this are never outliers, rad"
    )
    box_heading_reset_outliers: int = Field(
        default=3, ge=1, description="this many outliers in a row restart the box heading"
    )


@dataclass(slots=True)
class _TrackMeta:
    track_id: int
    born: TimePoint
    last_seen: TimePoint
    hits: int
    misses: int
    kind: AgentKind
    length: float
    width: float
    last_flashing: TimePoint | None
    box_outliers: int = 0


def _wrap(angle: float) -> float:
    """Angle in [-π, π) (rad)."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


class MultiObjectTracker:
    """Turns per-frame detections into tracks with stable ids. One instance per car."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config if config is not None else TrackerConfig()
        self._x = np.zeros((0, 4))
        self._p = np.zeros((0, 4, 4))
        # box heading (rad) and its variance (rad²) per track
        self._h = np.zeros(0)
        self._hv = np.zeros(0)
        self._meta: list[_TrackMeta] = []
        self._next_id = 1
        self._time: TimePoint | None = None

    def _measurement(self, detections: Sequence[Detection]) -> tuple[FloatArray, FloatArray]:
        cfg = self.config
        z = np.array(
            [
                [d.x, d.y, d.speed * math.cos(d.heading), d.speed * math.sin(d.heading)]
                for d in detections
            ]
        ).reshape(-1, 4)
        r = np.zeros((len(detections), 4, 4))
        for k, d in enumerate(detections):
            pos_var = d.position_std_m**2
            vel_var = cfg.velocity_std_base_mps**2 + (cfg.heading_std_rad * d.speed) ** 2
            r[k] = np.diag([pos_var, pos_var, vel_var, vel_var])
        return z, r

    def _predict(self, dt: float) -> None:
        if len(self._x) == 0 or dt <= 0:
            return
        f = np.eye(4)
        f[0, 2] = f[1, 3] = dt
        q = self.config.accel_std_mps2**2
        g = np.array([[0.5 * dt * dt, 0], [0, 0.5 * dt * dt], [dt, 0], [0, dt]])
        qm = q * g @ g.T
        self._x = self._x @ f.T
        self._p = f[None] @ self._p @ f.T[None] + qm[None]
        self._hv = self._hv + self.config.box_heading_drift_std_radps**2 * dt

    def _update_box_heading(self, i: int, detected: float, reference: float) -> None:
        """Fold a detection's box heading (rad) to the side of `reference` (rad), then gate
        it and fuse it into track `i`'s box heading (see module docstring)."""
        cfg = self.config
        meta = self._meta[i]
        if math.cos(detected - reference) < 0.0:
            detected += math.pi
        innovation = _wrap(detected - float(self._h[i]))
        r = cfg.box_heading_std_rad**2
        s = float(self._hv[i]) + r
        if (
            abs(innovation) > cfg.box_heading_gate_min_rad
            and innovation * innovation > cfg.box_heading_gate_sigmas**2 * s
        ):
            meta.box_outliers += 1
            if meta.box_outliers >= cfg.box_heading_reset_outliers:
                self._h[i], self._hv[i] = _wrap(detected), r
                meta.box_outliers = 0
            return
        meta.box_outliers = 0
        gain = float(self._hv[i]) / s
        self._h[i] = _wrap(float(self._h[i]) + gain * innovation)
        self._hv[i] = (1.0 - gain) * float(self._hv[i])

    def update(self, detections: Sequence[Detection], time: TimePoint) -> list[Track]:
        """Advance all tracks to `time`, associate `detections`, and return the confirmed
        tracks (sorted by id), coasting ones included."""
        cfg = self.config
        dt = 0.0 if self._time is None else time - self._time
        if dt < 0:
            raise ValueError(f"tracker time went backwards: {self._time} → {time}")
        self._time = time
        self._predict(dt)
        z, r = self._measurement(detections)
        m, n = len(self._x), len(z)
        assigned_tracks: dict[int, int] = {}
        if m and n:
            # innovation y = z - x (H = I), S = P + R, cost = yᵀ S⁻¹ y
            y = z[None, :, :] - self._x[:, None, :]
            s = self._p[:, None] + r[None, :]
            sol = np.linalg.solve(s, y[..., None])[..., 0]
            cost = np.einsum("mni,mni->mn", y, sol)
            cost = np.where(cost <= cfg.gate_chi2, cost, _FORBIDDEN)
            rows, cols = linear_sum_assignment(cost)
            for i, j in zip(rows, cols, strict=True):
                if cost[i, j] < _FORBIDDEN:
                    assigned_tracks[int(i)] = int(j)
        if assigned_tracks:
            idx = np.fromiter(assigned_tracks.keys(), dtype=int)
            det = np.fromiter(assigned_tracks.values(), dtype=int)
            p = self._p[idx]
            s = p + r[det]
            k = np.linalg.solve(s, p).transpose(0, 2, 1)  # P S⁻¹ (both symmetric)
            innov = z[det] - self._x[idx]
            self._x[idx] = self._x[idx] + np.einsum("mij,mj->mi", k, innov)
            eye = np.eye(4)[None]
            joseph = eye - k
            self._p[idx] = joseph @ p @ joseph.transpose(0, 2, 1) + k @ r[det] @ k.transpose(
                0, 2, 1
            )
        keep: list[int] = []
        for i, meta in enumerate(self._meta):
            if i in assigned_tracks:
                d = detections[assigned_tracks[i]]
                meta.hits += 1
                meta.misses = 0
                meta.last_seen = time
                if d.kind != AgentKind.UNKNOWN:
                    meta.kind = d.kind
                meta.length = 0.8 * meta.length + 0.2 * d.length
                meta.width = 0.8 * meta.width + 0.2 * d.width
                if d.flashing_lights:
                    meta.last_flashing = time
                self._update_box_heading(i, d.heading, self._track(i, time).heading)
                keep.append(i)
                continue
            meta.misses += 1
            confirmed = meta.hits >= cfg.confirm_hits
            coasting = confirmed and time - meta.last_seen <= cfg.max_coast_s
            if coasting or (not confirmed and meta.misses <= cfg.tentative_max_misses):
                keep.append(i)
        self._x = self._x[keep]
        self._p = self._p[keep]
        self._h = self._h[keep]
        self._hv = self._hv[keep]
        self._meta = [self._meta[i] for i in keep]
        used = set(assigned_tracks.values())
        new = [j for j in range(n) if j not in used]
        if new:
            new_x = z[new].copy()
            new_p = r[new].copy()
            new_p[:, 2, 2] = new_p[:, 3, 3] = np.maximum(
                new_p[:, 2, 2], cfg.initial_velocity_std_mps**2
            )
            self._x = np.concatenate([self._x, new_x])
            self._p = np.concatenate([self._p, new_p])
            # the camera's heading is taken as it comes: nothing to resolve it against yet
            self._h = np.concatenate([self._h, [_wrap(detections[j].heading) for j in new]])
            self._hv = np.concatenate(
                [self._hv, np.full(len(new), self.config.box_heading_std_rad**2)]
            )
            for j in new:
                d = detections[j]
                self._meta.append(
                    _TrackMeta(
                        self._next_id,
                        time,
                        time,
                        1,
                        0,
                        d.kind,
                        d.length,
                        d.width,
                        time if d.flashing_lights else None,
                    )
                )
                self._next_id += 1
        return self.tracks()

    def _track(self, i: int, now: TimePoint) -> Track:
        meta = self._meta[i]
        flashing = meta.last_flashing is not None and (
            now - meta.last_flashing <= self.config.flashing_hold_s
        )
        return Track(
            track_id=meta.track_id,
            time=now,
            x=float(self._x[i, 0]),
            y=float(self._x[i, 1]),
            vx=float(self._x[i, 2]),
            vy=float(self._x[i, 3]),
            kind=meta.kind,
            length=meta.length,
            width=meta.width,
            covariance=self._p[i].copy(),
            age_s=now - meta.born,
            missed_frames=meta.misses,
            flashing_lights=flashing,
            box_heading=float(self._h[i]),
        )

    def tracks(self) -> list[Track]:
        """Confirmed tracks at the tracker's current time."""
        if self._time is None:
            return []
        now = self._time
        out = [
            self._track(i, now)
            for i, meta in enumerate(self._meta)
            if meta.hits >= self.config.confirm_hits
        ]
        return sorted(out, key=lambda t: t.track_id)
