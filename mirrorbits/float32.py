"""IEEE-754 single precision, as Go's ``float32`` computes and prints it.

Go prints floats from their *shortest* decimal digits: the fewest significant digits that read
back as the same value (the closest such digits when several qualify). Two layouts are used:

* JSON (``encoding/json``): plain decimals unless ``|x| < 1e-6`` or ``|x| >= 1e21``, where the
  exponent form is used with a single-digit negative exponent kept short (``1e-7``, ``1e+21``).
* ``strconv.FormatFloat(x, 'g', -1, 32)`` (also ``fmt``'s ``%v``), used by the Redis client for
  ``float32`` arguments: the exponent form when the decimal exponent is ``< -4`` or ``>= 6``
  (Go's rule for the shortest precision), with at least two exponent digits (``1e-05``,
  ``1.234567e+06``). Latitudes and longitudes (``0`` or ``1e-4 <= |x| <= 180``) print plainly.
"""

from __future__ import annotations

import struct
from decimal import Decimal
from functools import lru_cache

_PACK = struct.Struct("<f")
_BITS = struct.Struct("<I")
_INF = float("inf")


def f32(value: float) -> float:
    """Round ``value`` to the nearest float32 (returned as a Python float)."""
    result: float = _PACK.unpack(_PACK.pack(value))[0]
    return result


def format_f32(value: float) -> str:
    """Go JSON text of a float32 (``48.8582``, ``-74.006``, ``392``, ``1e-7``)."""
    if value == 0:  # kept out of the cache: 0.0 == -0.0
        return json_text(*shortest_digits32(value))
    return _format_f32_cached(float(value))


@lru_cache(maxsize=8192)
def _format_f32_cached(value: float) -> str:
    return json_text(*shortest_digits32(value))


def format_f32_g(value: float) -> str:
    """Go ``strconv.FormatFloat(x, 'g', -1, 32)`` text (``48.8582``, ``1e+06``, ``1e-05``)."""
    neg, digits, dp = shortest_digits32(value)
    return g_text(neg, digits, dp)


def shortest_digits32(value: float) -> tuple[bool, str, int]:
    """Shortest round-trip digits of ``float32(value)``: ``(negative, digits, point)``.

    The value is ``0.<digits> x 10**point``; zero gives ``digits == "0"`` (``-0`` keeps its
    sign). Raises ``ValueError`` for NaN, infinities and values beyond the float32 range, which
    Go cannot encode either.
    """
    try:
        x = f32(value)
    except OverflowError:
        x = float("inf")
    if x != x or x in (_INF, -_INF):
        raise ValueError(f"{value!r} has no float32 text")
    if x == 0:  # kept out of the cache: 0.0 == -0.0
        return str(x).startswith("-"), "0", 1
    return _shortest_cached(float(x))


@lru_cache(maxsize=8192)
def _shortest_cached(x: float) -> tuple[bool, str, int]:
    neg = x < 0
    x = abs(x)
    for n in range(1, 10):
        text = f"{x:.{n - 1}e}"
        if _reads_back(text, x):
            return (neg, *parse_digits(text))
        # Just above a power of two the gap below is half the gap above: the closest
        # n-digit decimal may miss below while the next one up still reads back.
        if _BITS.unpack(_PACK.pack(x))[0] & 0x7FFFFF == 0 and Decimal(text) < Decimal(x):
            exponent = int(text.partition("e")[2]) - (n - 1)
            bumped = Decimal(text) + Decimal(f"1e{exponent}")
            text = f"{bumped:.{n - 1}e}"
            if _reads_back(text, x):
                return (neg, *parse_digits(text))
    raise AssertionError(f"no float32 digits for {x!r}")  # 9 digits always suffice


def _reads_back(text: str, x: float) -> bool:
    """Whether the decimal ``text`` rounds to the float32 ``x`` (as Go's ParseFloat(s, 32))."""
    v = float(text)
    try:
        y = f32(v)
    except OverflowError:  # beyond the float32 range: Go reads it as +Inf
        return False
    bits = _BITS.unpack(_PACK.pack(y))[0]
    if y == v:
        return y == x
    neighbour = _PACK.unpack(_BITS.pack(bits + 1 if v > y else bits - 1))[0]
    if v - y != neighbour - v:
        return y == x
    # ``float(text)`` landed exactly between two float32s: decide from the exact decimal, so
    # that the double rounding of float() then f32() cannot pick the wrong neighbour.
    exact, middle = Decimal(text), Decimal(v)
    if exact == middle:
        return y == x  # a true tie: round half to even, as struct does
    return (neighbour if (exact > middle) == (neighbour > v) else y) == x


def parse_digits(text: str) -> tuple[str, int]:
    """Digits and point position of a non-negative decimal text (``'1.25e+03'``, ``'0.05'``)."""
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    dp = len(whole) - (len(whole + fraction) - len((whole + fraction).lstrip("0")))
    dp += int(exponent) if exponent else 0
    digits = digits.rstrip("0")
    if not digits:
        return "0", 1
    return digits, dp


def json_text(neg: bool, digits: str, dp: int) -> str:
    """Go ``encoding/json`` layout of shortest digits."""
    sign = "-" if neg else ""
    exp = dp - 1
    if digits != "0" and (exp < -6 or exp >= 21):
        text = _e_text(digits, exp)
        if -10 < exp < 0:
            text = text[:-2] + text[-1]  # e-07 -> e-7
        return sign + text
    return sign + _f_text(digits, dp)


def g_text(neg: bool, digits: str, dp: int) -> str:
    """Go ``%g`` layout (shortest precision) of shortest digits."""
    sign = "-" if neg else ""
    exp = dp - 1
    if digits != "0" and (exp < -4 or exp >= 6):
        return sign + _e_text(digits, exp)
    return sign + _f_text(digits, dp)


def _e_text(digits: str, exp: int) -> str:
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"


def _f_text(digits: str, dp: int) -> str:
    if digits == "0":
        return "0"
    if dp <= 0:
        return "0." + "0" * (-dp) + digits
    if dp >= len(digits):
        return digits + "0" * (dp - len(digits))
    return digits[:dp] + "." + digits[dp:]
