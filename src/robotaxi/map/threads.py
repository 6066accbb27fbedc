"""Up to two threads for the map's compiled searches (they hold no GIL): the pick-up searches
of a dispatch batch and the contraction hierarchy's many-to-many sweep, split so that each
piece is computed alone (the same answer, bit for bit, on one thread or two).

Two, not more: this project's machines have two cores, and SUMO steps on one of them between
batches, not during them."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")

MAX_THREADS = 2


def threads() -> int:
    """Threads a split may use: MAX_THREADS, at most the cores this process may run on."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(MAX_THREADS, cores or 1))


@cache
def pool() -> ThreadPoolExecutor:
    """The shared pool (created at first use)."""
    return ThreadPoolExecutor(MAX_THREADS, thread_name_prefix="map-search")


os.register_at_fork(after_in_child=pool.cache_clear)  # a forked child has none of its threads


def run_split(work: Callable[[Any], T], pieces: Sequence[Any]) -> list[T]:
    """`work` on each piece, in order: on the pool's threads when there are several pieces,
    in this thread when there is one."""
    if len(pieces) > 1:
        return list(pool().map(work, pieces))
    return [work(piece) for piece in pieces]
