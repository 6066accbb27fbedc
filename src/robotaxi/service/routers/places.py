"""Places: autocompleting search of the city's streets, intersections and places, and the
name of a point (reverse geocoding). Offline: built from the live city's own map."""

from __future__ import annotations

import math
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from robotaxi.fleet.manager import WALK_SPEED_MPS
from robotaxi.map.places import MAX_QUERY_CHARS, Gazetteer
from robotaxi.service.deps import RuntimeDep
from robotaxi.service.runtime import ServiceRuntime
from robotaxi.service.schemas import (
    PickupSpotPublic,
    PlaceNamePublic,
    PlacePublic,
    error_responses,
)
from robotaxi.sim.live import LiveServiceError

router = APIRouter(prefix="/api/places", tags=["places"])
MAX_RESULTS = 20
# pick-up spots: the nearest on each of a few streets, within a short walk
SPOT_RADIUS_M = 250.0  # spots this far as the crow flies are looked at …
MAX_WALK_M = 400.0  # … and offered if the walk along the streets is no longer than this
MAX_SPOTS = 8


async def _gazetteer(runtime: ServiceRuntime) -> Gazetteer:
    """The geocoder; waiting for its first build (seconds) off the event loop. Searches and
    reverse look-ups themselves take well under a millisecond, so they run on the loop: a
    thread-pool hand-off costs more than the work, and under a rider load it queued."""
    if runtime.gazetteer_ready():
        return runtime.gazetteer()
    return await run_in_threadpool(runtime.gazetteer)


@router.get(
    "",
    responses=error_responses(
        422, e422=f"q empty, blank or over {MAX_QUERY_CHARS} characters, or limit out of range"
    ),
)
async def search(
    runtime: RuntimeDep,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=MAX_QUERY_CHARS,
            pattern=r"\S",
            description="what the rider typed: a street, a corner ('Valencia & 16th'), a place",
        ),
    ],
    limit: Annotated[int, Query(ge=1, le=MAX_RESULTS, description="at most this many")] = 8,
) -> list[PlacePublic]:
    """Streets, intersections and places whose words start with the query's words, best
    first (typos of a letter or two are forgiven when nothing matches); empty if none."""
    gazetteer = await _gazetteer(runtime)
    found = gazetteer.search(q, limit=limit)
    if not found:
        return []
    coords = runtime.to_latlon(np.array([[p.x, p.y] for p in found]))
    return [
        PlacePublic(name=p.name, kind=p.kind, lat=c[0], lon=c[1])
        for p, c in zip(found, coords, strict=True)
    ]


@router.get("/reverse", responses=error_responses(422, e422="lat or lon missing or out of range"))
async def reverse(
    runtime: RuntimeDep,
    lat: Annotated[float, Query(ge=-90, le=90, allow_inf_nan=False, description="degrees north")],
    lon: Annotated[float, Query(ge=-180, le=180, allow_inf_nan=False, description="degrees east")],
) -> PlaceNamePublic:
    """What a point is called: 'Valencia St & 16th St' at a corner, 'Mission St near 24th St'
    along a block, 'near <place>' off the named streets; null name far from everything."""
    gazetteer = await _gazetteer(runtime)
    name = gazetteer.reverse(runtime.to_xy(lat, lon))
    return PlaceNamePublic(
        name=name.label,
        street=name.street,
        cross_street=name.cross_street,
        place=name.place,
        distance_m=name.distance_m,
    )


