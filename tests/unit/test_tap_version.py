"""``twistd mirrorbits --version`` names mirrorbits' version, not only Twisted's."""

from __future__ import annotations

import pytest

import twisted
from mirrorbits import version_string
from mirrorbits.tap import Options


def test_version_names_mirrorbits_and_twisted(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        Options().parseOptions(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out == (
        f"mirrorbits {version_string()} (Twisted {twisted.__version__})\n")
