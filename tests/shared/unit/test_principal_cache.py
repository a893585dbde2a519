"""The token cache keeps an answer only while changes are listened to, never one read
before a change, never past the token's expiry or its maximum age, and at most its
capacity of them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from minqing.shared.identity.cache import PrincipalCache
from minqing.shared.identity.principal import TOWN, Kind, Membership, Principal, Role

NOW = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
ALICE = Principal(Kind.PERSON, "alice", "Alice", (Membership(TOWN, Role.REPORTER),))


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def live_cache(max_age: float = 60.0, capacity: int = 10) -> tuple[PrincipalCache, Ticks]:
    ticks = Ticks()
    cache = PrincipalCache(max_age, capacity, ticks)
    cache.listening(True)
    return cache, ticks


def test_an_answer_is_kept_and_given_back() -> None:
    cache, _ = live_cache()
    cache.put("h1", ALICE, None, cache.generation)
    assert cache.get("h1", NOW) == ALICE
    assert cache.get("h2", NOW) is None


def test_nothing_is_kept_unless_changes_are_listened_to() -> None:
    cache = PrincipalCache(60.0)
    cache.put("h1", ALICE, None, cache.generation)
    assert cache.get("h1", NOW) is None and len(cache) == 0
    live, _ = live_cache()
    live.put("h1", ALICE, None, live.generation)
    live.listening(False)  # the listening connection was lost: forget, and keep nothing
    assert live.get("h1", NOW) is None
    live.put("h1", ALICE, None, live.generation)
    assert len(live) == 0


def test_a_max_age_of_zero_turns_it_off() -> None:
    cache = PrincipalCache(0)
    cache.listening(True)
    assert not cache.enabled and not cache.live
    cache.put("h1", ALICE, None, cache.generation)
    assert cache.get("h1", NOW) is None


def test_a_change_forgets_everything_and_refuses_an_answer_read_before_it() -> None:
    cache, _ = live_cache()
    cache.put("h1", ALICE, None, cache.generation)
    before = cache.generation  # a request starts reading the database...
    cache.clear()  # ...a revocation is announced meanwhile...
    cache.put("h2", ALICE, None, before)  # ...so what it read is not kept
    assert cache.get("h1", NOW) is None and cache.get("h2", NOW) is None


def test_an_answer_ends_with_the_token_and_with_its_max_age() -> None:
    cache, ticks = live_cache(max_age=60.0)
    cache.put("expiring", ALICE, NOW + timedelta(minutes=5), cache.generation)
    cache.put("lasting", ALICE, None, cache.generation)
    assert cache.get("expiring", NOW + timedelta(minutes=4)) == ALICE
    assert cache.get("expiring", NOW + timedelta(minutes=5)) is None
    ticks.now = 60.5
    assert cache.get("lasting", NOW) is None


def test_the_least_recently_used_leave_first() -> None:
    cache, _ = live_cache(capacity=2)
    cache.put("a", ALICE, None, cache.generation)
    cache.put("b", ALICE, None, cache.generation)
    assert cache.get("a", NOW) == ALICE  # a used: b is the oldest now
    cache.put("c", ALICE, None, cache.generation)
    assert (cache.get("a", NOW), cache.get("b", NOW), cache.get("c", NOW)) == (ALICE, None, ALICE)
