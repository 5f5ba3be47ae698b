"""Every command of ``mirrorbits-ctl``, by name (spec §14.3)."""

from __future__ import annotations

from mirrorbits.ctl.command_line import CommandSpec
from mirrorbits.ctl.daemon import DAEMON_SPECS
from mirrorbits.ctl.edit import EDIT_SPECS
from mirrorbits.ctl.geoupdate import GEOUPDATE_SPECS
from mirrorbits.ctl.mirrors import MIRROR_SPECS
from mirrorbits.ctl.reports import REPORT_SPECS
from mirrorbits.ctl.scans import SCAN_SPECS

COMMANDS: dict[str, CommandSpec] = {
    spec.name: spec
    for spec in (*MIRROR_SPECS, *EDIT_SPECS, *GEOUPDATE_SPECS, *DAEMON_SPECS, *SCAN_SPECS,
                 *REPORT_SPECS)
}
