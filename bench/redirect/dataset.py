"""The benchmark's data set: mirrors, files, placements, GeoIP networks and client addresses.

:func:`plan` is pure (seeded ``random.Random``); :func:`write_repository`, :func:`write_redis`
and :func:`write_geoip` put the plan where the daemon reads it: sparse files with the indexed
mtimes, the Redis keys a local scan plus mirror scans leave (spec §3.2, §4.1, §6.4), and a
GeoLite2 City + ASN pair.
"""

from __future__ import annotations

import hashlib
import os
import random
import unicodedata
from pathlib import Path
from typing import Any
from urllib.parse import quote

from attrs import frozen

from bench.redirect.places import CITIES, NEIGHBOURS, City
from mirrorbits.encoding import format_go_time
from mirrorbits.model import Mirror
from mirrorbits.store import keys
from mirrorbits.store.records import mirror_to_fields

NS = 1_000_000_000
EPOCH = 1_700_000_000  # "now" of the recorded scans (2023-11-14)
_PROJECTS = ("atlas", "borealis", "cirrus", "delta", "ember", "fjord", "glacier", "harbor")
_ARCHS = ("amd64", "arm64", "i386", "ppc64el", "riscv64")
# (name pattern, extension, smallest size, largest size)
_KINDS = (
    ("netinst", "iso", 300 << 20, 700 << 20),
    ("dvd", "iso", 3 << 30, 4 << 30),
    ("live", "iso", 1 << 30, 3 << 30),
    ("rootfs", "tar.xz", 50 << 20, 400 << 20),
    ("kernel", "tar.xz", 10 << 20, 40 << 20),
    ("tools", "deb", 50 << 10, 20 << 20),
    ("netinst", "iso.sig", 400, 900),
    ("dvd", "iso.sig", 400, 900),
    ("docs", "pdf", 200 << 10, 8 << 20),
    ("SHA256SUMS", "txt", 400, 4000),
)
_DISTRICTS = ((0.0, 0.0), (0.0412, -0.0377), (-0.0631, 0.0518), (0.1093, 0.0871))
_V4_FIRST_OCTETS = (
    2, 5, 31, 37, 46, 62, 78, 81, 82, 84, 86, 88, 90, 91, 93, 94, 95, 109, 151, 176, 178,
    185, 188, 193, 194, 195, 212, 213, 217, 24, 50, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75,
    76, 96, 97, 98, 99, 104, 107, 108, 173, 174, 184, 1, 14, 27, 36, 39, 42, 49, 58, 59, 60,
    61, 101, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125,
    41, 102, 105, 154, 196, 197, 177, 179, 181, 186, 187, 189, 190, 191, 200, 201,
)


@frozen
class BenchMirror:
    """A mirror of the data set and the base URL a redirect to it starts with."""

    mirror: Mirror
    absolute_url: str
    usable: bool  # enabled and up: may appear in a Location


@frozen
class BenchFile:
    """A file of the repository and the mirrors holding it (``stale``: outdated copies)."""

    path: str
    size: int
    mtime: int  # whole seconds
    sha256: str
    holders: tuple[int, ...]
    stale: frozenset[int]


@frozen
class Network:
    """A GeoIP network: its city (with jittered coordinates) and autonomous system."""

    cidr: str
    city: City
    latitude: float
    longitude: float
    asn: int
    as_name: str


@frozen
class Plan:
    mirrors: tuple[BenchMirror, ...]
    files: tuple[BenchFile, ...]
    networks: tuple[Network, ...]
    client_ips: tuple[str, ...]

    def allowed_locations(self) -> dict[str, frozenset[str]]:
        """For each path, every Location a correct redirect may carry (usable, fresh holders),
        percent-encoded (RFC 3986: all but unreserved characters and ``/``)."""
        by_id = {m.mirror.id: m for m in self.mirrors}
        return {
            entry.path: frozenset(
                by_id[i].absolute_url + quote(entry.path[1:], safe="/") for i in entry.holders
                if by_id[i].usable and i not in entry.stale
            )
            for entry in self.files
        }


def _slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(ch for ch in ascii_name.lower() if ch.isalnum())


