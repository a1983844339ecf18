"""The API throttles take a window's allowance from the shared counter in blocks of a
hundredth of the limit, and spend each block in the process: one cache round trip per
block instead of two per request, and the processes together never let through more
than the limit."""

import pytest
from django.core.cache import cache

from compliance.security import throttling
from compliance.security.throttling import BLOCKS_PER_WINDOW, _spend

COUNTER = "throttle:client:test"


def test_a_process_takes_a_hundredth_of_the_limit_at_a_time():
    assert _spend(COUNTER, 7, 20_000, 60)
    assert cache.get(f"{COUNTER}:7") == 200

    for _ in range(199):
        assert _spend(COUNTER, 7, 20_000, 60)
    assert cache.get(f"{COUNTER}:7") == 200  # all from the block, no round trip

    assert _spend(COUNTER, 7, 20_000, 60)
    assert cache.get(f"{COUNTER}:7") == 400


def test_cache_round_trips_are_one_per_block(monkeypatch):
    calls = []
    increment = throttling._increment
    monkeypatch.setattr(
        throttling, "_increment", lambda *args: calls.append(args) or increment(*args)
    )

    for _ in range(1_000):
        _spend(COUNTER, 7, 20_000, 60)

    assert len(calls) == 1_000 // 200


@pytest.mark.parametrize("processes", [2, 3])
def test_processes_together_let_through_no_more_than_the_limit(monkeypatch, processes):
    limit = 1_000  # blocks of 10
    blocks = [{} for _ in range(processes)]
    allowed = 0
    for turn in range(3 * limit):
        monkeypatch.setattr(throttling, "_blocks", blocks[turn % processes])
        allowed += _spend(COUNTER, 7, limit, 60)

    assert limit - (processes - 1) * limit // BLOCKS_PER_WINDOW <= allowed <= limit


def test_a_limit_not_divisible_into_blocks_is_kept_exactly():
    allowed = sum(_spend(COUNTER, 7, 250, 60) for _ in range(300))  # blocks of 2

    assert allowed == 250


def test_a_small_limit_is_counted_request_by_request():
    assert [_spend(COUNTER, 7, 3, 60) for _ in range(4)] == [True, True, True, False]
    assert cache.get(f"{COUNTER}:7") == 4


def test_a_new_window_starts_a_new_allowance():
    for _ in range(3):
        _spend(COUNTER, 7, 3, 60)
    assert not _spend(COUNTER, 7, 3, 60)

    assert _spend(COUNTER, 8, 3, 60)


def test_a_block_held_under_one_limit_is_not_spent_under_another():
    assert _spend(COUNTER, 7, 20_000, 60)  # holds 199 more

    assert [_spend(COUNTER, 7, 1, 60) for _ in range(2)] == [False, False]  # 200 taken already
