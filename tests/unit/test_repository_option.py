"""``--repository DIR`` naming a directory that is not there is said at start, as a file's
``Repository`` is (a typo would otherwise only show as a failed scan a second later)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirrorbits.config import ConfigError
from mirrorbits.confighold import ConfigHolder
from mirrorbits.tap import Options, load_startup_config

NOT_THERE = ("Repository '{path}' does not exist: nothing can be served or scanned from it "
             "until it can be read (--repository)")


def startup_warnings(*arguments: str) -> list[str]:
    options = Options()
    options.parseOptions(list(arguments))
    return load_startup_config(options)[2]


def test_a_missing_repository_option_is_warned_about(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mirrorbits.tap.default_config_path", lambda: None)
    missing = tmp_path / "nope"
    assert startup_warnings("--repository", str(missing)) == [NOT_THERE.format(path=missing)]
    missing.mkdir()
    assert startup_warnings("--repository", str(missing)) == []


def test_the_option_replaces_what_the_file_says_of_its_repository(tmp_path: Path) -> None:
    config = tmp_path / "mirrorbits.conf"
    config.write_text(f"Repository: {tmp_path / 'gone'}\n")
    missing = tmp_path / "typo"
    assert startup_warnings("--config", str(config), "--repository", str(missing)) == [
        NOT_THERE.format(path=missing)]
    assert startup_warnings("--config", str(config), "--repository", str(tmp_path)) == []


def test_a_config_file_that_cannot_be_read_at_start_says_how_to_name_another(
        tmp_path: Path) -> None:
    missing = tmp_path / "gone.conf"
    with pytest.raises(ConfigError, match=r"^Configuration could not be read from .*gone\.conf: "
                                          r"No such file or directory \(use --config <path>\)$"):
        startup_warnings("--config", str(missing))


def test_a_reload_checks_the_option_not_what_the_file_says(tmp_path: Path) -> None:
    """The option stays over reloads: a reload warns about its directory, never about the
    file's own ``Repository`` (which the option replaces)."""
    config = tmp_path / "mirrorbits.conf"
    config.write_text(f"Repository: {tmp_path / 'gone'}\n")
    options = Options()
    options.parseOptions(["--config", str(config), "--repository", str(tmp_path)])
    started, path, _ = load_startup_config(options)
    holder = ConfigHolder(started, path, repository=str(tmp_path))
    config.write_text(f"Repository: {tmp_path / 'gone'}\nTraceFileLocation: /trace\n")
    assert holder.reload() == []
    assert holder.current.repository == str(tmp_path)
    (tmp_path / "typo").mkdir()
    holder.repository = str(tmp_path / "typo")
    (tmp_path / "typo").rmdir()
    assert holder.reload() == [NOT_THERE.format(path=tmp_path / "typo")]