def plan_mirrors(count: int, rng: random.Random) -> tuple[BenchMirror, ...]:
    """``count`` mirrors spread over the world, mostly plain, a few restricted or down."""
    result = []
    for index in range(count):
        city = CITIES[index % len(CITIES)]
        slug = _slug(city.name) + ("" if index < len(CITIES) else str(index))
        host = f"mirror.{slug}.example.org"
        base = ("pub/", "mirrors/atlas/", "", "linux/")[index % 4]
        scheme = ("https://", "https://", "https://", "http://", "")[index % 5]
        url = f"{scheme}{host}/{base}"
        codes = (city.country_code, *NEIGHBOURS.get(city.country_code, ())[: index % 3])
        enabled = index != 17
        up = index != 29
        mirror = Mirror(
            id=index + 1, name=f"{city.country_code.lower()}-{slug}", http_url=url,
            rsync_url=f"rsync://{host}/{base}", sponsor_name=f"{city.name} Hosting",
            sponsor_url=f"https://hosting.{slug}.example.net/", admin_name="Ops team",
            admin_email=f"mirror@{slug}.example.net", continent_only=index == 23,
            country_only=index in (11, 41), score=rng.choice((0, 0, 0, 0, 0, 0, 10, 20, -10, 50)),
            latitude=city.latitude, longitude=city.longitude, continent_code=city.continent,
            country_codes=" ".join(codes), excluded_country_codes="KP" if index == 5 else "",
            asnum=3000 + 97 * index, enabled=enabled, http_up=up, https_up=up,
            http_down_reason="" if up else "Unreachable",
            https_down_reason="" if up else "Unreachable",
            state_since=EPOCH - 86_400, last_sync=EPOCH - 600,
            last_successful_sync=EPOCH - 600, last_successful_sync_precision=NS,
            last_mod_time=EPOCH - 900,
        )
        absolute = url if scheme else "https://" + url
        result.append(BenchMirror(mirror, absolute, enabled and up))
    return tuple(result)


