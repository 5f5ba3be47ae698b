"""``?trace``: why a download of this file goes where it goes, as JSON.

Pure: the choice the mirrorlist page shows (every mirror the file is on, ranked or excluded
with its reason) in, the document out. For each candidate: its distance, the factors its
score is made of, the score, its weight in the draw and its exclusion reason; and the client
facts used (address, location, network, the protocol demanded). No URL or record field
beyond the mirror's name and country: nothing that is not on the mirrorlist page already.

The score's arithmetic stays in :mod:`mirrorbits.selection.score`; the trace gives its inputs
(``ScoreFactors``) and its result (``ComputedScore``).
"""

from __future__ import annotations

from typing import Any, Final

from mirrorbits.gojson import F32, dumps
from mirrorbits.model import FileInfo, GeoRecord
from mirrorbits.selection import Candidate, GenerationOutcome, Secure, same_asn
from mirrorbits.web.unavailable import NoMirrorCause

PROTOCOLS: Final = {Secure.UNDEFINED: "any", Secure.WITH_TLS: "https",
                    Secure.WITHOUT_TLS: "http"}


def _candidate(candidate: Candidate, rank: int | None, client: GeoRecord) -> dict[str, Any]:
    mirror = candidate.mirror
    codes = mirror.country_fields
    return {
        "Name": mirror.name,
        "Rank": rank,
        "CountryCodes": codes,
        "Distance": F32(candidate.distance),
        "ScoreFactors": {
            "MirrorScore": mirror.score,
            "PrimaryCountry": bool(codes) and codes[0] == client.country_code,
            "OtherCountry": client.country_code != "" and client.country_code in codes[1:],
            "SameASN": same_asn(client.as_num, mirror.asnum),
        },
        "ComputedScore": candidate.computed_score,
        "Weight": F32(candidate.weight),
        "ExcludeReason": candidate.exclude_reason,
    }


def trace_document(info: FileInfo, ip: str, client: GeoRecord, secure: Secure,
                   mirrors: list[Candidate], excluded: list[Candidate], fallback: bool,
                   cause: NoMirrorCause | None, pretty: bool,
                   generation: GenerationOutcome | None = None) -> bytes:
    """The ``?trace`` JSON of one request: ranked candidates first (``Rank`` 1...), then the
    excluded ones (``Rank`` null, ``ExcludeReason`` set); ``Generation`` what the generation
    indexes covering the file did (null when none covers it)."""
    doc = {
        "Path": info.path,
        "Indexed": info.mod_time_ns is not None,
        "Client": {
            "IP": ip,
            "Located": client.is_valid,
            "CountryCode": client.country_code,
            "ContinentCode": client.continent_code,
            "City": client.city,
            "Latitude": F32(client.latitude),
            "Longitude": F32(client.longitude),
            "ASNum": client.as_num,
            "ASName": client.as_name,
            "Protocol": PROTOCOLS[secure],
        },
        "Fallback": fallback,
        "Cause": None if cause is None else cause.value,
        "Generation": None if generation is None else {
            "Indexes": list(generation.indexes),
            "Applied": generation.applied,
            "CurrentMirrors": generation.current,
            "Text": generation.text,
        },
        "Candidates": [_candidate(c, rank, client) for rank, c in enumerate(mirrors, 1)]
        + [_candidate(c, None, client) for c in excluded],
    }
    return dumps(doc, pretty=pretty)
