"""Why no mirror can serve a file, and what a download gets instead (pure)."""

from __future__ import annotations

import pytest

from mirrorbits.web.unavailable import (
    DownloadOutcome,
    NoMirrorCause,
    cause_text,
    download_outcome,
    no_mirror_cause,
)


@pytest.mark.parametrize(("is_file", "indexed", "unreadable", "excluded", "cause"), [
    (False, False, False, 0, NoMirrorCause.DIRECTORY),
    (False, True, True, 3, NoMirrorCause.DIRECTORY),  # a directory first
    (True, False, True, 0, NoMirrorCause.NOT_INDEXED),  # nothing matched without the index
    (True, True, True, 0, NoMirrorCause.DATABASE),
    (True, True, False, 2, NoMirrorCause.ALL_EXCLUDED),
    (True, True, False, 0, NoMirrorCause.ON_NO_MIRROR),
])
def test_causes_in_the_order_a_request_meets_them(
        is_file: bool, indexed: bool, unreadable: bool, excluded: int,
        cause: NoMirrorCause) -> None:
    assert no_mirror_cause(is_file, indexed, unreadable, excluded) is cause


def test_every_cause_has_its_words() -> None:
    texts = {cause_text(cause, 2) for cause in NoMirrorCause}
    assert len(texts) == len(NoMirrorCause)
    assert cause_text(NoMirrorCause.ALL_EXCLUDED, 1).startswith("The only mirror that has")
    assert cause_text(NoMirrorCause.ALL_EXCLUDED, 3).startswith("Each of the 3 mirrors")


def test_download_outcome() -> None:
    assert download_outcome([], "/a b.iso", True) == DownloadOutcome()
    assert "gets 503 Service Unavailable" in DownloadOutcome().text
    located = download_outcome(["https://fb.example.net/pub/", "http://other/"], "/a b.iso",
                               True)
    assert located == DownloadOutcome("https://fb.example.net/pub/a%20b.iso")
    assert located.text.endswith("the first in the table of mirrors: "
                                 "https://fb.example.net/pub/a%20b.iso")
    drawn = download_outcome(["https://fb.example.net/pub/"], "/a", False)
    assert drawn.drawn and "drawn at random for each request" in drawn.text
    assert "https://" not in drawn.text
