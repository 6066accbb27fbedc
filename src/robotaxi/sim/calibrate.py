"""Calibrating background traffic: the demand scale at which the city drives as slowly as
INRIX measured, found by a bracketing search over background-only SUMO runs.

- **Runs**: per time period, background traffic alone (Plan Bay Area) over a warm-up and a
  measured window inside the period, edgeData over the window. The measured window sits in
  the period's *representative hour*: the whole hour inside the period whose share of the
  day's trips (the background's hourly profile) is closest to the period's mean, so that one
  hour stands for the period's average congestion, not its peak.
- **Demand**: each period's trips are sampled and routed once, at the upper bound of the
  scale search; a candidate scale keeps each vehicle with probability scale / upper bound
  (thinning a Poisson demand keeps it Poisson), so no candidate pays for routing again.
- **Search** (`search_scale`): on the mean over periods and target facility types of
  log(simulated ratio / INRIX ratio), which falls as the scale rises. Secant steps in log
  scale once the root is bracketed, Newton-like steps with an assumed slope before, and a
  teleport bound: a candidate with more teleports than `max_teleport_share` of its inserted
  vehicles counts as too much traffic. The choice is the feasible candidate with the
  smallest error, or, when none is feasible, the one with the fewest teleports.
- **The day** (`search_day_scale`): windows cannot see queues that build over hours (on the
  whole city at 0.27 the morning held and the afternoon jammed), so the chosen scale is then
  run over the day, background alone from midnight, and lowered until the day's teleports
  stay within the bound; the windows are measured again at the scale the day allows.

Scoring (speed ratios against INRIX) is passed in by the caller (`metrics.calibration`
lives above this layer); this module runs the simulations and the search.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from robotaxi.config import WorldConfig
from robotaxi.core.errors import ConfigError
from robotaxi.world.background import DAY_S, HOURLY_VEHICLE_TRIPS, plan_bay_area_routes
from robotaxi.world.calibration_runs import BackgroundRun, run_background, thin_routes

# cities with measured speeds for the whole of their network (INRIX covers San Francisco)
CALIBRATED_CITIES = ("sf",)
# d(log ratio quotient) / d(log scale) assumed before two runs measure it: arterials on the
# whole city, AM, Plan Bay Area at scales 0.5 and 1.0 (major −0.51, minor −0.33)
ASSUMED_SLOPE = -0.4


class CalibrationError(ConfigError):
    """A calibration was asked of something it cannot calibrate (a city without INRIX data,
    an empty window, bounds in the wrong order)."""


@dataclass(frozen=True, slots=True)
class CalibrationSettings:
    """How `robotaxi calibrate` searches (times in seconds, scales as shares of Plan Bay
    Area's modelled car trips)."""

    periods: tuple[str, ...] = ("AM", "MD", "PM")
    warmup_s: float = 10800.0  # from an empty city: queues build over the morning (see README)
    window_s: float = 3600.0
    traffic_model: Literal["micro", "meso"] = "meso"
    min_scale: float = 0.05
    max_scale: float = 1.2
    start_scale: float = 0.5
    free_flow_scale: float = 0.03
    max_runs: int = 5  # candidate scales, each run over every period
    tolerance: float = math.log(1.05)  # |mean log quotient| at which the search stops
    max_teleport_share: float = 0.005
    seed: int = 7
    day: int = 1  # Tuesday
    teleport_time_s: float = 300.0
    fixed_scale: float | None = None  # evaluate this one scale, no search
    budget_s: float | None = None  # wall time after which no new candidate starts
    day_runs: int = 3  # whole-day runs that may lower the scale (0: windows only)
    day_s: float = DAY_S  # how much of the day, from midnight, those runs cover
    day_step: float = 0.8  # each failing day run tries this share of its scale next
    # a scale whose whole day held before (the city's last calibration): a failing day then
    # tries halfway (in log scale) to it rather than a step down, and the last run checks it
    known_good_scale: float | None = None

    def check(self) -> None:
        if not self.periods:
            raise CalibrationError("no periods to calibrate: give at least one of AM, MD, PM")
        if self.window_s <= 0 or self.warmup_s < 0:
            raise CalibrationError(
                f"window {self.window_s} s must be > 0 and warm-up {self.warmup_s} s ≥ 0"
            )
        if not 0 < self.min_scale <= self.start_scale <= self.max_scale:
            raise CalibrationError(
                f"scales must satisfy 0 < min {self.min_scale} ≤ start {self.start_scale} "
                f"≤ max {self.max_scale}"
            )
        if not 0 < self.free_flow_scale <= self.max_scale:
            raise CalibrationError(f"free-flow scale {self.free_flow_scale} must be in (0, max]")
        if self.fixed_scale is not None and not 0 < self.fixed_scale <= self.max_scale:
            raise CalibrationError(
                f"scale {self.fixed_scale} must be in (0, {self.max_scale}] (raise --max-scale)"
            )
        if self.max_runs < 1:
            raise CalibrationError("at least one candidate run is needed (--max-runs ≥ 1)")
        if not 0 <= self.max_teleport_share <= 1:
            raise CalibrationError("the teleport bound is a share of inserted vehicles, 0..1")
        if self.known_good_scale is not None and not self.known_good_scale > 0:
            raise CalibrationError(
                f"known good scale {self.known_good_scale} must be > 0 (0 on the command "
                "line: none)"
            )
        if self.day_runs < 0 or not 0 < self.day_s <= DAY_S or not 0 < self.day_step < 1:
            raise CalibrationError(
                f"day runs {self.day_runs} must be ≥ 0, the day's length {self.day_s:.0f} s "
                f"in (0, {DAY_S:.0f}] and its step {self.day_step} in (0, 1)"
            )


def check_city(city: str) -> None:
    """Refuse a city without measured speeds before anything runs."""
    if city not in CALIBRATED_CITIES:
        raise CalibrationError(
            f"no INRIX speeds for city {city!r}: calibration needs measured speeds over the "
            f"whole network; calibrate one of {', '.join(CALIBRATED_CITIES)}"
        )


# --- the search ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Trial:
    """One candidate scale: its error (mean log(simulated / INRIX) over the targets; > 0:
    the simulation drives too freely, more traffic is needed) and teleport share."""

    scale: float
    error: float
    teleport_share: float


@dataclass(frozen=True, slots=True)
class ScaleSearch:
    trials: tuple[Trial, ...]
    chosen: int  # index into trials
    teleport_bound_met: bool

    @property
    def best(self) -> Trial:
        return self.trials[self.chosen]


def search_scale(
    evaluate: Callable[[float], Trial],
    *,
    min_scale: float,
    max_scale: float,
    start_scale: float,
    tolerance: float,
    max_runs: int,
    max_teleport_share: float = 1.0,
    slope: float = ASSUMED_SLOPE,
    keep_going: Callable[[], bool] = lambda: True,
) -> ScaleSearch:
    """Find the scale whose error is closest to 0 among those within the teleport bound,
    evaluating at most `max_runs` scales in [min_scale, max_scale]. Deterministic in the
    values `evaluate` returns. `keep_going()` is asked before every candidate but the first
    (a wall-time budget)."""
    lo_x, hi_x = math.log(min_scale), math.log(max_scale)
    trials: list[Trial] = []
    low: Trial | None = None  # largest feasible scale with too little traffic
    high: Trial | None = None  # smallest scale with too much traffic (or teleports)
    x = min(max(math.log(start_scale), lo_x), hi_x)
    for run in range(max_runs):
        if run and not keep_going():
            break
        # three significant digits: candidates a person can read and type again
        trial = evaluate(min(max(float(f"{math.exp(x):.3g}"), min_scale), max_scale))
        trials.append(trial)
        feasible = trial.teleport_share <= max_teleport_share
        if feasible and abs(trial.error) <= tolerance:
            break
        if feasible and trial.error > 0:
            low = trial if low is None or trial.scale > low.scale else low
        elif high is None or trial.scale < high.scale:
            high = trial
        if low is not None and high is not None:
            xl, xh = math.log(low.scale), math.log(high.scale)
            if xh - xl < math.log(1.02):
                break  # bracket narrower than 2 %
            x = (xl + xh) / 2
            if high.teleport_share <= max_teleport_share and high.error < low.error:
                # regula falsi, kept off the bracket's ends
                secant = xl - low.error * (xh - xl) / (high.error - low.error)
                x = min(max(secant, xl + 0.1 * (xh - xl)), xh - 0.1 * (xh - xl))
        elif low is not None:
            step = min(max(-low.error / slope, math.log(1.25)), math.log(4.0))
            x = math.log(low.scale) + step
        else:
            assert high is not None  # the trial just made is one or the other
            if high.teleport_share > max_teleport_share:
                step = -math.log(2.0)
            else:
                step = max(min(-high.error / slope, -math.log(1.25)), -math.log(4.0))
            x = math.log(high.scale) + step
        x = min(max(x, lo_x), hi_x)
        if any(abs(math.log(t.scale) - x) < math.log(1.005) for t in trials):
            break  # pinned at a bound, or at a scale, already tried
    feasible_idx = [i for i, t in enumerate(trials) if t.teleport_share <= max_teleport_share]
    if feasible_idx:
        chosen = min(feasible_idx, key=lambda i: (abs(trials[i].error), i))
    else:
        chosen = min(
            range(len(trials)), key=lambda i: (trials[i].teleport_share, abs(trials[i].error))
        )
    return ScaleSearch(tuple(trials), chosen, bool(feasible_idx))


@dataclass(frozen=True, slots=True)
class DaySearch:
    """Whole-day runs: (scale, teleport share) in the order run, the index of the chosen
    one (the largest within the bound, else the one with the fewest teleports)."""

    trials: tuple[tuple[float, float], ...]
    chosen: int
    bound_met: bool

    @property
    def scale(self) -> float:
        return self.trials[self.chosen][0]


def search_day_scale(
    run_day: Callable[[float], float],
    start_scale: float,
    *,
    min_scale: float,
    max_runs: int,
    max_teleport_share: float,
    step: float = 0.8,
    keep_going: Callable[[], bool] = lambda: True,
    known_good: float | None = None,
) -> DaySearch:
    """The largest scale not above `start_scale` whose whole day (`run_day(scale)` → its
    teleport share) stays within the bound: `start_scale` if it holds, else steps down by
    `step` until one holds, then halves the bracket (in log scale) with the runs left. Never
    raises the scale: the windows chose `start_scale` on speeds. With `known_good` (below
    `start_scale`: a scale whose day held before), a failing day halves the bracket between
    it and the failure instead of stepping down, and while none has held the last run is
    `known_good` itself (checked, not trusted)."""
    if max_runs < 1:
        raise CalibrationError("a day search needs at least one run")
    trials: list[tuple[float, float]] = []
    held: float | None = None  # largest scale whose day held
    failed = start_scale  # smallest scale whose day did not
    scale = start_scale
    for run in range(max_runs):
        if run and not keep_going():
            break
        share = run_day(scale)
        trials.append((scale, share))
        if share <= max_teleport_share:
            held = scale
            if run == 0:
                break
        else:
            failed = min(failed, scale)
        if held is not None:
            if failed / held < 1.05:
                break
            scale = math.sqrt(held * failed)
        elif known_good is not None and min_scale <= known_good < failed:
            last = run + 2 >= max_runs or failed / known_good < 1.05
            scale = known_good if last else math.sqrt(known_good * failed)
        else:
            scale = max(scale * step, min_scale)
        scale = float(f"{scale:.3g}")
        if any(abs(math.log(t / scale)) < math.log(1.005) for t, _ in trials):
            break  # pinned at the lowest scale, or at one already run
    ok = [i for i, (_, share) in enumerate(trials) if share <= max_teleport_share]
    if ok:
        chosen = max(ok, key=lambda i: trials[i][0])
    else:
        chosen = min(range(len(trials)), key=lambda i: (trials[i][1], trials[i][0]))
    return DaySearch(tuple(trials), chosen, bool(ok))


# --- windows and runs ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeriodWindow:
    """Where in the day one period is simulated (seconds after midnight)."""

    period: str
    start_s: float  # the warm-up begins (simulation time 0)
    measure_begin_s: float
    end_s: float


def measured_window(
    period: str,
    bounds: tuple[float, float],
    window_s: float,
    warmup_s: float,
    profile: Sequence[float] = HOURLY_VEHICLE_TRIPS,
) -> PeriodWindow:
    """The measured window centred on the period's representative hour, and its warm-up."""
    lo, hi = bounds
    total = float(sum(profile))
    hours = [h for h in range(24) if lo <= h * 3600 and (h + 1) * 3600 <= hi]
    if not hours or window_s > hi - lo:
        raise CalibrationError(f"period {period} cannot hold a {window_s:.0f} s window")
    covered = sum(
        profile[h % 24] * max(0.0, min(hi, (h + 1) * 3600) - max(lo, h * 3600))
        for h in range(int(lo // 3600), math.ceil(hi / 3600))
    )
    mean_share = covered / (hi - lo) / total  # per hour
    hour = min(hours, key=lambda h: (abs(profile[h] / total - mean_share), h))
    centre = (hour + 0.5) * 3600
    begin = min(max(centre - window_s / 2, lo), hi - window_s)
    start = max(begin - warmup_s, 0.0)
    return PeriodWindow(period, start, begin, begin + window_s)


@dataclass(frozen=True, slots=True)
class PeriodRun:
    """One period at one candidate scale."""

    window: PeriodWindow
    scale: float
    run: BackgroundRun
    error: float  # mean log(simulated / INRIX) over the target facility types
    table: Any  # the scorer's rows for this period (JSON-able)


@dataclass(frozen=True, slots=True)
class Candidate:
    scale: float
    periods: tuple[PeriodRun, ...]

    @property
    def error(self) -> float:
        errors = [p.error for p in self.periods if math.isfinite(p.error)]
        return sum(errors) / len(errors) if errors else math.nan

    @property
    def inserted(self) -> int:
        return sum(p.run.inserted for p in self.periods)

    @property
    def teleports(self) -> int:
        return sum(p.run.teleports for p in self.periods)

    @property
    def teleport_share(self) -> float:
        return self.teleports / self.inserted if self.inserted else 0.0

    @property
    def wall_s(self) -> float:
        return sum(p.run.wall_s for p in self.periods)


@dataclass(frozen=True)
class CalibrationOutcome:
    settings: CalibrationSettings
    free_flow: BackgroundRun
    free_flow_window: PeriodWindow
    candidates: tuple[Candidate, ...]
    search: ScaleSearch
    routed_vehicles: Mapping[str, int] = field(default_factory=dict)  # per period, at max
    day: DaySearch | None = None
    day_runs: tuple[BackgroundRun, ...] = ()  # in the order of `day.trials`

    @property
    def chosen(self) -> Candidate:
        return self.candidates[self.search.chosen]


# (period, run, start of the warm-up as time of day) → (error, table rows)
Scorer = Callable[[str, BackgroundRun, float], tuple[float, Any]]
# (free-flow run, start of the warm-up as time of day) → None: the scorer keeps what it needs
FreeFlowSink = Callable[[BackgroundRun, float], None]
# (status line, simulated seconds done, simulated seconds planned)
Progress = Callable[[str, float, float], None]


def calibrate_background(
    net_file: Path,
    data_dir: Path,
    period_bounds: Mapping[str, tuple[float, float]],
    settings: CalibrationSettings,
    *,
    work_dir: Path,
    routes_dir: Path,
    free_flow: FreeFlowSink,
    score: Scorer,
    allowed_edges: frozenset[str] | None = None,
    progress: Progress | None = None,
) -> CalibrationOutcome:
    """Run the free-flow run and the search; `work_dir` gets every run's files."""
    settings.check()
    started, budget = time.perf_counter(), settings.budget_s
    unknown = [p for p in settings.periods if p not in period_bounds]
    if unknown:
        raise CalibrationError(f"unknown period(s) {', '.join(unknown)}: use AM, MD or PM")
    windows = {
        p: measured_window(p, period_bounds[p], settings.window_s, settings.warmup_s)
        for p in settings.periods
    }
    world = WorldConfig(
        traffic_model=settings.traffic_model,
        teleport_time_s=settings.teleport_time_s,
        background_demand="planbayarea",
    )
    run_s = {p: w.end_s - w.start_s for p, w in windows.items()}
    runs_planned = 1 if settings.fixed_scale is not None else settings.max_runs
    day_runs_planned = 1 if settings.fixed_scale is not None else settings.day_runs
    day_planned = settings.day_s * day_runs_planned if settings.day_runs > 0 else 0.0
    planned = max(run_s.values()) + runs_planned * sum(run_s.values()) + day_planned
    done = 0.0

    def report(status: str, sim_s: float = 0.0) -> None:
        if progress is not None:
            progress(status, min(done + sim_s, planned), planned)

    routes: dict[str, Path] = {}
    routed: dict[str, int] = {}
    for p, w in windows.items():
        report(f"{p}: sampling and routing trips at scale {settings.max_scale:g}")
        demand = plan_bay_area_routes(
            net_file, data_dir, w.start_s, w.end_s, out_dir=routes_dir,
            scale=settings.max_scale, seed=settings.seed, day=settings.day,
            allowed_edges=allowed_edges,
        )  # fmt: skip
        routes[p], routed[p] = demand.path, demand.vehicles

    def simulate(p: str, scale: float, folder: Path, label: str) -> BackgroundRun:
        nonlocal done
        w = windows[p]
        folder.mkdir(parents=True, exist_ok=True)
        thinned = folder / "background.rou.xml"
        thin_routes(routes[p], thinned, min(scale / settings.max_scale, 1.0), settings.seed)
        report(f"{label}: starting SUMO ({settings.traffic_model})")
        result = run_background(
            net_file, [thinned], world, seed=settings.seed, end_s=w.end_s - w.start_s,
            measure_begin_s=w.measure_begin_s - w.start_s, out_dir=folder,
            progress=lambda t: report(f"{label}: {t:.0f}/{run_s[p]:.0f} sim s", t),
        )  # fmt: skip
        thinned.unlink()  # the thinned routes are a function of the cached ones
        done += run_s[p]
        return result

    # free flow: the busiest period's window at a tiny scale covers the most streets
    ff_period = max(windows, key=lambda p: routed[p])
    ff_run = simulate(
        ff_period, settings.free_flow_scale, work_dir / "free_flow",
        f"free flow (scale {settings.free_flow_scale:g})",
    )  # fmt: skip
    free_flow(ff_run, windows[ff_period].start_s)

    candidates: list[Candidate] = []

    def evaluate(scale: float) -> Trial:
        runs = []
        for p, w in windows.items():
            folder = work_dir / f"scale-{scale:.4f}" / p
            label = f"run {len(candidates) + 1}, {p}, scale {scale:.3f}"
            result = simulate(p, scale, folder, label)
            error, table = score(p, result, w.start_s)
            runs.append(PeriodRun(w, scale, result, error, table))
        candidate = Candidate(scale, tuple(runs))
        candidates.append(candidate)
        error = candidate.error
        return Trial(scale, error if math.isfinite(error) else 0.0, candidate.teleport_share)

    if settings.fixed_scale is not None:
        trial = evaluate(settings.fixed_scale)
        ok = trial.teleport_share <= settings.max_teleport_share
        search = ScaleSearch((trial,), 0, ok)
    else:
        search = search_scale(
            evaluate, min_scale=settings.min_scale, max_scale=settings.max_scale,
            start_scale=settings.start_scale, tolerance=settings.tolerance,
            max_runs=settings.max_runs, max_teleport_share=settings.max_teleport_share,
            keep_going=lambda: budget is None or time.perf_counter() - started < budget,
        )  # fmt: skip
    day: DaySearch | None = None
    day_runs: list[BackgroundRun] = []
    if settings.day_runs > 0:
        top = search.best.scale
        report(f"the day: sampling and routing trips at scale {top:g}")
        day_routes = plan_bay_area_routes(
            net_file, data_dir, 0.0, settings.day_s, out_dir=routes_dir, scale=top,
            seed=settings.seed, day=settings.day, allowed_edges=allowed_edges,
        ).path  # fmt: skip

        def run_day(scale: float) -> float:
            nonlocal done
            folder = work_dir / f"day-{scale:.4f}"
            folder.mkdir(parents=True, exist_ok=True)
            thinned = folder / "background.rou.xml"
            kept = thin_routes(day_routes, thinned, min(scale / top, 1.0), settings.seed)
            label = f"the day at scale {scale:.3f}"
            # more teleports than the bound allows of every car in the day: it has failed
            # (teleports / inserted can only be larger), so it need not jam to midnight
            result = run_background(
                net_file, [thinned], world, seed=settings.seed, end_s=settings.day_s,
                measure_begin_s=settings.day_s - 60.0, out_dir=folder,
                progress=lambda t: report(f"{label}: {t:.0f}/{settings.day_s:.0f} sim s", t),
                max_teleports=math.floor(settings.max_teleport_share * kept),
            )  # fmt: skip
            thinned.unlink()
            done += settings.day_s
            day_runs.append(result)
            return result.teleport_share

        day = search_day_scale(
            run_day, top, min_scale=settings.min_scale,
            max_runs=1 if settings.fixed_scale is not None else settings.day_runs,
            max_teleport_share=settings.max_teleport_share, step=settings.day_step,
            keep_going=lambda: budget is None or time.perf_counter() - started < budget,
            known_good=settings.known_good_scale,
        )  # fmt: skip
        trials, chosen = search.trials, search.chosen
        if day.scale != top:  # the windows again, at the scale the day allows
            trials, chosen = (*trials, evaluate(day.scale)), len(trials)
        search = ScaleSearch(trials, chosen, day.bound_met)
    report("done", planned)
    return CalibrationOutcome(
        settings, ff_run, windows[ff_period], tuple(candidates), search, routed,
        day, tuple(day_runs),
    )  # fmt: skip


def remove_runs(work_dir: Path) -> None:
    """Drop the SUMO outputs of a calibration (edgeData files run to tens of MB)."""
    shutil.rmtree(work_dir, ignore_errors=True)
