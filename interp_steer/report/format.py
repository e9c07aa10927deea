"""One rule for every number a person reads (console tables, the steering card, HTML reports).

* An estimate with its interval reads ``"3.24 [2.41, 4.08]"`` (:func:`format_ci`). The decimals come from the
  interval: two significant digits of its half-width, and the same decimals for all three numbers, so the last
  digit shown is the first uncertain one.
* A bare value reads with three significant digits (:func:`format_value`), optionally ``"(n=120)"``.
* Values that are tiny (largest magnitude below 1e-3, not zero) or huge (1e6 and above) are written in
  scientific notation with one exponent shared by the three numbers: ``"1.2e-05 [0.8e-05, 1.6e-05]"``.
* NaN reads ``"n/a"``; ±inf reads ``"inf"`` / ``"-inf"``; a missing interval reads ``"3.24 (no CI)"``.

Machine tables (CSV / parquet) keep the separate ``x, x_lo, x_hi`` columns at full precision; this module only
makes the strings shown to people.
"""

from __future__ import annotations

import math

SIG_DIGITS = 3  # significant digits of a value shown without an interval
CI_DIGITS = 2  # significant digits of an interval's half-width
MAX_SIG = 6  # never show more significant digits than this, however narrow the interval
SCI_LOW, SCI_HIGH = 1e-3, 1e6


def _finite(x: float | None) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def _nonfinite(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return "inf" if x > 0 else "-inf"


def _exponent(x: float) -> int:
    """The decimal exponent of ``|x|`` (``x`` ≠ 0): 3.2 → 0, 0.032 → −2, 3200 → 3."""
    return math.floor(math.log10(abs(x)))


def _scientific(largest: float) -> bool:
    return largest != 0 and (largest < SCI_LOW or largest >= SCI_HIGH)


def _fixed(x: float, decimals: int) -> str:
    """``x`` rounded to ``decimals`` (negative: to tens, hundreds, …) without a minus sign on a zero."""
    if decimals < 0:
        text = f"{round(x, decimals):.0f}"
    else:
        text = f"{x:.{decimals}f}"
    if text.lstrip("-").strip("0.") == "":
        text = text.lstrip("-")
    return text


def _decimals(largest: float, half_width: float, sig_of_value: int = SIG_DIGITS) -> int:
    """Decimals showing ``CI_DIGITS`` significant digits of ``half_width`` (or ``sig_of_value`` digits of the
    largest value when there is no width), at most ``MAX_SIG`` significant digits of the largest value."""
    if half_width > 0:
        decimals = CI_DIGITS - 1 - _exponent(half_width)
    elif largest > 0:
        decimals = sig_of_value - 1 - _exponent(largest)
    else:
        return 0
    if largest > 0:
        decimals = min(decimals, MAX_SIG - 1 - _exponent(largest))
    return decimals


def _join(numbers: list[str], units: str | None) -> str:
    text = numbers[0] if len(numbers) == 1 else f"{numbers[0]} [{numbers[1]}, {numbers[2]}]"
    return f"{text} {units}" if units else text


def format_ci(estimate: float | None, low: float | None, high: float | None, units: str | None = None) -> str:
    """``"3.24 [2.41, 4.08]"`` (``units`` appended: ``"3.24 [2.41, 4.08] nats"``); see the module docstring for
    the digits rule. A non-finite estimate gives ``"n/a"`` / ``"inf"``; a non-finite bound gives the estimate
    alone followed by ``"(no CI)"``."""
    if not _finite(estimate):
        return _nonfinite(estimate)
    assert estimate is not None
    if not (_finite(low) and _finite(high)):
        return f"{format_value(estimate, units=units)} (no CI)"
    assert low is not None and high is not None
    values = [float(estimate), float(low), float(high)]
    largest = max(abs(v) for v in values)
    half_width = abs(values[2] - values[1]) / 2
    if _scientific(largest):
        exp = _exponent(largest)
        scaled = [v / 10.0 ** exp for v in values]
        decimals = max(_decimals(max(abs(v) for v in scaled), half_width / 10.0 ** exp), 0)
        return _join([f"{_fixed(v, decimals)}e{exp:+03d}" for v in scaled], units)
    decimals = _decimals(largest, half_width)
    return _join([_fixed(v, decimals) for v in values], units)


def format_value(value: float | int | None, n: int | None = None, units: str | None = None,
                 digits: int = SIG_DIGITS) -> str:
    """A bare value with ``digits`` significant digits (integers as integers), scientific notation where tiny or
    huge, then ``units`` and ``"(n=…)"`` when given: ``format_value(0.0671, n=64, units="nats")`` →
    ``"0.0671 nats (n=64)"``."""
    if isinstance(value, bool):
        text = str(value)
    elif isinstance(value, int) and abs(value) < SCI_HIGH:
        text = str(value)
    elif not _finite(value):
        text = _nonfinite(value)
    else:
        assert value is not None
        x = float(f"{float(value):.{digits - 1}e}")  # rounded first, so 9.996 reads 10.0, not 10.00
        if _scientific(abs(x)):
            exp = _exponent(x)
            text = f"{_fixed(x / 10.0 ** exp, digits - 1)}e{exp:+03d}"
        elif x == 0:
            text = "0"
        else:
            text = _fixed(x, digits - 1 - _exponent(x))
    if units and text not in ("n/a", "inf", "-inf"):
        text = f"{text} {units}"
    return f"{text} (n={n})" if n is not None else text


def format_count(k: int, n: int) -> str:
    """``"12 of 40"``: a count out of a total."""
    return f"{int(k)} of {int(n)}"


def format_interval(triple, units: str | None = None) -> str:
    """:func:`format_ci` of an ``(estimate, low, high)`` sequence (a list, tuple, array or pandas row)."""
    estimate, low, high = (None if v is None else float(v) for v in list(triple))
    return format_ci(estimate, low, high, units)
