"""Text encodings shared with the reference: Redis values, Go time and duration texts, sizes.

Pure functions. Times are integers on the Unix time line (seconds or nanoseconds, UTC);
``None`` stands for Go's zero time (``0001-01-01 00:00:00 UTC``), e.g. a field absent from Redis.
Readers never raise: a missing or malformed value decodes to the zero value. Formatters cover
years 1-9999 (``OverflowError`` beyond).
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta

from mirrorbits.float32 import f32, format_f32_g

NS_PER_S = 1_000_000_000
GO_ZERO_UNIX = -62135596800
"""Unix seconds of Go's zero time, 0001-01-01 00:00:00 UTC."""

_EPOCH = datetime(1970, 1, 1)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_INT_RE = re.compile(r"[+-]?[0-9]+\Z")
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_GO_TIME_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})(?:[.,]([0-9]+))?"
    r" ([+-])([0-9]{2})([0-9]{2}) (\S+)(?: m=[+-][0-9]+\.[0-9]+)?\Z"
)
_RFC3339_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:Z|([+-])([0-9]{2}):([0-9]{2}))\Z"
)
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_SIZE_UNITS = ("bytes", "KiB", "MiB", "GiB", "TiB")


# -- Redis scalar values ---------------------------------------------------------------------


def encode_bool(value: bool) -> str:
    return "1" if value else "0"


def decode_bool(text: str | None) -> bool:
    """Go ``strconv.ParseBool``; missing or invalid text is ``False``."""
    return text in _TRUE


def encode_f32(value: float) -> str:
    """A float32 argument as the reference's Redis client writes it (``48.8582``)."""
    return format_f32_g(value)


def decode_float(text: str | None) -> float:
    """A decimal float (Go ``ParseFloat`` syntax); missing, invalid or non-finite gives ``0.0``.

    Hexadecimal floats, ``Inf`` and ``NaN`` (which Go accepts) are treated as invalid: no
    mirror field can hold them usefully and JSON cannot render them.
    """
    if text is None or _FLOAT_RE.match(text) is None:
        return 0.0
    value = float(text)
    return value if value - value == 0.0 else 0.0


def decode_f32(text: str | None) -> float:
    """:func:`decode_float` rounded to float32 (``0.0`` when out of the float32 range)."""
    try:
        return f32(decode_float(text))
    except OverflowError:
        return 0.0


def decode_int(text: str | None) -> int:
    """A decimal int64 (Go ``ParseInt(s, 10, 64)``); missing, invalid or out of range gives 0."""
    if text is None or _INT_RE.match(text) is None:
        return 0
    value = int(text)
    return value if _INT64_MIN <= value <= _INT64_MAX else 0


def decode_uint(text: str | None) -> int:
    """A decimal uint64 (Go ``ParseUint``); a sign, invalid text or overflow gives 0."""
    if text is None or not text.isascii() or not text.isdigit():
        return 0
    value = int(text)
    return value if value < 2**64 else 0


def encode_unix(seconds: int) -> str:
    return str(seconds)


def decode_unix(text: str | None) -> int | None:
    """Unix seconds of a mirror time field; ``None`` (zero time) when missing or invalid."""
    if text is None or _INT_RE.match(text) is None:
        return None
    value = int(text)
    if value == GO_ZERO_UNIX or not _INT64_MIN <= value <= _INT64_MAX:
        return None
    return value


# -- Go time.Time.String() (file modification times) -----------------------------------------


def format_go_time(ns: int, utc_offset_s: int = 0, zone: str = "UTC") -> str:
    """Go ``Time.String()``: ``2024-01-02 03:04:05.123456789 +0000 UTC``.

    The fraction has its trailing zeros removed and is omitted when zero. An empty ``zone``
    prints the offset again in its place, as Go does for unnamed zones.
    """
    seconds, frac = divmod(ns, NS_PER_S)
    local = _civil(seconds + utc_offset_s)
    fraction = f".{frac:09d}".rstrip("0") if frac else ""
    offset = _numeric_offset(utc_offset_s)
    return f"{_date_time(local, ' ')}{fraction} {offset} {zone or offset}"


def format_go_time_or_zero(ns: int | None) -> str:
    """:func:`format_go_time` in UTC, Go's zero time for ``None``."""
    return format_go_time(GO_ZERO_UNIX * NS_PER_S if ns is None else ns)


