"""Prediction: each track's future positions over the planning horizon.

A track follows its lane when the caller can tell which lane that is (`lane_lookup`
returns the lane's centreline as an N×2 polyline) and the track is on it and heading along
it; it keeps its speed along the lane, and its lateral offset from the centreline fades out
over `LATERAL_DECAY_S`. Every other track keeps its velocity (constant velocity). A track
that is nearly stopped is predicted to stay where it is.

Footprints are oriented by `Track.heading`: the direction of travel for a clearly moving
object, the tracker's filtered box heading for a parked or slow one. A vehicle moves along its
body, so a vehicle's velocity is first projected on that heading: what is left across it is
noise (for a parked car the filtered velocity is mostly position noise and may point
sideways, which would otherwise predict it drifting into a neighbouring lane). Pedestrians and
unclassified objects keep their velocity as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from robotaxi.core.geometry import box_corners
from robotaxi.core.types import AgentKind, FloatArray, Track

LaneLookup = Callable[[Track], FloatArray | None]
"""Given a track, the centreline (N×2, m) of the lane it drives along, or None if unclear."""

STOPPED_SPEED_MPS = 0.3
LANE_MAX_OFFSET_M = 2.5
LANE_MAX_HEADING_ERROR_RAD = np.radians(45.0)
LATERAL_DECAY_S = 2.0
# kinds that can only move along their body axis
VEHICLE_KINDS = frozenset({AgentKind.CAR, AgentKind.EMERGENCY, AgentKind.ROBOTAXI})


@dataclass(frozen=True)
class Predictions:
    """Predicted futures of M tracks at T = N+1 instants 0, dt, …, N·dt (s).

    `xy` M×T×2 (m), `heading` M×T (rad), `speed` M (m/s), `length`/`width` M (m);
    `on_lane` M says which tracks were predicted along a lane.
    """

    track_ids: npt.NDArray[np.int64]
    kinds: tuple[AgentKind, ...]
    flashing_lights: npt.NDArray[np.bool_]
    xy: FloatArray
    heading: FloatArray
    speed: FloatArray
    length: FloatArray
    width: FloatArray
    on_lane: npt.NDArray[np.bool_]
    dt_s: float

    def __len__(self) -> int:
        return len(self.track_ids)

    @property
    def footprints(self) -> FloatArray:
        """Oriented footprint corners M×T×4×2 (m)."""
        return box_corners(
            self.xy[..., 0],
            self.xy[..., 1],
            self.heading,
            np.broadcast_to(self.length[:, None], self.heading.shape),
            np.broadcast_to(self.width[:, None], self.heading.shape),
        )

    @classmethod
    def empty(cls, n_steps: int, dt_s: float) -> Predictions:
        return cls(
            np.zeros(0, dtype=np.int64),
            (),
            np.zeros(0, dtype=bool),
            np.zeros((0, n_steps + 1, 2)),
            np.zeros((0, n_steps + 1)),
            np.zeros(0),
            np.zeros(0),
            np.zeros(0),
            np.zeros(0, dtype=bool),
            dt_s,
        )


def _along_lane(
    track: Track, speed: float, lane: FloatArray, times: FloatArray
) -> tuple[FloatArray, FloatArray] | None:
    lane = np.asarray(lane, dtype=np.float64)
    if lane.ndim != 2 or lane.shape[0] < 2 or lane.shape[1] != 2:
        return None
    seg = np.diff(lane, axis=0)
    seg_len = np.hypot(seg[:, 0], seg[:, 1])
    ok = seg_len > 1e-9
    if not np.all(ok):
        lane = np.concatenate([lane[:1], lane[1:][ok]])
        seg, seg_len = seg[ok], seg_len[ok]
        if len(seg) == 0:
            return None
    rel = np.array([track.x, track.y]) - lane[:-1]
    t = np.clip(np.einsum("ij,ij->i", rel, seg) / seg_len**2, 0.0, 1.0)
    closest = lane[:-1] + t[:, None] * seg
    dist = np.hypot(*(np.array([track.x, track.y]) - closest).T)
    i = int(np.argmin(dist))
    seg_heading = np.arctan2(seg[:, 1], seg[:, 0])
    err = (track.heading - seg_heading[i] + np.pi) % (2 * np.pi) - np.pi
    if dist[i] > LANE_MAX_OFFSET_M or abs(err) > LANE_MAX_HEADING_ERROR_RAD:
        return None
    cum = np.concatenate([[0.0], np.cumsum(seg_len)])
    s0 = cum[i] + t[i] * seg_len[i]
    r = rel[i]
    d0 = (seg[i, 0] * r[1] - seg[i, 1] * r[0]) / seg_len[i]
    s = s0 + speed * times
    j = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(seg) - 1)
    h = seg_heading[j]
    base_x = lane[j, 0] + (s - cum[j]) * np.cos(h)
    base_y = lane[j, 1] + (s - cum[j]) * np.sin(h)
    d = d0 * np.clip(1.0 - times / LATERAL_DECAY_S, 0.0, 1.0)
    xy = np.stack([base_x - d * np.sin(h), base_y + d * np.cos(h)], axis=1)
    return xy, h


def predict(
    tracks: Sequence[Track],
    horizon_s: float = 4.0,
    dt_s: float = 0.1,
    lane_lookup: LaneLookup | None = None,
) -> Predictions:
    """Predict every track over `horizon_s` in steps of `dt_s` (see module docstring)."""
    n_steps = round(horizon_s / dt_s)
    if not tracks:
        return Predictions.empty(n_steps, dt_s)
    times = np.arange(n_steps + 1, dtype=np.float64) * dt_s
    pos = np.array([[t.x, t.y] for t in tracks])
    vel = np.array([[t.vx, t.vy] for t in tracks])
    h0 = np.array([t.heading for t in tracks])
    body = np.stack([np.cos(h0), np.sin(h0)], axis=1)
    vehicle = np.array([t.kind in VEHICLE_KINDS for t in tracks])
    # signed: a slowly reversing car keeps its body orientation and moves backwards
    along = np.einsum("ij,ij->i", vel, body)
    vel = np.where(vehicle[:, None], along[:, None] * body, vel)
    speed = np.hypot(vel[:, 0], vel[:, 1])
    moving = speed >= STOPPED_SPEED_MPS
    heading = np.repeat(h0[:, None], n_steps + 1, axis=1)
    vel = np.where(moving[:, None], vel, 0.0)
    xy = pos[:, None, :] + vel[:, None, :] * times[None, :, None]
    on_lane = np.zeros(len(tracks), dtype=bool)
    if lane_lookup is not None:
        for i, track in enumerate(tracks):
            if not moving[i] or (vehicle[i] and along[i] < 0.0):
                continue
            lane = lane_lookup(track)
            if lane is None:
                continue
            res = _along_lane(track, float(speed[i]), lane, times)
            if res is not None:
                xy[i], heading[i] = res
                on_lane[i] = True
    return Predictions(
        track_ids=np.array([t.track_id for t in tracks], dtype=np.int64),
        kinds=tuple(t.kind for t in tracks),
        flashing_lights=np.array([t.flashing_lights for t in tracks], dtype=bool),
        xy=xy,
        heading=heading,
        speed=np.where(moving, speed, 0.0),
        length=np.array([t.length for t in tracks]),
        width=np.array([t.width for t in tracks]),
        on_lane=on_lane,
        dt_s=dt_s,
    )