@router.get(
    "/pickup-spots",
    responses=error_responses(422, e422="lat or lon missing or out of range, or limit"),
)
def pickup_spots(
    runtime: RuntimeDep,
    lat: Annotated[float, Query(ge=-90, le=90, allow_inf_nan=False, description="degrees north")],
    lon: Annotated[float, Query(ge=-180, le=180, allow_inf_nan=False, description="degrees east")],
    limit: Annotated[int, Query(ge=1, le=MAX_SPOTS, description="at most this many")] = 4,
) -> list[PickupSpotPublic]:
    """Kerb spots near a point where a car may stop for you — the nearest on each street
    block within a short walk, nearest first, each with when a car could be there (the
    quote's pick-up ETA for that spot); empty outside the service area."""
    xy = runtime.to_xy(lat, lon)
    curbs = runtime.live.map.curbs
    if not (math.isfinite(xy[0]) and math.isfinite(xy[1])) or not runtime.inside(xy):
        return []  # far off the city's projection, or outside the service area
    found = curbs.tree.query_ball_point(np.asarray(xy, dtype=float), SPOT_RADIUS_M)
    if not found:
        return []
    idx = np.asarray(sorted(found), dtype=np.int64)
    here = (float(xy[0]), float(xy[1]))
    walking = runtime.walking()
    walk = walking.distances(here, idx.tolist(), max_m=MAX_WALK_M)
    chosen: list[tuple[int, float]] = []
    seen_edges: set[str] = set()
    for k in np.argsort(walk, kind="stable"):
        if not np.isfinite(walk[k]):
            break  # the rest are farther than a short walk along the streets
        edge = curbs.edge_ids[int(idx[k])]
        if edge in seen_edges:  # spots every 30 m along a block: offer the nearest one
            continue
        seen_edges.add(edge)
        chosen.append((int(idx[k]), float(walk[k])))
        if len(chosen) == limit:
            break
    if not chosen:
        return []
    paths = [
        runtime.to_latlon(w.path_xy) if w is not None else []
        for w in walking.walks(here, [i for i, _ in chosen], max_m=MAX_WALK_M)
    ]
    points = np.array([curbs.xy[i] for i, _ in chosen])
    coords = runtime.to_latlon(points)
    gazetteer = runtime.gazetteer()
    etas = _car_etas(runtime, [(float(p[0]), float(p[1])) for p in points])
    return [
        PickupSpotPublic(
            lat=c[0],
            lon=c[1],
            name=_with_side(
                gazetteer.reverse((float(p[0]), float(p[1]))).label, _kerb_side(runtime, i)
            ),
            walk_m=round(w, 1),
            walk_s=round(w / WALK_SPEED_MPS, 1),
            walk_path=[(round(lat, 6), round(lon, 6)) for lat, lon in path],
            car_eta_s=eta,
        )
        for (i, w), c, p, eta, path in zip(chosen, coords, points, etas, paths, strict=True)
    ]


def _car_etas(runtime: ServiceRuntime, spots_xy: list[tuple[float, float]]) -> list[float | None]:
    """When the car a quote would send could be at each spot (s): the quote's own estimate
    (the nearest free car, timed as cars drive). A spot is its own nearest kerb, so a quote
    from the spot to itself is the quote for it; None with no free car (or no live city)."""
    try:
        return [runtime.live.quote(xy, xy).pickup_eta_s for xy in spots_xy]
    except LiveServiceError:  # not started yet, or stopped: the spots are still good
        return [None] * len(spots_xy)


def _kerb_side(runtime: ServiceRuntime, curb: int) -> str:
    """Which side of its street a kerb spot is on ("north", …): the right of the lane's
    direction of travel there (both sides of a two-way street have spots)."""
    road_map = runtime.live.map
    line = road_map.lanes[road_map.curbs.lane_ids[curb]].centerline
    along = np.cumsum(np.r_[0.0, np.hypot(*np.diff(line, axis=0).T)])
    k = int(np.clip(np.searchsorted(along, road_map.curbs.pos[curb]), 1, len(line) - 1))
    dx, dy = line[k] - line[k - 1]
    right = math.degrees(math.atan2(dx, dy)) + 90.0  # compass bearing of travel, plus 90
    return ("north", "east", "south", "west")[int(((right % 360) + 45) // 90) % 4]


def _with_side(name: str | None, side: str) -> str | None:
    return None if name is None else f"{name} ({side} side)"
