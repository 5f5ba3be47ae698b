"""The watch's look at a batch of paths (``inspect_paths``), on a real directory."""

from pathlib import Path

from mirrorbits.scan.watch import inspect_paths


def test_a_new_file_in_a_new_directory_is_looked_at_once(tmp_path: Path) -> None:
    # A file written into a directory just created is reported by inotify itself and is
    # also found by listing its new directory, in the same batch: it was hashed twice and
    # the log said "Published 2 changed" for one file.
    (tmp_path / "new dir #x").mkdir()
    (tmp_path / "new dir #x" / "new #2 50%.txt").write_text("fresh\n")

    found = inspect_paths(str(tmp_path), ["/new dir #x/new #2 50%.txt"], ["/new dir #x"])

    assert [f.path for f in found.files] == ["/new dir #x/new #2 50%.txt"]
    assert found.removed == ()


def test_a_listed_directory_still_reports_every_file_and_subdirectory(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "a").write_text("a")
    (tmp_path / "d" / "b").write_text("b")

    found = inspect_paths(str(tmp_path), ["/d/a", "/gone"], ["/d"])

    assert sorted(f.path for f in found.files) == ["/d/a", "/d/b"]
    assert found.directories == ("/d/sub",)
    assert found.removed == ("/gone",)