def plan_files(count: int, mirror_ids: list[int], rng: random.Random,
               holders: tuple[int, int] = (15, 40)) -> tuple[BenchFile, ...]:
    """``count`` files in release directories, each on ``holders`` mirrors (1.5 % outdated)."""
    files: list[BenchFile] = []
    directory = 0
    while len(files) < count:
        project = _PROJECTS[directory % len(_PROJECTS)]
        arch = _ARCHS[(directory // len(_PROJECTS)) % len(_ARCHS)]
        version = f"{1 + directory // 40}.{directory % 40 // 8}"
        for n in range(50):
            if len(files) >= count:
                break
            kind, ext, low, high = _KINDS[n % len(_KINDS)]
            name = f"{project}-{version}-{arch}-{kind}-{n // len(_KINDS) + 1}.{ext}"
            path = f"/{project}/{version}/{arch}/{name}"
            size = rng.randint(low, high)
            mtime = EPOCH - rng.randint(3_600, 365 * 86_400)
            held = tuple(sorted(rng.sample(mirror_ids, rng.randint(*holders))))
            stale = frozenset(i for i in held if rng.random() < 0.015)
            digest = hashlib.sha256(path.encode()).hexdigest()
            files.append(BenchFile(path, size, mtime, digest, held, stale))
        directory += 1
    return tuple(files)


def plan_networks(count: int, rng: random.Random, mirror_asns: list[int]) -> tuple[Network, ...]:
    """``count`` client networks (92 % IPv4 /24, the rest IPv6 /48), some in mirrors' AS."""
    networks: list[Network] = []
    seen: set[str] = set()
    asns = [(64_600 + i, f"Access Net {i}") for i in range(700)]
    asns += [(asn, f"Hosting AS{asn}") for asn in mirror_asns]
    while len(networks) < count:
        if rng.random() < 0.92:
            cidr = (f"{rng.choice(_V4_FIRST_OCTETS)}.{rng.randrange(256)}."
                    f"{rng.randrange(256)}.0/24")
        else:
            cidr = f"2a0{rng.randrange(10)}:{rng.randrange(65536):x}:{rng.randrange(65536):x}::/48"
        if cidr in seen:
            continue
        seen.add(cidr)
        city = rng.choice(CITIES)
        asn, name = rng.choice(asns)
        # GeoLite2 places networks at a few points per city (centre, districts), not at random.
        d_lat, d_lon = rng.choice(_DISTRICTS)
        networks.append(Network(
            cidr, city, round(city.latitude + d_lat, 4), round(city.longitude + d_lon, 4),
            asn, name,
        ))
    return tuple(networks)


def plan_clients(count: int, networks: tuple[Network, ...], rng: random.Random) -> tuple[str, ...]:
    """``count`` distinct client addresses; about 3 % are in no network (unknown location)."""
    ips: dict[str, None] = {}
    while len(ips) < count:
        if rng.random() < 0.03:
            ips[f"198.51.{rng.randrange(100, 114)}.{rng.randrange(1, 255)}"] = None
            continue
        net = rng.choice(networks).cidr
        if ":" in net:
            prefix = net.split("::")[0]
            ips[f"{prefix}:{rng.randrange(65536):x}::{rng.randrange(1, 65536):x}"] = None
        else:
            ips[net.rsplit(".", 1)[0] + f".{rng.randrange(1, 255)}"] = None
    return tuple(ips)


def plan(seed: int, mirrors: int, files: int, networks: int, clients: int) -> Plan:
    """The whole data set, reproducible from ``seed``."""
    rng = random.Random(seed)
    bench_mirrors = plan_mirrors(mirrors, rng)
    ids = [m.mirror.id for m in bench_mirrors]
    bench_files = plan_files(files, ids, rng)
    nets = plan_networks(networks, rng, [m.mirror.asnum for m in bench_mirrors])
    return Plan(bench_mirrors, bench_files, nets, plan_clients(clients, nets, rng))


# --- writers ------------------------------------------------------------------------------------


def write_repository(root: Path, files: tuple[BenchFile, ...]) -> None:
    """Sparse files of the planned sizes and mtimes under ``root``."""
    for entry in files:
        target = root / entry.path[1:]
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as handle:
            handle.truncate(entry.size)
        os.utime(target, (entry.mtime, entry.mtime))


def mirror_hash(m: Mirror) -> dict[str, str]:
    """``MIRROR_<id>`` as the CLI, health checks and scans leave it."""
    fields = dict(mirror_to_fields(m))
    fields.update({
        "httpUp": "1" if m.http_up else "0", "httpsUp": "1" if m.https_up else "0",
        "httpDownReason": m.http_down_reason, "httpsDownReason": m.https_down_reason,
        "stateSince": str(m.state_since), "lastSync": str(m.last_sync),
        "lastSuccessfulSync": str(m.last_successful_sync), "lastSuccessfulSyncProtocol": "0",
        "lastSuccessfulSyncPrecision": str(m.last_successful_sync_precision),
        "lastModTime": str(m.last_mod_time), "tzoffset": "0",
    })
    return fields


def file_hash(entry: BenchFile) -> dict[str, str]:
    """``FILE_<path>`` as the local scan leaves it."""
    return {"size": str(entry.size), "modTime": format_go_time(entry.mtime * NS), "sha1": "",
            "sha256": entry.sha256, "md5": ""}


def file_info_hash(entry: BenchFile, mirror_id: int) -> dict[str, str]:
    """``FILEINFO_<id>_<path>`` as a mirror scan leaves it (outdated copies 3 days older)."""
    seen = entry.mtime - 86_400 * 3 if mirror_id in entry.stale else entry.mtime
    return {"size": str(entry.size), "modTime": format_go_time(seen * NS)}


def write_redis(client: Any, data: Plan, batch: int = 5_000) -> int:
    """Write the keys a local scan and mirror scans would leave; returns the command count."""
    pipe = client.pipeline(transaction=False)
    queued = 0

    def flush(force: bool = False) -> None:
        nonlocal queued
        if queued >= batch or (force and queued):
            pipe.execute()
            queued = 0

    written = 0

    def add(method: str, *args: Any, **kwargs: Any) -> None:
        nonlocal queued, written
        getattr(pipe, method)(*args, **kwargs)
        queued += 1
        written += 1
        flush()

    add("set", keys.DB_VERSION, str(keys.CURRENT_DB_VERSION))
    add("set", keys.LAST_MID, str(len(data.mirrors)))
    per_mirror: dict[int, list[str]] = {m.mirror.id: [] for m in data.mirrors}
    for bench in data.mirrors:
        add("hset", keys.mirror(bench.mirror.id), mapping=mirror_hash(bench.mirror))
        add("hset", keys.MIRRORS, str(bench.mirror.id), bench.mirror.name)
    for entry in data.files:
        add("sadd", keys.FILES, entry.path)
        add("hset", keys.file(entry.path), mapping=file_hash(entry))
        add("sadd", keys.file_mirrors(entry.path), *[str(i) for i in entry.holders])
        for mirror_id in entry.holders:
            add("hset", keys.file_info(mirror_id, entry.path),
                mapping=file_info_hash(entry, mirror_id))
            per_mirror[mirror_id].append(entry.path)
    for mirror_id, paths in per_mirror.items():
        for start in range(0, len(paths), 1_000):
            add("sadd", keys.mirror_files(mirror_id), *paths[start:start + 1_000])
            add("sadd", keys.handled_files(mirror_id), *paths[start:start + 1_000])
    flush(force=True)
    return written


def write_geoip(directory: Path, networks: tuple[Network, ...]) -> None:
    """``GeoLite2-City.mmdb`` and ``GeoLite2-ASN.mmdb`` holding ``networks``."""
    from tests.geodata import (
        ASN_FILE,
        CITY_FILE,
        AsnRecord,
        CityRecord,
        write_asn_db,
        write_city_db,
    )

    directory.mkdir(parents=True, exist_ok=True)
    city_ids = {city.name: 2_000_000 + index for index, city in enumerate(CITIES)}
    country_ids = {city.country_code: 3_000_000 + index for index, city in enumerate(CITIES)}
    cities = [
        CityRecord(net.cidr, net.city.name, net.city.country_code, net.city.country,
                   net.city.continent, net.latitude, net.longitude, net.city.time_zone,
                   city_ids[net.city.name], country_ids[net.city.country_code])
        for net in networks
    ]
    write_city_db(directory / CITY_FILE, cities, build_epoch=EPOCH)
    write_asn_db(directory / ASN_FILE,
                 [AsnRecord(net.cidr, net.asn, net.as_name) for net in networks],
                 build_epoch=EPOCH)
