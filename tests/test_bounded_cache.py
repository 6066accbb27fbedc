"""The service runtime's caches are shared by the request threads: bounded and locked."""

from __future__ import annotations

import threading

from robotaxi.service.runtime import BoundedCache


def test_many_threads_never_overfill_the_cache_and_always_read_what_was_put() -> None:
    cache: BoundedCache[int, int] = BoundedCache(limit=500)
    sizes: list[int] = []
    wrong: list[tuple[int, int]] = []

    def work(offset: int) -> None:
        for k in range(5000):
            key = offset * 10_000 + k
            cache.put(key, key * 2)
            got = cache.get(key)
            if got is not None and got != key * 2:
                wrong.append((key, got))
            if k % 100 == 0:
                sizes.append(len(cache))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong
    assert max(sizes) <= 500 and len(cache) <= 500


def test_a_full_cache_starts_afresh_but_keeps_updating_a_present_key() -> None:
    cache: BoundedCache[str, int] = BoundedCache(limit=2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("b", 3)  # present: an update, not a new entry
    assert cache.get("a") == 1 and cache.get("b") == 3
    cache.put("c", 4)  # full: starts afresh
    assert cache.get("a") is None and cache.get("c") == 4 and len(cache) == 1
