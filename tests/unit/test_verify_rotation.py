"""Which file of a mirror is verified next (mirrorbits.health.rotation): pure, with a fake
clock (seconds passed by hand)."""

from __future__ import annotations

from collections import Counter

from mirrorbits.health.rotation import MAX_RANKED, Rotation, ranked, weight

INTERVAL = 3.0


def run(rotation: Rotation, mirror_id: int, start: float, turns: int) -> list[str]:
    chosen = []
    for turn in range(turns):
        now = start + turn * INTERVAL
        path = rotation.choose(mirror_id, now)
        assert path is not None
        rotation.verified(mirror_id, path, now)
        chosen.append(path)
    return chosen


def paths(count: int) -> list[str]:
    return [f"/f{rank:04}" for rank in range(count)]


def test_ranked_is_most_downloaded_first_bounded_and_skips_unrequested() -> None:
    downloads = {f"/f{i}": i for i in range(MAX_RANKED + 50)}
    best = ranked(downloads)
    assert len(best) == MAX_RANKED
    assert best[0] == f"/f{MAX_RANKED + 49}"
    assert ranked({"/b": 2, "/a": 2, "/c": 0}) == ["/a", "/b"]


def test_the_most_downloaded_file_goes_first_then_the_next() -> None:
    rotation = Rotation()
    popular = paths(300)
    rotation.set_held({path: [1] for path in popular}, popular, now=0.0)
    assert run(rotation, 1, 0.0, 3) == ["/f0000", "/f0001", "/f0002"]


def test_top_files_every_few_turns_the_tail_slowly() -> None:
    rotation = Rotation()
    popular = paths(300)
    rotation.set_held({path: [1] for path in popular}, popular, now=0.0)
    hour = int(3600 / INTERVAL)
    run(rotation, 1, 0.0, hour)  # past the start, where the never-verified go first
    chosen = Counter(run(rotation, 1, 3600.0, hour))
    seconds = {rank: 3600 / chosen[popular[rank]] for rank in (0, 1, 2, 9)}
    # the top files about every 10, 20, 30 s; the tenth every few minutes
    assert seconds[0] <= 15
    assert seconds[1] <= 25
    assert seconds[2] <= 40
    assert 60 <= seconds[9] <= 400
    assert chosen[popular[-1]] <= 1
    # shares follow the weights
    assert chosen["/f0000"] > chosen["/f0001"] > chosen["/f0002"] > chosen["/f0009"]


def test_only_the_files_a_mirror_holds_and_ranked_among_them() -> None:
    rotation = Rotation()
    popular = paths(4)
    holders = {"/f0000": [2], "/f0001": [1, 2], "/f0002": [1], "/f0003": [1]}
    rotation.set_held(holders, popular, now=0.0)
    assert rotation.held(1) == ["/f0001", "/f0002", "/f0003"]
    assert rotation.choose(1, 0.0) == "/f0001"
    assert rotation.choose(3, 0.0) is None


def test_a_lost_file_is_not_chosen_again_until_read_again() -> None:
    rotation = Rotation()
    popular = paths(3)
    rotation.set_held({path: [1] for path in popular}, popular, now=0.0)
    rotation.forget(1, "/f0000")
    assert "/f0000" not in run(rotation, 1, 0.0, 20)
    rotation.set_held({path: [1] for path in popular}, popular, now=100.0)
    assert rotation.choose(1, 100.0) == "/f0000"  # never verified since: first


def test_a_new_popularity_keeps_the_verification_times_and_drops_the_rest() -> None:
    rotation = Rotation()
    popular = paths(3)
    rotation.set_held({path: [1] for path in popular}, popular, now=0.0)
    run(rotation, 1, 0.0, 3)
    # /f0002 became the most downloaded, /f0000 vanished: the one verified longest ago goes
    rotation.set_held({"/f0002": [1], "/f0001": [1]}, ["/f0002", "/f0001"], now=9.0)
    assert rotation.pairs == 2
    assert rotation.choose(1, 9.0) == "/f0001"  # verified at 3 s, /f0002 at 6 s
    assert rotation.choose(1, 60.0) == "/f0002"  # ages alike: the heavier weight


def test_weights_fall_with_rank() -> None:
    assert weight(0) == 1.0
    assert weight(3) == 0.25
    assert sum(weight(rank) for rank in range(MAX_RANKED)) < 4


def test_with_download_counts_the_shares_go_as_their_square_roots() -> None:
    rotation = Rotation()
    popular = paths(300)
    downloads = {path: 3600 // (1 + rank) for rank, path in enumerate(popular)}  # Zipf
    rotation.set_held({path: [1] for path in popular}, popular, now=0.0, downloads=downloads)
    hour = int(3600 / INTERVAL)
    run(rotation, 1, 0.0, hour)
    chosen = Counter(run(rotation, 1, 3600.0, 4 * hour))
    # four times the downloads, twice the turns (rank 0 against 3, 1 against 7)
    assert 1.7 <= chosen["/f0000"] / chosen["/f0003"] <= 2.3
    assert 1.7 <= chosen["/f0001"] / chosen["/f0007"] <= 2.3
    # the tail is not left out: the 300th file, 300 times less downloaded, gets 1/17
    assert chosen[popular[-1]] >= chosen["/f0000"] / 25
    # the expected users sent to a lost file before it is found (its downloads times the
    # turns between its verifications), summed over the files, is far below the rank rule's
    ranks = Rotation()
    ranks.set_held({path: [1] for path in popular}, popular, now=0.0)
    run(ranks, 1, 0.0, hour)
    by_rank = Counter(run(ranks, 1, 3600.0, 4 * hour))

    def cost(turns: Counter[str]) -> float:
        return sum(downloads[path] / max(turns[path], 0.5) for path in popular)

    assert cost(chosen) < cost(by_rank) / 3
