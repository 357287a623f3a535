"""The one jinja2 environment of every page (run report, comparison, trend): templates from ``templates/``,
autoescaped, undefined names are errors."""

from __future__ import annotations

from pathlib import Path

import jinja2

TEMPLATES = Path(__file__).resolve().parent / "templates"


def environment() -> jinja2.Environment:
    """A jinja2 environment over ``TEMPLATES`` that escapes every value and refuses undefined names."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
