"""Dispatch at city scale: bounded backward searches, candidate assignment, and its check.

On the mini grid city (no SUMO): the bounded search equals `eta_matrix` within its bound;
the assignment over candidates equals the full matrix's when nothing is left out, never goes
above the maximum ETA, and `assign_nearby` gives the full matrix's answer whenever it says it
is complete. Plus the pick-up ETA error metric on hand-built trips.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fakecity import mini_city
from robotaxi.core import DispatchError, RideRequest, TimePoint, TripState
from robotaxi.fleet import dispatch
from robotaxi.fleet.dispatch import BatchPolicy, NearestPolicy, assign_nearby
from robotaxi.fleet.kpis import TripRecord, pickup_eta_error, pickup_eta_errors_s, trip_kpis
from robotaxi.fleet.trips import new_trip
from robotaxi.map import RoutingGraph, routing
from robotaxi.map import threads as map_threads
from robotaxi.map.routing import PickupCandidates
from robotaxi.map.searches import bounded_search, extend_search

S = TripState


def scene(graph: RoutingGraph, seed: int, cars: int, requests: int):
    """Random cars and pick-ups on the grid; half the pick-ups share a car's street."""
    rng = np.random.default_rng(seed)
    edges = list(graph.edge_ids)
    car_edges = [edges[i] for i in rng.integers(0, len(edges), cars)]
    req_edges = [edges[i] for i in rng.integers(0, len(edges), requests)]
    shared = min(cars, requests) // 2
    req_edges[:shared] = car_edges[:shared]
    length = graph.length
    car_pos = rng.random(cars) * length[[graph.index[e] for e in car_edges]]
    req_pos = rng.random(requests) * length[[graph.index[e] for e in req_edges]]
    return rng, car_edges, car_pos, req_edges, req_pos


def full_matrix(graph, car_edges, car_pos, req_edges, req_pos, delay=None, only=None):
    eta = graph.eta_matrix(car_edges, car_pos, req_edges, req_pos)
    if delay is not None:
        eta = eta + delay[:, None]
    if only is not None:
        allowed = (only[:, None] < 0) | (only[:, None] == np.arange(eta.shape[1])[None, :])
        eta = np.where(allowed, eta, np.inf)
    return eta


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("max_s", [15.0, 45.0, 120.0, 1e9])
def test_bounded_search_equals_eta_matrix_within_the_bound(seed: int, max_s: float) -> None:
    _, graph = mini_city()
    _, car_edges, car_pos, req_edges, req_pos = scene(graph, seed, 40, 25)
    full = graph.eta_matrix(car_edges, car_pos, req_edges, req_pos)
    bounded = graph.eta_to_targets(car_edges, car_pos, req_edges, req_pos, max_s)
    inside, outside = full <= max_s - 1e-6, full > max_s + 1e-6
    assert np.all(np.isfinite(bounded[inside]))
    np.testing.assert_allclose(bounded[inside], full[inside], rtol=0, atol=1e-9)
    assert np.all(np.isinf(bounded[outside]))
    # the same-street cases (straight ahead, once around the block) are among them
    same = np.array(car_edges)[:, None] == np.array(req_edges)[None, :]
    behind = same & (req_pos[None, :] < car_pos[:, None]) & inside
    if max_s > 100:
        assert behind.any()


def test_bounded_search_follows_new_travel_times() -> None:
    road_map, _ = mini_city()
    graph = RoutingGraph(road_map)  # its own copy: the cached one is shared
    _, car_edges, car_pos, req_edges, req_pos = scene(graph, 7, 30, 20)
    graph.eta_to_targets(car_edges, car_pos, req_edges, req_pos, 60.0)  # builds the tiles
    slower = {e: 3.0 * t for e, t in zip(graph.edge_ids[::3], graph.travel_time[::3], strict=True)}
    graph.update_travel_times(slower)
    full = graph.eta_matrix(car_edges, car_pos, req_edges, req_pos)
    bounded = graph.eta_to_targets(car_edges, car_pos, req_edges, req_pos, 60.0)
    inside = full <= 60.0 - 1e-6
    np.testing.assert_allclose(bounded[inside], full[inside], rtol=0, atol=1e-9)
    assert np.all(np.isinf(bounded[full > 60.0 + 1e-6]))


