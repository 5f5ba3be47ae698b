"""Helpers of the store integration tests: bounded waits, captured logs, a started service."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import redis
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater

from mirrorbits.store.redis import RedisService
from tests import logcapture
from tests.servers import RedisServer


async def within(d: Deferred[Any], seconds: float = 10.0) -> Any:
    """Await ``d``, failing the test instead of hanging."""
    return await d.addTimeout(seconds, reactor)


async def sleep(seconds: float) -> None:
    await deferLater(reactor, seconds, lambda: None)


async def eventually(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait (polling every 20 ms) until ``predicate()`` holds; fail after ``seconds``."""
    for _ in range(int(seconds / 0.02)):
        if predicate():
            return
        await sleep(0.02)
    raise AssertionError(f"condition not met within {seconds}s")


def captured_log(namespace_prefix: str = "mirrorbits.store") -> AbstractContextManager[list[str]]:
    """Messages logged under ``namespace_prefix`` (the store by default) while the block runs."""
    return logcapture.captured_log(namespace_prefix)


async def started_service(server: RedisServer, db: int = 0, password: str = "") -> RedisService:
    """A RedisService on ``server``, started and ready."""
    service = RedisService(server.address, password, db, (), "", reactor)
    service.startService()
    await within(service.whenReady())
    return service


def subscribe(db: redis.Redis, *channels: str) -> Any:
    """A redis-py subscriber (subscription confirmed) to read published messages."""
    pubsub = db.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(*channels)
    for _ in channels:
        pubsub.get_message(timeout=2.0, ignore_subscribe_messages=False)
    return pubsub


def received(pubsub: Any, timeout: float = 0.5) -> list[tuple[str, str]]:
    """``(channel, message)`` of everything published so far (waits ``timeout`` for more)."""
    found: list[tuple[str, str]] = []
    for _ in range(100_000):
        message = pubsub.get_message(timeout=timeout)
        if message is None:
            return found
        found.append((message["channel"], message["data"]))
    return found
