"""Real GeoLite2-City / GeoLite2-ASN ``.mmdb`` files for tests, built with ``mmdb_writer``.

The layout is the one of MaxMind's GeoLite2 databases (and of the conformance databases): IPv6
trees with the IPv4 space mapped at ``::/96``; City records hold ``city``, ``continent``,
``country``, ``registered_country`` and ``location``; ASN records hold
``autonomous_system_number`` and ``autonomous_system_organization``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

from attrs import frozen
from mmdb_writer import MmdbF64, MmdbU16, MmdbU32, MMDBWriter
from netaddr import IPSet

from mirrorbits.float32 import f32
from mirrorbits.model import GeoRecord

CITY_FILE = "GeoLite2-City.mmdb"
ASN_FILE = "GeoLite2-ASN.mmdb"

# Continent code -> (GeoNames id, English name), as in GeoLite2.
CONTINENTS: dict[str, tuple[int, str]] = {
    "AF": (6255146, "Africa"),
    "AS": (6255147, "Asia"),
    "EU": (6255148, "Europe"),
    "NA": (6255149, "North America"),
    "SA": (6255150, "South America"),
    "OC": (6255151, "Oceania"),
    "AN": (6255152, "Antarctica"),
}


@frozen
class CityRecord:
    """One network of the City database."""

    network: str
    city: str
    country_code: str
    country: str
    continent_code: str
    latitude: float
    longitude: float
    time_zone: str = ""
    city_geoname_id: int = 0
    country_geoname_id: int = 0
    accuracy_radius: int = 20


@frozen
class AsnRecord:
    """One network of the ASN database."""

    network: str
    number: int
    organization: str


@frozen
class GeoTable:
    """The contents of a City + ASN database pair."""

    city: tuple[CityRecord, ...]
    asn: tuple[AsnRecord, ...]


@frozen
class ConformanceClient:
    """A client of the conformance scenario and the ``ClientInfo`` JSON it must get."""

    name: str
    ip: str
    valid: bool
    client_info: str

    @property
    def expected(self) -> GeoRecord:
        """The expected record (coordinates as float32, like the reference)."""
        info = json.loads(self.client_info)
        return GeoRecord(
            country_code=info["CountryCode"],
            continent_code=info["ContinentCode"],
            city=info["City"],
            country=info["Country"],
            latitude=f32(info["Latitude"]),
            longitude=f32(info["Longitude"]),
            as_name=info["ASName"],
            as_num=info["ASNum"],
        )


class _Writer(MMDBWriter):
    """``MMDBWriter`` whose build epoch can be chosen (it uses the current time otherwise)."""

    def __init__(self, database_type: str, build_epoch: int | None) -> None:
        super().__init__(
            ip_version=6,
            ipv4_compatible=True,
            database_type=database_type,
            languages=["en"],
            description=f"Test {database_type} database (mirrorbits)",
        )
        self._build_epoch = build_epoch

    def _build_meta(self) -> dict[str, Any]:
        meta = super()._build_meta()
        if self._build_epoch is not None:
            meta["build_epoch"] = self._build_epoch
        return meta


def _names(name: str) -> dict[str, str]:
    return {"en": name}


def _city_content(record: CityRecord) -> dict[str, Any]:
    continent_id, continent_name = CONTINENTS.get(record.continent_code, (0, ""))
    country = {
        "geoname_id": MmdbU32(record.country_geoname_id),
        "iso_code": record.country_code,
        "names": _names(record.country),
    }
    return {
        "city": {"geoname_id": MmdbU32(record.city_geoname_id), "names": _names(record.city)},
        "continent": {
            "code": record.continent_code,
            "geoname_id": MmdbU32(continent_id),
            "names": _names(continent_name),
        },
        "country": country,
        "registered_country": dict(country),
        "location": {
            "accuracy_radius": MmdbU16(record.accuracy_radius),
            "latitude": MmdbF64(record.latitude),
            "longitude": MmdbF64(record.longitude),
            "time_zone": record.time_zone,
        },
    }


def write_city_db(
    path: str | os.PathLike[str], records: Iterable[CityRecord], build_epoch: int | None = None
) -> None:
    """Write a GeoLite2-City database holding exactly ``records``."""
    writer = _Writer("GeoLite2-City", build_epoch)
    for record in records:
        writer.insert_network(IPSet([record.network]), _city_content(record))
    writer.to_db_file(os.fspath(path))


def write_asn_db(
    path: str | os.PathLike[str], records: Iterable[AsnRecord], build_epoch: int | None = None
) -> None:
    """Write a GeoLite2-ASN database holding exactly ``records``."""
    writer = _Writer("GeoLite2-ASN", build_epoch)
    for record in records:
        content = {
            "autonomous_system_number": MmdbU32(record.number),
            "autonomous_system_organization": record.organization,
        }
        writer.insert_network(IPSet([record.network]), content)
    writer.to_db_file(os.fspath(path))


def _city(
    network: str, city: str, code: str, country: str, continent: str,
    lat: float, lon: float, zone: str, city_id: int, country_id: int,
) -> CityRecord:
    return CityRecord(network, city, code, country, continent, lat, lon, zone, city_id, country_id)


def conformance_records() -> GeoTable:
    """The GeoIP records of the conformance scenario (README §1.4)."""
    city = (
        _city("127.0.0.31/32", "Madrid", "ES", "Spain", "EU", 40.4168, -3.7038,
              "Europe/Madrid", 3117735, 2510769),
        _city("127.0.0.32/32", "Valencia", "ES", "Spain", "EU", 39.4699, -0.3763,
              "Europe/Madrid", 2509954, 2510769),
        _city("127.0.0.33/32", "Toronto", "CA", "Canada", "NA", 43.6532, -79.3832,
              "America/Toronto", 6167865, 6251999),
        _city("127.0.0.34/32", "Singapore", "SG", "Singapore", "AS", 1.3521, 103.8198,
              "Asia/Singapore", 1880252, 1880251),
        _city("127.0.0.35/32", "Warsaw", "PL", "Poland", "EU", 52.2297, 21.0122,
              "Europe/Warsaw", 756135, 798544),
        _city("127.0.0.36/32", "Johannesburg", "ZA", "South Africa", "AF", -26.2041, 28.0473,
              "Africa/Johannesburg", 993800, 953987),
        _city("127.0.0.37/32", "São Paulo", "BR", "Brazil", "SA", -23.5505, -46.6333,
              "America/Sao_Paulo", 3448439, 3469034),
        _city("127.0.0.38/32", "Reykjavik", "IS", "Iceland", "EU", 64.1466, -21.9426,
              "Atlantic/Reykjavik", 3413829, 2629691),
        _city("127.0.0.39/32", "Oslo", "NO", "Norway", "EU", 59.9139, 10.7522,
              "Europe/Oslo", 3143244, 3144096),
        _city("100.96.1.0/24", "Lisbon", "PT", "Portugal", "EU", 38.7223, -9.1393,
              "Europe/Lisbon", 2267057, 2264397),
        _city("100.96.2.0/24", "Seville", "ES", "Spain", "EU", 37.3891, -5.9845,
              "Europe/Madrid", 2510911, 2510769),
        _city("100.96.3.0/24", "Montréal", "CA", "Canada", "NA", 45.5017, -73.5673,
              "America/Toronto", 6077243, 6251999),
        _city("100.96.4.0/24", "Jakarta", "ID", "Indonesia", "AS", -6.2088, 106.8456,
              "Asia/Jakarta", 1642911, 1643084),
        _city("100.96.5.0/24", "Prague", "CZ", "Czechia", "EU", 50.0755, 14.4378,
              "Europe/Prague", 3067696, 3077311),
        _city("100.96.6.0/24", "Cape Town", "ZA", "South Africa", "AF", -33.9249, 18.4241,
              "Africa/Johannesburg", 3369157, 953987),
        _city("100.96.7.0/24", "Lagos", "NG", "Nigeria", "AF", 6.5244, 3.3792,
              "Africa/Lagos", 2332459, 2328926),
        _city("100.96.8.0/24", "Buenos Aires", "AR", "Argentina", "SA", -34.6037, -58.3816,
              "America/Argentina/Buenos_Aires", 3435910, 3865483),
        _city("100.96.9.0/24", "Mexico City", "MX", "Mexico", "NA", 19.4326, -99.1332,
              "America/Mexico_City", 3530597, 3996063),
        _city("2001:db8:cafe::/48", "Vancouver", "CA", "Canada", "NA", 49.2827, -123.1207,
              "America/Vancouver", 6173331, 6251999),
    )
    asn = (
        AsnRecord("127.0.0.31/32", 65101, "Madrid Mirror Net"),
        AsnRecord("127.0.0.33/32", 65103, "Toronto Mirror Net"),
        AsnRecord("127.0.0.34/32", 65104, "Singapore Mirror Net"),
        AsnRecord("127.0.0.35/32", 65105, "Warsaw Mirror Net"),
        AsnRecord("127.0.0.36/32", 65106, "Joburg Mirror Net"),
        AsnRecord("127.0.0.37/32", 65107, "Rede Espelho SP"),
        AsnRecord("127.0.0.38/32", 65108, "Reykjavik Mirror Net"),
        AsnRecord("127.0.0.39/32", 65109, "Oslo Mirror Net"),
        AsnRecord("100.96.1.0/24", 65201, "Lisboa Telecom & Cabo"),
        AsnRecord("100.96.2.0/24", 4200000123, "Sevilla Fibra (32-bit ASN)"),
        AsnRecord("100.96.3.0/24", 65203, "Québec Net"),
        AsnRecord("100.96.4.0/24", 65204, "Jakarta Net"),
        AsnRecord("100.96.5.0/24", 65205, "Praha Net"),
        AsnRecord("100.96.6.0/24", 65206, "Kaapstad Net"),
        AsnRecord("100.96.7.0/24", 65207, "Lagos Net"),
        AsnRecord("100.96.8.0/24", 65107, "Rede Espelho SP"),
        AsnRecord("2001:db8:cafe::/48", 65210, "Pacific v6 Net"),
        AsnRecord("100.96.10.0/24", 65211, "Anycast Only Net"),
    )
    return GeoTable(city=city, asn=asn)


def _info(
    cc: str, cont: str, city: str, country: str, lat: str, lon: str, asn: str, num: int
) -> str:
    return (
        f'{{"CountryCode":"{cc}","ContinentCode":"{cont}","City":"{city}","Country":"{country}",'
        f'"Latitude":{lat},"Longitude":{lon},"ASName":"{asn}","ASNum":{num}}}'
    )


def conformance_clients() -> tuple[ConformanceClient, ...]:
    """The clients of the conformance scenario with their expected ``ClientInfo`` (§1.4)."""
    c = ConformanceClient
    return (
        c("lisbon", "100.96.1.10", True, _info(
            "PT", "EU", "Lisbon", "Portugal", "38.7223", "-9.1393", "Lisboa Telecom & Cabo",
            65201)),
        c("seville", "100.96.2.10", True, _info(
            "ES", "EU", "Seville", "Spain", "37.3891", "-5.9845", "Sevilla Fibra (32-bit ASN)",
            4200000123)),
        c("montreal", "100.96.3.10", True, _info(
            "CA", "NA", "Montréal", "Canada", "45.5017", "-73.5673", "Québec Net", 65203)),
        c("jakarta", "100.96.4.10", True, _info(
            "ID", "AS", "Jakarta", "Indonesia", "-6.2088", "106.8456", "Jakarta Net", 65204)),
        c("prague", "100.96.5.10", True, _info(
            "CZ", "EU", "Prague", "Czechia", "50.0755", "14.4378", "Praha Net", 65205)),
        c("capetown", "100.96.6.10", True, _info(
            "ZA", "AF", "Cape Town", "South Africa", "-33.9249", "18.4241", "Kaapstad Net", 65206)),
        c("lagos", "100.96.7.10", True, _info(
            "NG", "AF", "Lagos", "Nigeria", "6.5244", "3.3792", "Lagos Net", 65207)),
        c("buenosaires", "100.96.8.10", True, _info(
            "AR", "SA", "Buenos Aires", "Argentina", "-34.6037", "-58.3816", "Rede Espelho SP",
            65107)),
        c("mexico", "100.96.9.10", True, _info(
            "MX", "NA", "Mexico City", "Mexico", "19.4326", "-99.1332", "", 0)),
        c("vancouver6", "2001:db8:cafe::20", True, _info(
            "CA", "NA", "Vancouver", "Canada", "49.2827", "-123.1207", "Pacific v6 Net", 65210)),
        c("asnknown", "100.96.10.10", False, _info(
            "", "", "", "", "0", "0", "Anycast Only Net", 65211)),
        c("nowhere", "100.96.200.7", False, _info("", "", "", "", "0", "0", "", 0)),
    )


def write_test_databases(directory: str | os.PathLike[str], build_epoch: int | None = None) -> None:
    """Write ``GeoLite2-City.mmdb`` and ``GeoLite2-ASN.mmdb`` with the conformance records."""
    table = conformance_records()
    os.makedirs(directory, exist_ok=True)
    write_city_db(os.path.join(directory, CITY_FILE), table.city, build_epoch)
    write_asn_db(os.path.join(directory, ASN_FILE), table.asn, build_epoch)
