"""CPU cost of one redirect with ``GenerationIndexes`` on, against off, in process.

The data set and driver of :mod:`bench.redirect.inprocess` (no sockets, no Redis, a warm
cache); with generations on, every file's directory has an index file (``Release``) that
every mirror holds as the origin does, and ``GenerationIndexes: ["*/*/*/Release"]`` covers
every requested file: the same redirects, plus the per-request check of the index's cache
version on each memo hit. Both runs in one process, alternating, CPU time.

Usage: ``.venv/bin/python bench/redirect/generations.py [--requests N] [--rounds R]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import attrs  # noqa: E402
from twisted.internet.task import Clock  # noqa: E402
from twisted.web.server import Site  # noqa: E402

from bench.redirect import dataset  # noqa: E402
from bench.redirect.inprocess import daemon_site, drive, requests_for  # noqa: E402
from mirrorbits.model import FileInfo  # noqa: E402
from mirrorbits.selection import Secure  # noqa: E402
from mirrorbits.web.resource import RedirectResource  # noqa: E402

PATTERN = "*/*/*/Release"


def with_generations(site: Site, plan: dataset.Plan) -> None:
    """Turn generations on for ``site``: an index per directory, current on every mirror."""
    resource = site.resource
    assert isinstance(resource, RedirectResource)
    ctx = resource.ctx
    config = attrs.evolve(ctx.config(), generation_indexes=(PATTERN,))
    ctx.config = lambda: config
    cache = ctx.cache
    ids = tuple(bench.mirror.id for bench in plan.mirrors)
    for directory in {entry.path.rsplit("/", 1)[0] for entry in plan.files}:
        index = FileInfo(f"{directory}/Release", 1234, 1_700_000_000_000_000_000)
        cache.files.put(index.path, (index, 0.0))
        cache.file_mirrors.put(index.path, ids)
        for mirror_id in ids:
            cache.mirror_files.put((mirror_id, index.path), index)


def covered(site: Site, plan: dataset.Plan) -> int:
    """How many files' memos the generations applied to (every file, once warm)."""
    resource = site.resource
    assert isinstance(resource, RedirectResource)
    ctx = resource.ctx
    opts = ctx.selection_options(ctx.config())
    count = 0
    for entry in plan.files:
        info = ctx.cache.cached_file(entry.path)
        memo = None if not isinstance(info, FileInfo) else ctx.cached_memo(
            info, Secure.UNDEFINED, opts)
        count += memo is not None and memo.generation is not None and memo.generation.applied
    return count


def memo_check_ns(site: Site, plan: dataset.Plan, calls: int = 200_000) -> float:
    """CPU nanoseconds of one memo look-up (``WebContext.cached_memo``, once per request)."""
    resource = site.resource
    assert isinstance(resource, RedirectResource)
    ctx = resource.ctx
    opts = ctx.selection_options(ctx.config())
    infos = [ctx.cache.cached_file(entry.path) for entry in plan.files[:1000]]
    files = [info for info in infos if isinstance(info, FileInfo)]
    cached_memo, secure = ctx.cached_memo, Secure.UNDEFINED
    rounds = max(1, calls // len(files))
    started = time.process_time()
    for _ in range(rounds):
        for info in files:
            cached_memo(info, secure, opts)
    return (time.process_time() - started) / (rounds * len(files)) * 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    plan = dataset.plan(args.seed, 60, 10_000, 3_000, 5_000)
    results: dict[str, list[float]] = {"off": [], "on": []}
    failed = False
    with tempfile.TemporaryDirectory(prefix="mb-gen-") as tmp:
        sites = {}
        for name in results:
            clock = Clock()
            site = daemon_site(Path(tmp) / name, plan, clock)
            if name == "on":
                with_generations(site, plan)
            sites[name] = (site, clock)
        raw = requests_for(plan, args.requests)
        for site, clock in sites.values():
            # every path twice: the first fills the cache, the second the redirect memo
            drive(site, raw[: len(plan.files)] * 2, clock)
        applied = covered(sites["on"][0], plan)
        print(f"generations applied to {applied} of {len(plan.files)} files' memos")
        failed = applied != len(plan.files)
        for _ in range(args.rounds):
            for name, (site, clock) in sites.items():
                seconds, redirects = drive(site, raw, clock)
                failed = failed or redirects != len(raw)
                results[name].append(seconds / len(raw) * 1e6)
        lookups = {name: min(memo_check_ns(site, plan) for _ in range(args.rounds))
                   for name, (site, _) in sites.items()}
    for name, costs in results.items():
        print(f"memo look-up, generations {name:3}: {lookups[name]:6.0f} ns (best of "
              f"{args.rounds})")
        print(f"generations {name:3}: {min(costs):6.1f} us/request (best of {args.rounds}; "
              + ", ".join(f"{cost:.1f}" for cost in costs) + ")")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
