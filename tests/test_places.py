"""The offline geocoder: search and reverse geocoding on the generated grid city's generated
street names, and round trips on the real street names of sf-mission and all of SF."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA, needs_data
from robotaxi.core.errors import MapBuildError
from robotaxi.map import RoadMap, build_network, load_map
from robotaxi.map.places import (
    PLACE_KINDS,
    Gazetteer,
    PlaceSource,
    read_places,
    street_label,
    tokens,
)

# corners of the Mission, both in the sf-mission extract and in the whole city
MISSION_CORNERS = (
    "Valencia St & 16th St",
    "Mission St & 24th St",
    "Guerrero St & 20th St",
    "Dolores St & 18th St",
    "Folsom St & 26th St",
    "Cesar Chavez St & Mission St",
)
# corners elsewhere in the city: only in `sf`
CITY_CORNERS = (
    "Castro St & Market St",
    "Geary Blvd & Masonic Ave",
    "Broadway & Columbus Ave",
    "Irving St & 9th Ave",
)


def round_trip(g: Gazetteer, name: str) -> None:
    """Searching a corner finds it first; the name of its point is that corner again."""
    found = g.search(name, limit=3)
    assert found and found[0].name == name and found[0].kind == "intersection", (name, found)
    back = g.reverse((found[0].x, found[0].y))
    assert back.label == name, (name, back)
    a, b = name.split(" & ")
    assert {back.street, back.cross_street} == {a, b}


def test_street_names_read_as_riders_write_them() -> None:
    assert street_label("Cesar Chavez Street") == "Cesar Chavez St"
    assert street_label("South Van Ness Avenue") == "South Van Ness Ave"
    assert street_label("19th Avenue, CA 1") == "19th Ave"
    assert street_label("Avenue") == "Avenue"  # a one-word name stays whole
    assert street_label("") == ""
    assert tokens("Cañada  & 16TH st.") == ["canada", "&", "16th", "st"]


def test_places_file_is_valid_and_states_its_source() -> None:
    places = read_places()
    assert len(places) >= 60
    assert {p.kind for p in places} == set(PLACE_KINDS)
    assert all(37.70 < p.lat < 37.82 and -122.52 < p.lon < -122.38 for p in places)
    assert len({p.name for p in places}) == len(places)
    text = Path(read_places.__defaults__[0]).read_text()  # type: ignore[index]
    assert "Source:" in text


def test_a_bad_places_file_is_refused_with_what_to_fix(tmp_path: Path) -> None:
    bad = tmp_path / "places.yaml"
    bad.write_text("places:\n  - {name: X, kind: castle, lat: 1, lon: 2}\n")
    with pytest.raises(MapBuildError, match="kind must be one of"):
        read_places(bad)
    bad.write_text("places:\n  - {name: X}\n")
    with pytest.raises(MapBuildError, match="needs name, kind, lat and lon"):
        read_places(bad)


@pytest.mark.sumo
def test_grid_city_has_generated_names_and_no_borrowed_places(grid_map: RoadMap) -> None:
    g = Gazetteer.from_map(grid_map)
    streets = {p.name for p in g.entries if p.kind == "street"}
    # netgenerate's 11 × 11 grid: lettered streets, numbered avenues, boulevards on arterials
    assert {"A St", "K St", "C Blvd", "1st Ave", "11th Ave", "3rd Blvd"} <= streets
    assert len(streets) == 22
    assert g.count("intersection") == 121
    # it only borrows the Mission's coordinates: San Francisco's places are not on it
    assert not [p for p in g.entries if p.kind in PLACE_KINDS]
    for name in ("C Blvd & 1st Ave", "A St & 3rd Blvd", "E St & 4th Ave", "K St & 11th Ave"):
        round_trip(g, name)
    assert g.search("1st ave & c") == g.search("c 1st")  # any order, joiners ignored
    corner = g.search("E St & 4th Ave", limit=1)[0]
    along = g.reverse((corner.x + 120.0, corner.y))  # a block's third east of the corner
    assert along.label == "E St near 4th Ave"
    assert g.reverse((corner.x + 5_000.0, corner.y)).label is None  # far off the map


@pytest.mark.sumo
def test_search_is_bounded_deterministic_and_forgives_typos(grid_map: RoadMap) -> None:
    g = Gazetteer.from_map(grid_map)
    assert g.search("", limit=5) == [] and g.search("&&", limit=5) == []
    assert g.search("zzzz") == []
    assert len(g.search("a", limit=5)) == 5
    assert g.search("st", limit=20) == g.search("st", limit=20)
    assert Gazetteer.from_map(grid_map).entries == g.entries
    assert g.search("blvd", limit=1)[0].name == "C Blvd"  # streets before their corners
    assert g.search("avnue", limit=1)[0].kind == "street"  # one letter missing


@pytest.mark.sumo
def test_custom_places_are_searched_and_name_nearby_points(grid_map: RoadMap) -> None:
    corner = Gazetteer.from_map(grid_map).search("E St & 4th Ave", limit=1)[0]
    lon, lat = grid_map.projection.xy_to_lonlat(np.array([corner.x]), np.array([corner.y]))
    fountain = PlaceSource("Grid Fountain", "landmark", float(lat[0]), float(lon[0]))
    far = PlaceSource("Far Away Tower", "landmark", 0.0, 0.0)  # not on this map: dropped
    g = Gazetteer.from_map(grid_map, [fountain, far])
    assert [p.name for p in g.search("fount")] == ["Grid Fountain"]
    assert g.search("tower") == []
    assert g.reverse((corner.x, corner.y)).place == "Grid Fountain"


@pytest.mark.sumo
def test_a_network_without_street_names_is_named_by_its_places(grid_map: RoadMap) -> None:
    # like sf-ne (MATSim links carry no names): no streets, no corners, places still found
    unnamed = replace(grid_map, edges={k: replace(e, name="") for k, e in grid_map.edges.items()})
    corner = Gazetteer.from_map(grid_map).search("E St & 4th Ave", limit=1)[0]
    lon, lat = grid_map.projection.xy_to_lonlat(np.array([corner.x]), np.array([corner.y]))
    g = Gazetteer.from_map(unnamed, [PlaceSource("Grid Fountain", "park", lat[0], lon[0])])
    assert len(g) == 1 and g.search("e st") == []
    assert g.reverse((corner.x + 50.0, corner.y)).label == "near Grid Fountain"
    assert g.reverse((corner.x + 5_000.0, corner.y)).label is None


@pytest.fixture(scope="module")
def mission(map_cache: Path) -> Gazetteer:
    return Gazetteer.from_map(load_map(build_network("sf-mission", SHARED_DATA, map_cache)))


@needs_data
@pytest.mark.sumo
def test_round_trips_on_real_mission_streets(mission: Gazetteer) -> None:
    assert mission.count("street") > 300 and mission.count("intersection") > 1000
    for name in MISSION_CORNERS:
        round_trip(mission, name)
    assert mission.search("16th and valencia", limit=1)[0].name == "Valencia St & 16th St"
    assert mission.search("valensia", limit=1)[0].name == "Valencia St"  # a typo
    # places of the file that stand in the Mission
    park = mission.search("dolores park", limit=1)[0]
    assert (park.name, park.kind) == ("Mission Dolores Park", "park")
    assert mission.search("24th bart", limit=1)[0].name == "24th St Mission BART"
    # a point on Mission St between 23rd and 24th: along the block, not at a corner
    a = mission.search("Mission St & 23rd St", limit=1)[0]
    b = mission.search("Mission St & 24th St", limit=1)[0]
    mid = mission.reverse(((a.x + b.x) / 2, (a.y + b.y) / 2))
    assert mid.street == "Mission St" and mid.label in (
        "Mission St near 23rd St",
        "Mission St near 24th St",
    )
    assert mid.place == "24th St Mission BART"


@needs_data
@pytest.mark.sumo
def test_round_trips_on_the_whole_city_and_search_is_fast(city_cache: Path) -> None:
    city = Gazetteer.from_map(load_map(build_network("sf", SHARED_DATA, city_cache)))
    assert city.count("street") > 1500 and city.count("intersection") > 6000
    assert city.count("station") >= 10 and city.count("hospital") >= 8
    for name in MISSION_CORNERS + CITY_CORNERS:
        round_trip(city, name)
    assert city.search("columbus & broadway", limit=1)[0].name == "Broadway & Columbus Ave"
    # single letters (the largest candidate sets), corners, places, typos
    queries = ["s", "1", "m", "mission", "valencia & 16", "geary mas", "van ness", "golden gate"]
    queries += ["bart", "hospital", "valensia", "marekt st", "19th ave", "castro & market"]
    times = []
    for _ in range(5):
        for q in queries:
            t0 = time.perf_counter()
            city.search(q)
            times.append(time.perf_counter() - t0)
    assert float(np.percentile(times, 99)) < 0.050  # the bound: search p99 < 50 ms
