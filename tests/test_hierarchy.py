"""The contraction hierarchy (`robotaxi.map.hierarchy`): many-to-many times equal Dijkstra's.

Random directed graphs (one-way arcs, parts that cannot reach each other, new weights on the
same topology), the grid city's `eta_matrix` with points on the same street (loops around the
block), the same answer from a second hierarchy of the same map, and on the whole city
against scipy's Dijkstra.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from conftest import SHARED_DATA, needs_data
from fakecity import mini_city
from robotaxi.core import DispatchError
from robotaxi.map import RoutingGraph, build_network, load_map
from robotaxi.map import hierarchy as hierarchy_module
from robotaxi.map import threads as map_threads
from robotaxi.map.hierarchy import ContractionHierarchy


def random_graph(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A road-like directed graph: a ring of streets plus random shortcuts, a third of them
    one-way, and a few nodes cut off (no arc in, or none out): its arcs and those nodes."""
    rng = np.random.default_rng(seed)
    a = np.arange(n)
    src = [a, (a + 1) % n]
    dst = [(a + 1) % n, a]
    extra = rng.integers(0, n, size=(2, 2 * n))
    one_way = rng.random(2 * n) < 0.3
    src += [extra[0], extra[1][~one_way]]
    dst += [extra[1], extra[0][~one_way]]
    s, d = np.concatenate(src), np.concatenate(dst)
    cut = rng.choice(n, size=max(1, n // 20), replace=False)
    keep = (s != d) & ~np.isin(d, cut[: len(cut) // 2 + 1]) & ~np.isin(s, cut[len(cut) // 2 :])
    key = np.unique(s[keep] * n + d[keep])
    return key // n, key % n, cut


def customized(graph_seed: int, seed: int, n: int):
    """`random_graph`'s arcs and cut-off nodes, its hierarchy, a generator, random travel
    times and the hierarchy customized to them."""
    src, dst, cut = random_graph(graph_seed, n)
    hierarchy = ContractionHierarchy(n, src, dst)
    rng = np.random.default_rng(seed)
    weight = rng.uniform(1e-3, 60.0, len(src))
    return src, dst, cut, hierarchy, rng, weight, hierarchy.customize(weight)


def dijkstra_times(n: int, src, dst, weight, sources, targets) -> np.ndarray:
    graph = csr_matrix((weight, (src, dst)), shape=(n, n))
    return dijkstra(graph, directed=True, indices=sources)[:, targets]


@pytest.mark.parametrize("seed", range(8))
def test_many_to_many_equals_dijkstra_on_random_graphs(seed: int) -> None:
    n = int(np.random.default_rng(seed).integers(30, 400))
    src, dst, cut = random_graph(seed, n)
    hierarchy = ContractionHierarchy(n, src, dst)
    rng = np.random.default_rng(100 + seed)
    sources = np.concatenate([rng.integers(0, n, 25), cut])
    targets = np.concatenate([rng.integers(0, n, 17), cut])  # repeats, as pick-ups share streets
    for _ in range(3):  # new travel times on the same topology
        weight = rng.uniform(1e-3, 60.0, len(src))
        got = hierarchy.many_to_many(hierarchy.customize(weight), sources, targets)
        want = dijkstra_times(n, src, dst, weight, sources, targets)
        assert np.array_equal(np.isinf(got), np.isinf(want))
        assert np.isinf(want).any() and np.isfinite(want).any()
        ok = np.isfinite(want)
        np.testing.assert_allclose(got[ok], want[ok], rtol=1e-12, atol=1e-9)


def test_a_hierarchy_of_the_same_graph_gives_the_same_times_bit_for_bit() -> None:
    src, dst, _ = random_graph(3, 300)
    weight = np.random.default_rng(0).uniform(0.5, 30.0, len(src))
    sources, targets = np.arange(0, 300, 7), np.arange(1, 300, 11)
    one, two = ContractionHierarchy(300, src, dst), ContractionHierarchy(300, src, dst)
    assert np.array_equal(one.rank, two.rank)
    first = one.many_to_many(one.customize(weight), sources, targets)
    assert np.array_equal(first, two.many_to_many(two.customize(weight), sources, targets))


@pytest.mark.parametrize("block", [300, 40])
def test_targets_split_between_threads_give_the_same_times_bit_for_bit(
    block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep's targets split between threads (and into blocks) change no bit of the
    answer: each target's column is computed alone."""
    n = 400
    src, dst, cut, hierarchy, rng, weight, metric = customized(5, 11, n)
    sources = np.concatenate([rng.integers(0, n, 90), cut])
    targets = np.concatenate([rng.integers(0, n, 150), cut])
    monkeypatch.setattr(hierarchy_module, "TARGET_BLOCK", block)
    monkeypatch.setattr(map_threads, "threads", lambda: map_threads.MAX_THREADS)  # any machine
    monkeypatch.setattr(map_threads, "MAX_THREADS", 1)
    alone = hierarchy.many_to_many(metric, sources, targets)
    monkeypatch.setattr(map_threads, "MAX_THREADS", 2)
    split = hierarchy.many_to_many(metric, sources, targets)
    assert np.array_equal(alone, split)
    want = dijkstra_times(n, src, dst, weight, sources, targets)
    ok = np.isfinite(want)
    assert np.array_equal(np.isfinite(split), ok)
    np.testing.assert_allclose(split[ok], want[ok], rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("room", [8, 1])
def test_kept_sweeps_give_each_call_the_times_of_a_fresh_sweep_bit_for_bit(
    room: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batch after batch with most targets and sources moving on a little, the kept table
    answers each call as a sweep of that call alone would, bit for bit, whether it keeps
    adding or (little room) starts again, and after new travel times."""
    n = 400
    src, dst, cut, hierarchy, rng, weight, metric = customized(7, 3, n)
    monkeypatch.setattr(hierarchy_module, "KEPT_TARGETS_PER_CALL", room)
    monkeypatch.setattr(map_threads, "threads", lambda: map_threads.MAX_THREADS)  # any machine
    kept = hierarchy_module.KeptSweeps(hierarchy, metric)
    sources = np.concatenate([rng.integers(0, n, 60), cut])
    targets = np.concatenate([rng.integers(0, n, 80), cut])
    restarted = False
    for call in range(10):
        if call in (4, 7):  # new travel times (the last call's swept again under them, or not)
            weight = rng.uniform(1e-3, 60.0, len(src))
            metric = hierarchy.customize(weight)
            kept.reset(metric, again=call == 4)
            assert (kept.cells > 0) == (call == 4)
        before = kept.cells
        got = kept.many_to_many(sources, targets)
        restarted |= 0 < kept.cells < before
        assert np.array_equal(got, hierarchy.many_to_many(metric, sources, targets))
        want = dijkstra_times(n, src, dst, weight, sources, targets)
        assert np.array_equal(np.isfinite(got), np.isfinite(want))
        ok = np.isfinite(want)
        np.testing.assert_allclose(got[ok], want[ok], rtol=1e-12, atol=1e-9)
        # a few riders and cars change, the others stay
        targets[rng.choice(len(targets), 6, replace=False)] = rng.integers(0, n, 6)
        sources[rng.choice(len(sources), 8, replace=False)] = rng.integers(0, n, 8)
    assert restarted == (room == 1)


def test_no_sources_or_no_targets_give_an_empty_matrix() -> None:
    src, dst, _ = random_graph(1, 50)
    hierarchy = ContractionHierarchy(50, src, dst)
    metric = hierarchy.customize(np.ones(len(src)))
    assert hierarchy.many_to_many(metric, np.zeros(0, int), np.arange(3)).shape == (0, 3)
    assert hierarchy.many_to_many(metric, np.arange(4), np.zeros(0, int)).shape == (4, 0)


@pytest.mark.parametrize("seed", range(4))
def test_eta_matrix_by_hierarchy_equals_dijkstra_on_the_grid(seed: int) -> None:
    road_map, _ = mini_city()
    graph = RoutingGraph(road_map)  # its own: the shared one keeps its travel times
    rng = np.random.default_rng(seed)
    edges = list(graph.edge_ids)
    cars = [edges[i] for i in rng.integers(0, len(edges), 30)]
    pickups = [edges[i] for i in rng.integers(0, len(edges), 20)]
    pickups[:8] = cars[:8]  # same street: ahead, or once around the block
    length = graph.length
    car_pos = rng.random(30) * length[[graph.index[e] for e in cars]]
    pickup_pos = rng.random(20) * length[[graph.index[e] for e in pickups]]
    times = rng.uniform(2, 40, len(edges))
    graph.update_travel_times({e: float(t) for e, t in zip(edges, times, strict=True)})
    want = graph.eta_matrix(cars, car_pos, pickups, pickup_pos)
    got = graph.eta_matrix(cars, car_pos, pickups, pickup_pos, by="hierarchy")
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)
    # new travel times reach the hierarchy too
    graph.update_travel_times({e: 3.0 * t for e, t in zip(edges, times, strict=True)})
    want = graph.eta_matrix(cars, car_pos, pickups, pickup_pos)
    got = graph.eta_matrix(cars, car_pos, pickups, pickup_pos, by="hierarchy")
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)


def test_an_unknown_eta_method_is_a_named_error() -> None:
    _, graph = mini_city()
    edge = graph.edge_ids[0]
    with pytest.raises(DispatchError, match="dijkstra or hierarchy"):
        graph.eta_matrix([edge], np.zeros(1), [edge], np.ones(1), by="guess")  # type: ignore[arg-type]


@needs_data
@pytest.mark.sumo
def test_many_to_many_equals_dijkstra_on_the_whole_city(city_cache: Path) -> None:
    graph = RoutingGraph(load_map(build_network("sf", SHARED_DATA, city_cache)))
    rng = np.random.default_rng(5)
    edges = list(graph.edge_ids)
    cars = [edges[i] for i in rng.integers(0, len(edges), 200)]
    pickups = [edges[i] for i in rng.integers(0, len(edges), 60)]
    pickups[:5] = cars[:5]
    car_pos = np.zeros(200)
    pickup_pos = graph.length[[graph.index[e] for e in pickups]] / 2
    want = graph.eta_matrix(cars, car_pos, pickups, pickup_pos)
    got = graph.eta_matrix(cars, car_pos, pickups, pickup_pos, by="hierarchy")
    assert np.isfinite(want).mean() > 0.99
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-8)
