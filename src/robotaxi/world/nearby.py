"""What is around one vehicle in SUMO right now: the in-car screen's view at fleet fidelity.

At fleet fidelity SUMO drives the robotaxi and no sensors are simulated, so "what the car
sees" is SUMO's ground truth within a radius. Reads libsumo directly (only `world` may), so
call it from the thread that steps the world, between steps.
"""

from __future__ import annotations

import math

import libsumo

from robotaxi.core import AgentKind, AgentState, WorldError
from robotaxi.world.sumo_world import SumoWorld
from robotaxi.world.traffic import sumo_heading


def vehicles_near(world: SumoWorld, vehicle_id: str, radius_m: float) -> tuple[AgentState, ...]:
    """Road users within `radius_m` (m, straight line) of `vehicle_id`, nearest first.

    Vehicles and pedestrians, excluding the vehicle itself, each with its kind (robotaxi,
    emergency, car, pedestrian), position (m, map frame), heading (rad) and speed (m/s).
    Raises `WorldError` if the world is not running or the vehicle is not in it.
    """
    if not math.isfinite(radius_m) or radius_m <= 0:
        raise WorldError(f"radius {radius_m} m must be a positive number of metres")
    try:
        cx, cy = libsumo.vehicle.getPosition(vehicle_id)
    except libsumo.TraCIException:
        raise WorldError(f"vehicle {vehicle_id} is not in the simulation") from None
    robotaxis = set(world.robotaxis)
    found: list[tuple[float, AgentState]] = []
    veh = libsumo.vehicle
    for vid in veh.getIDList():
        if vid == vehicle_id:
            continue
        x, y = veh.getPosition(vid)
        dist = math.hypot(x - cx, y - cy)
        if dist > radius_m:
            continue
        if vid in world.emergency:
            kind = AgentKind.EMERGENCY
        elif vid in robotaxis:
            kind = AgentKind.ROBOTAXI
        else:
            kind = AgentKind.CAR
        found.append(
            (
                dist,
                AgentState(
                    agent_id=vid,
                    kind=kind,
                    x=float(x),
                    y=float(y),
                    heading=sumo_heading(veh.getAngle(vid)),
                    speed=float(veh.getSpeed(vid)),
                    length=float(veh.getLength(vid)),
                    width=float(veh.getWidth(vid)),
                    lane_id=veh.getLaneID(vid),
                    lane_pos=float(veh.getLanePosition(vid)),
                ),
            )
        )
    person = libsumo.person
    for pid in person.getIDList():
        x, y = person.getPosition(pid)
        dist = math.hypot(x - cx, y - cy)
        if dist > radius_m:
            continue
        found.append(
            (
                dist,
                AgentState(
                    agent_id=pid,
                    kind=AgentKind.PEDESTRIAN,
                    x=float(x),
                    y=float(y),
                    heading=sumo_heading(person.getAngle(pid)),
                    speed=float(person.getSpeed(pid)),
                    length=0.5,
                    width=0.5,
                ),
            )
        )
    found.sort(key=lambda pair: (pair[0], pair[1].agent_id))
    return tuple(agent for _, agent in found)
