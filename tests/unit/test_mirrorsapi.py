"""The ``?mirrors`` document: enabled mirrors only, URLs and states per protocol, no secrets."""

from __future__ import annotations

import json

from mirrorbits.model import Mirror
from mirrorbits.web.mirrorsapi import mirrors_document

SECRETS = dict(admin_name="Ana Admin", admin_email="ana@example.org", comment="root pw hint",
               custom_data='{"key": "private"}')


def test_enabled_only_sorted_no_secrets() -> None:
    mirrors = [
        Mirror(id=2, name="zeta", http_url="https://z.example/", enabled=True, https_up=False,
               https_down_reason="Unreachable", state_since=1700000000, **SECRETS),
        Mirror(id=1, name="alpha", http_url="a.example/pub/", rsync_url="rsync://a.example/pub/",
               ftp_url="ftp://a.example/pub/", enabled=True, http_up=True, https_up=True,
               country_codes="FR BE", continent_code="EU", **SECRETS),
        Mirror(id=3, name="off", http_url="http://off.example/", enabled=False),
    ]
    body = mirrors_document(mirrors, {1: 12, 2: 0}, pretty=False)
    for secret in SECRETS.values():
        assert secret.encode() not in body.replace(b'\\"', b'"')
    doc = json.loads(body)["Mirrors"]
    assert [m["Name"] for m in doc] == ["alpha", "zeta"]
    alpha, zeta = doc
    assert alpha["URLs"] == {"http": "http://a.example/pub/", "https": "https://a.example/pub/",
                             "rsync": "rsync://a.example/pub/", "ftp": "ftp://a.example/pub/"}
    assert alpha["CountryCodes"] == ["FR", "BE"] and alpha["Files"] == 12
    assert set(alpha["States"]) == {"http", "https"}
    assert zeta["URLs"] == {"https": "https://z.example/"}
    assert zeta["States"] == {"https": {"Up": False, "Reason": "Unreachable",
                                        "Since": "2023-11-14T22:13:20Z"}}
    assert zeta["Files"] == 0
