"""A real browser shows the ``?mirrorlist`` page: headless Chromium takes a screenshot of it.

Skipped where Debian's ``chromium`` is not installed. The page needs nothing from outside
(inline CSS and SVG), so Chromium runs with its background networking switched off.
"""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from tests.daemon import DaemonProcess

CHROMIUM = Path("/usr/bin/chromium")
WIDTH, HEIGHT = 1280, 1400

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium not installed")


def png_facts(data: bytes) -> tuple[int, int, int]:
    """Width, height and the number of distinct byte values in the image data."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, width, height, idat = 8, 0, 0, b""
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        kind = data[offset + 4:offset + 8]
        chunk = data[offset + 8:offset + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", chunk[:8])
        elif kind == b"IDAT":
            idat += chunk
        offset += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


def test_screenshot_of_the_page(conformance_daemon: DaemonProcess, tmp_path: Path) -> None:
    host, port = conformance_daemon.http
    shot = tmp_path / "mirrorlist.png"
    # The browser cannot send X-Forwarded-For: ``fromip`` places the client in Lisbon.
    url = f"http://{host}:{port}/ANNOUNCE.md?mirrorlist&fromip=100.96.1.10"
    result = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-default-apps", "--disable-extensions",
         f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={WIDTH},{HEIGHT}",
         f"--screenshot={shot}", url],
        capture_output=True, timeout=120, check=False,
    )
    assert shot.exists(), result.stderr.decode("utf-8", "replace")[-2000:]
    data = shot.read_bytes()
    width, height, values = png_facts(data)
    assert (width, height) == (WIDTH, HEIGHT)
    assert len(data) > 30_000  # a blank or error page compresses to a few kilobytes
    assert values > 100
