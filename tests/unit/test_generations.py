"""Repository generations (``GenerationIndexes``): which indexes cover a file, which mirrors
hold the current generation, when the rule applies, and that a file's memo follows its
indexes' cache versions."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from mirrorbits.cache import MirrorCache
from mirrorbits.config import Config
from mirrorbits.configcheck import value_errors
from mirrorbits.model import FileInfo, Mirror
from mirrorbits.selection import (
    GenerationIndexes,
    IndexCopies,
    Secure,
    SelectionOptions,
    apply_generations,
    prefilter,
)
from mirrorbits.selection.generations import pattern_problem
from mirrorbits.web.context import WebContext

T_NS = 1_687_249_800_000_000_000
INRELEASE = "/dists/stable/InRelease"
PACKAGES = "/dists/stable/main/binary-amd64/Packages"
NEW_INDEX = FileInfo(INRELEASE, 300, T_NS + 60_000_000_000)
OLD_INDEX = FileInfo(INRELEASE, 200, T_NS)
LOCAL = FileInfo(PACKAGES, 1000, T_NS)
DEFAULTS = SelectionOptions()


def mirror(mirror_id: int, **values: object) -> Mirror:
    fields: dict[str, object] = {"enabled": True, "http_up": True,
                                 "last_successful_sync_precision": 1_000_000_000, **values}
    return Mirror(id=mirror_id, name=f"m{mirror_id}", http_url=f"http://m{mirror_id}/",
                  **fields)


def test_the_indexes_covering_a_path_are_those_of_its_directories_innermost_first() -> None:
    rules = GenerationIndexes(("dists/*/InRelease", "/dists/*/Release",
                               "**/repodata/repomd.xml"))
    assert rules.covering(PACKAGES) == (INRELEASE, "/dists/stable/Release")
    assert rules.covering(INRELEASE) == (INRELEASE, "/dists/stable/Release")
    assert rules.covering("/pool/main/p/pkg_1.0.deb") == ()
    assert rules.covering("/dists/InRelease") == ()  # "*" is one directory, never none
    assert rules.covering("/fedora/40/os/repodata/abc-primary.xml.gz") == (
        "/fedora/40/os/repodata/repomd.xml",)
    assert rules.covering("/repodata/repomd.xml") == ("/repodata/repomd.xml",)  # ** = none
    assert rules.covering("/fedora/40/os/Packages/p/pkg.rpm") == ()  # payloads: per file
    assert not GenerationIndexes(()) and GenerationIndexes(()).covering(PACKAGES) == ()


@pytest.mark.parametrize(("pattern", "problem"), [
    ("dists/*/InRelease", None),
    ("**/repodata/repomd.xml", None),
    ("dists/*/*Release", "must end with the index file's own name"),
    ("dists/**", "must end with the index file's own name"),
    ("dists//InRelease", "has an empty, '.' or '..' segment"),
    ("../InRelease", "has an empty, '.' or '..' segment"),
    ("/", "names no file"),
    ("dists/[sb]*/InRelease", None),
    ("dists/[!x]/InRelease", None),
    ("dists/[]]/InRelease", None),
    # an unclosed set matched a literal '[': a typo accepted silently, never matching
    ("dists/[stable/InRelease", "has a '[' without its ']'"),
    ("dists/[ab][c/InRelease", "has a '[' without its ']'"),
    ("[!]/InRelease", "has a '[' without its ']'"),
])
def test_pattern_problems(pattern: str, problem: str | None) -> None:
    found = pattern_problem(pattern)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_a_bad_pattern_is_one_configuration_error_naming_it() -> None:
    errors = value_errors(Config(repository="/srv", generation_indexes=("dists/*/*",)))
    assert [(error.key, error.text) for error in errors] == [
        (("GenerationIndexes", 0), "GenerationIndexes: 'dists/*/*' must end with the index "
         "file's own name (no '*', '?' or '['), e.g. 'dists/*/InRelease'")]


def reasons(entries: list[tuple[Mirror, FileInfo | None]], index: IndexCopies,
            opts: SelectionOptions = DEFAULTS) -> tuple[list[str], object]:
    pre = prefilter(LOCAL, entries, Secure.UNDEFINED, opts)
    after, outcome = apply_generations(pre, [index], opts)
    return [entry[3] for entry in after.entries], outcome


def test_mirrors_of_another_generation_are_excluded_when_one_holds_the_current() -> None:
    current, old, missing, down = mirror(1), mirror(2), mirror(3), mirror(4, http_up=False)
    entries = [(current, LOCAL), (old, LOCAL), (missing, LOCAL), (down, LOCAL)]
    index = IndexCopies(INRELEASE, NEW_INDEX, {1: NEW_INDEX, 2: OLD_INDEX, 4: NEW_INDEX})
    found, outcome = reasons(entries, index)
    assert found == ["", f"Not the current generation ({INRELEASE})",
                     f"Not the current generation ({INRELEASE})", "Down / Not HTTPS"]
    assert outcome is not None and outcome.applied and outcome.current == 1


def test_same_size_but_another_time_is_another_generation_even_when_outdated_is_allowed(
        ) -> None:
    from mirrorbits.model import OutdatedRule
    opts = SelectionOptions(allow_outdated_files=(OutdatedRule("/dists/", 600),))
    older = FileInfo(INRELEASE, 300, NEW_INDEX.mod_time_ns - 60_000_000_000)
    index = IndexCopies(INRELEASE, NEW_INDEX, {1: NEW_INDEX, 2: older})
    found, _ = reasons([(mirror(1), LOCAL), (mirror(2), LOCAL)], index, opts)
    assert found == ["", f"Not the current generation ({INRELEASE})"]


def test_sub_second_differences_follow_the_mirrors_precision() -> None:
    index = IndexCopies(INRELEASE, NEW_INDEX,
                        {1: FileInfo(INRELEASE, 300, NEW_INDEX.mod_time_ns + 400_000_000)})
    found, _ = reasons([(mirror(1), LOCAL)], index)
    assert found == [""]


def test_without_a_current_mirror_open_to_every_client_the_choice_is_per_file() -> None:
    only_fr = mirror(1, country_only=True, country_codes="FR")
    entries = [(only_fr, LOCAL), (mirror(2), LOCAL)]
    index = IndexCopies(INRELEASE, NEW_INDEX, {1: NEW_INDEX, 2: OLD_INDEX})
    found, outcome = reasons(entries, index)
    assert found == ["", ""]
    assert outcome is not None and not outcome.applied
    assert "chosen file by file" in outcome.text
    found, outcome = reasons([(mirror(2), LOCAL)], index)  # nobody holds it
    assert found == [""] and outcome.current == 0


def test_an_index_missing_from_the_repository_defines_no_generation() -> None:
    found, outcome = reasons([(mirror(1), LOCAL)], IndexCopies(INRELEASE, None, {}))
    assert found == [""] and outcome is None


def test_every_covering_index_must_match() -> None:
    release = FileInfo("/dists/stable/Release", 50, T_NS)
    pre = prefilter(LOCAL, [(mirror(1), LOCAL), (mirror(2), LOCAL)], Secure.UNDEFINED,
                    SelectionOptions())
    after, _ = apply_generations(pre, [
        IndexCopies(INRELEASE, NEW_INDEX, {1: NEW_INDEX, 2: NEW_INDEX}),
        IndexCopies(release.path, release, {1: release, 2: None}),
    ], SelectionOptions())
    assert [entry[3] for entry in after.entries] == [
        "", "Not the current generation (/dists/stable/Release)"]


def context() -> WebContext:
    def no_redis() -> None:
        raise AssertionError("Redis is not needed here")

    return WebContext(config=Config, cache=MirrorCache(no_redis, Clock()), geo=None,
                      stats=None, dedup=None, download_log=None, clock=Clock(),
                      server_header=b"x", get_client=no_redis)


def test_a_files_memo_is_recomputed_once_its_index_changes_on_the_origin_or_a_mirror(
        ) -> None:
    ctx = context()
    opts = SelectionOptions()
    cache = ctx.cache
    index = IndexCopies(INRELEASE, NEW_INDEX, {1: NEW_INDEX})
    memo = ctx.remember_memo(LOCAL, [(mirror(1), LOCAL), (mirror(2), LOCAL)],
                             Secure.UNDEFINED, opts, cache.version(PACKAGES),
                             ((index,), ((INRELEASE, cache.version(INRELEASE)),)))
    assert [entry[3] for entry in memo.pre.entries] == [
        "", f"Not the current generation ({INRELEASE})"]
    assert ctx.cached_memo(LOCAL, Secure.UNDEFINED, opts) is memo
    cache.on_mirror_file_update(f"2 {INRELEASE}")  # a mirror's copy of the index changed
    assert ctx.cached_memo(LOCAL, Secure.UNDEFINED, opts) is None
    memo = ctx.remember_memo(LOCAL, [(mirror(1), LOCAL)], Secure.UNDEFINED, opts,
                             cache.version(PACKAGES),
                             ((index,), ((INRELEASE, cache.version(INRELEASE)),)))
    cache.on_file_update("/dists/stable/main/i18n/Translation-en")  # another file: kept
    assert ctx.cached_memo(LOCAL, Secure.UNDEFINED, opts) is memo
    cache.on_file_update(INRELEASE)  # the origin published a new index
    assert ctx.cached_memo(LOCAL, Secure.UNDEFINED, opts) is None


def test_a_memo_built_without_reading_its_indexes_takes_them_from_the_cache_or_is_not_kept(
        ) -> None:
    """Any caller (a cache warmer, say) gets the generations applied: from the cache when it
    holds the index, else the memo is not kept and the next request reads the index."""
    config = Config(repository="/srv", generation_indexes=("dists/*/InRelease",))
    ctx = context()
    ctx.config = lambda: config
    opts = ctx.selection_options(config)
    cache = ctx.cache
    entries = [(mirror(1), LOCAL), (mirror(2), LOCAL)]
    memo = ctx.remember_memo(LOCAL, entries, Secure.UNDEFINED, opts, cache.version(PACKAGES))
    assert ctx.cached_memo(LOCAL, Secure.UNDEFINED, opts) is None  # InRelease not in memory
    cache.files.put(INRELEASE, (NEW_INDEX, 0.0))
    cache.file_mirrors.put(INRELEASE, (1, 2))
    cache.mirrors.put(1, mirror(1))
    cache.mirrors.put(2, mirror(2))
    cache.mirror_files.put((1, INRELEASE), NEW_INDEX)
    cache.mirror_files.put((2, INRELEASE), OLD_INDEX)
    memo = ctx.remember_memo(LOCAL, entries, Secure.UNDEFINED, opts, cache.version(PACKAGES))
    assert ctx.cached_memo(LOCAL, Secure.UNDEFINED, opts) is memo
    assert [entry[3] for entry in memo.pre.entries] == [
        "", f"Not the current generation ({INRELEASE})"]
    cache.on_mirror_file_update(f"2 {INRELEASE}")
    assert ctx.cached_memo(LOCAL, Secure.UNDEFINED, opts) is None
