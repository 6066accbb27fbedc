"""An animation of a closed-loop drive, from above: what the car perceived and what it planned.

Lanes in grey, the route dashed, the ego (white) with its planned trajectory (blue), tracked
objects as the car perceives them (orange boxes; red with "SIREN" for an emergency vehicle
whose flashing lights it sees), ground truth faintly for comparison, and an overlay with the
steering-wheel angle, speed and behaviour.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.animation import FuncAnimation, PillowWriter
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.patches import Polygon

from robotaxi.core import AgentKind, TrajectoryColumn
from robotaxi.core.geometry import box_corners
from robotaxi.sim.drive import DriveResult

C = TrajectoryColumn
VIEW_M = 40.0


def _lane_borders(centerline: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    seg = np.diff(centerline, axis=0)
    normal = (
        np.column_stack([-seg[:, 1], seg[:, 0]])
        / np.maximum(np.hypot(seg[:, 0], seg[:, 1]), 1e-9)[:, None]
    )
    normal = np.vstack([normal, normal[-1:]])
    return centerline + normal * width / 2, centerline - normal * width / 2


def _lane_polygon(centerline: np.ndarray, width: float) -> np.ndarray:
    left, right = _lane_borders(centerline, width)
    return np.vstack([left, right[::-1]])


def render_drive_gif(result: DriveResult, path: Path, every: int = 3, fps: int = 10) -> Path:
    if not result.frames or result.road_map is None or result.route is None:
        raise ValueError("render needs a run recorded with keep_frames=True")
    road_map, route = result.road_map, result.route
    frames = result.frames[::every]
    fig, ax = plt.subplots(figsize=(6.4, 6.4), dpi=80)
    surface = [_lane_polygon(lane.centerline, lane.width) for lane in road_map.lanes.values()]
    ax.add_collection(PolyCollection(surface, facecolors="#c8c8c8", edgecolors="none", zorder=0))
    borders = [b for lane in road_map.lanes.values() if not lane.internal
               for b in _lane_borders(lane.centerline, lane.width)]  # fmt: skip
    ax.add_collection(LineCollection(borders, colors="white", linewidths=0.6, zorder=0))
    ax.plot(route.path.xy[:, 0], route.path.xy[:, 1], "--", color="#888888", lw=1, zorder=1)
    ax.set_aspect("equal")
    ax.set_facecolor("#e8e8e8")
    dynamic: list = []
    overlay = ax.text(
        0.02, 0.98, "", transform=ax.transAxes, va="top", family="monospace", fontsize=8,
        bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "none"},
    )  # fmt: skip
    back = 2.34 - 0.8  # rear axle → footprint centre (I-PACE)

    def draw(k: int) -> list:
        for artist in dynamic:
            artist.remove()
        dynamic.clear()
        f = frames[k]
        cx = f.ego.x + back * math.cos(f.ego.heading)
        cy = f.ego.y + back * math.sin(f.ego.heading)
        for agent in f.truth:  # ground truth, faint
            corners = box_corners(agent.x, agent.y, agent.heading, agent.length, agent.width)
            patch = Polygon(corners, closed=True, fill=False, ec="#999999", lw=0.8, ls=":")
            ax.add_patch(patch)
            dynamic.append(patch)
        for track in f.tracks:  # what the car perceives
            ev = track.kind == AgentKind.EMERGENCY
            lit = ev and track.flashing_lights
            color = (
                "#d62728"
                if ev
                else ("#2ca02c" if track.kind == AgentKind.PEDESTRIAN else "#ff7f0e")
            )
            corners = box_corners(track.x, track.y, track.heading, track.length, track.width)
            patch = Polygon(corners, closed=True, fc=color, ec="black", lw=0.6, alpha=0.8)
            ax.add_patch(patch)
            dynamic.append(patch)
            if lit:
                label = ax.text(track.x, track.y + 3, "SIREN", color="#d62728", fontsize=7)
                dynamic.append(label)
        (line,) = ax.plot(f.planned[:, C.X], f.planned[:, C.Y], color="#1f77b4", lw=2, zorder=4)
        dynamic.append(line)
        ego = Polygon(box_corners(cx, cy, f.ego.heading, 4.68, 2.01), closed=True, fc="white",
                      ec="black", lw=1.2, zorder=5)  # fmt: skip
        ax.add_patch(ego)
        dynamic.append(ego)
        ax.set_xlim(cx - VIEW_M, cx + VIEW_M)
        ax.set_ylim(cy - VIEW_M, cy + VIEW_M)
        wheel_deg = math.degrees(f.ego.steer_rad * f.ego.steering_ratio)
        overlay.set_text(
            f"{result.scenario.name}\n"
            f"t {f.t:5.1f} s   speed {f.ego.speed * 3.6:5.1f} km/h\n"
            f"steering wheel {wheel_deg:+6.1f}°\n"
            f"behaviour {f.behaviour}{'  (parked)' if f.parked else ''}"
        )
        return dynamic

    anim = FuncAnimation(fig, draw, frames=len(frames), blit=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    anim.save(str(path), writer=PillowWriter(fps=fps))
    plt.close(fig)
    return path
