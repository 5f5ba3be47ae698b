"""Recording a check's verdict, and holding it in memory when Redis will not take it.

The health check and the liveness probes record a mirror's state with
``MirrorStore.set_state``. When that write fails because of Redis (it refuses writes, is a
replica, or is gone), a mirror found down is held down in this node's memory
(:mod:`mirrorbits.helddown`) so that its HTTP processes stop sending users there; a write
that succeeds, a check finding it up, or a message about the mirror (every one follows a
write: Redis accepts writes again) releases it.
"""

from __future__ import annotations

from twisted.internet.defer import CancelledError
from twisted.internet.interfaces import IReactorTime

from mirrorbits.health.outcome import PROTO_NAMES
from mirrorbits.helddown import HeldDown
from mirrorbits.logs import Logger
from mirrorbits.store import outage
from mirrorbits.store.errors import MirrorNotFound
from mirrorbits.store.mirrors import MirrorStore

log = Logger()


def unrecordable(error: BaseException) -> bool:
    """Whether a failed state write failed because of Redis (not a removed mirror, not
    the daemon stopping)."""
    cause = outage.redis_cause(error)
    return cause is not None and not isinstance(cause, MirrorNotFound | CancelledError)


async def record_state(store: MirrorStore, held: HeldDown | None, clock: IReactorTime,
                       mirror_id: int, proto: int, up: bool, reason: str,
                       name: str = "") -> bool:
    """``store.set_state``, keeping ``held`` in step: whether the state changed in Redis.

    Fails as the write did; a mirror found down whose state Redis would not take is held
    down meanwhile, one found up leaves the set."""
    label = f"{name or f'Mirror {mirror_id}'} {PROTO_NAMES.get(proto, '')}".rstrip()
    try:
        changed = await store.set_state(mirror_id, proto, up, reason)
    except Exception as err:
        if held is not None and unrecordable(err):
            if up:
                if held.release(mirror_id, proto):
                    log.info("{label}: found up again; no longer held down in memory",
                             label=label)
            elif held.hold(mirror_id, proto, reason, clock.seconds()):
                log.warn("{label}: found down ({reason}) but Redis cannot record it "
                         "({error}): this node sends no user there until Redis records "
                         "its state", label=label, reason=reason,
                         error=str(outage.redis_cause(err)) or type(err).__name__)
        raise
    if held is not None and held.release(mirror_id, proto):
        log.info("{label}: its state is recorded in Redis again; no longer held down in "
                 "memory", label=label)
    return changed


def release_on_message(held: HeldDown, message: str) -> None:
    """A message about a mirror (``_mirrorbits_mirror_update``) was read: it followed a
    write, so Redis holds the mirror's truth again; it is no longer held down here."""
    try:
        mirror_id = int(message)
    except ValueError:
        return
    if held.release_mirror(mirror_id):
        log.info("Mirror {id}: Redis accepts writes again (a message about it); no longer "
                 "held down in memory", id=mirror_id)
