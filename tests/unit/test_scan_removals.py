"""Which indexed files the daemon's own repository scans keep (``RepositoryScanMaxRemove``)."""

from __future__ import annotations

from mirrorbits.scan.removals import Keeping, RemovalLimit, parse_removal_limit, to_keep

TEN = RemovalLimit(percent=10.0)


def test_limits() -> None:
    assert parse_removal_limit(500) == RemovalLimit(count=500)
    assert parse_removal_limit(0) == RemovalLimit(count=0)
    assert parse_removal_limit("10%") == TEN
    assert parse_removal_limit(" .5 %") == RemovalLimit(percent=0.5)
    for bad in (-1, "100.1%", "10", "%", "ten%", "-5%"):
        assert parse_removal_limit(bad) is None
    assert TEN.most(1999) == 199  # rounded down
    assert RemovalLimit(count=7).most(10) == 7
    assert (str(TEN), str(RemovalLimit(percent=2.5)), str(RemovalLimit(count=3))) == (
        "10%", "2.5%", "3")


def test_past_the_limit_every_lacking_file_is_kept() -> None:
    lacking = [f"/f{n}" for n in range(11)]
    assert to_keep(lacking[:10], 100, TEN) == Keeping()
    kept = to_keep(lacking, 100, TEN)
    assert kept.paths == tuple(lacking)
    assert kept.reason == ("more than RepositoryScanMaxRemove (10%) of the 100 indexed files: "
                           "not mounted or not synced whole?")
    assert to_keep(lacking, 11, RemovalLimit(percent=100.0)) == Keeping()


def test_within_it_files_below_an_empty_or_unreadable_place_are_kept() -> None:
    lacking = ["/a", "/mnt/b", "/mnt/c/d", "/mntx/e", "/pub/f"]
    assert to_keep(lacking, 100, TEN, empty_directories=["/mnt"], unreadable=["/pub"]) == (
        Keeping(("/mnt/b", "/mnt/c/d"), "/mnt is empty (a mount point not mounted?)"))
    assert to_keep(lacking, 100, TEN, unreadable=["/pub/f", "/zzz"]) == (
        Keeping(("/pub/f",), "/pub/f could not be read"))
    assert to_keep(lacking, 100, TEN, empty_directories=["/other"]) == Keeping()