def count_searches(monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], list[int]]:
    """Counters of the pick-up searches from scratch and of those taken on, as they run."""
    fresh, extended = [0], [0]
    real_search, real_extend = routing.bounded_search, routing.extend_search

    def counting(*args):  # type: ignore[no-untyped-def]
        fresh[0] += 1
        return real_search(*args)

    def counting_extend(*args):  # type: ignore[no-untyped-def]
        extended[0] += 1
        return real_extend(*args)

    monkeypatch.setattr(routing, "bounded_search", counting)
    monkeypatch.setattr(routing, "extend_search", counting_extend)
    return fresh, extended


def test_a_kept_search_taken_farther_equals_a_search_from_scratch() -> None:
    """`extend_search` goes on from where a pick-up's search stopped: the same nodes and
    times, bit for bit, as one search to the farther limit, each node's predecessor on a way
    of exactly its time."""
    _, graph = mini_city()
    indptr, indices, weight = graph._rev_csr
    scratch = routing._scratch(len(graph.edge_ids))
    rng = np.random.default_rng(3)
    stamp = 0
    for _ in range(60):
        a = int(rng.integers(len(graph.edge_ids)))
        near, far = sorted(rng.uniform(0.0, 150.0, 2).tolist())
        stamp += 3
        nodes, times, preds = bounded_search(indptr, indices, weight, a, near, scratch, stamp)
        want = bounded_search(indptr, indices, weight, a, far, scratch, stamp + 1)
        got = extend_search(
            indptr, indices, weight, graph._rev_longest, far, scratch, stamp + 2,
            nodes.astype(np.int32), times, preds.astype(np.int32), near,
        )  # fmt: skip
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        assert len(got[0]) >= len(nodes)
        # every node but the start is reached over an arc from its predecessor, on time
        at = {int(v): k for k, v in enumerate(got[0])}
        for v, t, p in zip(got[0].tolist(), got[1].tolist(), got[2].tolist(), strict=True):
            if v == a:
                assert p == -1 and t == 0.0
                continue
            arcs = range(indptr[p], indptr[p + 1])
            assert any(indices[k] == v and got[1][at[p]] + weight[k] == t for k in arcs)


def test_pickups_searched_farther_in_a_later_batch_find_what_a_fresh_search_finds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pick-up whose kept search reached less far than the next batch asks is taken on
    from there (not searched again from the start): the candidates are a fresh graph's."""
    road_map, _ = mini_city()
    searched, extended = count_searches(monkeypatch)
    graph = RoutingGraph(road_map)
    _, car_edges, car_pos, req_edges, req_pos = scene(graph, 11, 30, 12)
    for max_s in (20.0, 45.0, 90.0):
        before = searched[0]
        kept = graph.pickup_candidates(car_edges, car_pos, req_edges, req_pos, max_s)
        if max_s > 20.0:
            assert searched[0] == before  # every pick-up's search was kept, and taken on
        found = RoutingGraph(road_map).pickup_candidates(
            car_edges, car_pos, req_edges, req_pos, max_s
        )
        for name in ("origin", "target", "eta_s", "radius_s", "bound_s"):
            np.testing.assert_array_equal(getattr(kept, name), getattr(found, name))
    assert extended[0] >= 2 * len(set(req_edges))


