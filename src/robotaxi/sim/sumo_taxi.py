"""SUMO's own taxi dispatch on our city, set up on the one runner: the fleet benchmark's peer.

The world is our `SumoWorld` (same network, background traffic, ambulance runs and command
line as `robotaxi simulate`) with SUMO's taxi device, the taxis and the riders added
(`world.sumo_taxi.sumo_taxi_setup`); no fleet of ours runs. The runner steps it through the
service window and the drain until every rider is delivered, the drain ends, or the wall-
time cap is reached; then SUMO's per-rider output is read back.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from robotaxi.config import FleetConfig, WorldConfig
from robotaxi.core import RideRequest
from robotaxi.map import RoadMap, RoutingGraph
from robotaxi.sim.callbacks import Progress, ProgressReporter
from robotaxi.sim.simulation import Callback, Simulation, Tick
from robotaxi.world.sumo_taxi import (
    SumoTaxiResult,
    SumoTaxiSettings,
    read_rider_outcomes,
    sumo_taxi_setup,
)


class _Window(Callback):
    """Wall time from the call's start to the end of the service window."""

    name = "window_wall"

    def __init__(self, wall0: float, service_s: float) -> None:
        self.wall0 = wall0
        self.service_s = service_s
        self.wall_s: float | None = None

    def on_tick(self, sim: Simulation, tick: Tick) -> None:
        if self.wall_s is None and tick.time_s + 1e-9 >= self.service_s:
            self.wall_s = time.perf_counter() - self.wall0


def run_sumo_taxi(
    road_map: RoadMap,
    graph: RoutingGraph,
    world: WorldConfig,
    fleet: FleetConfig,
    requests: Sequence[RideRequest],
    start_curbs: Sequence[int],
    *,
    seed: int,
    service_s: float,
    work_dir: Path,
    settings: SumoTaxiSettings | None = None,
    background: bool = True,
    progress: Progress | None = None,
    start_day_hour: tuple[int, float] = (0, 0.0),
    data_dir: Path | None = None,
) -> SumoTaxiResult:
    """Run SUMO's taxi dispatch for the service window (+ drain) and collect every rider.
    `start_day_hour` and `data_dir` place Plan Bay Area background traffic in the day, as
    for our own runs."""
    from robotaxi.world.sumo_world import SumoWorld  # libsumo loads only when a run needs it

    wall0 = time.perf_counter()
    settings = settings if settings is not None else SumoTaxiSettings()
    setup = sumo_taxi_setup(
        road_map, fleet, requests, start_curbs, settings, service_s=service_s, work_dir=work_dir
    )
    # SUMO's own behaviour only: our clear-the-way logic is part of what it is compared with
    peer_world = world.model_copy(update={"clear_way_for_emergency": False})
    sumo = SumoWorld(
        road_map, graph, peer_world, fleet,
        seed=seed, end_s=service_s, work_dir=work_dir, background=background, setup=setup,
        start_day_hour=start_day_hour, data_dir=data_dir,
    )  # fmt: skip
    end_s = service_s + settings.drain_s
    last_request_s = requests[-1].time.time_s if requests else 0.0
    state = {"status": "", "capped": False}

    def status(_: Simulation) -> str:
        if state["status"]:
            return str(state["status"])
        return (
            f"{sumo.person_count()} riders loaded in SUMO (waiting or riding), "
            f"{sumo.vehicle_count()} vehicles"
        )

    def done(tick: Tick) -> bool:
        now = tick.time_s
        if now + 1e-9 >= end_s:
            finished = True
        elif now + 1e-9 >= service_s and now > last_request_s and sumo.person_count() == 0:
            finished = True  # every rider delivered (or left the simulation)
        elif settings.max_wall_s is not None and time.perf_counter() - wall0 > settings.max_wall_s:
            finished = state["capped"] = True
        else:
            finished = False
        if finished:
            state["status"] = "capped" if state["capped"] else "done"
        return finished

    window = _Window(wall0, service_s)
    callbacks: list[Callback] = [window]
    if progress is not None:
        callbacks.append(ProgressReporter(progress, service_s, status))
    sim = Simulation(sumo, graph, callbacks=callbacks, step_s=world.step_s)
    with sim:
        last = sim.run(until=done)
    # SUMO writes personinfo when it closes, unfinished riders included
    riders = read_rider_outcomes(work_dir / "personinfo.xml", requests, deliver_by_s=end_s)
    return SumoTaxiResult(
        settings=settings,
        fleet_size=len(start_curbs),
        service_s=service_s,
        simulated_s=last.time_s,
        wall_s=time.perf_counter() - wall0,
        window_wall_s=window.wall_s,
        capped=bool(state["capped"]),
        riders=riders,
        teleports=sumo.stats.teleports,
        background_file=str(sumo.background_file) if sumo.background_file else None,
    )
