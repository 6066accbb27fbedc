"""The sweep's curves: p95 pick-up wait and served % against fleet size.

One line per policy × market share (× start time, when several), the mean over seeds, with a
band from the smallest to the largest seed's value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from robotaxi.sweep.results import OK

PANELS = (("wait_p95_s", "pick-up wait p95, s"), ("served_pct", "served, %"))


def curves(
    rows: Iterable[Mapping[str, Any]], kpi: str
) -> dict[str, list[tuple[int, float, float, float]]]:
    """Per line label: (fleet, mean, min, max over seeds) for each fleet size, by fleet."""
    done = [r for r in rows if r.get("status") == OK and r.get(kpi) is not None]
    starts = {r.get("start") for r in done}
    cities = {r.get("city") for r in done}
    values: dict[str, dict[int, list[float]]] = {}
    for row in done:
        label = f"{row.get('policy')}, share {row.get('market_share')}"
        if row.get("city") == "grid":
            label = f"{row.get('policy')}, {row.get('requests_per_hour'):g} req/h"
        if len(starts) > 1:
            label += f", {row.get('start')}"
        if len(cities) > 1:
            label = f"{row.get('city')}: {label}"
        values.setdefault(label, {}).setdefault(int(row["fleet"]), []).append(float(row[kpi]))
    return {
        label: [(f, sum(v) / len(v), min(v), max(v)) for f, v in sorted(by_fleet.items())]
        for label, by_fleet in sorted(values.items())
    }


def fleet_curves_png(
    rows: Iterable[Mapping[str, Any]], path: Path, title: str, target: Any = None
) -> Path:
    """Draw the two panels into `path` (PNG); `target` (a Target) adds its thresholds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(rows)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for ax, (kpi, label) in zip(axes, PANELS, strict=True):
        for name, points in curves(rows, kpi).items():
            fleets = [p[0] for p in points]
            line = ax.plot(fleets, [p[1] for p in points], marker="o", label=name)[0]
            ax.fill_between(
                fleets, [p[2] for p in points], [p[3] for p in points],
                color=line.get_color(), alpha=0.18, linewidth=0,
            )  # fmt: skip
        for condition in getattr(target, "conditions", ()):
            if condition.kpi == kpi:
                ax.axhline(condition.value, color="grey", linestyle="--", linewidth=1)
        ax.set_xlabel("fleet size, cars")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