def test_pickups_searched_again_with_the_cars_moved_find_their_nearest_cars(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pick-up's backward search is kept between batches (the cars move, the pick-ups and
    travel times do not), and the next batch starts as far as it reached: each batch's
    candidates are each pick-up's nearest cars by the full matrix, every car within the
    radius and none nearer than the bound left out, as a graph that never searched finds
    them (the same pairs within the smaller of the two radii), with far fewer searches."""
    road_map, _ = mini_city()
    fresh_searches, extended = count_searches(monkeypatch)
    graph = RoutingGraph(road_map)
    _, _, _, req_edges, req_pos = scene(graph, 3, 30, 12)
    kwargs = dict(nearest=3, first_radius_s=5.0)
    again, anew = 0, 0
    for seed in range(4):
        _, car_edges, car_pos, _, _ = scene(graph, 50 + seed, 30, 12)
        before = fresh_searches[0] + extended[0]
        kept = graph.pickup_candidates(car_edges, car_pos, req_edges, req_pos, 90.0, **kwargs)
        again += (fresh_searches[0] + extended[0] - before) if seed else 0
        assert_nearest_cars(graph, kept, car_edges, car_pos, req_edges, req_pos, 3, 90.0)
        fresh = RoutingGraph(road_map)
        before = fresh_searches[0] + extended[0]
        found = fresh.pickup_candidates(car_edges, car_pos, req_edges, req_pos, 90.0, **kwargs)
        anew += (fresh_searches[0] + extended[0] - before) if seed else 0
        within = np.minimum(kept.radius_s, found.radius_s)
        a, b = kept.dense(), found.dense()
        a[a > within[None, :]] = np.inf
        b[b > within[None, :]] = np.inf
        np.testing.assert_array_equal(a, b)
    assert again < anew / 2


@pytest.mark.parametrize("seed", [3, 4])
def test_pickup_searches_on_two_threads_find_what_one_thread_finds(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch's pick-up searches split between threads (each with scratch space of its
    own) give the same candidates, bit for bit, and keep the same searches, over batches that
    widen (a pick-up searched again farther) and new travel times."""
    road_map, _ = mini_city()
    graphs = {}
    answers: dict[int, list[PickupCandidates]] = {}
    monkeypatch.setattr(map_threads, "threads", lambda: map_threads.MAX_THREADS)  # any machine
    for threads in (1, 2):
        monkeypatch.setattr(map_threads, "MAX_THREADS", threads)
        graph = graphs[threads] = RoutingGraph(road_map)
        answers[threads] = []
        _, _, _, req_edges, req_pos = scene(graph, seed, 30, 40)
        for batch in range(3):
            _, car_edges, car_pos, _, _ = scene(graph, 60 + batch, 40, 40)
            for radius in (5.0, 40.0):  # the second batch's searches go farther
                answers[threads].append(
                    graph.pickup_candidates(
                        car_edges, car_pos, req_edges, req_pos, 150.0, nearest=4,
                        first_radius_s=radius,
                    )
                )  # fmt: skip
            if batch == 1:
                graph.update_travel_times({e: 40.0 for e in graph.edge_ids[::4]})
    assert len(graphs[2]._scratches) == 2  # a second thread searched
    for one, two in zip(answers[1], answers[2], strict=True):
        for name in ("origin", "target", "eta_s", "radius_s", "bound_s"):
            np.testing.assert_array_equal(getattr(one, name), getattr(two, name))
    balls_one, balls_two = graphs[1]._balls, graphs[2]._balls
    assert balls_one.keys() == balls_two.keys()
    for edge, ball in balls_one.items():
        assert ball.reach_s == balls_two[edge].reach_s
        np.testing.assert_array_equal(ball.edges, balls_two[edge].edges)
        np.testing.assert_array_equal(ball.ahead, balls_two[edge].ahead)


