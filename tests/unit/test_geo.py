"""GeoIP lookups, database (re)loading and mirror geolocation, on real .mmdb files."""

from __future__ import annotations

import ipaddress
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import maxminddb
import pytest
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.task import Clock
from zope.interface import implementer

from mirrorbits.float32 import f32, format_f32
from mirrorbits.geo import (
    ASN_DATABASE,
    CITY_DATABASE,
    WARNING_NO_LOCATION,
    WARNING_SEVERAL_ADDRESSES,
    GeoIP,
    GeoIPUnavailable,
    HostLookupError,
    MirrorLookupError,
    locate_mirror,
    lookup_host_addresses,
)
from mirrorbits.model import GeoRecord
from tests.geodata import (
    AsnRecord,
    CityRecord,
    ConformanceClient,
    conformance_clients,
    conformance_records,
    write_asn_db,
    write_city_db,
    write_test_databases,
)
from tests.logcapture import captured_log

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "geo"
EPOCH = 1687249800  # 2023-06-20 08:30:00 UTC
PORTO = CityRecord("100.96.1.0/24", "Porto (test replacement)", "PT", "Portugal", "EU",
                   41.1579, -8.6291, "Europe/Lisbon")  # fmt: skip
LISBON = next(r for r in conformance_records().city if r.city == "Lisbon")


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _open(directory: str | Path) -> GeoIP:
    geo = GeoIP(str(directory) + "/")
    geo.load()
    return geo


@pytest.fixture(params=["conformance", "generated"])
def geo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GeoIP]:
    """GeoIP on the copied conformance databases, then on freshly generated ones."""
    if request.param == "conformance":
        directory = FIXTURES
    else:
        directory = tmp_path / "geo"
        write_test_databases(directory)
    reader = _open(directory)
    yield reader
    reader.close()


def _client_info(record: GeoRecord) -> dict[str, object]:
    """The JSON ``ClientInfo`` the HTTP layer renders for a record."""
    return {
        "CountryCode": record.country_code,
        "ContinentCode": record.continent_code,
        "City": record.city,
        "Country": record.country,
        "Latitude": json.loads(format_f32(record.latitude)),
        "Longitude": json.loads(format_f32(record.longitude)),
        "ASName": record.as_name,
        "ASNum": record.as_num,
    }


@pytest.mark.parametrize("client", conformance_clients(), ids=lambda c: c.name)
def test_conformance_client_gets_expected_client_info(
    geo: GeoIP, client: ConformanceClient
) -> None:
    record = geo.lookup(client.ip)
    assert _client_info(record) == json.loads(client.client_info)
    assert record == client.expected
    assert record.is_valid is client.valid


def test_non_ascii_32bit_asn_ipv6_and_asn_only(geo: GeoIP) -> None:
    montreal = geo.lookup("100.96.3.10")
    assert (montreal.city, montreal.as_name) == ("Montréal", "Québec Net")
    assert geo.lookup("100.96.2.10").as_num == 4200000123
    vancouver = geo.lookup("2001:db8:cafe::20")
    assert (vancouver.city, vancouver.country_code, vancouver.as_num) == ("Vancouver", "CA", 65210)
    assert vancouver.latitude == f32(49.2827)
    anycast = geo.lookup("100.96.10.10")
    assert anycast == GeoRecord(as_name="Anycast Only Net", as_num=65211)
    assert not anycast.is_valid
    assert geo.lookup("100.96.200.7") == GeoRecord()


@pytest.mark.parametrize(
    "text",
    ["[2001:db8:cafe::20]", "2001:db8:cafe::20%eth0", "[2001:db8:cafe::20%25eth0]",
     "2001:DB8:CAFE:0::20"],
)  # fmt: skip
def test_ipv6_spellings(geo: GeoIP, text: str) -> None:
    assert geo.lookup(text).city == "Vancouver"


