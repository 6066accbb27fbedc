"""`RoutingGraph.route` searches with A* and landmark bounds: a fastest route (as fast as the
whole Dijkstra tree's), jammed or faster than free flow; asked again, the same route."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
from scipy.sparse.csgraph import dijkstra

from robotaxi.map import routing


def _route_time(graph, route: tuple[str, ...]) -> float:
    return float(sum(graph.travel_time[graph.index[e]] for e in route[1:]))


@pytest.mark.parametrize("low, high", [(1.0, 60.0), (0.3, 1.0)])
def test_a_route_is_a_fastest_one_jammed_or_faster_than_free_flow(grid_graph, low, high):
    # (1, 60): a jam, every street at or above its free-flow time; (0.3, 1): streets measured
    # faster than the speed limit allows ours, taken at the floor (the landmarks' bounds)
    graph = copy.deepcopy(grid_graph)
    free = graph.travel_time.copy()
    graph.route(graph.edge_ids[0], graph.edge_ids[-1])  # the landmark tables, at free flow
    builds = graph.alt_builds
    rng = np.random.default_rng(3)
    times = {
        e: float(graph.travel_time[i] * rng.uniform(low, high))
        for i, e in enumerate(graph.edge_ids)
    }
    graph.update_travel_times(times)
    floor = free / routing.TOP_SPEED_FACTOR
    assert np.allclose(graph.travel_time, np.maximum(list(times.values()), floor))
    assert (graph.travel_time == floor).any() == (low < 1 / routing.TOP_SPEED_FACTOR)
    arcs = set(zip(graph._src.tolist(), graph._dst.tolist(), strict=True))
    n = len(graph.edge_ids)
    for a, b in rng.integers(0, n, size=(80, 2)).tolist():
        dist = dijkstra(graph._graph, directed=True, indices=a)
        route = graph.route(graph.edge_ids[a], graph.edge_ids[b])
        if a == b:
            assert route == (graph.edge_ids[a],)
            continue
        hops = [graph.index[e] for e in route]
        assert hops[0] == a and hops[-1] == b
        assert all(arc in arcs for arc in itertools.pairwise(hops))
        assert abs(_route_time(graph, route) - dist[b]) < 1e-6
    assert graph.alt_builds == builds  # the landmark tables hold for any travel times


def test_a_route_asked_again_is_the_same_until_the_travel_times_change(grid_graph):
    graph = copy.deepcopy(grid_graph)
    rng = np.random.default_rng(5)
    n = len(graph.edge_ids)
    pairs = [
        (graph.edge_ids[int(a)], graph.edge_ids[int(b)]) for a, b in rng.integers(0, n, (40, 2))
    ]
    first = [graph.route(a, b) for a, b in pairs]
    assert [graph.route(a, b) for a, b in pairs] == first  # answered from the cache
    # new travel times: every answer is searched again on them (a fresh graph agrees)
    slow = {
        e: float(graph.travel_time[i] * rng.uniform(1.0, 20.0))
        for i, e in enumerate(graph.edge_ids)
    }
    graph.update_travel_times(slow)
    fresh = copy.deepcopy(grid_graph)
    fresh.update_travel_times(slow)
    again = [graph.route(a, b) for a, b in pairs]
    assert again == [fresh.route(a, b) for a, b in pairs]
    assert again != first  # the jam moved some routes
    # a route around a street is never answered from (nor stored in) the cache
    a, b = next((a, b) for (a, b), r in zip(pairs, again, strict=True) if len(r) > 3)
    around = graph.route(a, b, avoid=again[pairs.index((a, b))][1:-1])
    assert not set(around[1:-1]) & set(again[pairs.index((a, b))][1:-1])
    assert graph.route(a, b) == again[pairs.index((a, b))]


def test_the_length_bound_holds_and_old_travel_times_give_the_old_routes(grid_graph):
    """`route_length_bound_m` is never below the summed length of `route`'s edges (jammed
    or not), and is finite here; `route_under` answers by the travel times of `weights()`
    after they changed: the routes `route` gave then, or a graph of those times gives."""
    graph = copy.deepcopy(grid_graph)
    rng = np.random.default_rng(11)
    n = len(graph.edge_ids)
    pairs = [
        (graph.edge_ids[int(a)], graph.edge_ids[int(b)]) for a, b in rng.integers(0, n, (80, 2))
    ]
    sets, slack = [], []
    for jam in (1.0, 30.0):
        times = {
            e: float(graph.travel_time[i] * rng.uniform(1.0, jam))
            for i, e in enumerate(graph.edge_ids)
        }
        graph.update_travel_times(times)
        for a, b in pairs:
            route = graph.route(a, b)
            length = sum(float(graph.length[graph.index[e]]) for e in route)
            bound = graph.route_length_bound_m(a, b)
            assert length <= bound < float("inf"), (a, b, length, bound)
            slack.append(bound / length)
        sets.append((times, [graph.route(a, b) for a, b in pairs], graph.weights()))
    assert max(slack) > 1.5  # a bound, not the length: the test can tell them apart
    (first_times, before, weights), (_, now, _) = sets
    assert before != now  # the jam moved some routes
    assert [graph.route_under(weights, a, b) for a, b in pairs] == before
    # routes not asked under the old times: searched on them, as a graph of them finds them
    old = copy.deepcopy(grid_graph)
    old.update_travel_times(first_times)
    assert [graph.route_under(weights, b, a) for a, b in pairs] == [
        old.route(b, a) for a, b in pairs
    ]
    assert [graph.route_under(graph.weights(), a, b) for a, b in pairs] == now


def test_travel_times_of_every_edge_in_order_or_not_set_the_same_graph(grid_graph):
    """The world measures every edge in the graph's order (taken as one array); any other
    mapping sets the same times. Times that are not finite and positive are ignored."""
    rng = np.random.default_rng(17)
    graph_times = grid_graph.travel_time * rng.uniform(1.0, 5.0, len(grid_graph.edge_ids))
    times = {e: float(t) for e, t in zip(grid_graph.edge_ids, graph_times, strict=True)}
    for bad, value in zip(grid_graph.edge_ids[:3], (np.nan, 0.0, -4.0), strict=True):
        times[bad] = value
    in_order, shuffled = copy.deepcopy(grid_graph), copy.deepcopy(grid_graph)
    in_order.update_travel_times(times)
    keys = list(times)
    shuffled.update_travel_times({keys[i]: times[keys[i]] for i in rng.permutation(len(keys))})
    assert np.array_equal(in_order.travel_time, shuffled.travel_time)
    assert np.array_equal(in_order.travel_time[:3], grid_graph.travel_time[:3])  # kept
    assert np.array_equal(in_order.travel_time[3:], graph_times[3:])
    assert (in_order._graph != shuffled._graph).nnz == 0


def test_a_prepared_graph_searches_without_building_anything_more(grid_graph):
    """`prepare` (a run's set-up) builds A*'s tables; routes after it build none, and give
    what an unprepared graph gives."""
    graph, fresh = copy.deepcopy(grid_graph), copy.deepcopy(grid_graph)
    graph.prepare()
    assert graph.alt_builds == 1
    pairs = list(zip(graph.edge_ids[::7], graph.edge_ids[3::5], strict=False))
    assert [graph.route(a, b) for a, b in pairs] == [fresh.route(a, b) for a, b in pairs]
    assert graph.alt_builds == 1


def test_the_cheap_length_bound_is_never_below_the_landmark_bound(grid_graph):
    """`route_length_upper_m` (fixed ways to and from the landmarks, costed at the current
    travel times) is at least `route_length_bound_m` (the fastest ways), equal at the speed
    limits, for every pair, jammed or not; `route_length_bound_m` under `weights()` taken
    before the times changed is the bound it gave then (its tables kept, or built again)."""
    graph = copy.deepcopy(grid_graph)
    rng = np.random.default_rng(5)
    n = len(graph.edge_ids)
    pairs = [
        (graph.edge_ids[int(a)], graph.edge_ids[int(b)]) for a, b in rng.integers(0, n, (300, 2))
    ]
    before: list[tuple[object, list[float]]] = []
    for jam in (1.0, 3.0, 30.0):
        times = {
            e: float(graph._floor[i] * rng.uniform(1.0, jam)) for i, e in enumerate(graph.edge_ids)
        }
        graph.update_travel_times(times)
        bounds = [graph.route_length_bound_m(a, b) for a, b in pairs]
        uppers = [graph.route_length_upper_m(a, b) for a, b in pairs]
        assert all(u >= b for u, b in zip(uppers, bounds, strict=True))
        if jam == 1.0:
            assert uppers == bounds  # the fixed ways are the fastest at the speed limits
        else:
            assert uppers != bounds  # (the test can tell them apart)
        before.append((graph.weights(), bounds))
    for weights, bounds in before:
        assert [graph.route_length_bound_m(a, b, weights) for a, b in pairs] == bounds
    graph._old_landmarks.clear()  # built again from the old times' graph: the same
    for weights, bounds in before:
        assert [graph.route_length_bound_m(a, b, weights) for a, b in pairs] == bounds
