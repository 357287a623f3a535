"""The one number formatter: hand-checked cases and properties."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unetgan_bench.reports import format as fmt


def test_mean_std_text_html_latex_agree_on_rounding():
    assert fmt.format_mean_std(0.8924, 0.0318) == "0.892 +/- 0.032"
    assert fmt.format_mean_std(0.8924, 0.0318, style="html") == "0.892 \u00b1 0.032"
    assert fmt.format_mean_std(0.8924, 0.0318, style="latex") == r"$0.892 \pm 0.032$"
    assert fmt.format_mean_std(6.04, 0.81, digits=1) == "6.0 +/- 0.8"


def test_missing_and_undefined_are_distinguished():
    assert fmt.format_mean_std(None, None) == fmt.MISSING
    assert fmt.format_mean_std(float("nan"), 0.1) == "n/a"
    assert fmt.format_mean_std(0.5, float("nan")) == "0.500"
    assert fmt.format_number(None) == fmt.MISSING
    assert fmt.format_ci(None, 1.0) == fmt.MISSING
    assert fmt.format_ci(float("nan"), 1.0) == "n/a"


def test_negative_zero_prints_without_sign():
    assert fmt.format_number(-0.0001) == "0.000"
    assert fmt.format_delta(-0.0001) == "0.000"
    assert fmt.format_delta(0.0123) == "+0.012"
    assert fmt.format_delta(-0.0123) == "-0.012"


def test_ci_p_and_markers():
    assert fmt.format_ci(0.8612, 0.9209) == "[0.861, 0.921]"
    assert fmt.format_p(0.0004) == "p<0.001"
    assert fmt.format_p(0.0321) == "p=0.032"
    assert [fmt.significance_marker(p) for p in (0.0005, 0.005, 0.04, 0.05, None, float("nan"))] == [
        "***",
        "**",
        "*",
        "",
        "",
        "",
    ]


def test_ratio_percent_seconds_latex_escape():
    assert fmt.format_ratio(0.934) == "0.93x"
    assert fmt.format_percent(0.125) == "12.5%"
    assert fmt.format_seconds(42.04) == "42.0 s"
    assert fmt.format_seconds(185) == "3 min 05 s"
    assert fmt.format_seconds(3725) == "1 h 02 min"
    assert fmt.latex_escape("a_b & 50%") == r"a\_b \& 50\%"


def test_unknown_style_is_rejected():
    with pytest.raises(ValueError, match="unknown style"):
        fmt.format_mean_std(0.5, 0.1, style="rtf")


@given(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.floats(0, 1e6, allow_nan=False),
    st.integers(0, 6),
)
def test_text_form_parses_back_within_half_an_ulp_of_the_last_digit(mean, std, digits):
    text = fmt.format_mean_std(mean, std, digits)
    left, right = text.split(" +/- ")
    assert math.isclose(float(left), mean, abs_tol=0.5 * 10**-digits + 1e-9)
    assert math.isclose(float(right), std, abs_tol=0.5 * 10**-digits + 1e-9)
    assert len(left.split(".")[1]) == digits if digits else "." not in left
