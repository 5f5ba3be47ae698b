"""``edit`` of ``mirrorbits-ctl``: a mirror changed through a text editor (spec §14.3)."""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile

from mirrorbits.control import commands as c
from mirrorbits.control.mirror_yaml import MirrorYamlError, edit_text, parse_edit_text
from mirrorbits.control.validate import (
    MirrorValidationError,
    check_http_url,
    check_identifier,
    check_scan_urls,
)
from mirrorbits.ctl.command_line import CommandSpec, Invocation, make_spec
from mirrorbits.ctl.exits import fail
from mirrorbits.ctl.prompt import confirm, ignoring_interrupts, out
from mirrorbits.ctl.session import Session
from mirrorbits.model import Mirror

EDITORS = ("editor", "vi", "emacs", "nano")
MAX_EDIT_ROUNDS = 1000
UNMODIFIED = "Aborted - settings are unmodified, so there is nothing to change.\n"


def find_editor(environ: dict[str, str] | os._Environ[str] = os.environ) -> list[str] | None:
    """``$EDITOR`` (split like a shell would), else the first usual editor in PATH."""
    configured = environ.get("EDITOR", "").strip()
    if configured:
        return shlex.split(configured)
    for name in EDITORS:
        found = shutil.which(name)
        if found:
            return [found]
    return None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _parse(text: str, original: Mirror) -> Mirror:
    edited = parse_edit_text(text, original)
    check_identifier(edited.name)
    check_http_url(edited.http_url)
    check_scan_urls(edited.rsync_url, edited.ftp_url)
    return edited


def edit_mirror_file(path: str, original: Mirror, editor: list[str]) -> Mirror | None:
    """Let the operator edit ``path`` until it parses; ``None`` when nothing changed."""
    with open(path, encoding="utf-8") as handle:
        initial = _digest(handle.read())
    for _ in range(MAX_EDIT_ROUNDS):
        try:
            with ignoring_interrupts():
                status = subprocess.call([*editor, path])
        except OSError as error:
            raise fail(f"Cannot run the editor {editor[0]}: {error.strerror or error}") from None
        if status != 0:
            raise fail(f"The editor exited with status {status}")
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        if _digest(text) == initial:
            return None
        try:
            edited = _parse(text, original)
        except (MirrorYamlError, MirrorValidationError) as error:
            out(f"{error}\n")
            if not confirm("Retry? [Y/n]", default=True):
                raise fail("Aborted") from None
            continue
        return None if edited == original else edited
    raise fail("Aborted")


async def edit_command(session: Session, invocation: Invocation) -> None:
    """Open the mirror's settings in an editor and save what changed."""
    mirror_id, _ = await session.resolve(invocation.args[0])
    reply = await session.call(c.MirrorInfo, id=mirror_id)
    original = c.mirror_from_json(reply["mirror"])
    await session.require_writes()  # refused now rather than once the edit is done
    editor = find_editor()
    if editor is None:
        raise fail("No text editor found, please set the EDITOR environment variable")
    handle, path = tempfile.mkstemp(prefix="mirrorbits-", suffix=".yaml")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(edit_text(original))
        edited = edit_mirror_file(path, original, editor)
    finally:
        os.unlink(path)
    await session.resume()
    if edited is None:
        out(UNMODIFIED)
        return
    reply = await session.call(
        c.UpdateMirror,
        mirror=c.mirror_to_json(edited),
        messages={c.NameTaken: f"Mirror {edited.name} already exists!"},
    )
    diff = reply["diff"]
    out((f"{diff}\n" if diff else "") + f"Mirror '{edited.name}' edited successfully\n")


EDIT_SPECS: tuple[CommandSpec, ...] = (
    make_spec("edit", "IDENTIFIER", "Edit a mirror", edit_command),
)
