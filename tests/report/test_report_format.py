"""The number-formatting rule: expected strings derived by hand from the rule (two significant digits of the
half-width, same decimals for all three numbers, shared exponent where tiny or huge), and properties checked
against the unformatted floats (every shown number within half a unit of its last digit of the true one)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from interp_steer.report.format import format_ci, format_count, format_interval, format_value

CASES = [
    ((3.2412, 2.4133, 4.0801), "3.24 [2.41, 4.08]"),  # half-width 0.83 → 2 decimals
    ((0.0671, 0.051, 0.0832), "0.067 [0.051, 0.083]"),  # half-width 0.016 → 3 decimals
    ((1.61, 0.2, 3.1), "1.6 [0.2, 3.1]"),  # half-width 1.45 → 1 decimal
    ((42.0, 17.0, 70.0), "42 [17, 70]"),  # half-width 26.5 → 0 decimals
    ((12345.6, 10000, 14600), "12300 [10000, 14600]"),  # half-width 2300 → hundreds
    ((-0.5, -0.9, -0.1), "-0.50 [-0.90, -0.10]"),  # negative
    ((-3.0, -5.5, 1.25), "-3.0 [-5.5, 1.2]"),  # an interval across zero (1.25 rounds half to even)
    ((0.001234, 0.0011, 0.0013), "0.00123 [0.00110, 0.00130]"),  # 1e-3 ≤ largest: fixed
    ((1.2e-5, 0.8e-5, 1.6e-5), "1.20e-05 [0.80e-05, 1.60e-05]"),  # tiny: one shared exponent
    ((-4e-4, -9e-4, 1e-4), "-4.0e-04 [-9.0e-04, 1.0e-04]"),
    ((2.5e7, 2.0e7, 3.1e7), "2.50e+07 [2.00e+07, 3.10e+07]"),  # huge
    ((1.0, 1.0, 1.0), "1.00 [1.00, 1.00]"),  # equal bounds: three significant digits of the value
    ((0.0, 0.0, 0.0), "0 [0, 0]"),
    ((0.0, -0.002, 0.002), "0.0000 [-0.0020, 0.0020]"),
    ((-0.0001, -0.04, 0.04), "0.000 [-0.040, 0.040]"),  # no "-0.000"
    ((0.3, 0.29999, 0.30001), "0.300000 [0.299990, 0.300010]"),  # capped at 6 significant digits
    ((float("nan"), 0.0, 1.0), "n/a"),
    ((None, 0.0, 1.0), "n/a"),
    ((float("inf"), 1.0, 2.0), "inf"),
    ((float("-inf"), 1.0, 2.0), "-inf"),
    ((2.5, float("nan"), 3.0), "2.50 (no CI)"),
    ((2.5, 1.0, float("inf")), "2.50 (no CI)"),
]


@pytest.mark.parametrize(("args", "expected"), CASES)
def test_format_ci_cases(args, expected):
    assert format_ci(*args) == expected


def test_format_ci_units():
    assert format_ci(3.2412, 2.4133, 4.0801, units="nats") == "3.24 [2.41, 4.08] nats"
    assert format_ci(float("nan"), 1, 2, units="nats") == "n/a"


def _reference(estimate: float, low: float, high: float) -> tuple[int, int, list[float]]:
    """(exponent, decimals, rounded mantissas) by the rule, written from the docstring with numpy."""
    values = np.array([estimate, low, high])
    largest = np.abs(values).max()
    exp = int(np.floor(np.log10(largest))) if largest < 1e-3 or largest >= 1e6 else 0
    scaled = values / 10.0 ** exp
    half = (scaled[2] - scaled[1]) / 2
    decimals = 1 - int(np.floor(np.log10(half)))
    decimals = min(decimals, 5 - int(np.floor(np.log10(np.abs(scaled).max()))))
    if exp:
        decimals = max(decimals, 0)
    return exp, decimals, [float(np.round(v, decimals)) for v in scaled]


def test_format_ci_properties_on_random_intervals():
    rng = np.random.default_rng(0)
    for _ in range(1000):
        scale = 10.0 ** rng.uniform(-7, 8)
        estimate = rng.normal() * scale
        half = abs(rng.normal()) * scale * 10.0 ** rng.uniform(-3, 1) + 1e-300
        low, high = estimate - half * rng.uniform(0.5, 1.5), estimate + half * rng.uniform(0.5, 1.5)
        text = format_ci(estimate, low, high)
        match = re.fullmatch(r"(\S+) \[(\S+), (\S+)\]", text)
        assert match, text
        exp, decimals, expected = _reference(estimate, low, high)
        for shown, value in zip(match.groups(), expected):
            mantissa, _, e = shown.partition("e")
            assert int(e or 0) == exp, text  # one shared exponent, only where tiny or huge
            assert (len(mantissa.split(".")[1]) if "." in mantissa else 0) == max(decimals, 0), text
            assert float(mantissa) == pytest.approx(value, abs=1e-9 * max(1.0, abs(value))), (text, value)


VALUES = [
    (3.24159, "3.24"), (0.0671, "0.0671"), (9.996, "10.0"), (123.4, "123"), (12345.0, "12300"), (12345, "12345"),
    (-0.5, "-0.500"), (1e-7, "1.00e-07"), (-2.5e-4, "-2.50e-04"), (2.5e8, "2.50e+08"), (0.0, "0"), (-0.0, "0"),
    (float("nan"), "n/a"), (float("inf"), "inf"), (None, "n/a"), (7, "7"), (True, "True"),
]


@pytest.mark.parametrize(("value", "expected"), VALUES)
def test_format_value_cases(value, expected):
    assert format_value(value) == expected


def test_format_value_with_n_and_units():
    assert format_value(0.0671, n=64, units="nats") == "0.0671 nats (n=64)"
    assert format_value(float("nan"), n=3, units="nats") == "n/a (n=3)"
    assert format_value(3.14159, digits=2) == "3.1"
    assert format_count(12, 40) == "12 of 40"


def test_format_interval_takes_any_sequence():
    import pandas as pd

    row = pd.Series({"x": 3.2412, "x_lo": 2.4133, "x_hi": 4.0801})
    assert format_interval(row) == format_interval([3.2412, 2.4133, 4.0801]) == "3.24 [2.41, 4.08]"
    assert format_interval((1.0, None, 2.0), units="nats") == "1.00 nats (no CI)"
