"""Capture what mirrorbits logs during a block of a test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from twisted.logger import ILogObserver, formatEvent, globalLogPublisher
from zope.interface import provider


@contextmanager
def captured_log(namespace_prefix: str) -> Iterator[list[str]]:
    """Messages logged under ``namespace_prefix`` while the block runs."""
    messages: list[str] = []

    @provider(ILogObserver)
    def observe(event: dict[str, Any]) -> None:
        if str(event.get("log_namespace", "")).startswith(namespace_prefix):
            messages.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    try:
        yield messages
    finally:
        globalLogPublisher.removeObserver(observe)
