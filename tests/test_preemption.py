"""Emergency pre-emption (issue 11): a signal that an ambulance with its siren on calls
turns green on the ambulance's approach and red for every other movement, after an amber
for the movements that lose their green; once the ambulance has passed, the signal goes
back to its programme. Runs SUMO on the grid city."""

from __future__ import annotations

from pathlib import Path

import pytest

from robotaxi.config import load_config

pytestmark = pytest.mark.sumo


def test_an_ambulance_gets_the_green_on_its_approach_and_the_signal_returns_to_its_plan(
    grid_map, grid_graph, tmp_path: Path
) -> None:
    import libsumo

    from robotaxi.world.sumo_world import PREEMPTION_AMBER_S, SumoWorld

    config = load_config(overrides={"world.emergency_per_hour": 40.0, "fleet.size": 1})
    world = SumoWorld(
        grid_map, grid_graph, config.world, config.fleet,
        seed=3, end_s=900.0, work_dir=tmp_path, background=False,
    )  # fmt: skip
    tls = libsumo.trafficlight
    held_green = 0  # steps at which a called signal was checked, past its amber
    released = 0  # signals checked back on their programme after the ambulance passed
    calls: dict[str, tuple[str, float]] = {}  # signal → (ambulance, first called at)
    with world:
        for _ in range(900):
            world.step()
            now = world.time.time_s
            called = {}
            for ev in sorted(world._active_evs):
                upcoming = libsumo.vehicle.getNextTLS(ev)
                if upcoming and upcoming[0][2] <= config.world.preemption_range_m:
                    tls_id, link, _dist, _state = upcoming[0]
                    called.setdefault(tls_id, (ev, link))
            for tls_id, (ev, link) in called.items():
                first = calls.setdefault(tls_id, (ev, now))[1]
                if calls[tls_id][0] != ev or now - first < PREEMPTION_AMBER_S + 1:
                    continue
                links = tls.getControlledLinks(tls_id)
                state = tls.getRedYellowGreenState(tls_id)
                approach = links[link][0][0].rsplit("_", 1)[0]
                for k, group in enumerate(links):
                    if not group:
                        continue
                    same = group[0][0].rsplit("_", 1)[0] == approach
                    assert state[k] == ("G" if same else "r"), (tls_id, k, state)
                held_green += 1
            for tls_id in [t for t in calls if t not in called]:
                # passed: the signal runs its own programme again
                del calls[tls_id]
                phases = {p.state for p in tls.getAllProgramLogics(tls_id)[0].phases}
                assert tls.getRedYellowGreenState(tls_id) in phases
                released += 1
    assert held_green >= 5
    assert released >= 2
    assert world.stats.preemptions >= released
