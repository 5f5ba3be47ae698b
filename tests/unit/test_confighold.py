"""ConfigHolder.reload: what a reload applies, and what it says it cannot."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirrorbits.config import ConfigError, load_config
from mirrorbits.confighold import ConfigHolder

BASE = "Repository: {repo}\nGeoipDatabasePath: {repo}\nListenAddress: 127.0.0.1:8080\nWorkers: 1\n"


def holder_on(tmp_path: Path, text: str) -> tuple[ConfigHolder, Path]:
    path = tmp_path / "mirrorbits.conf"
    path.write_text(text.format(repo=tmp_path))
    return ConfigHolder(current=load_config(str(path))[0], path=str(path)), path


@pytest.mark.parametrize(("change", "notice"), [
    # each names the key that changed, and from what to what
    ("ListenAddress: 127.0.0.1:8081\n",
     "ListenAddress changed (127.0.0.1:8080 to 127.0.0.1:8081): restart the daemon to apply"),
    ("RPCListenAddress: 127.0.0.1:3391\n",
     "RPCListenAddress changed (localhost:3390 to 127.0.0.1:3391): restart the daemon to apply"),
    ("MetricsListenAddress: 127.0.0.1:9180\n",
     'MetricsListenAddress changed ("" to 127.0.0.1:9180): restart the daemon to apply'),
    ("Workers: 2\n", "Workers changed (1 to 2): restart the daemon (or upgrade it) to apply"),
])
def test_a_change_only_a_restart_applies_is_returned_with_the_warnings(
        tmp_path: Path, change: str, notice: str) -> None:
    holder, path = holder_on(tmp_path, BASE)
    key = change.split(":")[0]
    kept = [line for line in BASE.splitlines(keepends=True) if not line.startswith(key + ":")]
    path.write_text("".join(kept).format(repo=tmp_path) + change)
    assert notice in holder.reload()
    assert notice in holder.reload()  # not applied yet: said until the restart
    path.write_text(BASE.format(repo=tmp_path))
    assert holder.reload() == []  # back to what runs: nothing to restart


def test_a_live_change_needs_no_notice(tmp_path: Path) -> None:
    holder, path = holder_on(tmp_path, BASE)
    path.write_text(BASE.format(repo=tmp_path) + "CheckInterval: 5\n")
    assert holder.reload() == []
    assert holder.current.check_interval == 5


def test_a_file_gone_at_a_reload_is_said_without_the_start_hint(tmp_path: Path) -> None:
    """``--config`` is no advice to a running daemon: it cannot take another file."""
    holder, path = holder_on(tmp_path, BASE)
    path.unlink()
    with pytest.raises(ConfigError) as refused:
        holder.reload()
    assert str(refused.value) == (
        f"Configuration could not be read from {path}: No such file or directory")
