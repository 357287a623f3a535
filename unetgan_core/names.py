"""Names that become parts of file paths: one rule, checked in one place.

Suite names, vendor and style names, scenario and model names end up in run folders, figure
files and cache paths. A name is 1 to 64 characters from ``A-Z a-z 0-9 _ . -``, starts with a
letter or digit and holds no ``..``, so it can never climb out of a folder, name a hidden file
or carry a separator or a NUL byte.
"""

from __future__ import annotations

import re

from unetgan_core.errors import UserError

NAME_RULE = "1-64 characters from A-Z a-z 0-9 _ . -, starting with a letter or digit, without '..'"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_name(kind: str, value: object, where: str) -> str:
    """Return ``value`` if it is a safe name, else raise a one-line ``UserError``.

    Args:
        kind: what the name names, e.g. ``"suite name"`` or ``"style"``.
        value: the name as given.
        where: ``"<file>: [table] key"`` prefix for the message.

    Example:
        >>> check_name("style", "philips_noisy", "[vendors] styles")
        'philips_noisy'
    """
    if not isinstance(value, str) or not _NAME.fullmatch(value) or ".." in value:
        text = repr(value)
        shown = text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"
        raise UserError(f"{where}: {kind} {shown} is not allowed; a name is {NAME_RULE}")
    return value