def test_ipv4_mapped_ipv6(geo: GeoIP) -> None:
    assert geo.lookup("::ffff:100.96.3.10") == geo.lookup("100.96.3.10")
    assert geo.lookup("[::ffff:100.96.3.10]").city == "Montréal"


@pytest.mark.parametrize(
    "text", ["", "not-an-ip", "100.96.3.256", "100.96.3", "100.96.3.10:80", "[::1", "2001:db8::g"]
)
def test_invalid_ip_gives_empty_record(geo: GeoIP, text: str) -> None:
    assert geo.lookup(text) == GeoRecord()


def test_mirror_addresses(geo: GeoIP) -> None:
    madrid = geo.lookup("127.0.0.31")
    assert (madrid.city, madrid.country, madrid.as_num, madrid.as_name) == (
        "Madrid", "Spain", 65101, "Madrid Mirror Net")  # fmt: skip
    valencia = geo.lookup("127.0.0.32")
    assert (valencia.city, valencia.as_num, valencia.as_name) == ("Valencia", 0, "")
    assert geo.lookup("127.0.0.37").city == "São Paulo"
    assert geo.lookup("127.0.0.40") == GeoRecord()


def _sample_addresses() -> list[str]:
    table = conformance_records()
    networks = [r.network for r in table.city] + [r.network for r in table.asn]
    addresses = [n.split("/")[0] for n in networks] + [c.ip for c in conformance_clients()]
    return [*addresses, "100.96.1.255", "100.96.0.255", "2001:db8:caff::1", "::1", "8.8.8.8"]


