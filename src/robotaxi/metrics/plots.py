"""Pictures of a run: the service-area map with pick-ups, drop-offs and vehicle trails."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from matplotlib.collections import LineCollection

from robotaxi.core import TripState
from robotaxi.map import RoadMap
from robotaxi.sim.runner import ServiceHistory


def service_map_png(history: ServiceHistory, road_map: RoadMap, path: Path) -> Path:
    """Roads in grey, robotaxi trails in colour, pick-ups (green) and drop-offs (red)."""
    fig, ax = plt.subplots(figsize=(10, 10 * _aspect(road_map)), dpi=110)
    roads = [road_map.lanes[e.lane_ids[0]].centerline for e in road_map.drivable_edges]
    ax.add_collection(LineCollection(roads, colors="#c8c8c8", linewidths=0.6, zorder=1))
    cmap = plt.get_cmap("tab20")
    ambulances = {e.vehicle_id for e in history.emergency}
    for k, (vid, trail) in enumerate(sorted(history.trails.items())):
        if len(trail) < 2:
            continue
        xs, ys = trail[:, 1], trail[:, 2]
        if vid in ambulances:
            ax.plot(xs, ys, color="red", lw=1.6, ls="--", zorder=3, alpha=0.8)
        else:
            ax.plot(xs, ys, color=cmap(k % 20), lw=0.9, alpha=0.7, zorder=2)
    curbs = road_map.curbs
    served = [t for t in history.trips.values() if t.state == TripState.COMPLETED]
    if served:
        pu = curbs.xy[[t.pickup_curb for t in served]]
        do = curbs.xy[[t.dropoff_curb for t in served]]
        ax.scatter(pu[:, 0], pu[:, 1], s=14, c="#1a9641", label="pick-up", zorder=4)
        ax.scatter(do[:, 0], do[:, 1], s=14, c="#d7191c", marker="x", label="drop-off", zorder=4)
    lost = [t for t in history.trips.values() if t.state == TripState.CANCELLED]
    if lost:
        xy = curbs.xy[[t.pickup_curb for t in lost]]
        ax.scatter(xy[:, 0], xy[:, 1], s=18, facecolors="none", edgecolors="black",
                   label="cancelled request", zorder=4)  # fmt: skip
    if history.trails and ambulances & history.trails.keys():
        ax.plot([], [], color="red", ls="--", label="ambulance")
    xmin, ymin, xmax, ymax = road_map.bounds
    ax.set_xlim(xmin - 50, xmax + 50)
    ax.set_ylim(ymin - 50, ymax + 50)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_title(
        f"robotaxi service — {history.city}, {history.fleet_size} cars, "
        f"{history.policy} dispatch, {len(served)}/{len(history.trips)} rides served"
    )
    ax.legend(loc="upper right", fontsize=8)
    if history.city != "grid":
        fig.text(0.01, 0.005, "Map data © OpenStreetMap contributors (ODbL); "
                 "demand: SFCTA, TNCs Today (2017)", fontsize=7)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _aspect(road_map: RoadMap) -> float:
    xmin, ymin, xmax, ymax = road_map.bounds
    return max(0.5, min(1.5, (ymax - ymin) / max(xmax - xmin, 1.0)))


def day_png(by_hour: list[dict[str, object]], path: Path, title: str = "") -> Path:
    """The service hour by hour (`fleet_kpis`'s `by_hour`): requests and rides served as bars,
    pick-up waits (p50, p95) as lines on a second axis."""
    hours = [str(row["hour"]) for row in by_hour]
    x = list(range(len(hours)))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(hours) + 2), 4.2), dpi=110)
    ax.bar([i - 0.2 for i in x], [_num(r["requests"]) for r in by_hour], 0.4, label="requests",
           color="#9db4d6")  # fmt: skip
    ax.bar([i + 0.2 for i in x], [_num(r["served"]) for r in by_hour], 0.4, label="served",
           color="#2f6db5")  # fmt: skip
    ax.set_ylabel("rides requested in the hour")
    waits = ax.twinx()
    for key, style in (("wait_p50_s", "-"), ("wait_p95_s", "--")):
        waits.plot(x, [_num(r[key]) / 60.0 for r in by_hour], style, color="#c0392b",
                   label=f"pick-up wait {key[5:8]}")  # fmt: skip
    waits.set_ylabel("pick-up wait, min")
    waits.set_ylim(bottom=0)
    ax.set_xticks(x, hours, rotation=90 if len(hours) > 8 else 0)
    handles = ax.get_legend_handles_labels()[0] + waits.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper left", fontsize=8)
    ax.set_title(title or "the service by hour")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _num(value: object) -> float:
    return float(value) if isinstance(value, int | float) else float("nan")
