"""Cluster membership and work partitioning (§15.1), driven by a fake clock."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from mirrorbits.cluster import ClusterService, new_node_id, partition
from mirrorbits.store import keys
from mirrorbits.store.errors import DatabaseNotReady
from tests.logcapture import captured_log


class FakeRedis:
    """Records PUBLISH, answers SMEMBERS MIRRORS; ``hang`` keeps PUBLISH unanswered."""

    def __init__(self, *members: str) -> None:
        self.members = set(members)
        self.published: list[tuple[str, str]] = []
        self.hang = False
        self.publish_error: Exception | None = None

    def publish(self, channel: str, message: str) -> Deferred[int]:
        self.published.append((channel, message))
        if self.hang:
            return Deferred()
        if self.publish_error is not None:
            return fail(self.publish_error)
        return succeed(1)

    def smembers(self, key: str) -> Deferred[set[str]]:
        assert key == keys.MIRRORS
        return succeed(set(self.members))


class Setup:
    """A ClusterService on a Clock, a fake Redis and a changeable DB number."""

    def __init__(self, node_id: str = "b-00002", *members: str) -> None:
        self.clock = Clock()
        self.redis: FakeRedis | None = FakeRedis(*members)
        self.db = 0
        self.service = ClusterService(self._client, lambda: self.db, self.clock, node_id)

    def _client(self) -> FakeRedis:
        if self.redis is None:
            raise DatabaseNotReady("database not ready")
        return self.redis

    def messages(self) -> list[str]:
        assert self.redis is not None
        return [m for channel, m in self.redis.published if channel == keys.CHANNEL_CLUSTER]


# --- node IDs -------------------------------------------------------------------------------


def test_node_id_is_hostname_dash_five_digits_below_32000() -> None:
    rng = random.Random(7)
    numbers = []
    for _ in range(20000):
        node_id = new_node_id("mirror.example.org", rng)
        match = re.fullmatch(r"mirror\.example\.org-([0-9]{5})", node_id)
        assert match, node_id
        numbers.append(int(match.group(1)))
    assert 0 <= min(numbers) < 1000
    assert 31000 < max(numbers) <= 31999


def test_node_id_is_zero_padded() -> None:
    rng = random.Random(1)
    ids = [new_node_id("h", rng) for _ in range(5000)]
    short = [i for i in ids if int(i[2:]) < 1000]
    assert short and all(len(i) == len("h-01234") for i in short)


def test_node_id_without_hostname_is_unknown() -> None:
    assert re.fullmatch(r"unknown-[0-9]{5}", new_node_id("", random.Random(3)))


def test_node_id_depends_on_the_given_generator() -> None:
    assert new_node_id("h", random.Random(5)) == new_node_id("h", random.Random(5))


# --- partition ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ids", "nodes", "expected"),
    [
        ([1, 2, 3], 2, [{1, 2}, {3}]),  # 1.5 rounds up to 2
        ([10, 20], 3, [{10}, {20}, set()]),  # 0.67 -> 1: the last node gets nothing
        ([5, 6, 7, 8, 9], 2, [{5, 6, 7}, {8, 9}]),  # 2.5 -> 3 (half up, not to even)
        ([7], 3, [set(), set(), {7}]),  # 0.33 -> 0: the last node takes everything
        (list(range(1, 11)), 3, [{1, 2, 3}, {4, 5, 6}, {7, 8, 9, 10}]),
        (list(range(1, 8)), 4, [{1, 2}, {3, 4}, {5, 6}, {7}]),  # 1.75 -> 2
        (list(range(1, 12)), 4, [{1, 2, 3}, {4, 5, 6}, {7, 8, 9}, {10, 11}]),  # 2.75 -> 3
        (list(range(1, 10)), 4, [{1, 2}, {3, 4}, {5, 6}, {7, 8, 9}]),  # 2.25 -> 2
        ([100, 9, 10], 2, [{9, 10}, {100}]),  # numeric order, not string order
        ([3, 1, 3, 2, 1], 2, [{1, 2}, {3}]),  # duplicates count once
        ([], 3, [set(), set(), set()]),
        ([4, 5], 1, [{4, 5}]),
    ],
)
def test_partition_examples(ids: list[int], nodes: int, expected: list[set[int]]) -> None:
    assert [set(partition(ids, nodes, i)) for i in range(nodes)] == expected


def test_partition_with_no_node_count_gives_everything() -> None:
    assert partition([3, 1], 0, 0) == frozenset({1, 3})


def test_partition_of_a_node_outside_the_cluster_is_empty() -> None:
    assert partition([1, 2, 3], 2, 2) == frozenset()
    assert partition([1, 2, 3], 2, -1) == frozenset()


def test_partition_accepts_any_iterable() -> None:
    assert partition(iter([2, 1]), 2, 0) == frozenset({1})


@given(st.sets(st.integers(min_value=1, max_value=10**6), max_size=200),
       st.integers(min_value=1, max_value=40))
def test_partitions_are_disjoint_and_cover_every_id(ids: set[int], nodes: int) -> None:
    parts = [partition(ids, nodes, i) for i in range(nodes)]
    assert sum(len(p) for p in parts) == len(ids)
    assert frozenset().union(*parts) == ids
    for part in parts:  # each node handles one run of consecutive IDs
        ordered = sorted(ids)
        if part:
            first = ordered.index(min(part))
            assert set(ordered[first:first + len(part)]) == part


# --- announces received ---------------------------------------------------------------------


def test_a_new_announcer_joins_and_is_logged_once() -> None:
    s = Setup("b-00002")
    assert s.service.nodes == ("b-00002",)
    assert s.service.index == 0
    with captured_log("mirrorbits.cluster") as logs:
        s.service.on_announce("HELLO0 a-00001")
        s.service.on_announce("HELLO0 a-00001")
        s.service.on_announce("HELLO0 c-00003")
    assert s.service.nodes == ("a-00001", "b-00002", "c-00003")
    assert s.service.index == 1
    assert logs == ["-> Node a-00001 joined the cluster", "-> Node c-00003 joined the cluster"]


def test_own_announce_is_not_logged_and_changes_nothing() -> None:
    s = Setup("b-00002")
    with captured_log("mirrorbits.cluster") as logs:
        s.service.on_announce("HELLO0 b-00002")
    assert logs == []
    assert s.service.nodes == ("b-00002",)


def test_a_node_silent_for_more_than_5_seconds_leaves() -> None:
    s = Setup("b-00002")
    s.service.on_announce("HELLO0 a-00001")
    s.clock.advance(5.0)
    with captured_log("mirrorbits.cluster") as logs:
        s.service.on_announce("HELLO0 b-00002")  # exactly 5 s: not stale yet
        assert s.service.nodes == ("a-00001", "b-00002")
        s.clock.advance(0.01)
        s.service.on_announce("HELLO0 b-00002")
    assert s.service.nodes == ("b-00002",)
    assert s.service.index == 0
    assert logs == ["<- Node a-00001 left the cluster"]


def test_each_announce_renews_a_node() -> None:
    s = Setup("b-00002")
    s.service.on_announce("HELLO0 a-00001")
    s.clock.advance(4.0)
    s.service.on_announce("HELLO0 a-00001")
    s.clock.advance(4.0)
    s.service.on_announce("HELLO0 b-00002")
    assert s.service.nodes == ("a-00001", "b-00002")


def test_stale_nodes_are_dropped_before_the_announcer_is_added() -> None:
    s = Setup("b-00002")
    s.service.on_announce("HELLO0 a-00001")
    s.clock.advance(6.0)
    with captured_log("mirrorbits.cluster") as logs:
        s.service.on_announce("HELLO0 a-00001")
    assert logs == ["<- Node a-00001 left the cluster", "-> Node a-00001 joined the cluster"]
    assert s.service.nodes == ("a-00001", "b-00002")


@pytest.mark.parametrize(
    "message",
    ["HELLO1 a-00001", "HELLO01 a-00001", "HELLO10 a-00001", "hello0 a-00001",
     "HELLO0a-00001", "HELLO a-00001", " HELLO0 a-00001", "BYE0 a-00001", ""],
)
def test_messages_of_other_databases_or_shapes_are_ignored(message: str) -> None:
    s = Setup("b-00002")
    with captured_log("mirrorbits.cluster") as logs:
        s.service.on_announce(message)
    assert s.service.nodes == ("b-00002",)
    assert logs == []


@pytest.mark.parametrize(
    "message",
    ["HELLO0 ", "HELLO0 a b", "HELLO0  a-00001", "HELLO0 a-00001 ", "HELLO0 a\tb",
     "HELLO0 a-00001\n", "HELLO0 a\x00b"],
)
def test_empty_or_odd_node_ids_are_ignored(message: str) -> None:
    s = Setup("b-00002")
    s.service.on_announce(message)
    assert s.service.nodes == ("b-00002",)


def test_the_database_number_selects_the_cluster() -> None:
    s = Setup("b-00002")
    s.db = 12
    s.service.on_announce("HELLO1 a-00001")
    s.service.on_announce("HELLO12 c-00003")
    assert s.service.nodes == ("b-00002", "c-00003")


def test_a_database_change_on_reload_switches_cluster() -> None:
    s = Setup("b-00002")
    s.service.on_announce("HELLO0 a-00001")
    s.db = 1
    with captured_log("mirrorbits.cluster") as logs:
        s.service.on_announce("HELLO0 c-00003")
        assert s.service.nodes == ("b-00002",)
        s.service.on_announce("HELLO1 d-00004")
    assert s.service.nodes == ("b-00002", "d-00004")
    assert logs == ["<- Node a-00001 left the cluster", "-> Node d-00004 joined the cluster"]


def test_nodes_are_sorted_in_string_order() -> None:
    s = Setup("web2-00100")
    for peer in ("web10-00001", "web9-31000", "Web3-00000", "web2-00099"):
        s.service.on_announce(f"HELLO0 {peer}")
    assert s.service.nodes == ("Web3-00000", "web10-00001", "web2-00099", "web2-00100",
                               "web9-31000")
    assert s.service.index == 3


# --- announces sent, mirror list, handles() --------------------------------------------------


def test_announces_every_interval_starting_at_once() -> None:
    s = Setup("b-00002", "1")
    s.service.startService()
    try:
        assert s.messages() == ["HELLO0 b-00002"]
        s.clock.advance(1.0)
        s.db = 3
        s.clock.advance(1.0)
        assert s.messages() == ["HELLO0 b-00002", "HELLO0 b-00002", "HELLO3 b-00002"]
    finally:
        s.service.stopService()
    s.clock.advance(5.0)
    assert len(s.messages()) == 3


def test_mirror_list_comes_from_the_mirrors_set() -> None:
    s = Setup("b-00002", "3", "1", "x", "", "2.5", "12")
    s.service.startService()
    try:
        assert s.service.mirror_ids == (1, 3, 12)
        assert s.redis is not None
        s.redis.members = {"4"}
        s.clock.advance(1.0)
        assert s.service.mirror_ids == (4,)
    finally:
        s.service.stopService()


def test_handles_everything_when_alone() -> None:
    s = Setup("b-00002", "1", "2", "3")
    s.service.startService()
    try:
        assert all(s.service.handles(m) for m in (1, 2, 3, 99))
    finally:
        s.service.stopService()


def test_handles_with_two_then_three_nodes() -> None:
    s = Setup("b-00002", "1", "2", "3", "4", "5")
    s.service.startService()
    try:
        s.service.on_announce("HELLO0 a-00001")  # we are second of two: chunk round(2.5) = 3
        assert [m for m in range(1, 7) if s.service.handles(m)] == [4, 5]
        assert not s.service.handles(99)  # not in the list yet: not alone, so not ours
        s.service.on_announce("HELLO0 c-00003")  # second of three: chunk round(1.67) = 2
        assert [m for m in range(1, 7) if s.service.handles(m)] == [3, 4]
        assert s.redis is not None
        s.redis.members = {str(m) for m in range(1, 8)}  # 7 / 3 -> chunk 2
        s.clock.advance(1.0)
        assert [m for m in range(1, 9) if s.service.handles(m)] == [3, 4]
        s.redis.members = {str(m) for m in range(1, 9)}  # 8 / 3 -> chunk 3
        s.clock.advance(1.0)
        assert [m for m in range(1, 9) if s.service.handles(m)] == [4, 5, 6]
    finally:
        s.service.stopService()


def test_the_last_of_three_nodes_takes_the_rest() -> None:
    s = Setup("c-00003", *(str(m) for m in range(1, 11)))
    s.service.startService()
    try:
        s.service.on_announce("HELLO0 a-00001")
        s.service.on_announce("HELLO0 b-00002")
        assert [m for m in range(1, 12) if s.service.handles(m)] == [7, 8, 9, 10]
    finally:
        s.service.stopService()


def test_the_announce_tick_drops_silent_peers() -> None:
    s = Setup("b-00002", "1", "2")
    s.service.startService()
    try:
        s.service.on_announce("HELLO0 a-00001")
        assert not s.service.handles(1)
        with captured_log("mirrorbits.cluster") as logs:
            s.clock.advance(5.0)
            assert s.service.nodes == ("a-00001", "b-00002")
            s.clock.advance(1.0)  # no message received at all: the tick prunes
        assert s.service.nodes == ("b-00002",)
        assert logs == ["<- Node a-00001 left the cluster"]
        assert s.service.handles(1)
    finally:
        s.service.stopService()


def test_redis_errors_warn_once_keep_the_list_and_recover() -> None:
    s = Setup("b-00002", "1", "2")
    s.service.startService()
    try:
        redis = s.redis
        with captured_log("mirrorbits.cluster") as logs:
            s.redis = None
            s.clock.pump([1.0] * 3)
            assert logs == []  # not ready: the Redis service reports that, not the cluster
            assert s.service.mirror_ids == (1, 2)
            assert redis is not None
            redis.publish_error = ConnectionError("Not connected")
            s.redis = redis
            s.clock.pump([1.0] * 2)
            assert len(logs) == 1 and logs[0].startswith("Cluster announce failed: ")
            redis.publish_error = None
            s.clock.pump([1.0] * 2)
        assert logs[1:] == ["Cluster announces work again"]
        assert len(s.messages()) == 1 + 2 + 2
    finally:
        s.service.stopService()


def test_an_unexpected_error_is_logged_and_the_loop_goes_on() -> None:
    s = Setup("b-00002", "1")
    assert s.redis is not None
    s.redis.publish_error = RuntimeError("boom")
    with captured_log("mirrorbits.cluster") as logs:
        s.service.startService()
        try:
            s.clock.advance(1.0)
            assert s.redis.publish_error is not None
            s.redis.publish_error = None
            s.clock.advance(1.0)
        finally:
            s.service.stopService()
    assert logs == ["Unexpected error in the cluster announce"] * 2
    assert len(s.messages()) == 3
    assert s.service.mirror_ids == (1,)


def test_no_new_announce_while_one_is_in_flight() -> None:
    s = Setup("b-00002", "1")
    assert s.redis is not None
    s.redis.hang = True
    with captured_log("mirrorbits.cluster") as logs:
        s.service.startService()
        try:
            s.clock.pump([0.5] * 9)  # 4.5 s: every tick finds the first PUBLISH unanswered
            assert len(s.messages()) == 1
            assert logs == []
            s.clock.pump([0.5] * 4)  # its 5 s timeout passed: announcing again
            assert len(s.messages()) == 2
            assert logs == ["Cluster announce failed: no answer from Redis within 5 s"]
        finally:
            s.service.stopService()


def test_stopping_cancels_the_announce_in_flight_quietly() -> None:
    s = Setup("b-00002", "1")
    assert s.redis is not None
    s.redis.hang = True
    with captured_log("mirrorbits.cluster") as logs:
        s.service.startService()
        s.service.stopService()
        s.clock.advance(10.0)
    assert logs == []
    assert len(s.messages()) == 1
    assert not s.service.running
