"""Hand-built scene pieces shared by the planner tests: tracks and a brute-force ego/agent
overlap check (imported by the test modules; pytest puts this folder on sys.path)."""

from __future__ import annotations

import numpy as np

from robotaxi.autonomy.vehicle import IPACE, VehicleState, footprint_center
from robotaxi.core.geometry import boxes_overlap
from robotaxi.core.time import TimePoint
from robotaxi.core.types import AgentKind, AgentState, Track


def track(
    i: int,
    x: float,
    y: float,
    vx: float,
    vy: float,
    *,
    kind: AgentKind = AgentKind.CAR,
    length: float = 4.5,
    width: float = 1.8,
    flashing_lights: bool = False,
) -> Track:
    """A track with a unit covariance at time 0."""
    return Track(
        i, TimePoint(0), x, y, vx, vy, kind, length, width, np.eye(4),
        flashing_lights=flashing_lights,
    )  # fmt: skip


def collides(ego: VehicleState, agents: list[AgentState]) -> bool:
    """Whether the ego's footprint overlaps any agent's box (ground truth)."""
    cx, cy = footprint_center(ego.x, ego.y, ego.heading, IPACE)
    return any(
        bool(
            boxes_overlap(
                np.array([cx, cy]),
                np.array(ego.heading),
                IPACE.length_m,
                IPACE.width_m,
                np.array([a.x, a.y]),
                np.array(a.heading),
                np.array(a.length),
                np.array(a.width),
            )
        )
        for a in agents
    )
