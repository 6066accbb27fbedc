"""Places: autocompleting search of the city's streets, intersections and places, and the
name of a point (reverse geocoding). Offline: built from the live city's own map."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Query

from robotaxi.map.places import MAX_QUERY_CHARS
from robotaxi.service.deps import RuntimeDep
from robotaxi.service.schemas import PlaceNamePublic, PlacePublic, error_responses

router = APIRouter(prefix="/api/places", tags=["places"])
MAX_RESULTS = 20


@router.get(
    "",
    responses=error_responses(
        422, e422=f"q empty, blank or over {MAX_QUERY_CHARS} characters, or limit out of range"
    ),
)
def search(
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
    found = runtime.gazetteer().search(q, limit=limit)
    if not found:
        return []
    coords = runtime.to_latlon(np.array([[p.x, p.y] for p in found]))
    return [
        PlacePublic(name=p.name, kind=p.kind, lat=c[0], lon=c[1])
        for p, c in zip(found, coords, strict=True)
    ]


@router.get("/reverse", responses=error_responses(422, e422="lat or lon missing or out of range"))
def reverse(
    runtime: RuntimeDep,
    lat: Annotated[float, Query(ge=-90, le=90, allow_inf_nan=False, description="degrees north")],
    lon: Annotated[float, Query(ge=-180, le=180, allow_inf_nan=False, description="degrees east")],
) -> PlaceNamePublic:
    """What a point is called: 'Valencia St & 16th St' at a corner, 'Mission St near 24th St'
    along a block, 'near <place>' off the named streets; null name far from everything."""
    name = runtime.gazetteer().reverse(runtime.to_xy(lat, lon))
    return PlaceNamePublic(
        name=name.label,
        street=name.street,
        cross_street=name.cross_street,
        place=name.place,
        distance_m=name.distance_m,
    )
