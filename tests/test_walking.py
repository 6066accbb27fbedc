"""Walking along the streets (`map.walking`) on the mini city: never shorter than as the crow
flies, round the block where the crow would cut through it, straight along the same street,
and the way drawn is as long as the walk."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fakecity import mini_city
from robotaxi.map.walking import WalkingGraph, walkable


@pytest.fixture(scope="module")
def walking() -> WalkingGraph:
    road_map, _ = mini_city()
    return WalkingGraph(road_map)


def _drawn_m(path: np.ndarray) -> float:
    return float(np.sum(np.hypot(*np.diff(path, axis=0).T)))


def test_walks_follow_the_streets_and_are_drawn_as_long_as_they_are(
    walking: WalkingGraph,
) -> None:
    curbs = walking.map.curbs
    rng = np.random.default_rng(5)
    ratios = []
    for _ in range(40):
        i = int(rng.integers(len(curbs)))
        xy = (float(curbs.xy[i, 0] + rng.normal(0, 40)), float(curbs.xy[i, 1] + rng.normal(0, 40)))
        crow = np.hypot(*(curbs.xy - np.array(xy)).T)
        near = np.flatnonzero(crow < 400)
        dist = walking.distances(xy, near.tolist())
        walks = walking.walks(xy, near.tolist())
        for c, d, walk in zip(near, dist, walks, strict=True):
            assert walk is not None and walk.length_m == pytest.approx(d)
            assert d >= crow[c] - 1e-6  # never through a wall
            assert np.allclose(walk.path_xy[0], xy) and np.allclose(walk.path_xy[-1], curbs.xy[c])
            assert _drawn_m(walk.path_xy) == pytest.approx(d, rel=1e-9)
            ratios.append(d / max(crow[c], 1.0))
    # some spots lie across a block: round it, far longer than the crow's line
    assert max(ratios) > 1.8
    assert np.median(ratios) < 1.6


def test_along_the_same_street_the_walk_is_the_stretch_between(walking: WalkingGraph) -> None:
    curbs = walking.map.curbs
    edge = curbs.edge_ids[0]
    on_it = [i for i in range(len(curbs)) if curbs.edge_ids[i] == edge]
    assert len(on_it) >= 3
    a, b = on_it[0], on_it[-1]
    xy = (float(curbs.xy[a, 0]), float(curbs.xy[a, 1]))
    (d,) = walking.distances(xy, [b])
    # kerb spots stand half a lane right of the lane's centre line: onto it and off again
    width = walking.map.lanes[curbs.lane_ids[a]].width
    assert d == pytest.approx(abs(curbs.pos[b] - curbs.pos[a]) + width, abs=0.5)


def test_a_spot_beyond_the_longest_walk_is_none_and_freeways_are_not_walked(
    walking: WalkingGraph,
) -> None:
    curbs = walking.map.curbs
    xy = (float(curbs.xy[0, 0]), float(curbs.xy[0, 1]))
    far = int(np.argmax(np.hypot(*(curbs.xy - np.array(xy)).T)))
    assert walking.walks(xy, [far], max_m=300.0) == [None]
    assert np.isinf(walking.distances(xy, [far], max_m=300.0)[0])
    assert walking.walks(xy, [far])[0] is not None  # within the default 2 km
    street = next(iter(walking.map.edges.values()))
    assert walkable(dataclasses.replace(street, internal=False, road_class="highway.residential"))
    for road_class in ("highway.motorway", "highway.motorway_link", "highway.trunk"):
        assert not walkable(dataclasses.replace(street, internal=False, road_class=road_class))
