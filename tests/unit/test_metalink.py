"""The Metalink 4 document (RFC 5854): valid against the schema written from the RFC
(``tests/fixtures/metalink/metalink4.rng``, checked with xmllint when installed), every text
escaped, the mirrors in order with their priority and location."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mirrorbits.model import FileInfo, Mirror
from mirrorbits.selection.types import Candidate
from mirrorbits.web.metalink import describedby_link, file_name, metalink_document

SCHEMA = Path(__file__).parents[1] / "fixtures" / "metalink" / "metalink4.rng"
NS = "{urn:ietf:params:xml:ns:metalink}"
SHA256 = "ab" * 32


def candidate(name: str, base: str, countries: str) -> Candidate:
    return Candidate(Mirror(id=1, name=name, http_url=base, country_codes=countries),
                     absolute_url=base)


def assert_valid(document: bytes, tmp_path: Path) -> None:
    """Valid against the RFC's schema (xmllint), and a file with a URL (not in the schema)."""
    root = ET.fromstring(document)
    assert root.tag == NS + "metalink"
    for element in root.iter(NS + "file"):
        assert element.findall(NS + "url") or element.findall(NS + "metaurl")
    xmllint = shutil.which("xmllint")
    if xmllint is None:
        pytest.skip("xmllint is not installed (apt package libxml2-utils)")
    path = tmp_path / "doc.meta4"
    path.write_bytes(document)
    checked = subprocess.run([xmllint, "--noout", "--relaxng", str(SCHEMA), str(path)],
                             capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr


def test_document(tmp_path: Path) -> None:
    info = FileInfo(path="/dir/a & <b>\t\"c\".iso", size=1234, mod_time_ns=1687249800_000000000,
                    sha256=SHA256.upper(), sha1="cd" * 20, md5="")
    mirrors = [candidate("one", "http://127.0.0.2/x&y/", "FR DE"),
               candidate("two", "https://127.0.0.3/", "")]
    document = metalink_document(info, mirrors, "Mirrorbits/0.1 <&>")
    assert_valid(document, tmp_path)
    root = ET.fromstring(document)
    assert root.findtext(NS + "generator") == "Mirrorbits/0.1 <&>"
    assert root.findtext(NS + "updated") == "2023-06-20T08:30:00Z"
    (element,) = root.findall(NS + "file")
    assert element.get("name") == "a & <b>\t\"c\".iso"
    assert element.findtext(NS + "size") == "1234"
    assert [(h.get("type"), h.text) for h in element.findall(NS + "hash")] == [
        ("sha-256", SHA256), ("sha-1", "cd" * 20)]
    urls = element.findall(NS + "url")
    assert [(u.get("priority"), u.get("location"), u.text) for u in urls] == [
        ("1", "fr", "http://127.0.0.2/x&y/dir/a%20%26%20%3Cb%3E%09%22c%22.iso"),
        ("2", None, "https://127.0.0.3/dir/a%20%26%20%3Cb%3E%09%22c%22.iso")]


def test_unindexed_file_has_no_size_nor_date(tmp_path: Path) -> None:
    document = metalink_document(FileInfo(path="/f"), [candidate("a", "http://h/", "US")], "g")
    assert_valid(document, tmp_path)
    root = ET.fromstring(document)
    assert root.find(NS + "updated") is None
    assert root.find(f"{NS}file/{NS}size") is None


def test_names_xml_cannot_carry() -> None:
    assert file_name("/a/b\x01c\udcff.txt") == "b_c_.txt"
    assert file_name("/") == "_"


def test_describedby_link_is_relative_to_the_request() -> None:
    assert describedby_link("/pool/x y:z.deb") == (
        b'<x%20y%3Az.deb?meta4>; rel=describedby; type="application/metalink4+xml"')