def test_addresses_of_a_network_already_seen_get_what_the_databases_say(geo: GeoIP) -> None:
    """The answer remembered per network is the one each address alone gets."""
    table = conformance_records()
    addresses = _sample_addresses()
    for network in [r.network for r in table.city] + [r.network for r in table.asn]:
        hosts = ipaddress.ip_network(network)
        addresses += [str(hosts[0]), str(hosts[-1]), str(hosts[hosts.num_addresses // 2])]
        addresses += [str(hosts.network_address - 1), str(hosts.broadcast_address + 1)]
    addresses += ["::ffff:100.96.1.9", "100.96.1.300"]
    for address in [*addresses, *reversed(addresses)]:
        alone = GeoIP(geo.directory)
        alone.load()
        try:
            assert geo.lookup(address) == alone.lookup(address), address
        finally:
            alone.close()


def test_generated_databases_agree_with_conformance_ones(tmp_path: Path) -> None:
    write_test_databases(tmp_path)
    for name in (CITY_DATABASE, ASN_DATABASE):
        generated = maxminddb.open_database(str(tmp_path / name))
        reference = maxminddb.open_database(str(FIXTURES / name))
        try:
            assert sorted((str(n), repr(r)) for n, r in generated) == sorted(
                (str(n), repr(r)) for n, r in reference
            )
            for address in _sample_addresses():
                assert generated.get(address) == reference.get(address), (name, address)
            for key in ("ip_version", "database_type", "languages", "record_size"):
                assert getattr(generated.metadata(), key) == getattr(reference.metadata(), key)
        finally:
            generated.close()
            reference.close()
    ours, theirs = _open(tmp_path), _open(FIXTURES)
    for address in _sample_addresses():
        assert ours.lookup(address) == theirs.lookup(address)


def test_load_messages_and_unchanged_epoch(tmp_path: Path, utc: None) -> None:
    write_test_databases(tmp_path, build_epoch=EPOCH)
    geo = GeoIP(str(tmp_path))  # no trailing slash: still the directory
    assert geo.load() == [
        "Loading GeoLite2-City.mmdb database (built on 2023-06-20 08:30:00 +0000 UTC)",
        "Loading GeoLite2-ASN.mmdb database (built on 2023-06-20 08:30:00 +0000 UTC)",
    ]
    assert geo.city_available and geo.asn_available
    assert geo.load() == []  # same build epoch: the loaded readers are kept, nothing logged
    write_city_db(tmp_path / CITY_DATABASE, conformance_records().city, build_epoch=EPOCH + 86400)
    assert geo.load() == [
        "Loading GeoLite2-City.mmdb database (built on 2023-06-21 08:30:00 +0000 UTC)"
    ]
    geo.close()


def test_a_reload_does_not_copy_unchanged_files(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A load copies each database into memory in the calling thread (about 45 ms for a 64 MB
    City database): loading again copies only a file that changed."""
    import mirrorbits.geo as geo_module
    write_test_databases(tmp_path, build_epoch=EPOCH)
    geo = GeoIP(str(tmp_path))
    geo.load()
    opened: list[str] = []
    real = geo_module._open_private

    def counting(path: str) -> object:
        opened.append(os.path.basename(path))
        return real(path)

    monkeypatch.setattr(geo_module, "_open_private", counting)
    geo.load_and_report()
    assert geo.load() == [] and opened == []
    write_city_db(tmp_path / CITY_DATABASE, conformance_records().city, build_epoch=EPOCH + 1)
    assert len(geo.load()) == 1 and opened == [CITY_DATABASE]
    geo.close()


def _replace_city(directory: Path, record: CityRecord, epoch: int) -> None:
    """Write a one-record City database next to the live one and rename it over it."""
    staging = directory / "staging.mmdb"
    write_city_db(staging, [record], build_epoch=epoch)
    os.replace(staging, directory / CITY_DATABASE)


def test_replaced_file_is_picked_up_without_reload(tmp_path: Path) -> None:
    write_test_databases(tmp_path, build_epoch=EPOCH)
    geo = _open(tmp_path)
    assert geo.lookup("100.96.1.10").city == "Lisbon"  # now cached, and its /24 network
    assert geo.reload_if_changed() is False
    # Same build epoch on purpose: a replaced file is reopened whatever its epoch.
    _replace_city(tmp_path, PORTO, EPOCH)
    assert geo.reload_if_changed() is True
    porto = geo.lookup("100.96.1.10")
    assert (porto.city, porto.latitude, porto.as_num) == ("Porto (test replacement)",
                                                          f32(41.1579), 65201)  # fmt: skip
    assert geo.lookup("100.96.3.10").city == ""  # not in the new City database
    assert geo.lookup("100.96.1.77").city == "Porto (test replacement)"  # the network forgotten
    assert geo.reload_if_changed() is False
    geo.close()


def test_file_overwritten_in_place_is_picked_up(tmp_path: Path) -> None:
    """``cp new.mmdb GeoLite2-City.mmdb`` rewrites the same inode (upstream issue #93)."""
    write_test_databases(tmp_path, build_epoch=EPOCH)
    geo = _open(tmp_path)
    assert geo.lookup("100.96.1.10").city == "Lisbon"
    inode = os.stat(tmp_path / CITY_DATABASE).st_ino
    write_city_db(tmp_path / "new.mmdb", [PORTO], build_epoch=EPOCH + 1)
    with open(tmp_path / CITY_DATABASE, "r+b") as live:
        live.truncate(0)  # half-way through the copy: lookups still use the loaded copy
        assert geo.lookup("100.96.1.11").city == "Lisbon"
        live.write((tmp_path / "new.mmdb").read_bytes())
    assert os.stat(tmp_path / CITY_DATABASE).st_ino == inode
    assert geo.reload_if_changed() is True
    assert geo.lookup("100.96.1.10").city == "Porto (test replacement)"
    geo.close()


def test_unreadable_replacement_keeps_the_loaded_database(tmp_path: Path) -> None:
    write_test_databases(tmp_path, build_epoch=EPOCH)
    geo = _open(tmp_path)
    (tmp_path / "junk").write_bytes(b"this is not a MaxMind database" * 10)
    os.replace(tmp_path / "junk", tmp_path / CITY_DATABASE)
    assert geo.reload_if_changed() is False
    assert geo.lookup("100.96.1.10").city == "Lisbon"
    assert geo.reload_if_changed() is False  # same broken file: not retried
    _replace_city(tmp_path, PORTO, EPOCH + 5)
    assert geo.reload_if_changed() is True
    assert geo.lookup("100.96.1.10").city == "Porto (test replacement)"
    geo.close()


def test_watching_with_a_clock(tmp_path: Path) -> None:
    write_test_databases(tmp_path, build_epoch=EPOCH)
    clock = Clock()
    geo = GeoIP(str(tmp_path) + "/", clock=clock)
    geo.load()
    geo.start_watching(5.0)
    _replace_city(tmp_path, PORTO, EPOCH + 7)
    clock.advance(4.9)
    assert geo.lookup("100.96.1.10").city == "Lisbon"
    clock.advance(0.2)
    assert geo.lookup("100.96.1.10").city == "Porto (test replacement)"
    geo.close()
    assert clock.getDelayedCalls() == []


def test_updated_file_is_preferred(tmp_path: Path) -> None:
    write_test_databases(tmp_path, build_epoch=EPOCH)
    write_city_db(tmp_path / (CITY_DATABASE + ".updated"), [PORTO], build_epoch=EPOCH)
    geo = _open(tmp_path)
    assert geo.lookup("100.96.1.10").city == "Porto (test replacement)"
    assert geo.lookup("100.96.1.10").as_name == "Lisboa Telecom & Cabo"
    # An .updated file appearing later is picked up too.
    write_asn_db(tmp_path / (ASN_DATABASE + ".updated"),
                 [AsnRecord("100.96.1.0/24", 64999, "Updated Net")], build_epoch=EPOCH)  # fmt: skip
    assert geo.reload_if_changed() is True
    assert geo.lookup("100.96.1.10").as_num == 64999
    # ... and its removal falls back to the plain file.
    os.remove(tmp_path / (CITY_DATABASE + ".updated"))
    assert geo.reload_if_changed() is True
    assert geo.lookup("100.96.1.10").city == "Lisbon"
    geo.close()


def test_only_city_database(tmp_path: Path) -> None:
    write_city_db(tmp_path / CITY_DATABASE, [LISBON])
    geo = GeoIP(str(tmp_path) + "/")
    messages = geo.load()
    assert geo.city_available and not geo.asn_available
    assert messages[0].startswith("Loading GeoLite2-City.mmdb database (built on ")
    assert messages[1].startswith("Can't load the GeoLite2-ASN.mmdb database (")
    assert messages[1].endswith("No such file or directory")
    lisbon = geo.lookup("100.96.1.10")
    assert (lisbon.city, lisbon.country_code, lisbon.as_num, lisbon.as_name) == (
        "Lisbon", "PT", 0, "")  # fmt: skip
    assert lisbon.is_valid


def test_only_asn_database(tmp_path: Path) -> None:
    write_asn_db(tmp_path / ASN_DATABASE, conformance_records().asn)
    geo = GeoIP(str(tmp_path) + "/")
    geo.load()
    assert geo.asn_available and not geo.city_available
    record = geo.lookup("100.96.1.10")
    assert record == GeoRecord(as_name="Lisboa Telecom & Cabo", as_num=65201)
    assert not record.is_valid


def test_both_databases_missing_or_broken(tmp_path: Path) -> None:
    with pytest.raises(GeoIPUnavailable, match=r"GeoLite2-City\.mmdb.*GeoLite2-ASN\.mmdb"):
        GeoIP(str(tmp_path) + "/").load()
    (tmp_path / CITY_DATABASE).write_bytes(b"\0" * 100)
    (tmp_path / ASN_DATABASE).write_text("garbage")
    geo = GeoIP(str(tmp_path) + "/")
    with pytest.raises(GeoIPUnavailable):
        geo.load()
    assert geo.lookup("100.96.1.10") == GeoRecord()


# --- mirror geolocation (spec §4.3) -------------------------------------------------------


class _Resolver:
    """A stand-in DNS: fixed answers for names, remembering what was asked."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, host: str) -> list[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise HostLookupError(2, f"lookup {host}: no such host")
        return self.answers[host]


@pytest.fixture
def conformance_geo() -> Iterator[GeoIP]:
    geo = _open(FIXTURES)
    yield geo
    geo.close()


def test_locate_mirror_url_with_port(conformance_geo: GeoIP) -> None:
    location = locate_mirror(conformance_geo, "http://127.0.0.31:8080/")
    assert location.valid and location.warnings == ()
    assert (location.latitude, location.longitude) == (f32(40.4168), f32(-3.7038))
    assert (location.continent_code, location.country_code, location.country_name) == (
        "EU", "ES", "Spain")  # fmt: skip
    assert (location.as_num, location.as_name) == (65101, "Madrid Mirror Net")


def test_locate_mirror_scheme_less_url(conformance_geo: GeoIP) -> None:
    location = locate_mirror(conformance_geo, "127.0.0.32/pub/")
    assert location.warnings == ()
    assert (location.country_code, location.latitude, location.as_num) == ("ES", f32(39.4699), 0)


def test_locate_mirror_ipv6_literal_with_port(conformance_geo: GeoIP) -> None:
    location = locate_mirror(conformance_geo, "https://[2001:db8:cafe::20]:8443/pub/")
    assert (location.country_code, location.as_num, location.warnings) == ("CA", 65210, ())


def test_locate_mirror_resolves_host_without_port(conformance_geo: GeoIP) -> None:
    resolver = _Resolver({"mirror.example.org": ["127.0.0.33"]})
    location = locate_mirror(conformance_geo, "https://Mirror.Example.org:8443/x/", resolver)
    assert resolver.asked == ["mirror.example.org"]
    assert (location.country_code, location.as_num, location.warnings) == ("CA", 65103, ())


def test_locate_mirror_several_addresses(conformance_geo: GeoIP) -> None:
    resolver = _Resolver({"multi.example": ["127.0.0.34", "127.0.0.35", "::1"]})
    location = locate_mirror(conformance_geo, "multi.example/debian/", resolver)
    assert location.warnings == (WARNING_SEVERAL_ADDRESSES,)
    assert WARNING_SEVERAL_ADDRESSES == (
        "Warning: the hostname returned more than one address. "
        "Assuming they're sharing the same location."
    )
    assert (location.country_code, location.continent_code, location.as_num) == ("SG", "AS", 65104)


def test_locate_mirror_unknown_location(conformance_geo: GeoIP) -> None:
    resolver = _Resolver({"anycast.example": ["100.96.10.10", "100.96.1.10"]})
    location = locate_mirror(conformance_geo, "http://anycast.example/", resolver)
    assert location.warnings == (WARNING_SEVERAL_ADDRESSES, WARNING_NO_LOCATION)
    assert WARNING_NO_LOCATION == "Warning: unable to guess the geographic location of this mirror"
    assert not location.valid
    nowhere = locate_mirror(conformance_geo, "http://100.96.200.7/")
    assert nowhere.warnings == (WARNING_NO_LOCATION,)
    assert nowhere == type(nowhere)(warnings=(WARNING_NO_LOCATION,))


def test_locate_mirror_lookup_failure(conformance_geo: GeoIP) -> None:
    with pytest.raises(MirrorLookupError) as failure:
        locate_mirror(conformance_geo, "http://unknown.example:81/", _Resolver({}))
    assert str(failure.value) == "IP lookup failed: lookup unknown.example: no such host"
    with pytest.raises(MirrorLookupError):
        locate_mirror(conformance_geo, "http://empty.example/", _Resolver({"empty.example": []}))
    with pytest.raises(MirrorLookupError):
        locate_mirror(conformance_geo, "http:///no-host/", _Resolver({}))


def test_lookup_host_addresses_literals_and_localhost() -> None:
    assert lookup_host_addresses("127.0.0.31") == ["127.0.0.31"]
    assert lookup_host_addresses("[::1]") == ["::1"]
    assert lookup_host_addresses("2001:db8:cafe::20") == ["2001:db8:cafe::20"]
    assert "127.0.0.1" in lookup_host_addresses("localhost")  # from /etc/hosts


# --- copies in a thread (the watch on a real reactor), with a thread pool run by hand --------


class _Job:
    def __init__(self, on_result: Callable[[bool, object], None], work: Callable[[], object]):
        self.on_result, self.work = on_result, work


@implementer(IReactorThreads)
class _ManualThreads(Clock):
    """A clock whose thread pool runs each job only when the test says (``run``)."""

    def __init__(self) -> None:
        super().__init__()
        self.jobs: list[_Job] = []

    def getThreadPool(self) -> _ManualThreads:  # the pool is this object
        return self

    def callInThreadWithCallback(self, on_result: Callable[[bool, object], None],
                                 function: Callable[..., object], *args: object) -> None:
        self.jobs.append(_Job(on_result, lambda: function(*args)))

    def callFromThread(self, function: Callable[..., object], *args: object) -> None:
        function(*args)

    def callInThread(self, function: Callable[..., object], *args: object) -> None:
        raise NotImplementedError

    def suggestThreadPoolSize(self, size: int) -> None:
        pass

    def run(self, index: int = 0) -> None:
        job = self.jobs.pop(index)
        job.on_result(True, job.work())


BRAGA = CityRecord("100.96.1.0/24", "Braga (newer)", "PT", "Portugal", "EU",
                   41.5454, -8.4265, "Europe/Lisbon")  # fmt: skip


@pytest.fixture
def threaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             ) -> Iterator[tuple[GeoIP, _ManualThreads, list[Any]]]:
    """GeoIP on the generated databases, loaded, whose checks copy in a hand-run pool; and the
    readers the copies made."""
    import mirrorbits.geo as geo_module
    write_test_databases(tmp_path, build_epoch=EPOCH)
    threads = _ManualThreads()
    geo = GeoIP(str(tmp_path), clock=threads)
    geo.load()
    made: list[Any] = []
    real = geo_module._open_private

    def recording(path: str) -> Any:
        reader, stamp = real(path)
        made.append(reader)
        return reader, stamp

    monkeypatch.setattr(geo_module, "_open_private", recording)
    yield geo, threads, made
    geo.close()


def _result(deferred: Deferred[bool]) -> list[bool]:
    results: list[bool] = []
    deferred.addCallback(results.append)
    return results


def test_a_changed_file_is_copied_in_the_pool_and_swapped_after(
        threaded: tuple[GeoIP, _ManualThreads, list[Any]], tmp_path: Path) -> None:
    geo, threads, _ = threaded
    assert _result(geo.reload_in_thread()) == [False] and threads.jobs == []  # unchanged
    _replace_city(tmp_path, PORTO, EPOCH + 1)
    with captured_log("") as log:
        result = _result(geo.reload_in_thread())
        assert result == [] and len(threads.jobs) == 1
        assert geo.lookup("100.96.1.10").city == "Lisbon"  # meanwhile: the reader before
        threads.run()
    assert result == [True]
    assert geo.lookup("100.96.1.10").city == "Porto (test replacement)"  # network forgotten
    assert [line for line in log if "GeoLite2" in line] == [
        f"Loading GeoLite2-City.mmdb database (built on {_built(EPOCH + 1)})"]


@pytest.mark.parametrize("order", ["older done first", "newer done first"])
def test_an_older_copy_never_replaces_a_newer_one(
        threaded: tuple[GeoIP, _ManualThreads, list[Any]], tmp_path: Path, order: str) -> None:
    geo, threads, made = threaded
    _replace_city(tmp_path, PORTO, EPOCH + 1)
    older = _result(geo.reload_in_thread())
    _replace_city(tmp_path, BRAGA, EPOCH + 2)
    newer = _result(geo.reload_in_thread())
    with captured_log("") as log:
        if order == "older done first":
            threads.run(0)
            assert geo.lookup("100.96.1.10").city == "Lisbon"
        threads.run(-1)
        if threads.jobs:
            threads.run(0)
    assert (older, newer) == ([False], [True])
    assert geo.lookup("100.96.1.10").city == "Braga (newer)"
    assert sorted(reader.closed for reader in made) == [False, True]  # the older: closed
    assert [line for line in log if "GeoLite2" in line] == [
        f"Loading GeoLite2-City.mmdb database (built on {_built(EPOCH + 2)})"]


def test_a_load_while_a_copy_runs_wins(
        threaded: tuple[GeoIP, _ManualThreads, list[Any]], tmp_path: Path) -> None:
    """A synchronous load while the watch's copy runs: the copy is dropped."""
    geo, threads, made = threaded
    _replace_city(tmp_path, PORTO, EPOCH + 1)
    result = _result(geo.reload_in_thread())
    _replace_city(tmp_path, BRAGA, EPOCH + 2)
    geo.load_and_report()  # copies Braga here and now
    threads.run()  # the copy of Porto
    assert result == [False] and [reader.closed for reader in made] == [False, True]
    assert geo.lookup("100.96.1.10").city == "Braga (newer)"


def test_a_copy_that_fails_keeps_the_reader_and_is_said_once(
        threaded: tuple[GeoIP, _ManualThreads, list[Any]], tmp_path: Path) -> None:
    geo, threads, _ = threaded
    (tmp_path / "junk").write_bytes(b"this is not a MaxMind database" * 10)
    os.replace(tmp_path / "junk", tmp_path / CITY_DATABASE)
    with captured_log("") as log:
        result = _result(geo.reload_in_thread())
        threads.run()
        assert _result(geo.reload_in_thread()) == [False] and threads.jobs == []  # not retried
    assert result == [False]
    assert geo.lookup("100.96.1.10").city == "Lisbon"
    [warning] = [line for line in log if "GeoLite2" in line]
    assert warning.startswith(f"Can't load the GeoLite2-City.mmdb database ({tmp_path}/")
    assert warning.endswith("; the database loaded before stays in use")


@pytest.mark.parametrize("stop", ["close", "stop_watching"])
def test_stopping_while_a_copy_runs_drops_it(
        threaded: tuple[GeoIP, _ManualThreads, list[Any]], tmp_path: Path, stop: str) -> None:
    geo, threads, made = threaded
    geo.start_watching(5.0)
    _replace_city(tmp_path, PORTO, EPOCH + 1)
    threads.advance(5.0)
    assert len(threads.jobs) == 1
    with captured_log("") as log:
        getattr(geo, stop)()
        threads.run()
    assert log == [] and made[0].closed
    assert threads.getDelayedCalls() == []
    if stop == "close":
        assert not (geo.city_available or geo.asn_available)
    else:
        assert geo.lookup("100.96.1.10").city == "Lisbon"


def test_the_watch_waits_for_a_copy_before_checking_again(
        threaded: tuple[GeoIP, _ManualThreads, list[Any]], tmp_path: Path) -> None:
    geo, threads, _ = threaded
    geo.start_watching(5.0)
    _replace_city(tmp_path, PORTO, EPOCH + 1)
    threads.advance(5.0)
    threads.advance(20.0)
    assert len(threads.jobs) == 1  # one copy, however long it takes
    threads.run()
    assert geo.lookup("100.96.1.10").city == "Porto (test replacement)"
    _replace_city(tmp_path, BRAGA, EPOCH + 2)
    threads.advance(5.0)
    threads.run()
    assert geo.lookup("100.96.1.10").city == "Braga (newer)"


# --- a configuration reload (use_directory): the watch's copies in a thread -----------------


def _directory_with(path: Path, record: CityRecord, epoch: int) -> Path:
    """A directory whose City database holds ``record`` (and the conformance ASN database)."""
    write_test_databases(path, build_epoch=EPOCH)
    write_city_db(path / CITY_DATABASE, [record], build_epoch=epoch)
    return path


def test_a_reload_to_another_directory_copies_in_the_pool(
        threaded: tuple[GeoIP, _ManualThreads, list[Any]], tmp_path: Path) -> None:
    geo, threads, _ = threaded
    other = _directory_with(tmp_path / "other", PORTO, EPOCH + 1)
    with captured_log("") as log:
        done = _result(geo.use_directory(str(other) + "/"))
        assert len(threads.jobs) == 1 and done == []  # both files: one job
        assert geo.lookup("100.96.1.10").city == "Lisbon"  # meanwhile: the readers before
        threads.run()
    assert done == [None]
    assert geo.lookup("100.96.1.10").city == "Porto (test replacement)"
    assert [line.split(" (built on")[0] for line in log if "GeoLite2" in line] == [
        "Loading GeoLite2-City.mmdb database", "Loading GeoLite2-ASN.mmdb database"]


def test_a_newer_reload_wins_over_an_older_one_still_copying(
        threaded: tuple[GeoIP, _ManualThreads, list[Any]], tmp_path: Path) -> None:
    geo, threads, made = threaded
    first = _directory_with(tmp_path / "first", PORTO, EPOCH + 1)
    second = _directory_with(tmp_path / "second", BRAGA, EPOCH + 2)
    geo.use_directory(str(first) + "/")
    geo.use_directory(str(second) + "/")
    threads.run(-1)  # the newer first
    threads.run()
    assert geo.lookup("100.96.1.10").city == "Braga (newer)"
    assert sorted(reader.closed for reader in made) == [False, False, True, True]


def test_the_watch_does_not_copy_again_a_file_a_reload_is_copying(
        threaded: tuple[GeoIP, _ManualThreads, list[Any]], tmp_path: Path) -> None:
    geo, threads, made = threaded
    geo.start_watching(5.0)
    other = _directory_with(tmp_path / "other", PORTO, EPOCH + 1)
    geo.use_directory(str(other) + "/")
    threads.advance(5.0)  # the watch's check, while the reload's copy runs
    assert len(threads.jobs) == 1
    threads.run()
    assert geo.lookup("100.96.1.10").city == "Porto (test replacement)"
    assert [reader.closed for reader in made] == [False, False]


def test_a_reload_back_to_the_loaded_directory_drops_the_copy(
        threaded: tuple[GeoIP, _ManualThreads, list[Any]], tmp_path: Path) -> None:
    geo, threads, made = threaded
    other = _directory_with(tmp_path / "other", PORTO, EPOCH + 1)
    geo.use_directory(str(other) + "/")
    geo.use_directory(str(tmp_path))  # before the copy is done
    threads.run()
    assert threads.jobs == [] and all(reader.closed for reader in made)
    assert geo.lookup("100.96.1.10").city == "Lisbon"


@pytest.mark.parametrize("new_city", ["junk", "missing"])
def test_a_reload_to_a_bad_database_keeps_the_loaded_one_with_one_warning(
        threaded: tuple[GeoIP, _ManualThreads, list[Any]], tmp_path: Path, new_city: str) -> None:
    geo, threads, _ = threaded
    other = tmp_path / "other"
    write_test_databases(other, build_epoch=EPOCH)
    if new_city == "junk":
        (other / CITY_DATABASE).write_bytes(b"this is not a MaxMind database" * 10)
    else:
        (other / CITY_DATABASE).unlink()
    with captured_log("") as log:
        geo.use_directory(str(other) + "/")
        threads.run()
        geo.use_directory(str(other) + "/")  # the same reload again: nothing copied or said
        assert threads.jobs == []
    assert geo.lookup("100.96.1.10").city == "Lisbon"
    [warning] = [line for line in log if "GeoLite2-City" in line]
    assert warning.startswith(f"Can't load the GeoLite2-City.mmdb database ({other}/")
    assert warning.endswith("; the database loaded before stays in use")
    assert not [line for line in log if "GeoIP" in line]  # nothing said missing


def _built(epoch: int) -> str:
    from mirrorbits.geo import _built_on
    return _built_on(epoch)
