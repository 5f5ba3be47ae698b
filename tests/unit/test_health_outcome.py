"""The pure health-check rules: URLs per protocol, redirect policy, outcome of a probe (§7)."""

from __future__ import annotations

from twisted.logger import LogLevel

from mirrorbits.health.outcome import (
    ProbeResult,
    check_urls,
    classify,
    file_url,
    log_prefix,
    redirects_allowed,
)


def test_urls_per_protocol() -> None:
    assert check_urls("http://a.example/pub/") == [(1, "http://a.example/pub")]
    assert check_urls("https://a.example//") == [(2, "https://a.example")]
    assert check_urls("a.example/x/") == [(1, "http://a.example/x"), (2, "https://a.example/x")]


def test_paths_are_percent_encoded() -> None:
    assert (file_url("http://a", "/media/install image.img")
            == "http://a/media/install%20image.img")
    assert file_url("http://a", "/manuals/guía-rápida.pdf") == (
        "http://a/manuals/gu%C3%ADa-r%C3%A1pida.pdf")
    assert file_url("http://a", "/a+b/c~d_e.f:g@h") == "http://a/a%2Bb/c~d_e.f%3Ag%40h"
    assert file_url("http://a", "/what?#%") == "http://a/what%3F%23%25"
    assert file_url("http://a/d\u00e9p\u00f4t/my%20m", "/a b") == (
        "http://a/d%C3%A9p%C3%B4t/my%20m/a%20b")  # as a redirect to that mirror


def test_redirect_policy() -> None:
    assert redirects_allowed(0, False) and not redirects_allowed(0, True)
    assert redirects_allowed(1, True)
    assert not redirects_allowed(2, False)


def test_log_prefix_pads_the_name_and_protocol() -> None:
    assert log_prefix("m2.example", 2, 14) + " Error" == "m2.example     HTTPS Error"
    assert log_prefix("a-very-long-name", 1, 6) == "a-very HTTP "


def test_outcomes() -> None:
    up = classify(ProbeResult(status=200, content_length="10", elapsed_ms=12), "/f", 10)
    assert (up.up, up.reason, up.level, up.message) == (True, "", LogLevel.info, "Up! (12ms)")
    mismatch = classify(ProbeResult(status=200, content_length="11"), "/f", 10)
    assert (mismatch.up, mismatch.message) == (True, "File size mismatch! [/f]")
    assert classify(ProbeResult(status=200, content_length="junk"), "/f", 10).message == (
        "Up! (0ms)")
    missing = classify(ProbeResult(status=404), "/f", 10)
    assert (missing.up, missing.reason, missing.missing_file) == (
        False, "File not found /f (error 404)", True)
    for code in (403, 503, 500):
        other = classify(ProbeResult(status=code), "/f", 10)
        assert (other.up, other.reason, other.message) == (
            False, f"Got status code {code}", f"Down! Status: {code}")
    error = classify(ProbeResult(error="refused", elapsed_ms=3), "/f", 10)
    assert (error.up, error.reason, error.message) == (False, "Unreachable", "Error: refused (3ms)")
    refused = classify(ProbeResult(error="no", redirect_refused=True), "/f", 10)
    assert refused.reason == "Unauthorized redirect"
    flood = classify(ProbeResult(error="answer larger than 64 KiB", too_large=True), "/f", 10)
    assert (flood.reason, flood.message) == ("Answer too large",
                                             "Error: answer larger than 64 KiB (0ms)")
