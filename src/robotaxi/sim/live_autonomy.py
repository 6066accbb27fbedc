"""The live service's autonomy wiring: the `AutonomousDriver` for the fleet cars the stack
drives, sensing as the car of `robotaxi drive` does."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from robotaxi.autonomy.planning.route import CURB_SHOULDER_M
from robotaxi.config import RunConfig
from robotaxi.config.scenario import SensorsSpec
from robotaxi.config.sensors import MicArrayConfig
from robotaxi.core import World
from robotaxi.fleet.manager import FleetManager, Vehicle
from robotaxi.map import RoadMap, RoutingGraph
from robotaxi.sim.autonomous import AutonomousDriver
from robotaxi.sim.drive import PAVEMENT_M
from robotaxi.sim.live_views import LiveServiceError
from robotaxi.sim.sensors.cameras import map_block_occluders


@dataclass(frozen=True, slots=True)
class AutonomyWiring:
    """Which cars the stack drives (the first `cars` by id), its step (s) and how they sense:
    roof microphones feeding the siren detector (`hearing`), city blocks hiding what is behind
    them from the cameras (`city_blocks`)."""

    cars: int
    step_s: float
    hearing: bool
    city_blocks: bool

    def build(
        self,
        config: RunConfig,
        road_map: RoadMap,
        graph: RoutingGraph,
        world: World,
        fleet: FleetManager,
    ) -> AutonomousDriver:
        """The driver of the chosen cars, each starting from the curb it is parked at."""
        chosen = sorted(fleet.vehicles)[: self.cars]
        sensors = SensorsSpec(microphones=self.hearing, city_blocks=self.city_blocks)
        return AutonomousDriver(
            road_map, graph, world,
            {vid: start_curb(fleet.vehicles[vid]) for vid in chosen},
            seed=config.seed, step_s=self.step_s,
            mic_config=mic_config(config) if self.hearing else None,
            occluders=(
                map_block_occluders(road_map, sidewalk_m=CURB_SHOULDER_M + PAVEMENT_M)
                if self.city_blocks
                else None
            ),
            sensors=sensors,
        )  # fmt: skip


def mic_config(config: RunConfig) -> MicArrayConfig:
    """The roof array of `robotaxi drive`, over the recorded street clips where the data
    folder has them (else synthetic background only)."""
    negatives = Path(config.map.data_dir) / "audio" / "negatives"
    return MicArrayConfig(
        background_level_db_spl=SensorsSpec().background_db_spl,
        negatives_dir=negatives if negatives.is_dir() else None,
        seed=config.seed,
    )


def start_curb(v: Vehicle) -> int:
    """The curb spot a car stands at when the run starts (`Simulation.start` parks it there)."""
    if v.target_curb is None:
        raise LiveServiceError(f"car {v.vehicle_id} was not parked at a curb spot at the start")
    return v.target_curb
