"""Pure health-check rules: which URLs to probe, redirect policy, outcome of a probe (§7)."""

from __future__ import annotations

from attrs import evolve, frozen
from twisted.logger import LogLevel

from mirrorbits.health.refusals import (
    DEFERRING,
    RATE_LIMITED,
    REASON_RATE_LIMITED,
    REFUSALS_BEFORE_DOWN,
    REFUSED_FOR_AT_MOST,
    Streak,
)
from mirrorbits.model import REDIRECTS_ALLOWED, REDIRECTS_DISALLOWED
from mirrorbits.store.events import PROTO_HTTP, PROTO_HTTPS
from mirrorbits.urls import encode_path, encode_url

REASON_UNREACHABLE = "Unreachable"
REASON_REDIRECT = "Unauthorized redirect"
REASON_TOO_LARGE = "Answer too large"  # ours: the reference reads any answer
#: The answers that show the file: a 200, or a 206 to the ranged ``GET`` of a mirror
#: refusing ``HEAD`` (its size is then the ``Content-Range`` total).
FOUND = frozenset({200, 206})
PROTO_NAMES = {PROTO_HTTP: "HTTP", PROTO_HTTPS: "HTTPS"}


@frozen
class ProbeResult:
    """What one check of a file produced: a status, or a transport error.

    ``content_length`` is the file's size as the mirror says it (``Content-Length``, or the
    ``Content-Range`` total of a 206); ``head_refused`` the status ``HEAD`` got when the
    answer is that of the ranged ``GET`` asked then; ``retry_after`` the seconds a 429 or
    503 asks to wait.
    """

    status: int | None = None
    content_length: str | None = None
    head_refused: int | None = None
    retry_after: float | None = None
    last_modified: str | None = None
    error: str = ""
    redirect_refused: bool = False
    too_large: bool = False
    elapsed_ms: int = 0


@frozen
class Outcome:
    """The state to record for one protocol and the log line that goes with it."""

    up: bool
    reason: str
    level: LogLevel
    message: str
    missing_file: bool = False
    condition: str = ""  # the message without its timing: the same condition is said once
    #: the mirror refused the checker (429) without being marked down yet: its up/down
    #: state is left as it is (a mirror recorded down gets ``reason``)
    keep_state: bool = False
    #: seconds a 429 or 503 asked the checker to wait (its next check honours them)
    retry_after: float | None = None



def check_urls(http_url: str) -> list[tuple[int, str]]:
    """``(protocol, base URL without trailing /)`` pairs to check for a mirror URL."""
    base = http_url.rstrip("/")
    if base.startswith("http://"):
        return [(PROTO_HTTP, base)]
    if base.startswith("https://"):
        return [(PROTO_HTTPS, base)]
    return [(PROTO_HTTP, "http://" + base), (PROTO_HTTPS, "https://" + base)]


def file_url(base: str, path: str) -> str:
    """The URL of repository ``path`` (starting with ``/``) on a mirror, percent-encoded
    exactly as a redirect to that mirror encodes it."""
    return encode_url(base) + encode_path(path)


def redirects_allowed(allow_redirects: int, disallow_by_default: bool) -> bool:
    """A mirror's redirect policy: its own setting, else the configuration's default."""
    if allow_redirects == REDIRECTS_ALLOWED:
        return True
    if allow_redirects == REDIRECTS_DISALLOWED:
        return False
    return not disallow_by_default


#: The condition of a check that found the mirror up, its file of the right size.
UP = "Up!"


def log_prefix(name: str, proto: int, width: int) -> str:
    """``<name padded/truncated to width> <PROTO padded to 5>`` as in the reference's logs."""
    return f"{name[:width]:<{width}} {PROTO_NAMES.get(proto, ''):<5}"


def classify(result: ProbeResult, path: str, local_size: int | None,
             streak: Streak | None = None, now: float = 0.0) -> Outcome:
    """The outcome of a probe of ``path`` whose local size is ``local_size``; ``streak``:
    the 429 answers in a row this one ends (:class:`~mirrorbits.health.refusals.RateLimits`;
    ``None`` counts it as the first, at ``now``)."""
    outcome = _classify(result, path, local_size, streak or Streak(1, now), now)
    if result.status in DEFERRING and result.retry_after is not None:
        return evolve(outcome, retry_after=result.retry_after)
    return outcome


def _classify(result: ProbeResult, path: str, local_size: int | None, streak: Streak,
              now: float) -> Outcome:
    if result.status is None:
        reason = (REASON_REDIRECT if result.redirect_refused
                  else REASON_TOO_LARGE if result.too_large else REASON_UNREACHABLE)
        return Outcome(False, reason, LogLevel.error,
                       f"Error: {result.error} ({result.elapsed_ms}ms)",
                       condition=f"Error: {result.error}")
    if result.status in FOUND:
        remote = _parse_length(result.content_length)
        if remote is not None and local_size is not None and remote != local_size:
            message = f"File size mismatch! [{path}]"
            return Outcome(True, "", LogLevel.warn, message, condition=message)
        return Outcome(True, "", LogLevel.info, f"Up! ({result.elapsed_ms}ms)", condition=UP)
    if result.status == 404:
        reason = f"File not found {path} (error 404)"
        return Outcome(False, reason, LogLevel.warn, "Down! Status: 404", missing_file=True,
                       condition="Down! Status: 404")
    if result.status == RATE_LIMITED:
        if not streak.past_bound(now):
            message = "Rate limited! Status: 429"
            return Outcome(False, REASON_RATE_LIMITED, LogLevel.warn,
                           f"{message} (state kept: down at {REFUSALS_BEFORE_DOWN} in a row "
                           f"or after {REFUSED_FOR_AT_MOST / 60:.0f} min)", condition=message,
                           keep_state=True)
        message = "Down! Status: 429 (rate limited)"
        return Outcome(False, streak.reason(now), LogLevel.warn,
                       f"{message}: {streak.count} checks in a row in "
                       f"{now - streak.since:.0f} s", condition=message)
    message = f"Down! Status: {result.status}"
    return Outcome(False, f"Got status code {result.status}", LogLevel.warn, message,
                   condition=message)


def _parse_length(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None
