"""The one place numbers become text, for the HTML report, the CSV exports and LaTeX alike.

Every table cell that shows a measured value goes through these functions, so the report,
``table1.csv`` and ``table1.tex`` can never disagree about rounding. A missing value (``None``)
prints as an en dash, a value that was measured but undefined (NaN, e.g. HD95 with an empty
mask) prints as ``n/a``: the two mean different things and must stay distinguishable.
"""

from __future__ import annotations

import math
from typing import Any

MISSING = "\u2013"  # en dash, as in the paper's Table 1 for "not applicable"
UNDEFINED = "n/a"

# The +/- sign per output style: plain text for CSV and the terminal, a real sign in HTML,
# math mode in LaTeX.
_PLUS_MINUS = {"text": " +/- ", "html": " \u00b1 ", "latex": r" \pm "}


def _check_style(style: str) -> None:
    if style not in _PLUS_MINUS:
        raise ValueError(f"unknown style {style!r}; known: {', '.join(_PLUS_MINUS)}")


def _is_missing(value: float | None) -> bool:
    return value is None


def _is_undefined(value: float | None) -> bool:
    return value is not None and isinstance(value, float) and math.isnan(value)


def none_if_nan(value: Any) -> Any:
    """``None`` for a NaN that stands for "not computed" (e.g. a CI from one image), so it prints as the dash.

    Args:
        value: any value; a float NaN becomes ``None``, everything else is returned as it is.
    """
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def format_number(value: float | None, digits: int = 3) -> str:
    """A value with a fixed number of decimals.

    Args:
        value: the number (any unit); ``None`` for not measured, NaN for undefined.
        digits: decimals after the point.

    Example:
        >>> format_number(0.89249)
        '0.892'
    """
    if _is_missing(value):
        return MISSING
    value = float(value)
    if math.isnan(value):
        return UNDEFINED
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = f"{value:.{digits}f}"
    # "-0.000" reads as a sign that is not there; rounding to zero has no sign.
    if text.startswith("-") and float(text) == 0.0:
        text = text[1:]
    return text


def format_mean_std(mean: float | None, std: float | None, digits: int = 3, style: str = "text") -> str:
    """``"0.892 +/- 0.032"``: a mean and its standard deviation, rounded alike.

    Args:
        mean: the mean (any unit, e.g. Dice in [0, 1] or HD95 in mm).
        std: the standard deviation in the same unit; ``None`` or NaN (e.g. one seed) prints the
            mean alone.
        digits: decimals after the point for both numbers.
        style: ``"text"`` (``+/-``, CSV and terminal), ``"html"`` (``\u00b1``) or ``"latex"``
            (``$0.892 \\pm 0.032$``).

    Example:
        >>> format_mean_std(0.8924, 0.0318)
        '0.892 +/- 0.032'
    """
    _check_style(style)
    if _is_missing(mean) or _is_undefined(mean):
        return format_number(mean, digits)
    text = format_number(mean, digits)
    if not (_is_missing(std) or _is_undefined(std)):
        text += _PLUS_MINUS[style] + format_number(std, digits)
    return f"${text}$" if style == "latex" else text


def format_ci(low: float | None, high: float | None, digits: int = 3) -> str:
    """``"[0.861, 0.921]"``: a confidence interval.

    Args:
        low: lower bound (same unit as the estimate).
        high: upper bound.
        digits: decimals after the point.
    """
    if _is_missing(low) or _is_missing(high):
        return MISSING
    if _is_undefined(low) or _is_undefined(high):
        return UNDEFINED
    return f"[{format_number(low, digits)}, {format_number(high, digits)}]"


def format_p(p: float | None) -> str:
    """A p-value as ``"p=0.032"``, ``"p<0.001"``, or the missing/undefined marks.

    Args:
        p: a two-sided p-value in [0, 1].
    """
    if _is_missing(p):
        return MISSING
    if _is_undefined(p):
        return UNDEFINED
    if p < 0.001:
        return "p<0.001"
    return f"p={p:.3f}"


def significance_marker(p: float | None) -> str:
    """``"***"``, ``"**"``, ``"*"`` for p below 0.001, 0.01, 0.05; ``""`` otherwise.

    Args:
        p: a two-sided p-value; ``None`` or NaN gives no marker.
    """
    if _is_missing(p) or _is_undefined(p):
        return ""
    for threshold, marker in ((0.001, "***"), (0.01, "**"), (0.05, "*")):
        if p < threshold:
            return marker
    return ""


def format_delta(delta: float | None, digits: int = 3) -> str:
    """A signed difference, ``"+0.012"`` or ``"-0.004"`` (zero prints without a sign).

    Args:
        delta: new minus base, in the metric's unit.
        digits: decimals after the point.
    """
    text = format_number(delta, digits)
    if text in (MISSING, UNDEFINED) or float(text) == 0.0 or text.startswith("-"):
        return text
    return "+" + text


def format_ratio(ratio: float | None, digits: int = 2) -> str:
    """A ratio such as new/base speed as ``"0.93x"``.

    Args:
        ratio: a dimensionless ratio.
        digits: decimals after the point.
    """
    text = format_number(ratio, digits)
    return text if text in (MISSING, UNDEFINED) else text + "x"


def format_percent(fraction: float | None, digits: int = 1) -> str:
    """A fraction in [0, 1] as a percentage, ``"12.5%"``.

    Args:
        fraction: the fraction (e.g. achieved / peak FLOP rate).
        digits: decimals after the point of the percentage.
    """
    if _is_missing(fraction) or _is_undefined(fraction):
        return format_number(fraction)
    return format_number(100.0 * float(fraction), digits) + "%"


def format_seconds(seconds: float | None) -> str:
    """A wall time: ``"42.0 s"``, ``"3 min 05 s"`` or ``"1 h 02 min"``.

    Args:
        seconds: duration in seconds.
    """
    if _is_missing(seconds) or _is_undefined(seconds):
        return format_number(seconds)
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def latex_escape(text: str) -> str:
    """Escape the characters LaTeX treats specially, so vendor names print as written."""
    replacements = {
        "\\": r"\textbackslash{}",
        "&": r"\&",
        "%": r"\%",
        "$": r"\$",
        "#": r"\#",
        "_": r"\_",
        "{": r"\{",
        "}": r"\}",
        "~": r"\textasciitilde{}",
        "^": r"\textasciicircum{}",
        "<": r"\textless{}",
        ">": r"\textgreater{}",
    }
    return "".join(replacements.get(ch, ch) for ch in str(text))