def local_go_time(ns: int) -> str:
    """:func:`format_go_time` in the server's local zone (as the reference writes local files)."""
    tm = time.localtime(ns // NS_PER_S)
    return format_go_time(ns, tm.tm_gmtoff, tm.tm_zone)


def parse_go_time(text: str | None) -> int | None:
    """Nanoseconds (UTC) of a ``Time.String()`` text with any ``±hhmm`` offset and zone name.

    Returns ``None`` for unparsable text and for Go's zero time.
    """
    if text is None:
        return None
    match = _GO_TIME_RE.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, frac, sign, oh, om, _zone = match.groups()
    offset = int(oh) * 3600 + int(om) * 60
    return _to_ns(year, month, day, hour, minute, second, frac, -offset if sign == "-" else offset)


# -- RFC 3339 / RFC 1123 -----------------------------------------------------------------------


def format_rfc3339_nano(ns: int) -> str:
    """Go ``RFC3339Nano`` in UTC: ``2026-11-25T00:37:07.746651119Z`` (trailing zeros trimmed)."""
    seconds, frac = divmod(ns, NS_PER_S)
    fraction = f".{frac:09d}".rstrip("0") if frac else ""
    return f"{_date_time(_civil(seconds), 'T')}{fraction}Z"


def rfc3339_from_ns(ns: int | None) -> str:
    """A JSON time from nanoseconds; ``None`` is ``0001-01-01T00:00:00Z``."""
    return format_rfc3339_nano(GO_ZERO_UNIX * NS_PER_S if ns is None else ns)


def rfc3339_from_unix(seconds: int | None) -> str:
    """A JSON time from Unix seconds; ``None`` is ``0001-01-01T00:00:00Z``."""
    return f"{_date_time(_civil(GO_ZERO_UNIX if seconds is None else seconds), 'T')}Z"


def parse_rfc3339(text: str) -> int | None:
    """Nanoseconds (UTC) of an RFC 3339 text (``Z`` or ``±hh:mm``); ``None`` if invalid or zero."""
    match = _RFC3339_RE.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, frac, sign, oh, om = match.groups()
    offset = 0 if sign is None else int(oh) * 3600 + int(om) * 60
    return _to_ns(year, month, day, hour, minute, second, frac, -offset if sign == "-" else offset)


def format_log_time(ns: int | None) -> str:
    """Go layout ``2006-01-02 15:04:05 MST`` in UTC (``None``: the zero time)."""
    seconds = GO_ZERO_UNIX if ns is None else ns // NS_PER_S
    return f"{_date_time(_civil(seconds), ' ')} UTC"


def format_http_date(seconds: int) -> str:
    """``Sun, 01 Jun 2025 06:00:00 GMT`` (HTTP dates)."""
    return _rfc1123(_civil(seconds)) + " GMT"


def format_rfc1123_utc(seconds: int | None) -> str:
    """Go ``RFC1123`` in UTC: ``Wed, 25 Nov 2026 00:37:11 UTC``; ``None`` is year 1."""
    return _rfc1123(_civil(GO_ZERO_UNIX if seconds is None else seconds)) + " UTC"


def truncate_ns(t_ns: int, precision_ns: int) -> int:
    """Go's ``Time.Truncate``: round down to a multiple of ``precision_ns`` (0 = unchanged).

    Go counts the multiples from its zero time (year 1), not from the Unix epoch; the two
    agree for whole seconds, minutes, hours and days.
    """
    if precision_ns <= 0:
        return t_ns
    return t_ns - (t_ns - GO_ZERO_UNIX * NS_PER_S) % precision_ns


# -- Go time.Duration.String() -------------------------------------------------------------------


def format_go_duration(ns: int) -> str:
    """Go ``Duration.String()``: ``0s``, ``1.5s``, ``250ms``, ``1µs``, ``2h30m0s``, ``-10s``."""
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u == 0:
        return "0s"
    if u < 1_000:
        return f"{sign}{u}ns"
    if u < 1_000_000:
        return f"{sign}{_fraction(u, 3)}µs"
    if u < NS_PER_S:
        return f"{sign}{_fraction(u, 6)}ms"
    whole, frac = divmod(u, NS_PER_S)
    seconds = str(whole % 60) + (f".{frac:09d}".rstrip("0") if frac else "")
    minutes, hours = whole // 60 % 60, whole // 3600
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{sign}{minutes}m{seconds}s"
    return f"{sign}{seconds}s"


def _fraction(value: int, digits: int) -> str:
    whole, frac = divmod(value, 10**digits)
    return str(whole) + (f".{frac:0{digits}d}".rstrip("0") if frac else "")


# -- Sizes and words ---------------------------------------------------------------------------


def human_size(size: int) -> str:
    """``0.0 bytes``, ``1.0 KiB``, ``976.6 KiB`` (1,000,000), ``3.0 MiB``; TiB at most."""
    value = float(size)
    unit = 0
    while value >= 1024 and unit < len(_SIZE_UNITS) - 1:
        value /= 1024
        unit += 1
    return f"{value:3.1f} {_SIZE_UNITS[unit]}"


def plural(count: int) -> str:
    """``"s"`` when ``count`` is above 1 or below -1."""
    return "s" if count > 1 or count < -1 else ""


# -- helpers -----------------------------------------------------------------------------------


def _civil(seconds: int) -> datetime:
    """The calendar date and time ``seconds`` after the epoch (proleptic Gregorian, no zone)."""
    return _EPOCH + timedelta(seconds=seconds)


def _date_time(dt: datetime, sep: str) -> str:
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}{sep}"
        f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    )


def _rfc1123(dt: datetime) -> str:
    return (
        f"{_DAYS[dt.weekday()]}, {dt.day:02d} {_MONTHS[dt.month - 1]} {dt.year:04d} "
        f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    )


def _numeric_offset(offset_s: int) -> str:
    minutes = abs(offset_s) // 60
    sign = "-" if offset_s < 0 and minutes else "+"
    return f"{sign}{minutes // 60:02d}{minutes % 60:02d}"


def _to_ns(
    year: str,
    month: str,
    day: str,
    hour: str,
    minute: str,
    second: str,
    frac: str | None,
    offset_s: int,
) -> int | None:
    try:
        dt = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
    except ValueError:
        return None
    seconds = (dt - _EPOCH) // timedelta(seconds=1) - offset_s
    ns = seconds * NS_PER_S + (int(frac[:9].ljust(9, "0")) if frac else 0)
    return None if ns == GO_ZERO_UNIX * NS_PER_S else ns
