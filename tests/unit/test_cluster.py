"""Cluster membership and work partitioning (§15.1): the pure part, on a Clock, without Redis.

Everything that talks to Redis (announces, reading ``MIRRORS``, failures) is tested against
a real redis-server in ``tests/integration/test_cluster.py``.
"""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock

from mirrorbits.cluster import ClusterService, new_node_id, partition
from mirrorbits.store.errors import DatabaseNotReady
from tests.logcapture import captured_log


def no_database() -> object:
    """The Redis client getter: these tests never reach Redis (see the integration tests)."""
    raise DatabaseNotReady("database not ready")


class Setup:
    """A ClusterService on a Clock, without Redis, and a changeable DB number."""

    def __init__(self, node_id: str = "b-00002", *mirror_ids: int) -> None:
        self.clock = Clock()
        self.db = 0
        self.service = ClusterService(no_database, lambda: self.db, self.clock, node_id)
        if mirror_ids:
            self.service.learn_mirror_ids(mirror_ids)


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


# --- handles() ------------------------------------------------------------------------------


def handled(s: Setup, upto: int) -> list[int]:
    return [m for m in range(1, upto + 1) if s.service.handles(m)]


def test_handles_everything_when_alone() -> None:
    s = Setup("b-00002", 1, 2, 3)
    assert all(s.service.handles(m) for m in (1, 2, 3, 99))


def test_handles_with_two_then_three_nodes() -> None:
    s = Setup("b-00002", 1, 2, 3, 4, 5)
    s.service.on_announce("HELLO0 a-00001")  # we are second of two: chunk round(2.5) = 3
    assert handled(s, 5) == [4, 5]
    s.service.on_announce("HELLO0 c-00003")  # second of three: chunk round(1.67) = 2
    assert handled(s, 5) == [3, 4]
    s.service.learn_mirror_ids(range(1, 8))  # 7 / 3 -> chunk 2
    assert handled(s, 7) == [3, 4]
    s.service.learn_mirror_ids(range(1, 9))  # 8 / 3 -> chunk 3
    assert handled(s, 8) == [4, 5, 6]
    assert s.service.mirror_ids == tuple(range(1, 9))


def test_the_last_of_three_nodes_takes_the_rest() -> None:
    s = Setup("c-00003", *range(1, 11))
    s.service.on_announce("HELLO0 a-00001")
    s.service.on_announce("HELLO0 b-00002")
    assert handled(s, 10) == [7, 8, 9, 10]


def test_every_node_handles_a_mirror_missing_from_its_id_list() -> None:
    """Added since the last read: nobody's share yet, so everybody checks it meanwhile."""
    nodes = [Setup(f"n-0000{i}", 1, 2, 3, 4) for i in (1, 2)]
    for s, peer in zip(nodes, ("n-00002", "n-00001"), strict=True):
        s.service.on_announce(f"HELLO0 {peer}")
    assert [handled(s, 4) for s in nodes] == [[1, 2], [3, 4]]
    assert all(s.service.handles(5) for s in nodes)
    nodes[0].service.learn_mirror_ids(range(1, 6))  # 5 / 2 -> chunk 3
    nodes[1].service.learn_mirror_ids(range(1, 6))
    assert [handled(s, 5) for s in nodes] == [[1, 2, 3], [4, 5]]


def test_without_a_fresh_id_list_a_node_handles_every_mirror() -> None:
    """Never read, or not read for longer than the node timeout: the share is unknown."""
    s = Setup("b-00002")
    s.service.on_announce("HELLO0 a-00001")
    assert not s.service.share_known
    assert handled(s, 4) == [1, 2, 3, 4]
    s.service.learn_mirror_ids([1, 2, 3, 4])
    assert s.service.share_known and s.service.mirror_ids_read_at == 0.0
    assert handled(s, 4) == [3, 4]
    s.clock.advance(4.0)
    s.service.on_announce("HELLO0 a-00001")  # the peer is still there
    s.clock.advance(1.0)
    assert handled(s, 4) == [3, 4]  # read exactly 5 s ago: still holds
    s.clock.advance(0.01)
    assert not s.service.share_known
    assert s.service.nodes == ("a-00001", "b-00002")
    assert handled(s, 4) == [1, 2, 3, 4]
    s.service.learn_mirror_ids([1, 2, 3, 4])
    assert handled(s, 4) == [3, 4]


def test_a_database_change_forgets_the_id_list() -> None:
    s = Setup("b-00002", 1, 2)
    s.service.on_announce("HELLO0 a-00001")
    s.db = 1
    s.service.on_announce("HELLO1 a-00001")
    assert s.service.nodes == ("a-00001", "b-00002")
    assert handled(s, 2) == [1, 2]  # the IDs were those of database 0
    s.service.learn_mirror_ids([1, 2])
    assert handled(s, 2) == [2]
