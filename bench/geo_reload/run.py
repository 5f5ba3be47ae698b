"""How long requests wait while a reload moves ``GeoipDatabasePath`` to another directory.

    .venv/bin/python bench/geo_reload/run.py --size-mb 64 --rounds 4 [--cold]

One daemon (``Workers: 1``) and two directories whose City databases are ``--size-mb`` large
(generated, zero-padded) and locate the client in two different cities. A client asks
``?trace&fromip=`` every 10 ms on one connection; each round rewrites the configuration to the
other directory and sends SIGHUP, then prints when the new database answered first and the
longest wait of a request around the reload. ``--cold``: the new file is dropped from the page
cache first.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mirrorbits.geo import ASN_DATABASE, CITY_DATABASE  # noqa: E402
from tests.daemon import FIXTURES, DaemonProcess, base_config, repo_file  # noqa: E402
from tests.geodata import CityRecord  # noqa: E402
from tests.integration.test_geo_config_reload import (  # noqa: E402
    EPOCH,
    PORTO,
    Client,
    evict,
    write_large_city_db,
)
from tests.servers import RedisServer  # noqa: E402

LISBON = CityRecord("100.96.1.0/24", "Lisbon (large)", "PT", "Portugal", "EU", 38.72, -9.14)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--cold", action="store_true")
    options = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="geo-reload-bench-"))
    redis = RedisServer(workdir=root / "redis")
    redis.start()
    directories = []
    for name, record, epoch in (("a", LISBON, EPOCH + 1), ("b", PORTO, EPOCH + 2)):
        directory = root / name
        directory.mkdir()
        write_large_city_db(directory / CITY_DATABASE, record, options.size_mb << 20, epoch)
        shutil.copy(FIXTURES / "geo" / ASN_DATABASE, directory / ASN_DATABASE)
        directories.append((directory, record.city))
    repo_file(root / "repo", "/a.txt", b"hello\n", EPOCH)
    daemon = DaemonProcess(workdir=root / "run", values=base_config(
        root / "repo", redis.address, GeoipDatabasePath=f"{directories[0][0]}/"))
    client = Client(*daemon.http)
    try:
        daemon.start()
        daemon.wait_log("[source] Indexed 1 files", timeout=30)
        client.start()
        time.sleep(1)
        longest_waits, swaps = [], []
        for round_ in range(options.rounds):
            directory, city = directories[(round_ + 1) % 2]
            daemon.values["GeoipDatabasePath"] = f"{directory}/"
            daemon.write_config()
            if options.cold:
                evict(directory / CITY_DATABASE)
            first = len(client.answers)
            reloaded_at = time.monotonic()
            daemon.signal(signal.SIGHUP)
            while not client.answers or client.answers[-1].city != city:
                if time.monotonic() > reloaded_at + 20 or client.errors:
                    raise SystemExit(f"the new database never answered: {client.errors}")
                time.sleep(0.01)
            swapped = client.answers[-1]
            time.sleep(0.5)
            before = sorted(answer.waited for answer in client.answers[:first])
            longest = max(answer.waited for answer in client.answers[first - 5:])
            swaps.append(swapped.sent + swapped.waited - reloaded_at)
            longest_waits.append(longest)
            print(f"round {round_}: the new database answered after {swaps[-1] * 1000:.0f} ms; "
                  f"longest wait {longest * 1000:.1f} ms (median before: "
                  f"{before[len(before) // 2] * 1000:.1f} ms)", flush=True)
        print(f"median of {options.rounds} rounds: new database after "
              f"{statistics.median(swaps) * 1000:.0f} ms, longest wait "
              f"{statistics.median(longest_waits) * 1000:.1f} ms")
    finally:
        client.stop()
        daemon.stop()
        redis.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
