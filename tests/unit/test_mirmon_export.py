"""The timing of ``MirmonExportFile``'s updates (a clock, a real file; the daemon and the CLI
are in tests/integration/test_mirmon_export_file.py)."""

from __future__ import annotations

from pathlib import Path

import attrs
from twisted.internet.task import Clock

from mirrorbits.config import Config
from mirrorbits.files import replace_file
from mirrorbits.mirmon_export import DEBOUNCE, REFRESH_INTERVAL, MirmonExport
from mirrorbits.model import Mirror
from mirrorbits.store.errors import DatabaseNotReady


def test_a_burst_of_changes_is_written_once_and_only_what_changed(tmp_path: Path) -> None:
    path = tmp_path / "mirrors.list"
    config = attrs.evolve(Config(repository="/srv"), mirmon_export_file=str(path))
    mirrors = [Mirror(id=1, name="m", http_url="http://m/", country_codes="FR", enabled=True)]
    writes: list[str] = []
    ready = [False]

    async def all_mirrors() -> list[Mirror]:
        if not ready[0]:
            raise DatabaseNotReady("not yet")
        return list(mirrors)

    async def write(target: str, text: str) -> None:
        writes.append(text)
        replace_file(target, text)

    clock = Clock()
    export = MirmonExport(lambda: config, all_mirrors, clock, write)  # type: ignore[arg-type]
    export.startService()
    clock.advance(DEBOUNCE)
    assert writes == []  # Redis not ready: looked at again a moment later
    ready[0] = True
    clock.advance(DEBOUNCE)
    clock.advance(DEBOUNCE)
    assert writes == ["FR\thttp://m/\t\n"]
    assert path.read_text() == "FR\thttp://m/\t\n"
    for _ in range(10):  # a burst: one write
        mirrors.append(Mirror(id=len(mirrors) + 1, name="n", http_url="http://n/",
                              country_codes="DE"))
        export.mirror_changed(str(len(mirrors)))
        clock.advance(DEBOUNCE / 20)
    clock.advance(DEBOUNCE)
    assert len(writes) == 2 and writes[-1].count("\n") == 11
    export.mirror_changed("1")  # nothing changed: not rewritten
    clock.advance(DEBOUNCE)
    clock.advance(REFRESH_INTERVAL)
    clock.advance(DEBOUNCE)
    assert len(writes) == 2
    path.unlink()  # removed by someone: written again at the next look
    clock.advance(REFRESH_INTERVAL)
    clock.advance(DEBOUNCE)
    assert len(writes) == 3 and path.exists()
    export.stopService()
    assert clock.getDelayedCalls() == []
