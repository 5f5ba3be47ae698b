"""Pure health-check rules: which URLs to probe, redirect policy, outcome of a probe (§7)."""

from __future__ import annotations

from attrs import frozen
from twisted.logger import LogLevel

from mirrorbits.model import REDIRECTS_ALLOWED, REDIRECTS_DISALLOWED
from mirrorbits.store.events import PROTO_HTTP, PROTO_HTTPS
from mirrorbits.urls import encode_path, encode_url

REASON_UNREACHABLE = "Unreachable"
REASON_REDIRECT = "Unauthorized redirect"
REASON_TOO_LARGE = "Answer too large"  # ours: the reference reads any answer
PROTO_NAMES = {PROTO_HTTP: "HTTP", PROTO_HTTPS: "HTTPS"}


@frozen
class ProbeResult:
    """What one HEAD request produced: a status, or a transport error."""

    status: int | None = None
    content_length: str | None = None
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


def classify(result: ProbeResult, path: str, local_size: int | None) -> Outcome:
    """The outcome of a probe of ``path`` whose local size is ``local_size``."""
    if result.status is None:
        reason = (REASON_REDIRECT if result.redirect_refused
                  else REASON_TOO_LARGE if result.too_large else REASON_UNREACHABLE)
        return Outcome(False, reason, LogLevel.error,
                       f"Error: {result.error} ({result.elapsed_ms}ms)",
                       condition=f"Error: {result.error}")
    if result.status == 200:
        remote = _parse_length(result.content_length)
        if remote is not None and local_size is not None and remote != local_size:
            message = f"File size mismatch! [{path}]"
            return Outcome(True, "", LogLevel.warn, message, condition=message)
        return Outcome(True, "", LogLevel.info, f"Up! ({result.elapsed_ms}ms)", condition=UP)
    if result.status == 404:
        reason = f"File not found {path} (error 404)"
        return Outcome(False, reason, LogLevel.warn, "Down! Status: 404", missing_file=True,
                       condition="Down! Status: 404")
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
