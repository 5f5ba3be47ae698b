"""Screenshots of the pages by headless Chromium, and a small PNG reader to check what they show.

Debian's ``chromium`` (installed by ``.ci/setup``) runs with its background networking off: the
pages need nothing from outside (inline CSS and SVG). Tests skip where it is missing, except in
CI (``CI`` set), where a missing browser fails them.
"""

from __future__ import annotations

import os
import struct
import subprocess
import zlib
from collections.abc import Iterable
from pathlib import Path

import pytest
from attrs import frozen

CHROMIUM = Path("/usr/bin/chromium")
Colour = tuple[int, int, int]

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (bash .ci/setup installs it)")


def screenshot(url: str, workdir: Path, width: int, height: int) -> bytes:
    """The PNG of ``url`` in a ``width`` × ``height`` window, from a new browser profile."""
    shot = workdir / "page.png"
    result = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--hide-scrollbars", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-default-apps",
         "--disable-extensions", "--force-device-scale-factor=1",
         f"--user-data-dir={workdir / 'profile'}", f"--window-size={width},{height}",
         f"--screenshot={shot}", url],
        capture_output=True, timeout=60, check=False,
    )
    assert shot.exists(), result.stderr.decode("utf-8", "replace")[-2000:]
    return shot.read_bytes()


@frozen
class Picture:
    """Decoded 8-bit RGB(A) pixels: ``rows[y][x * channels:...]``."""

    width: int
    height: int
    channels: int
    rows: list[bytes]

    def colour(self, x: int, y: int) -> Colour:
        row, start = self.rows[y], x * self.channels
        return row[start], row[start + 1], row[start + 2]

    def box(self, colours: Iterable[Colour]) -> tuple[int, int, int, int]:
        """The smallest ``(left, top, right, bottom)`` holding every pixel of ``colours``."""
        wanted = set(colours)
        left, top, right, bottom = self.width, self.height, -1, -1
        for y in range(self.height):
            xs = [x for x in range(self.width) if self.colour(x, y) in wanted]
            if xs:
                left, right = min(left, xs[0]), max(right, xs[-1])
                top, bottom = min(top, y), y
        assert right >= 0, f"no pixel of {wanted}"
        return left, top, right, bottom

    def count_near(self, x: float, y: float, radius: int, colour: Colour,
                   tolerance: int = 8) -> int:
        """How many pixels within ``radius`` of (``x``, ``y``) have about ``colour``."""
        found = 0
        for py in range(max(0, round(y) - radius), min(self.height, round(y) + radius + 1)):
            for px in range(max(0, round(x) - radius), min(self.width, round(x) + radius + 1)):
                if (px - x) ** 2 + (py - y) ** 2 <= radius ** 2 and all(
                        abs(a - b) <= tolerance for a, b in zip(self.colour(px, py), colour,
                                                                 strict=True)):
                    found += 1
        return found


def hex_colour(text: str) -> Colour:
    return int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16)


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def decode_png(data: bytes) -> Picture:
    """A non-interlaced 8-bit RGB or RGBA PNG (what Chromium writes), without any library."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, compressed = 8, []
    width = height = channels = 0
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        kind, chunk = data[offset + 4:offset + 8], data[offset + 8:offset + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert (depth, interlace) == (8, 0) and colour_type in (2, 6), chunk
            channels = 3 if colour_type == 2 else 4
        elif kind == b"IDAT":
            compressed.append(chunk)
        offset += 12 + length
    raw = zlib.decompress(b"".join(compressed))
    stride, n = width * channels, channels
    rows: list[bytes] = []
    previous = bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        method, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if method == 1:  # Sub
            for i in range(n, stride):
                line[i] = (line[i] + line[i - n]) & 0xFF
        elif method == 2:  # Up
            line = bytearray((a + b) & 0xFF for a, b in zip(line, previous, strict=True))
        elif method == 3:  # Average
            for i in range(stride):
                left = line[i - n] if i >= n else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif method == 4:  # Paeth
            for i in range(stride):
                left, up_left = (line[i - n], previous[i - n]) if i >= n else (0, 0)
                line[i] = (line[i] + _paeth(left, previous[i], up_left)) & 0xFF
        else:
            assert method == 0, f"unknown PNG filter {method}"
        rows.append(bytes(line))
        previous = rows[-1]
    return Picture(width, height, channels, rows)
