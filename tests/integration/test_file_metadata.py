"""What a redirect says about the file itself, on the real daemon and the recorded scenario:
its digests (``Repr-Digest``, ``Digest``), matching the bytes of the repository."""

from __future__ import annotations

import hashlib
from base64 import b64encode
from typing import Any

import pytest

from tests.daemon import DaemonProcess
from tests.integration.conftest import header_values, request
from tests.scenario import content, scenario

LISBON = "100.96.1.10"
FILES = [entry for entry in scenario()["repository"]["files"] if entry.get("sha256")]


@pytest.mark.parametrize("entry", FILES, ids=lambda e: e["path"])
@pytest.mark.parametrize("method", ["HEAD", "GET"])
def test_redirect_digests_match_the_bytes(conformance_daemon: DaemonProcess,
                                          entry: dict[str, Any], method: str) -> None:
    status, headers, _ = request(conformance_daemon, method, entry["path"],
                                 {"X-Forwarded-For": LISBON})
    if status != 302:
        pytest.skip(f"{entry['path']} is not redirected ({status})")
    data = content(entry["content"])
    sha256 = b64encode(hashlib.sha256(data).digest()).decode()
    assert header_values(headers, "Repr-Digest") == [f"sha-256=:{sha256}:"]
    legacy = header_values(headers, "Digest")
    assert len(legacy) == 1
    assert legacy[0].split(",") == [
        f"SHA-256={sha256}", "SHA=" + b64encode(hashlib.sha1(data).digest()).decode(),
        "MD5=" + b64encode(hashlib.md5(data).digest()).decode()]


def test_no_digest_on_a_directory_or_json(conformance_daemon: DaemonProcess) -> None:
    _, headers, _ = request(conformance_daemon, "GET", FILES[0]["path"],
                            {"X-Forwarded-For": LISBON, "Accept": "application/json"})
    assert header_values(headers, "Repr-Digest") == []
