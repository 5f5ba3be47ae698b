"""CPU time of a new (file, place) ranking and of a remembered one, on the bench's data set.

What the first pass over the files costs in ``redirect_order`` (issue 13 item 2): every file
asked once from the address wrk would use (10,000 files, 289 client locations, 2,417 places
counting the AS), the places' distances already known; then the same requests again, each
ranking remembered. Process CPU time (``time.process_time``), ``gc.freeze()`` first as the
daemon does after its fill.

With ``--against TREE`` (a checkout, e.g. ``git -C /work/main archive main | tar -x -C
/tmp/x``) that tree's ``selection/fast.py`` and ``selection/memo.py`` run in the same process,
alternated with this one round by round (the host's load moves both alike), and every answer
of both is checked equal (entries, distances bit for bit, the random draws).

Usage: ``.venv/bin/python bench/redirect/rankings.py [--rounds N] [--against TREE]``
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import random
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.redirect import dataset  # noqa: E402
from mirrorbits.model import GeoRecord  # noqa: E402
from mirrorbits.selection import Prefiltered, Secure, SelectionOptions, prefilter  # noqa: E402
from mirrorbits.selection import fast as this_fast  # noqa: E402
from mirrorbits.selection import memo as this_memo  # noqa: E402
from mirrorbits.store.records import file_info_from_hash, mirror_from_hash  # noqa: E402


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def other_tree(tree: Path) -> tuple[ModuleType, ModuleType]:
    """``tree``'s selection ``fast`` and ``memo`` modules, the rest shared with this tree."""
    memo = _load("other_selection_memo", tree / "mirrorbits/selection/memo.py")
    mine = sys.modules["mirrorbits.selection.memo"]
    sys.modules["mirrorbits.selection.memo"] = memo  # what its fast.py imports
    try:
        fast = _load("other_selection_fast", tree / "mirrorbits/selection/fast.py")
    finally:
        sys.modules["mirrorbits.selection.memo"] = mine
    return fast, memo


def requests(plan: dataset.Plan) -> tuple[list[Prefiltered], list[GeoRecord]]:
    """Each file's prefiltered mirrors, and for file i the client wrk sends it from (address
    i x 7), as GeoIP would place it (unlocated addresses left out: they are not ranked)."""
    mirrors = {b.mirror.id: mirror_from_hash(dataset.mirror_hash(b.mirror))
               for b in plan.mirrors}
    opts = SelectionOptions()
    pres = []
    for entry in plan.files:
        local = file_info_from_hash(entry.path, dataset.file_hash(entry))
        held = [(mirrors[i], file_info_from_hash(entry.path, dataset.file_info_hash(entry, i)))
                for i in entry.holders]
        pres.append(prefilter(local, held, Secure.UNDEFINED, opts))
    by_network = {}
    for net in plan.networks:
        prefix = net.cidr.split("::")[0] if ":" in net.cidr else net.cidr.rsplit(".", 1)[0]
        by_network[prefix] = GeoRecord(net.city.country_code, net.city.continent, net.city.name,
                                       net.city.country, net.latitude, net.longitude,
                                       net.as_name, net.asn)
    clients = []
    for ip in plan.client_ips:
        prefix = ":".join(ip.split(":")[:3]) if ":" in ip else ip.rsplit(".", 1)[0]
        clients.append(by_network.get(prefix, GeoRecord()))
    return pres, [clients[(i * 7) % len(clients)] for i in range(len(pres))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--against", type=Path, metavar="TREE")
    args = parser.parse_args(argv)
    pres, clients = requests(dataset.plan(1, 60, 10_000, 3_000, 5_000))
    sides: dict[str, tuple[Any, Any, list[tuple[Any, GeoRecord]]]] = {}
    trees = [("this tree", this_fast, this_memo)]
    if args.against:
        trees.append((str(args.against), *other_tree(args.against)))
    for name, fast, memo_module in trees:
        memo = memo_module.SelectionMemo()
        pairs = [(fast.redirect_table(pre, memo), client)
                 for pre, client in zip(pres, clients, strict=True) if client.country_code]
        for table, client in pairs:
            memo.distances(client.latitude, client.longitude, table.points, table.coordinates)
        sides[name] = (fast, memo, pairs)
    gc.collect()
    gc.freeze()
    wdr = SelectionOptions().weight_distribution_range
    new: dict[str, list[float]] = {name: [] for name in sides}
    kept: dict[str, list[float]] = {name: [] for name in sides}
    for round_ in range(args.rounds):
        names = list(sides) if round_ % 2 == 0 else list(reversed(sides))
        answers = []
        for name in names:
            fast, memo, pairs = sides[name]
            memo.rankings.clear()
            memo.limits.clear()
            rng = random.Random(round_)
            order = fast.redirect_order
            started = time.process_time()
            got = [order(table, client, wdr, rng, 11) for table, client in pairs]
            middle = time.process_time()
            for table, client in pairs:
                order(table, client, wdr, rng, 11)
            ended = time.process_time()
            new[name].append((middle - started) / len(pairs) * 1e6)
            kept[name].append((ended - middle) / len(pairs) * 1e6)
            answers.append([[(index, distance.hex()) for index, distance in answer]
                            for answer in got])
        if any(answer != answers[0] for answer in answers):
            print("the trees' answers differ")
            return 1
    print(f"{len(sides['this tree'][2])} rankings, {args.rounds} rounds")
    for name in sides:
        print(f"{name}: new ranking {min(new[name]):.1f}-{max(new[name]):.1f} us "
              f"(median {statistics.median(new[name]):.1f}), remembered "
              f"{min(kept[name]):.1f}-{max(kept[name]):.1f} us "
              f"(median {statistics.median(kept[name]):.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
