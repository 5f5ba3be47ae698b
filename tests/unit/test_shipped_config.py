"""``contrib/mirrorbits.conf``: the shipped sample is ``EXAMPLE_CONFIG``, and it loads.

The units beside it (``contrib/systemd/``) are checked by ``systemd-analyze verify`` in
``tests/integration/test_systemd.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mirrorbits.config import EXAMPLE_CONFIG, Config, ConfigError, load_config

SAMPLE = Path(__file__).parents[2] / "contrib" / "mirrorbits.conf"


def test_the_sample_is_the_example_config() -> None:
    # Regenerate with: python -c "import sys; from mirrorbits.config import EXAMPLE_CONFIG;
    # sys.stdout.write(EXAMPLE_CONFIG)" > contrib/mirrorbits.conf
    assert SAMPLE.read_text(encoding="utf-8") == EXAMPLE_CONFIG


def test_as_shipped_it_asks_for_the_repository() -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(str(SAMPLE))
    assert str(raised.value) == (
        "Path to local repository not configured (see mirrorbits.conf) "
        f"(not set in {SAMPLE}: line 15 is commented out, remove its '#')")
    assert raised.value.warnings == []


def test_with_its_repository_set_it_loads_the_defaults(tmp_path: Path) -> None:
    repository = tmp_path / "repo"
    repository.mkdir()
    text = SAMPLE.read_text(encoding="utf-8")
    assert text.count("\n#Repository: /srv/repo\n") == 1
    copy = tmp_path / "mirrorbits.conf"
    copy.write_text(text.replace("\n#Repository: /srv/repo\n", f"\nRepository: {repository}\n"))
    config, warnings = load_config(str(copy))
    assert config == Config(repository=str(repository))
    assert warnings == []  # a missing GeoIP directory is said by the GeoIP loader
