"""Shared vocabulary: ids, time, poses, enums, frozen message types, named errors."""

from robotaxi.core.errors import (
    ConfigError,
    DataNotFoundError,
    DispatchError,
    InvalidTransitionError,
    MapBuildError,
    RobotaxiError,
    ScenarioError,
    WorldError,
)
from robotaxi.core.time import MICROS_PER_S, TimePoint
from robotaxi.core.types import (
    AgentKind,
    AgentState,
    ControlCommand,
    Detection,
    Pose,
    RideRequest,
    SirenState,
    Track,
    Trajectory,
    TripEvent,
    TripState,
    VehicleCommand,
    WorldSnapshot,
)

__all__ = [
    "MICROS_PER_S",
    "AgentKind",
    "AgentState",
    "ConfigError",
    "ControlCommand",
    "DataNotFoundError",
    "Detection",
    "DispatchError",
    "InvalidTransitionError",
    "MapBuildError",
    "Pose",
    "RideRequest",
    "RobotaxiError",
    "ScenarioError",
    "SirenState",
    "TimePoint",
    "Track",
    "Trajectory",
    "TripEvent",
    "TripState",
    "VehicleCommand",
    "WorldError",
    "WorldSnapshot",
]