def test_a_car_given_a_pickup_drives_the_way_its_search_found_no_slower_than_a_fresh_route(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    road_map, _ = mini_city()
    graph = RoutingGraph(road_map)
    _, car_edges, car_pos, req_edges, req_pos = scene(graph, 11, 30, 12)
    cands = graph.pickup_candidates(car_edges, car_pos, req_edges, req_pos, 120.0, nearest=4)
    searched: list[tuple[int, int]] = []
    real = graph._fastest
    monkeypatch.setattr(graph, "_fastest", lambda g, a, b: searched.append((a, b)) or real(g, a, b))
    fresh = RoutingGraph(road_map)
    arcs = set(zip(graph._src.tolist(), graph._dst.tolist(), strict=True))
    pairs = {(car_edges[o], req_edges[t]) for o, t in zip(cands.origin, cands.target, strict=True)}
    pairs = {(a, b) for a, b in pairs if a != b}
    assert len(pairs) > 20
    for a, b in sorted(pairs):
        way = graph.route(a, b)
        hops = [graph.index[e] for e in way]
        assert hops[0] == graph.index[a] and hops[-1] == graph.index[b]
        assert all((x, y) in arcs for x, y in itertools.pairwise(hops))
        best = [fresh.index[e] for e in fresh.route(a, b)]
        assert graph.travel_time[hops[1:]].sum() == pytest.approx(
            fresh.travel_time[best[1:]].sum(), abs=1e-9
        )
    assert searched == []  # every way was read off a pick-up's search


@pytest.mark.parametrize("seed", range(8))
def test_candidates_are_each_pickups_nearest_cars(seed: int) -> None:
    _, graph = mini_city()
    rng, car_edges, car_pos, req_edges, req_pos = scene(graph, 100 + seed, 35, 15)
    delay = np.where(rng.random(35) < 0.3, rng.uniform(0, 60, 35), 0.0)
    only = np.where(rng.random(35) < 0.1, rng.integers(0, 15, 35), -1)
    k, max_eta = int(rng.integers(1, 5)), 90.0
    cands = graph.pickup_candidates(
        car_edges, car_pos, req_edges, req_pos, max_eta,
        origin_delay_s=delay, nearest=k, only_target=only, first_radius_s=5.0,
    )  # fmt: skip
    assert_nearest_cars(
        graph, cands, car_edges, car_pos, req_edges, req_pos, k, max_eta, delay, only
    )


def assert_nearest_cars(  # type: ignore[no-untyped-def]
    graph, cands, car_edges, car_pos, req_edges, req_pos, k, max_eta, delay=None, only=None
) -> None:
    """`cands` are each pick-up's k nearest cars by the full matrix (and every car restricted
    to it), at the full matrix's ETAs; no car left out is nearer than the bound."""
    full = full_matrix(graph, car_edges, car_pos, req_edges, req_pos, delay, only)
    kept = cands.dense()
    assert np.all(kept[np.isfinite(kept)] <= max_eta)
    np.testing.assert_allclose(kept[np.isfinite(kept)], full[np.isfinite(kept)], atol=1e-9)
    for r in range(len(req_edges)):
        reachable = np.sort(full[:, r][full[:, r] <= max_eta])
        n = min(k, len(reachable))
        np.testing.assert_allclose(np.sort(kept[:, r][np.isfinite(kept[:, r])])[:n], reachable[:n])
        if only is not None:
            for c in np.flatnonzero(only == r):  # a car restricted to a pick-up is always kept
                assert np.isfinite(kept[c, r]) or full[c, r] > max_eta
        # no car left out is nearer than the bound; none within the radius was missed
        left_out = np.isinf(kept[:, r]) & (full[:, r] <= max_eta)
        assert np.all(full[left_out, r] >= cands.bound_s[r] - 1e-9)
        assert cands.bound_s[r] <= cands.radius_s[r] + 1e-9


@pytest.mark.parametrize("seed", range(10))
def test_candidate_assignment_equals_the_full_one_when_nothing_is_left_out(seed: int) -> None:
    _, graph = mini_city()
    _, car_edges, car_pos, req_edges, req_pos = scene(graph, 200 + seed, 12, 9)
    max_eta = 80.0
    full = graph.eta_matrix(car_edges, car_pos, req_edges, req_pos)
    cands = graph.pickup_candidates(car_edges, car_pos, req_edges, req_pos, max_eta)
    batch, greedy = BatchPolicy(), NearestPolicy()

    def got(pairs: list[tuple[int, int]]) -> np.ndarray:
        """Each request's ETA (inf: no car): the grid has ties, so compare what riders get."""
        out = np.full(full.shape[1], np.inf)
        for c, r in pairs:
            out[r] = full[c, r]
        return out

    ours, best = batch.assign_candidates(cands, max_eta), batch.assign(full, max_eta)
    assert len(ours) == len(best)
    assert sum(full[c, r] for c, r in ours) == pytest.approx(sum(full[c, r] for c, r in best))
    np.testing.assert_allclose(
        got(greedy.assign_candidates(cands, max_eta)), got(greedy.assign(full, max_eta))
    )
    for policy in (batch, greedy):
        pairs = policy.assign_candidates(cands, max_eta)
        assert policy.short_of_candidates(cands, pairs, max_eta)[0].size == 0


@pytest.mark.parametrize("seed", range(8))
def test_assignment_never_takes_a_pair_above_the_maximum_eta(seed: int) -> None:
    _, graph = mini_city()
    _, car_edges, car_pos, req_edges, req_pos = scene(graph, 300 + seed, 20, 20)
    full = graph.eta_matrix(car_edges, car_pos, req_edges, req_pos)
    max_eta = float(np.percentile(full[np.isfinite(full)], 20))
    for policy in (BatchPolicy(), NearestPolicy()):
        result = assign_nearby(policy, graph, car_edges, car_pos, req_edges, req_pos, max_eta)
        assert result.pairs
        assert all(full[c, r] <= max_eta for c, r in result.pairs)
        assert len({c for c, _ in result.pairs}) == len(result.pairs)


@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize("start", ["searches", "saturated", "priced", "switch"])
def test_assign_nearby_is_the_full_answer_when_complete(
    seed: int, start: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # searches: nearest cars first, widening; saturated: the last batch was, so the full
    # matrix from the contraction hierarchy; priced: the same, solved from prices per car
    # (some cars without one); switch: a first assignment that leaves any request short goes
    # there
    if start == "switch":
        monkeypatch.setattr(dispatch, "SATURATED_SHORT", 1)
    monkeypatch.setattr(dispatch, "SATURATED_CARS_PER_REQUEST", np.inf)
    _, graph = mini_city()
    rng = np.random.default_rng(seed)
    cars, requests = int(rng.integers(2, 40)), int(rng.integers(1, 25))
    rng, car_edges, car_pos, req_edges, req_pos = scene(graph, 400 + seed, cars, requests)
    delay = np.where(rng.random(cars) < 0.3, rng.uniform(0, 60, cars), 0.0)
    only = np.where(rng.random(cars) < 0.1, rng.integers(0, requests, cars), -1)
    max_eta = float(rng.choice([40.0, 90.0, 900.0]))
    full = full_matrix(graph, car_edges, car_pos, req_edges, req_pos, delay, only)
    # a rule such as "the battery would not last": some pairs are not allowed
    forbidden = rng.random(full.shape) < 0.15

    def pair_ok(cars: np.ndarray, reqs: np.ndarray, eta: np.ndarray) -> np.ndarray:
        return ~forbidden[cars, reqs]

    full[forbidden] = np.inf
    keys = [f"car{c}" for c in range(cars)] if start == "priced" else None
    prices = {k: -float(rng.exponential(30.0)) for k in (keys or []) if rng.random() < 0.7}
    for policy in (BatchPolicy(), NearestPolicy()):
        best = policy.assign(full, max_eta)
        result = assign_nearby(
            policy, graph, car_edges, car_pos, req_edges, req_pos, max_eta,
            car_delay_s=delay, only_request=only, pair_ok=pair_ok,
            nearest=int(rng.integers(1, 4)), saturated=start in ("saturated", "priced"),
            car_keys=keys, car_prices=prices,
        )  # fmt: skip
        if start == "priced" and isinstance(policy, BatchPolicy) and cars >= requests:
            # the prices at this optimum, for every car of the batch (the highest 0)
            assert result.car_prices is not None and set(result.car_prices) == set(keys or [])
            assert max(result.car_prices.values()) == 0.0
        elif start != "priced" or isinstance(policy, NearestPolicy):
            assert result.car_prices is None
        # the ETA it assigned on is the full matrix's, delay included
        np.testing.assert_allclose(result.eta_s, [full[c, r] for c, r in result.pairs])
        assert all(full[c, r] <= max_eta for c, r in result.pairs)
        assert result.complete or start == "searches" or result.rounds == 1
        if start in ("saturated", "priced"):
            assert result.complete and result.rounds == 1
        if result.complete:
            assert len(result.pairs) == len(best)
            total = sum(full[c, r] for c, r in result.pairs)
            assert total == pytest.approx(sum(full[c, r] for c, r in best), abs=1e-6)


def test_the_check_catches_a_cut_that_misses_the_optimum() -> None:
    # two pick-ups, two cars; each pick-up kept only its nearest car (car 0 for both), so
    # the candidates serve one rider while the full matrix serves both
    full = np.array([[1.0, 2.0], [5.0, 50.0]])
    cands = PickupCandidates(
        origin=np.array([0, 0]),
        target=np.array([0, 1]),
        eta_s=np.array([1.0, 2.0]),
        radius_s=np.array([4.0, 40.0]),
        bound_s=np.array([5.0, 50.0]),
        n_origins=2,
        n_targets=2,
    )
    policy = BatchPolicy()
    pairs = policy.assign_candidates(cands, 900.0)
    assert len(pairs) == 1 < len(policy.assign(full, 900.0))
    short, radius = policy.short_of_candidates(cands, pairs, 900.0)
    assert short.size and np.all(radius >= cands.bound_s[short])


def _request(i: int) -> RideRequest:
    return RideRequest(f"r{i}", f"p{i}", "Ada", TimePoint.from_s(0.0), 0.0, 0.0, 500.0, 0.0)


def test_pickup_eta_error_counts_the_assignment_that_led_to_the_arrival() -> None:
    trip = new_trip(_request(1))
    trip.transition(S.ASSIGNED, TimePoint.from_s(10), vehicle_id="a", data={"eta_s": 100.0})
    trip.transition(S.ASSIGNED, TimePoint.from_s(20), vehicle_id="b", data={"eta_s": 50.0})
    trip.transition(S.EN_ROUTE, TimePoint.from_s(21))
    trip.transition(S.ARRIVED, TimePoint.from_s(80))
    assert pickup_eta_error(trip) == pytest.approx(10.0)  # took 60 s on a 50 s ETA

    waiting = new_trip(_request(2))
    waiting.transition(S.ASSIGNED, TimePoint.from_s(5), vehicle_id="c", data={"eta_s": 30.0})
    assert pickup_eta_error(waiting) is None  # never arrived

    early = new_trip(_request(3))
    early.transition(S.ASSIGNED, TimePoint.from_s(0), vehicle_id="d", data={"eta_s": 40.0})
    early.transition(S.EN_ROUTE, TimePoint.from_s(1))
    early.transition(S.ARRIVED, TimePoint.from_s(30))

    assert pickup_eta_errors_s([trip, waiting, early]) == pytest.approx([10.0, -10.0])
    kpis = trip_kpis([trip, waiting, early])
    assert kpis["pickup_eta_error_p50_s"] == pytest.approx(0.0)  # +10 and −10
    assert kpis["pickup_eta_error_abs_p95_s"] == pytest.approx(10.0)
    assert TripRecord.of(trip).pickup_eta_error_s == pytest.approx(10.0)  # kept on retiring
    assert trip_kpis([waiting])["pickup_eta_error_p50_s"] is None


@pytest.mark.parametrize("seed", range(40))
def test_the_gap_bound_holds_against_the_full_optimum(seed: int) -> None:
    # few candidates per pick-up, so the answer is often not the full one: whenever the
    # check gives a finite gap, the full optimum serves no more riders and its total ETA is
    # at most that fraction below the answer's
    _, graph = mini_city()
    rng = np.random.default_rng(seed)
    cars, requests = int(rng.integers(10, 40)), int(rng.integers(2, 12))
    rng, car_edges, car_pos, req_edges, req_pos = scene(graph, 600 + seed, cars, requests)
    delay = np.where(rng.random(cars) < 0.3, rng.uniform(0, 60, cars), 0.0)
    max_eta = float(rng.choice([40.0, 90.0, 900.0]))
    full = full_matrix(graph, car_edges, car_pos, req_edges, req_pos, delay)
    cands = graph.pickup_candidates(
        car_edges, car_pos, req_edges, req_pos, max_eta,
        origin_delay_s=delay, nearest=int(rng.integers(1, 3)), first_radius_s=5.0,
    )  # fmt: skip
    policy = BatchPolicy()
    pairs = policy.assign_candidates(cands, max_eta)
    check = policy.check_candidates(cands, pairs, max_eta)
    best = policy.assign(full, max_eta)
    total, optimum = (sum(full[c, r] for c, r in p) for p in (pairs, best))
    np.testing.assert_array_equal(check.short, policy.short_of_candidates(cands, pairs, max_eta)[0])
    if not check.short.size:
        assert check.gap == 0.0
    if np.isfinite(check.gap):
        assert len(pairs) == len(best)
        assert total <= optimum * (1.0 + check.gap) + 1e-6
    if len(pairs) < len(best):
        assert check.gap == np.inf


@pytest.mark.parametrize("seed", range(60))
def test_the_gap_bound_holds_on_random_matrices(seed: int) -> None:
    # each request keeps its k nearest cars of a random matrix; no car left out is nearer
    # than the next one (its bound)
    rng = np.random.default_rng(seed)
    requests = int(rng.integers(1, 20))
    cars = int(rng.integers(requests, 3 * requests + 3))
    full = rng.uniform(1.0, 100.0, (cars, requests)) * rng.uniform(0.5, 2.0, requests)
    max_eta = float(rng.choice([60.0, 120.0, 1e3]))
    k = int(rng.integers(1, min(cars, 4) + 1))
    order = np.argsort(full, axis=0, kind="stable")
    kept_cars, kept_reqs = order[:k].ravel(order="F"), np.repeat(np.arange(requests), k)
    eta = full[kept_cars, kept_reqs]
    within = eta <= max_eta
    bound = np.full(requests, max_eta)
    if k < cars:
        bound = np.minimum(full[order[k], np.arange(requests)], max_eta)
    sort = np.lexsort((kept_cars[within], eta[within], kept_reqs[within]))
    cands = PickupCandidates(
        kept_cars[within][sort], kept_reqs[within][sort], eta[within][sort],
        bound, bound, cars, requests,
    )  # fmt: skip
    policy = BatchPolicy()
    pairs = policy.assign_candidates(cands, max_eta)
    check = policy.check_candidates(cands, pairs, max_eta)
    best = policy.assign(full, max_eta)
    total, optimum = (sum(full[c, r] for c, r in p) for p in (pairs, best))
    if np.isfinite(check.gap):
        assert len(pairs) == len(best)
        assert total <= optimum * (1.0 + check.gap) + 1e-9
    if check.gap == 0.0:
        assert total == pytest.approx(optimum)


def test_the_gap_bound_is_tight_when_a_left_out_car_barely_matters() -> None:
    # one pick-up, its nearest car kept (10 s); every car left out takes at least 10.05 s:
    # the answer is the full one, proven by the relaxation even before any search
    cands = PickupCandidates(
        origin=np.array([0]),
        target=np.array([0]),
        eta_s=np.array([10.0]),
        radius_s=np.array([8.0]),
        bound_s=np.array([8.0]),
        n_origins=3,
        n_targets=1,
    )
    policy = BatchPolicy()
    pairs = policy.assign_candidates(cands, 900.0)
    check = policy.check_candidates(cands, pairs, 900.0)
    # a car left out might take 8 s instead of 10: short, at most 2/8 = 25 % off
    assert check.short.tolist() == [0]
    assert check.gap == pytest.approx(0.25)


@pytest.mark.parametrize("seed", range(20))
def test_assign_nearby_stops_within_the_allowed_gap(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a generous gap so that it stops early on the small grid: still within it of the full
    # optimum, with as many riders served
    monkeypatch.setattr(dispatch, "MAX_GAP", 0.15)
    _, graph = mini_city()
    rng = np.random.default_rng(seed)
    cars, requests = int(rng.integers(5, 40)), int(rng.integers(2, 25))
    rng, car_edges, car_pos, req_edges, req_pos = scene(graph, 700 + seed, cars, requests)
    max_eta = float(rng.choice([60.0, 900.0]))
    full = full_matrix(graph, car_edges, car_pos, req_edges, req_pos)
    policy = BatchPolicy()
    result = assign_nearby(
        policy, graph, car_edges, car_pos, req_edges, req_pos, max_eta, nearest=1
    )
    best = policy.assign(full, max_eta)
    total, optimum = (sum(full[c, r] for c, r in p) for p in (result.pairs, best))
    if result.gap_bound <= 0.15:
        assert len(result.pairs) == len(best)
        assert total <= optimum * (1.0 + result.gap_bound) + 1e-6
    if result.complete:
        assert result.gap_bound == 0.0


def test_a_batch_with_more_riders_than_cars_near_them_says_it_is_saturated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dispatch, "SATURATED_SHORT", 3)
    monkeypatch.setattr(dispatch, "SATURATED_CARS_PER_REQUEST", np.inf)
    road_map, _ = mini_city()
    graph = RoutingGraph(road_map)  # its own: the first round's radii follow earlier searches
    _, car_edges, car_pos, req_edges, req_pos = scene(graph, 5, 20, 12)
    policy = BatchPolicy()
    # a few cars for many riders: most riders get no car of their nearest, or none at all
    crowded = assign_nearby(
        policy, graph, car_edges[:3], car_pos[:3], req_edges, req_pos, 900.0, nearest=1
    )
    assert crowded.saturated and crowded.complete
    # plenty of cars for two riders: each gets one of its nearest
    easy = assign_nearby(
        policy, graph, car_edges, car_pos, req_edges[:2], req_pos[:2], 900.0, nearest=4
    )
    assert not easy.saturated and len(easy.pairs) == 2
    # told the last batch was saturated, a batch that is not says so after solving
    told = assign_nearby(
        policy, graph, car_edges, car_pos, req_edges[:2], req_pos[:2], 900.0,
        nearest=4, saturated=True,
    )  # fmt: skip
    assert not told.saturated and told.pairs == easy.pairs


def test_with_many_cars_per_rider_a_saturated_hint_still_searches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 20 cars for 2 riders: more than SATURATED_CARS_PER_REQUEST, so no full matrix
    def no_full_matrix(*args: object) -> None:
        raise AssertionError("solved on the full matrix")

    monkeypatch.setattr(dispatch, "_assign_all", no_full_matrix)
    _, graph = mini_city()
    _, car_edges, car_pos, req_edges, req_pos = scene(graph, 6, 20, 2)
    result = assign_nearby(
        BatchPolicy(), graph, car_edges, car_pos, req_edges, req_pos, 900.0, saturated=True
    )
    assert len(result.pairs) == 2 and not result.saturated


def test_pickup_candidates_take_edge_places_as_well_as_ids() -> None:
    """The cars' edges as places in `edge_ids` (how `assign_nearby` asks again while it
    widens) give what their ids give; a place off the map is refused."""
    _, graph = mini_city()
    _, car_edges, car_pos, req_edges, req_pos = scene(graph, 7, 25, 12)
    by_id = graph.pickup_candidates(car_edges, car_pos, req_edges, req_pos, 300.0, nearest=3)
    at = np.array([graph.index[e] for e in car_edges])
    by_place = graph.pickup_candidates(at, car_pos, req_edges, req_pos, 300.0, nearest=3)
    for name in ("origin", "target", "eta_s", "radius_s", "bound_s"):
        assert np.array_equal(getattr(by_id, name), getattr(by_place, name))
    with pytest.raises(DispatchError, match="edge places"):
        graph.pickup_candidates(at + len(graph.edge_ids), car_pos, req_edges, req_pos, 300.0)


@pytest.mark.parametrize("seed", range(4))
def test_cars_bound_to_another_rider_leave_a_pick_ups_search_as_it_is(seed: int) -> None:
    """A car on its way to a pick-up may keep only its own rider: crowded round another
    pick-up, such cars change nothing of that pick-up's search (its first radius comes from
    the cars it may have), so its radius and its candidates are those it has without them."""
    road_map, _ = mini_city()
    rng, car_edges, car_pos, req_edges, req_pos = scene(RoutingGraph(road_map), seed, 30, 2)
    free = len(car_edges)
    # twelve cars bound to pick-up 1, on pick-up 0's street and its neighbours'
    bound_edges = [req_edges[0]] * 6 + list(rng.choice(car_edges, 6))
    bound_pos = rng.random(12) * 5.0
    only = np.array([-1] * free + [1] * 12)
    k, max_eta = 3, 1e9
    alone = RoutingGraph(road_map).pickup_candidates(
        car_edges, car_pos, req_edges, req_pos, max_eta, nearest=k, first_radius_s=1.0,
        only_target=np.full(free, -1),
    )  # fmt: skip
    crowded = RoutingGraph(road_map).pickup_candidates(
        car_edges + bound_edges, np.concatenate([car_pos, bound_pos]), req_edges, req_pos,
        max_eta, nearest=k, first_radius_s=1.0, only_target=only,
    )  # fmt: skip
    assert crowded.radius_s[0] == alone.radius_s[0]
    mine, theirs = crowded.target == 0, alone.target == 0
    np.testing.assert_array_equal(crowded.origin[mine], alone.origin[theirs])
    np.testing.assert_array_equal(crowded.eta_s[mine], alone.eta_s[theirs])
